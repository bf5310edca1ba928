"""Image datasets as tf.data pipelines: the training batches (one stream, or
DARTS's two halves for bi-level search) and the evaluation batches, raw
pixels out (the networks normalise them).

Training pipelines are deterministic functions of (seed, epoch): the shuffle
order and the augmentation of each position are seeded by both, so a resumed
run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import tensorflow as tf

from stacnas_tf import augmentation
from stacnas_tf import sources


def train_pipeline(source: sources.Source, batch_size: int, *, seed: int, epochs: int,
                   initial_epoch: int = 0, augment: augmentation.Augment | None = None,
                   image_size: int | None = None, num_examples: int | None = None,
                   shuffle_buffer: int = 20000, first_example: int = 0,
                   input_context: tf.distribute.InputContext | None = None,
                   deterministic: bool = True, cache: bool = False,
                   parallel_calls: int = tf.data.AUTOTUNE,
                   epoch_steps: int | None = None) -> tf.data.Dataset:
    """Batches for epochs [initial_epoch, epochs), a function of `seed` alone.

    The examples are reshuffled every pass by a seeded shuffle of the repeated
    stream, and each position's augmentation is seeded by (seed, position), so
    starting at `initial_epoch` (skipping the examples of earlier epochs,
    undecoded) gives exactly the batches an uninterrupted run would. An epoch is
    `sources.steps_per_epoch` full batches (each replica of a strategy gets equal shares).
    The examples used are `num_examples` (default: all) from `first_example` on.

    With an `input_context` (from `strategy.distribute_datasets_from_function`)
    this is one worker's pipeline: it keeps every n-th position of the shared
    shuffled stream (n workers), decodes only those, and batches them per
    replica, so one global step consumes exactly the examples a single-process
    step would. `cache` keeps the decoded source examples in memory after the
    first pass; `deterministic=False` lets parallel augmentation deliver out of
    order (faster when augmentation times vary, but batches then differ run to run);
    `parallel_calls` is how many examples are augmented at once (tf.data tunes it).
    `epoch_steps` (default: one pass) cuts the same stream into epochs of
    that many batches, so epochs may end mid-pass and images stay fresh across them.
    """
    augment = augment or augmentation.Augment()
    available = source.num_examples - first_example
    count = min(num_examples or available, available)
    if count < 1:
        raise ValueError(f"first_example={first_example} is past the {source.num_examples} examples.")
    base = source.dataset.skip(first_example).take(count)
    if cache:
        base = base.cache()
    steps = epoch_steps or sources.steps_per_epoch(source, batch_size, count)
    skipped = initial_epoch * steps * batch_size
    stream = (base.shuffle(min(shuffle_buffer, count), seed=seed, reshuffle_each_iteration=True)
              .repeat().skip(skipped).enumerate(start=skipped))
    batches_per_step, replica_batch = 1, batch_size
    if input_context is not None:
        replicas, workers = input_context.num_replicas_in_sync, input_context.num_input_pipelines
        if batch_size % replicas:
            raise ValueError(f"--batch_size={batch_size} does not split evenly over {replicas} "
                             f"replicas; use a multiple of {replicas}.")
        replica_batch = batch_size // replicas
        batches_per_step = replicas // workers
        stream = stream.shard(workers, input_context.input_pipeline_id)

    def transform(position, example):
        image, label = example
        pair = tf.stack([tf.constant(seed, tf.int64), position])
        if augment.random_resized_crop:
            size = image_size or source.image_shape[0]
            image = augmentation.random_resized_crop(tf.cast(image, tf.float32), size, pair + 3)
        else:
            image = _pixels(image, source, image_size)
        image = augmentation.apply(image, pair, augment, source)
        return image, label

    return (stream.map(transform, num_parallel_calls=parallel_calls, deterministic=deterministic)
            .batch(replica_batch, drop_remainder=True)
            .take((epochs - initial_epoch) * steps * batches_per_step)
            .prefetch(tf.data.AUTOTUNE))


def bi_level_split(source: sources.Source, num_examples: int | None = None) -> tuple[int, int]:
    """(examples per half, first example of the second half) of DARTS's 50/50 split."""
    half = min(num_examples or source.num_examples, source.num_examples) // 2
    return half, half


def bi_level_pipeline(source: sources.Source, batch_size: int, *, seed: int, epochs: int,
                      initial_epoch: int = 0, augment: augmentation.Augment | None = None,
                      image_size: int | None = None, num_examples: int | None = None,
                      input_context: tf.distribute.InputContext | None = None,
                      epoch_steps: int | None = None) -> tf.data.Dataset:
    """Pairs (weight batch, architecture batch) from two disjoint halves of the
    training examples, as DARTS's train/valid split of the training set.

    An epoch is one pass over a half; both halves are shuffled and augmented
    like `train_pipeline`, with their own seeds.
    """
    half, second = bi_level_split(source, num_examples)
    kwargs = dict(batch_size=batch_size, epochs=epochs, initial_epoch=initial_epoch,
                  augment=augment, image_size=image_size, num_examples=half,
                  input_context=input_context, epoch_steps=epoch_steps)
    weights = train_pipeline(source, seed=seed, **kwargs)
    architecture = train_pipeline(source, seed=seed + 1, first_example=second, **kwargs)
    return tf.data.Dataset.zip((weights, architecture))


def eval_pipeline(source: sources.Source, batch_size: int, image_size: int | None = None,
                  num_examples: int | None = None) -> tf.data.Dataset:
    base = source.dataset.take(num_examples) if num_examples else source.dataset
    return (base.map(lambda x, y: (_pixels(x, source, image_size), y),
                     num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size).prefetch(tf.data.AUTOTUNE))


def _pixels(image, source: sources.Source, image_size):
    """float32 pixels in [0, 255], resized when asked (ImageNet: as DARTS evaluates,
    the shorter side to 256/224 of the size, then the centre square)."""
    image = tf.cast(image, tf.float32)
    if image_size and source.name == "imagenet2012":
        return _resize_and_center_crop(image, image_size)
    if image_size and (source.image_shape[0] != image_size or source.image_shape[1] != image_size):
        image = tf.image.resize(image, (image_size, image_size), antialias=True)
    return image


def _resize_and_center_crop(image, size):
    """torchvision's Resize(round(size * 256 / 224)) then CenterCrop(size), the
    DARTS ImageNet evaluation (256 and 224 at the usual size): the shorter side
    is resized (antialiased bilinear, as PIL) keeping the aspect ratio, the
    longer one truncated as torchvision does, then the centre is cut out."""
    shorter = round(size * 256 / 224)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    # torchvision: the longer side is int(shorter * long / short), computed in floats.
    long_side = tf.cast(tf.math.floor(
        shorter * tf.cast(tf.maximum(height, width), tf.float64)
        / tf.cast(tf.minimum(height, width), tf.float64)), tf.int32)
    new_height = tf.where(height <= width, shorter, long_side)
    new_width = tf.where(height <= width, long_side, shorter)
    image = tf.image.resize(image, tf.stack([new_height, new_width]), antialias=True)
    # CenterCrop: offsets int(round((side - size) / 2)).
    top = tf.cast(tf.round(tf.cast(new_height - size, tf.float64) / 2.0), tf.int32)
    left = tf.cast(tf.round(tf.cast(new_width - size, tf.float64) / 2.0), tf.int32)
    return tf.image.crop_to_bounding_box(image, top, left, size, size)
