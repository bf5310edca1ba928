import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from stacnas_tf import augmentation
from stacnas_tf import pipelines
from stacnas_tf import sources

import helpers


def test_fancy_augmentation_pipeline_is_deterministic(tmp_path):
    manual = helpers.manual_dir(tmp_path, "cifar10")
    augment = augmentation.Augment(crop_padding=4, flip=True, autoaugment=True, cutout=16)
    with tfds.testing.mock_data(num_examples=64):
        source = sources.load("cifar10", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))
        first = [x.numpy() for x, _ in pipelines.train_pipeline(source, 32, seed=5, epochs=2, augment=augment)]
        again = [x.numpy() for x, _ in pipelines.train_pipeline(source, 32, seed=5, epochs=2, augment=augment)]
    assert len(first) == 4 and all(np.isfinite(b).all() for b in first)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_imagenet_training_augmentation(tmp_path):
    manual = helpers.manual_dir(tmp_path, "imagenet2012")
    augment = augmentation.default_augment("imagenet2012")
    assert augment.random_resized_crop and augment.color_jitter and augment.flip
    with tfds.testing.mock_data(num_examples=8):
        source = sources.load("imagenet2012", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))
        batches = [x.numpy() for x, _ in pipelines.train_pipeline(source, 4, seed=2, epochs=1, augment=augment,
                                                              image_size=32)]
        again = [x.numpy() for x, _ in pipelines.train_pipeline(source, 4, seed=2, epochs=1, augment=augment,
                                                            image_size=32)]
    assert len(batches) == 2 and batches[0].shape == (4, 32, 32, 3)
    assert all(np.isfinite(b).all() for b in batches)
    np.testing.assert_array_equal(batches[0], again[0])


def test_cifar_crop_shifts_the_image_by_up_to_the_padding():
    image = tf.constant(np.arange(64, dtype=np.float32).reshape(8, 8, 1))
    source = sources.Source("x", "train", None, 1, 2, (8, 8, 1), (0.0,), (1.0 / 255.0,))
    augment = augmentation.Augment(crop_padding=2)
    shifts = set()
    for seed in range(40):
        out = augmentation.apply(image, tf.constant([seed, 0], tf.int64), augment, source).numpy()[..., 0]
        # Each crop is the image moved by (dy, dx) in [-2, 2], zero-filled where padded.
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(out, np.pad(image.numpy()[..., 0], 2)[2 + dy:10 + dy, 2 + dx:10 + dx])]
        assert len(matches) == 1
        shifts.add(matches[0])
    assert len(shifts) > 10


def test_cutout_fills_with_the_mean_pixel_which_the_network_normalises_to_zero():
    # DARTS cuts out a zeroed square of the *normalised* image; pipelines hand out
    # raw pixels, so the square holds the mean pixel, and the network's first
    # layer turns it into exactly DARTS's zeros.
    from stacnas_tf import preprocessing

    mean, std = (0.2, 0.5, 0.7), (0.3, 0.2, 0.1)
    source = sources.Source("x", "train", None, 1, 2, (16, 16, 3), mean, std)
    image = tf.fill((16, 16, 3), 3.0)
    out = augmentation.apply(image, tf.constant([4, 0], tf.int64), augmentation.Augment(cutout=6), source)
    normalised = preprocessing.PixelNormalization(mean, std)(out[None])[0].numpy()
    inside = np.all(out.numpy() != 3.0, axis=-1)
    assert 9 <= inside.sum() <= 36  # a 6x6 square, clipped at the border
    np.testing.assert_allclose(out.numpy()[inside], np.tile(np.multiply(mean, 255), (inside.sum(), 1)),
                               rtol=1e-6)
    np.testing.assert_allclose(normalised[inside], 0.0, atol=1e-5)
    expected = (3.0 / 255 - np.asarray(mean)) / np.asarray(std)
    np.testing.assert_allclose(normalised[~inside], np.broadcast_to(expected, normalised[~inside].shape),
                               rtol=1e-5)
