"""A candidate op of your own: a squeeze-and-excitation 3x3 conv, added to the
search space in its own group, searched, trained and exported.

    python examples/custom_op.py            # the default preset
    python examples/custom_op.py smoke      # seconds
"""

import sys

import keras
from sklearn.datasets import load_digits

import stacnas_tf


class SqueezeExciteConv(keras.layers.Layer):
    """ReLU -> 3x3 conv (stride 1 or 2) -> BatchNorm, its channels rescaled by
    a sigmoid gate computed from their global average (squeeze-and-excitation)."""

    def __init__(self, channels, stride=1, reduction=4, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.stride, self.reduction = channels, stride, reduction
        self.relu = keras.layers.ReLU(name="relu")
        self.conv = keras.layers.Conv2D(channels, 3, strides=stride, padding="same",
                                        use_bias=False, name="conv")
        self.norm = keras.layers.BatchNormalization(name="norm")
        self.pool = keras.layers.GlobalAveragePooling2D(keepdims=True, name="pool")
        self.squeeze = keras.layers.Dense(max(1, channels // reduction), activation="relu",
                                          name="squeeze")
        self.excite = keras.layers.Dense(channels, activation="sigmoid", name="excite")

    def call(self, inputs, training=None):
        x = self.norm(self.conv(self.relu(inputs)), training=training)
        return x * self.excite(self.squeeze(self.pool(x)))

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "stride": self.stride,
                "reduction": self.reduction}


# factory(channels, stride, name) -> a layer keeping `channels`, dividing H and W by `stride`.
stacnas_tf.register_op("se_conv_3x3", lambda channels, stride, name: SqueezeExciteConv(
    channels, stride, name=name))

preset = sys.argv[1] if len(sys.argv) > 1 else "default"
digits = load_digits()
data = (digits.images[..., None] * (255 / 16), digits.target)  # pixels in [0, 255]
groups = stacnas_tf.PAPER_GROUPS + (("se_conv_3x3",),)  # its own group: stage 1 weighs it
found = stacnas_tf.search(data, preset=preset, groups=groups, image_size=None,
                          class_names=[str(d) for d in range(10)])
print("found:", found.genotype.to_darts())
print("size at CIFAR-10:", stacnas_tf.describe(found.genotype, "cifar10")["parameters"])
trained = stacnas_tf.train(found, data, preset=preset, image_size=None)
report = stacnas_tf.export(trained, "se_export", data=data, overwrite=True)
print("export matches the Keras model:", report["passed"])
