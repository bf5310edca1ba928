"""PyTorch's default initialisation, checked against PyTorch's own rule."""

import dataclasses
import math

import keras
import numpy as np

from stacnas_tf import config as config_lib
from stacnas_tf import initialization
from stacnas_tf import search_loop
from stacnas_tf import search_space

# A tiny default search: every kind of op in stage 1, both cell types.
CONFIG = dataclasses.replace(config_lib.PRESETS["smoke"], channels=4)


def _supernet(config=CONFIG, stage=1):
    space = search_space.StageSpace(cells=(config.space.stage1_candidates(),) * 2)
    return search_loop.build_supernet(config, stage, space, 3, 10, (8, 8, 1))


def _by_path(model):
    return {v.path: v.numpy() for v in model.variables}


def test_fan_ins_are_pytorchs():
    # torch.nn.init._calculate_fan_in_and_fan_out: weight.size(1) (input channels
    # per group) x the kernel's area; nn.Linear: in_features.
    conv = keras.layers.Conv2D(6, 3, groups=2, use_bias=True)
    conv.build((None, 8, 8, 4))
    assert [fan for _, fan in initialization.kernel_fan_ins(conv)] == [2 * 9, 2 * 9]
    depthwise = keras.layers.DepthwiseConv2D(5, use_bias=False)
    depthwise.build((None, 8, 8, 4))
    assert [fan for _, fan in initialization.kernel_fan_ins(depthwise)] == [25]
    dense = keras.layers.Dense(10)
    dense.build((None, 32))
    assert [fan for _, fan in initialization.kernel_fan_ins(dense)] == [32, 32]
    assert initialization.kernel_fan_ins(keras.layers.ReLU()) == []


def test_every_supernet_weight_is_drawn_within_pytorchs_bound():
    keras_init = _supernet(dataclasses.replace(CONFIG, weight_init="keras"))
    model = _supernet()
    before, after = _by_path(keras_init), _by_path(model)
    redrawn = 0
    for layer in model._flatten_layers(include_self=True, recursive=True):
        for variable, fan_in in initialization.kernel_fan_ins(layer):
            values, bound = variable.numpy(), 1 / math.sqrt(fan_in)
            assert np.abs(values).max() <= bound
            if values.size >= 64:  # uniform: spans the bound, variance bound^2 / 3
                assert np.abs(values).max() > 0.9 * bound
                assert abs(values.std() - bound / math.sqrt(3)) < 0.25 * bound / math.sqrt(3)
            redrawn += 1
    assert redrawn > 20
    # Every kernel and the classifier's bias changed; batch norms and alpha did not.
    for path, value in before.items():
        if path.endswith(("kernel", "bias")) or "depthwise" in path or "pointwise" in path:
            assert not np.array_equal(value, after[path]), path
        elif "architecture" in path or path.endswith(("gamma", "beta", "moving_mean",
                                                      "moving_variance", "mean", "std")):
            assert np.array_equal(value, after[path]), path


def test_the_start_is_a_function_of_the_seed_and_stage():
    first, again = _by_path(_supernet()), _by_path(_supernet())
    assert all(np.array_equal(first[p], again[p]) for p in first)
    other_seed = _by_path(_supernet(dataclasses.replace(CONFIG, seed=CONFIG.seed + 1)))
    other_stage = _by_path(_supernet(stage=2))
    kernel = next(p for p in first if p.endswith("classifier/kernel"))
    assert not np.array_equal(first[kernel], other_seed[kernel])
    assert not np.array_equal(first[kernel], other_stage[kernel.replace("stage1", "stage2")])
