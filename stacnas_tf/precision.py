"""Numeric precision of the networks: Keras dtype policies.

Under a mixed policy the convolutions compute in float16/bfloat16 while every
variable stays float32. What decides the architecture stays float32: the
logits alpha (never autocast), their softmax, the classifier's logits and the
loss. float16 also needs loss scaling, which the Keras `LossScaleOptimizer`
provides (the supernet and the final network wrap both optimizers in it).
"""

from __future__ import annotations

import contextlib

import keras

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def check(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"--precision: expected one of {list(PRECISIONS)}, got {precision!r}.")
    return precision


@contextlib.contextmanager
def policy_scope(precision: str):
    """Layers created inside take the dtype policy `precision`.

    Keras sublayers read the global policy when they are created, so it is set
    for the duration of the construction and restored afterwards.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(check(precision))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
