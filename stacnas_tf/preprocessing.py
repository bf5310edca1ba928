"""What both networks do to an image first: per-channel normalisation of raw pixels.

Every network of this package (the supernet and the final network) takes images
as a user has them: pixels in [0, 255], uint8 or float, NHWC. The first layer
normalises them with the training split's per-channel statistics, which are
weights of that layer, so a `.keras` file, a checkpoint and every export carry
them: `predict`, `evaluate`, SavedModel, ONNX and TFLite all take raw pixels and
no deployment has to copy a mean and a standard deviation from anywhere. The
data pipelines hand the networks augmented pixels, never normalised ones.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="stacnas_tf")
class PixelNormalization(keras.layers.Layer):
    """(pixel / 255 - mean) / std per channel, `mean` and `std` given as
    fractions of the pixel range (the way datasets publish them, e.g. CIFAR-10's
    (0.4914, 0.4822, 0.4465)). Inputs may be uint8 or float; the output is float32
    whatever the dtype policy (the next layer casts it): the statistics of pixels
    lose too much in bfloat16.

    `mean`/`std` None: 0.5 and 0.5 for every channel (pixels to [-1, 1]) until
    weights are loaded over them.
    """

    def __init__(self, mean=None, std=None, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        if (mean is None) != (std is None):
            raise ValueError("PixelNormalization: give both mean and std, or neither.")
        if mean is not None:
            mean, std = (tuple(float(v) for v in np.ravel(s)) for s in (mean, std))
            if len(mean) != len(std) or not mean:
                raise ValueError(f"PixelNormalization: mean and std need one value per channel, "
                                 f"got {len(mean)} and {len(std)}.")
            if not all(np.isfinite(s) and s > 0 for s in std):
                raise ValueError(f"PixelNormalization: std must be positive, got {std}.")
        self.initial_mean, self.initial_std = mean, std

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("PixelNormalization: the number of channels must be known.")
        if self.initial_mean is not None and len(self.initial_mean) != channels:
            raise ValueError(f"PixelNormalization: statistics of {len(self.initial_mean)} "
                             f"channels, images of {channels}.")
        mean = self.initial_mean or (0.5,) * channels
        std = self.initial_std or (0.5,) * channels
        # Non-trainable weights, so that saving and checkpoints keep them.
        self.mean = self.add_weight(shape=(channels,), name="mean", trainable=False,
                                    initializer=keras.initializers.Constant(mean))
        self.std = self.add_weight(shape=(channels,), name="std", trainable=False,
                                   initializer=keras.initializers.Constant(std))

    def call(self, images):
        pixels = tf.cast(images, tf.float32)
        return (pixels - 255.0 * self.mean) / (255.0 * self.std)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def statistics(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) as held now (after any weights were loaded; before
        building, those it was given, or None)."""
        if not self.built:
            return self.initial_mean, self.initial_std
        return (tuple(float(v) for v in keras.ops.convert_to_numpy(self.mean)),
                tuple(float(v) for v in keras.ops.convert_to_numpy(self.std)))

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)  # always float32, set by the constructor
        config.update({"mean": None if self.initial_mean is None else list(self.initial_mean),
                       "std": None if self.initial_std is None else list(self.initial_std)})
        return config
