"""Numeric precision of the networks: Keras dtype policies.

Under a mixed policy the convolutions compute in float16/bfloat16 while every
variable stays float32. What decides the architecture stays float32: the
logits alpha (never autocast), their softmax, the classifier's logits and the
loss. float16 also needs loss scaling, which the Keras `LossScaleOptimizer`
provides (the supernet and the final network wrap both optimizers in it).
"""

from __future__ import annotations

import contextlib

# Keras is imported where it is used: configs check their precision with
# `check`, and every program's --help must not wait for TensorFlow.

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def check(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"--precision: expected one of {list(PRECISIONS)}, got {precision!r}.")
    return precision


def check_keras_environment() -> None:
    """Refuses a Keras set up for something else (by ~/.keras/keras.json, an
    environment variable or keras.config), naming the setting to change: the
    networks run on TensorFlow, keep float32 variables (mixed precision comes from
    the precision setting, which config.json records) and take channels-last
    images."""
    import keras  # noqa: PLC0415 (see the module's imports)

    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"Keras's backend is {keras.backend.backend()!r} (KERAS_BACKEND or "
                         "~/.keras/keras.json): stacnas_tf runs on TensorFlow; set "
                         "KERAS_BACKEND=tensorflow.")
    if keras.config.floatx() != "float32":
        raise ValueError(f"Keras's floatx is {keras.config.floatx()!r} (~/.keras/keras.json or "
                         "keras.config.set_floatx): stacnas_tf keeps its variables in float32 and "
                         "takes mixed precision from its precision setting; set floatx to float32.")
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(f"Keras's image_data_format is {keras.config.image_data_format()!r} "
                         "(~/.keras/keras.json or keras.config.set_image_data_format): stacnas_tf "
                         "takes channels-last images; set it to channels_last.")


@contextlib.contextmanager
def policy_scope(precision: str):
    """Layers created inside take the dtype policy `precision`.

    Keras sublayers read the global policy when they are created, so it is set
    for the duration of the construction and restored afterwards.
    """
    import keras  # noqa: PLC0415 (see the module's imports)

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(check(precision))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
