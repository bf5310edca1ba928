"""AutoAugment's CIFAR-10 policy (Cubuk et al., 2018) as TensorFlow image ops.

The policy (25 sub-policies of two (op, probability, magnitude level) steps)
and the magnitude ranges are the paper's. No installable library offers it for
TF 2.21 (tf-models-official pins TF 2.20 and pulls in tf_keras, gin, ...), so
the ops are written here on TensorFlow's own image primitives. Images are
float32 in [0, 255]; all randomness is stateless, seeded by the caller.
"""

from __future__ import annotations

import math

import tensorflow as tf

CIFAR10_POLICY = (
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
    (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
    (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
)

_LEVELS = 10
# (value at the largest level, signed): magnitude = level / 9 * maximum.
_RANGES = {
    "ShearX": (0.3, True), "ShearY": (0.3, True),
    "TranslateX": (150.0 / 331.0, True), "TranslateY": (150.0 / 331.0, True),
    "Rotate": (30.0, True), "Brightness": (0.9, True), "Color": (0.9, True),
    "Contrast": (0.9, True), "Sharpness": (0.9, True),
}
_POSTERIZE_BITS = (8, 8, 7, 7, 6, 6, 5, 5, 4, 4)
_FILL = 128.0  # the paper fills uncovered pixels with grey


def magnitude(name: str, level: int) -> float:
    if name == "Posterize":
        return float(_POSTERIZE_BITS[level])
    if name == "Solarize":
        return 256.0 - 256.0 * level / (_LEVELS - 1)
    maximum, _ = _RANGES[name]
    return maximum * level / (_LEVELS - 1)


def _blend(degenerate, image, factor):
    return tf.clip_by_value(degenerate + factor * (image - degenerate), 0.0, 255.0)


def _grayscale(image):
    if image.shape[-1] == 1:
        return image
    return tf.image.rgb_to_grayscale(image)


def _affine(image, transform):
    """Projective transform (output -> input pixel map), nearest pixel, grey fill."""
    shape = tf.shape(image)[:2]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=tf.cast(tf.reshape(transform, [1, 8]), tf.float32),
        output_shape=shape, fill_value=_FILL, interpolation="NEAREST", fill_mode="CONSTANT")
    return out[0]


def _rotate(image, degrees):
    height = tf.cast(tf.shape(image)[0], tf.float32)
    width = tf.cast(tf.shape(image)[1], tf.float32)
    angle = degrees * math.pi / 180.0
    cos, sin = tf.cos(angle), tf.sin(angle)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    return _affine(image, tf.stack([cos, -sin, cx - cos * cx + sin * cy,
                                    sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0]))


def _sharpness(image, factor):
    channels = image.shape[-1]
    kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])
    smooth = tf.nn.depthwise_conv2d(image[None], kernel, [1, 1, 1, 1], "VALID")[0]
    # Border pixels keep their values, as in PIL.
    smooth = tf.pad(smooth, [[1, 1], [1, 1], [0, 0]])
    inner = tf.pad(tf.ones_like(smooth[1:-1, 1:-1]), [[1, 1], [1, 1], [0, 0]])
    degenerate = inner * tf.round(smooth) + (1 - inner) * image
    return _blend(degenerate, image, factor)


def _autocontrast(image):
    low = tf.reduce_min(image, axis=[0, 1], keepdims=True)
    high = tf.reduce_max(image, axis=[0, 1], keepdims=True)
    scale = tf.where(high > low, 255.0 / tf.maximum(high - low, 1e-3), 1.0)
    offset = tf.where(high > low, low, 0.0)
    return tf.clip_by_value((image - offset) * scale, 0.0, 255.0)


def _equalize_channel(channel):
    values = tf.cast(channel, tf.int32)
    histogram = tf.math.bincount(tf.reshape(values, [-1]), minlength=256, maxlength=256)
    nonzero = tf.boolean_mask(histogram, histogram > 0)
    step = (tf.reduce_sum(nonzero) - nonzero[-1]) // 255
    lut = (tf.cumsum(histogram, exclusive=True) + step // 2) // tf.maximum(step, 1)
    equalized = tf.gather(tf.clip_by_value(lut, 0, 255), values)
    return tf.cast(tf.where(step > 0, equalized, values), tf.float32)


def _equalize(image):
    return tf.stack([_equalize_channel(image[..., c]) for c in range(image.shape[-1])], axis=-1)


def apply_op(name: str, image, value):
    """Applies AutoAugment op `name` with its (signed) magnitude `value`."""
    size = tf.cast(tf.shape(image)[1], tf.float32)
    if name == "ShearX":
        return _affine(image, tf.stack([1.0, value, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]))
    if name == "ShearY":
        return _affine(image, tf.stack([1.0, 0.0, 0.0, value, 1.0, 0.0, 0.0, 0.0]))
    if name == "TranslateX":
        return _affine(image, tf.stack([1.0, 0.0, tf.round(value * size), 0.0, 1.0, 0.0, 0.0, 0.0]))
    if name == "TranslateY":
        height = tf.cast(tf.shape(image)[0], tf.float32)
        return _affine(image, tf.stack([1.0, 0.0, 0.0, 0.0, 1.0, tf.round(value * height), 0.0, 0.0]))
    if name == "Rotate":
        return _rotate(image, value)
    if name == "Brightness":
        return _blend(tf.zeros_like(image), image, 1.0 + value)
    if name == "Color":
        return _blend(tf.broadcast_to(_grayscale(image), tf.shape(image)), image, 1.0 + value)
    if name == "Contrast":
        return _blend(tf.fill(tf.shape(image), tf.reduce_mean(_grayscale(image))), image, 1.0 + value)
    if name == "Sharpness":
        return _sharpness(image, 1.0 + value)
    if name == "Posterize":
        shift = 2.0 ** (8.0 - value)
        return tf.floor(image / shift) * shift
    if name == "Solarize":
        return tf.where(image >= value, 255.0 - image, image)
    if name == "AutoContrast":
        return _autocontrast(image)
    if name == "Equalize":
        return _equalize(image)
    if name == "Invert":
        return 255.0 - image
    raise ValueError(f"unknown AutoAugment op {name!r}.")


def cifar10_policy(image, seed):
    """Applies one random sub-policy of the CIFAR-10 policy to a float [0, 255] image.

    `seed`: an int64 pair for stateless randomness (sub-policy, probabilities, signs).
    """
    seed = tf.cast(seed, tf.int64)
    choice = tf.random.stateless_uniform([], seed, maxval=len(CIFAR10_POLICY), dtype=tf.int32)
    draws = tf.random.stateless_uniform([4], seed + tf.constant([0, 7919], tf.int64))

    def branch(subpolicy):
        def run():
            out = image
            for step, (name, probability, level) in enumerate(subpolicy):
                value = 0.0 if level is None else magnitude(name, level)
                if name in _RANGES and _RANGES[name][1]:
                    value = tf.where(draws[2 + step] < 0.5, -value, value)
                out = tf.cond(draws[step] < probability,
                              lambda out=out, name=name, value=value: apply_op(name, out, value),
                              lambda out=out: out)
            return tf.ensure_shape(out, image.shape)
        return run

    return tf.switch_case(choice, [branch(s) for s in CIFAR10_POLICY])
