"""Sizes of a network: its parameters and its multiply-adds at inference, for a
genotype at a paper preset (`describe`) or any Keras model (`multiply_adds`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from stacnas_tf import config as config_lib
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import network as network_lib


def describe(genotype: genotype_lib.Genotype, preset: str) -> dict:
    """Parameter counts and multiply-adds of the paper's network for `genotype`."""
    if preset not in config_lib.NETWORK_PRESETS:
        raise ValueError(f"--preset: expected one of {sorted(config_lib.NETWORK_PRESETS)}, got {preset!r}.")
    spec = config_lib.NETWORK_PRESETS[preset]
    net = network_lib.FinalNetwork(genotype, spec["num_classes"], channels=spec["channels"],
                                   num_cells=spec["num_cells"], stem=spec["network"], auxiliary=True)
    net(tf.zeros((1,) + spec["image_shape"]), training=False)
    macs = multiply_adds(net, spec["image_shape"])
    return {
        "preset": preset, "genotype": genotype.to_darts(), **{k: v for k, v in spec.items()},
        "parameters": net.parameter_count(),
        "parameters_with_auxiliary": net.parameter_count(include_auxiliary=True),
        # ImageNet's mobile setting: under 600M multiply-adds at 224x224 (None elsewhere).
        "multiply_adds": macs,
        "mobile_setting": bool(macs < 600_000_000) if spec["network"] == "imagenet" else None,
    }


def multiply_adds(model: keras.layers.Layer, image_shape) -> int:
    """Multiply-adds of one image through `model` at inference.

    The sum over the convolutions and dense layers that run at inference (the
    auxiliary head does not) of: output pixels x kernel area x input channels
    per group x output channels (convolutions), output pixels x kernel area x
    channels x depth multiplier (depthwise), inputs x units (dense). Each term
    comes from the layer's configuration and the shape of its input, not from
    the ops TensorFlow runs: TF computes a stride-1 dilated depthwise conv on a
    space-to-batch rearranged input, whose shapes would hide 3/4 of its work.
    """
    counts = []
    with _recorded_inputs(counts):
        tf.function(lambda x: model(x, training=False)).get_concrete_function(
            tf.TensorSpec((1,) + tuple(image_shape), tf.float32))
    return int(sum(_layer_multiply_adds(layer, shape) for layer, shape in counts))


class _recorded_inputs:
    """Within the block, appends (layer, input shape) to `counts` for every call
    of a Keras convolution or dense layer."""

    _CLASSES = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)

    def __init__(self, counts):
        self.counts = counts
        self.originals = {}

    def __enter__(self):
        # Keras 3 has no forward hooks; wrapping the classes' public `call` for
        # the duration of one trace is the least intrusive way to see every
        # instance's input, however deeply nested (tested by the counts).
        for cls in self._CLASSES:
            original = cls.__dict__.get("call")
            self.originals[cls] = original
            inherited = cls.call

            def call(layer, inputs, *args, _inherited=inherited, **kwargs):
                self.counts.append((layer, tuple(inputs.shape)))
                return _inherited(layer, inputs, *args, **kwargs)

            cls.call = call
        return self

    def __exit__(self, *exc):
        for cls, original in self.originals.items():
            if original is None:
                del cls.call
            else:
                cls.call = original


def _conv_output_side(side, kernel, stride, dilation, padding):
    if padding == "same":
        return -(-side // stride)
    return (side - dilation * (kernel - 1) - 1) // stride + 1


def _layer_multiply_adds(layer, input_shape) -> int:
    if isinstance(layer, keras.layers.Dense):
        return int(np.prod(input_shape[1:-1], dtype=np.int64)) * input_shape[-1] * layer.units
    kernel_h, kernel_w = layer.kernel_size
    out_h, out_w = (
        _conv_output_side(side, kernel, stride, dilation, layer.padding)
        for side, kernel, stride, dilation in zip(input_shape[1:3], layer.kernel_size,
                                                  layer.strides, layer.dilation_rate))
    channels = input_shape[-1]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return out_h * out_w * kernel_h * kernel_w * channels * layer.depth_multiplier
    return out_h * out_w * kernel_h * kernel_w * (channels // layer.groups) * layer.filters
