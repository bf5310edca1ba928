"""Training augmentation, in DARTS's order: random crops (padded, or resized as
DARTS's ImageNet training), flips, colour jitter, AutoAugment's CIFAR-10
policy and cutout, each seeded by the example's position so that a pipeline
stays a function of (seed, epoch).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from stacnas_tf import autoaugment
from stacnas_tf import sources


@dataclasses.dataclass(frozen=True)
class Augment:
    """Training augmentation, in DARTS's order: pad (with black) and random crop,
    horizontal flip, AutoAugment's CIFAR-10 policy, then cutout (a `cutout` x
    `cutout` square, centred anywhere, filled with the mean pixel: zero after the
    network's normalisation, as DARTS's cutout of the normalised image)."""

    crop_padding: int = 0
    flip: bool = False
    autoaugment: bool = False
    cutout: int = 0
    # DARTS's ImageNet training: a random crop of 8-100% of the area with aspect
    # ratio 3/4-4/3 resized to the input size, and colour jitter.
    random_resized_crop: bool = False
    color_jitter: bool = False


def default_augment(name: str) -> Augment:
    if name in ("cifar10", "cifar100"):
        return Augment(crop_padding=4, flip=True)
    if name == "imagenet2012":
        return Augment(flip=True, random_resized_crop=True, color_jitter=True)
    return Augment()


def apply(image, seed, augment: Augment, source: sources.Source):
    """Augments float [0, 255] pixels. The networks normalise them themselves
    (`preprocessing.PixelNormalization`): pipelines hand them pixels."""
    if augment.crop_padding:
        pad = augment.crop_padding
        shape = tf.shape(image)
        padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
        image = tf.image.stateless_random_crop(padded, shape, seed=seed)
    if augment.flip:
        image = tf.image.stateless_random_flip_left_right(image, seed=seed[::-1])
    if augment.color_jitter:
        image = _color_jitter(image, seed + 4)
    if augment.autoaugment:
        image = autoaugment.cifar10_policy(image, seed + 2)
    if augment.cutout:
        image = _cutout(image, augment.cutout, seed + 1, source.mean)
    return image


def random_resized_crop(image, size, seed):
    """DARTS's ImageNet training crop: 8-100% of the area, aspect ratio 3/4-4/3,
    resized to `size` x `size` (pipelines take it in place of resizing)."""
    begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.zeros([1, 0, 4]), seed=seed,
        area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3), max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    crop = tf.slice(image, begin, extent)
    return tf.image.resize(crop, (size, size), antialias=True)


def _color_jitter(image, seed):
    """Brightness, contrast, saturation by up to +-40% and hue by up to +-0.2 (torchvision's
    ColorJitter(0.4, 0.4, 0.4, 0.2) as DARTS uses), on [0, 255] pixels."""
    x = image / 255.0
    x = x * tf.random.stateless_uniform([], seed, minval=0.6, maxval=1.4)  # brightness: a factor, as torchvision
    x = tf.image.stateless_random_contrast(x, 0.6, 1.4, seed + 1)
    if image.shape[-1] == 3:
        x = tf.image.stateless_random_saturation(tf.clip_by_value(x, 0.0, 1.0), 0.6, 1.4, seed + 2)
        x = tf.image.stateless_random_hue(x, 0.2, seed + 3)
    return tf.clip_by_value(x, 0.0, 1.0) * 255.0


def _cutout(image, length, seed, mean):
    """DARTS's cutout zeroes a square of the normalised image, i.e. fills it with
    the mean pixel; on raw pixels that is the mean itself."""
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    centre = tf.random.stateless_uniform([2], seed=seed, maxval=tf.int32.max, dtype=tf.int32)
    cy, cx = centre[0] % height, centre[1] % width
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    inside = ((rows >= cy - length // 2) & (rows < cy + (length - length // 2))
              & (cols >= cx - length // 2) & (cols < cx + (length - length // 2)))
    fill = tf.constant(mean, image.dtype) * 255.0
    return tf.where(inside[:, :, None], fill, image)
