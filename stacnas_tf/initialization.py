"""PyTorch's default initialisation, for a built Keras network: the start the
reference implementations (DARTS, the StacNAS authors' code) give theirs.

Keras draws convolution and dense kernels Glorot-uniform and biases at zero;
PyTorch's Conv2d and Linear draw weights and biases from U(-1/sqrt(fan_in),
1/sqrt(fan_in)) (`kaiming_uniform_(a=sqrt(5))`), fan_in counting one group's
input channels times the kernel area (a depthwise kernel: its area alone).
The two starts search differently: in both codes, with Glorot's the
architecture weights of two runs that differ only in the CPU thread count part
much sooner (`benchmarks/results/thread_sensitivity.md`).
"""

from __future__ import annotations

import math

import keras
import numpy as np


def kernel_fan_ins(layer) -> list:
    """(variable, fan_in) of `layer`'s own convolution and dense weights, fan_in
    as PyTorch counts it. A layer with weights of another shape (the batched
    search ops) says them itself (`kernel_fan_ins()`)."""
    if hasattr(layer, "kernel_fan_ins"):
        return layer.kernel_fan_ins()
    if isinstance(layer, keras.layers.DepthwiseConv2D):  # (kh, kw, channels, multiplier)
        weights = [(layer.kernel, layer.kernel.shape[0] * layer.kernel.shape[1])]
    elif isinstance(layer, keras.layers.Conv2D):  # (kh, kw, channels per group, filters)
        weights = [(layer.kernel, math.prod(layer.kernel.shape[:3]))]
    elif isinstance(layer, keras.layers.Dense):
        weights = [(layer.kernel, layer.kernel.shape[0])]
    else:
        return []
    if getattr(layer, "use_bias", False) and layer.bias is not None:
        weights.append((layer.bias, weights[0][1]))
    return weights


def pytorch_default(model, seed: int) -> int:
    """Redraws every convolution and dense weight (and bias) of the built
    `model` as PyTorch initialises them; batch norms (1 and 0 in both
    frameworks), architecture logits and other variables are kept. The draws
    come from numpy, seeded, in the model's layer order: the same on every CPU
    and thread count. Returns how many variables it drew."""
    rng = np.random.default_rng(seed)
    drawn = set()
    # Keras has no public recursive layer walk; tests/keras_private_api_test.py
    # notices if this one changes.
    for layer in model._flatten_layers(include_self=True, recursive=True):  # noqa: SLF001
        for variable, fan_in in kernel_fan_ins(layer):
            if id(variable) in drawn:
                continue
            drawn.add(id(variable))
            bound = 1.0 / math.sqrt(fan_in)
            variable.assign(rng.uniform(-bound, bound, size=tuple(variable.shape))
                            .astype(variable.dtype))
    return len(drawn)
