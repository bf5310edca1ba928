import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from stacnas_tf import augmentation
from stacnas_tf import pipelines
from stacnas_tf import sources

import helpers


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


def _source(shape, mean=(0.5,), std=(0.25,)):
    return sources.Source("x", "train", None, 1, 2, shape, mean, std)


def _position(position, seed=0):
    return tf.constant([seed, position], tf.int64)


def test_each_dataset_gets_darts_training_augmentation():
    # DARTS's CIFAR transforms (utils._data_transforms_cifar10): RandomCrop(32,
    # padding=4) and RandomHorizontalFlip, cutout and AutoAugment only when asked
    # for; its ImageNet training (train_imagenet.py): RandomResizedCrop,
    # RandomHorizontalFlip and ColorJitter(0.4, 0.4, 0.4, 0.2).
    for name in ("cifar10", "cifar100"):
        assert augmentation.default_augment(name) == augmentation.Augment(crop_padding=4, flip=True)
    assert augmentation.default_augment("imagenet2012") == augmentation.Augment(
        flip=True, random_resized_crop=True, color_jitter=True)
    for name in ("fashion_mnist", "digits", "in_memory", "mnist", "imagenet2012_subset", "folder"):
        assert augmentation.default_augment(name) == augmentation.Augment(), name
    # A name read from a config file is a string of its own, not the literal.
    assert augmentation.default_augment("".join(["imagenet", "2012"])).color_jitter
    # Augment() is no augmentation at all.
    assert dataclasses.asdict(augmentation.Augment()) == {
        "crop_padding": 0, "flip": False, "autoaugment": False, "cutout": 0,
        "random_resized_crop": False, "color_jitter": False}


def test_flip_and_crop_are_independent_draws():
    # Each decision has a stream of its own: were the flip drawn from the crop's
    # numbers, each shift would always come with the same flip.
    image = np.arange(64, dtype=np.float32).reshape(8, 8)
    padded = np.pad(image, 2)
    augment = augmentation.Augment(crop_padding=2, flip=True)
    seen = {}
    for position in range(120):
        out = augmentation.apply(tf.constant(image[..., None]), _position(position), augment,
                                 _source((8, 8, 1))).numpy()[..., 0]
        matches = [((dy, dx), flipped) for dy in range(-2, 3) for dx in range(-2, 3)
                   for flipped in (False, True)
                   if np.array_equal(out, (np.fliplr if flipped else np.asarray)(
                       padded[2 + dy:10 + dy, 2 + dx:10 + dx]))]
        assert len(matches) == 1
        shift, flipped = matches[0]
        seen.setdefault(shift, set()).add(flipped)
    assert 0.3 < sum(True in flips for flips in seen.values()) / len(seen) <= 1
    assert sum(len(flips) == 2 for flips in seen.values()) >= 5


def test_colour_jitter_draws_torchvision_factors_and_stays_in_pixels():
    # torchvision's ColorJitter(0.4, 0.4, 0.4, 0.2): brightness, contrast and
    # saturation factors uniform in [0.6, 1.4], a hue shift in [-0.2, 0.2].
    augment = augmentation.Augment(color_jitter=True)
    # A uniform grey image: contrast leaves it alone, brightness scales it.
    grey = tf.fill((4, 4, 1), 100.0)
    factors = np.array([augmentation.apply(grey, _position(p), augment, _source((4, 4, 1)))
                        .numpy()[0, 0, 0] / 100.0 for p in range(150)])
    assert factors.min() >= 0.6 - 1e-5 and factors.max() <= 1.4 + 1e-5
    assert factors.min() < 0.65 and factors.max() > 1.35 and len(np.unique(factors)) > 140
    # A uniform colour of saturation 0.5 and hue 0 keeps its hue and saturation
    # through brightness and contrast: the rest is saturation and hue.
    colour = tf.constant(np.tile([150.0, 75.0, 75.0], (4, 4, 1)), tf.float32)
    hsv = np.array([tf.image.rgb_to_hsv(
        augmentation.apply(colour, _position(p), augment, _source((4, 4, 3), (0.5,) * 3,
                                                                  (0.25,) * 3)) / 255.0)
        .numpy()[0, 0] for p in range(150)])
    saturation = hsv[:, 1] / 0.5
    assert saturation.min() >= 0.6 - 1e-4 and saturation.max() <= 1.4 + 1e-4
    assert saturation.min() < 0.7 and saturation.max() > 1.3
    assert len(np.unique(np.round(saturation, 4))) > 120
    hue = (hsv[:, 0] + 0.5) % 1.0 - 0.5  # the shift, in (-0.5, 0.5]
    assert np.abs(hue).max() <= 0.2 + 1e-3 and hue.min() < -0.15 and hue.max() > 0.15
    assert len(np.unique(np.round(hue, 4))) > 120
    # Black and white pixels under strong contrast stay pixels, in [0, 255].
    edges = tf.constant(np.repeat([[0.0], [255.0]], 8, axis=0).reshape(4, 4, 1), tf.float32)
    for channels in (1, 3):
        image = tf.tile(edges, [1, 1, channels])
        out = np.stack([augmentation.apply(image, _position(p), augment,
                                           _source((4, 4, channels), (0.5,) * channels,
                                                   (0.25,) * channels)).numpy()
                        for p in range(60)])
        assert out.min() == 0.0 and out.max() == 255.0


def test_cutout_is_a_length_square_clipped_at_the_border():
    off_diagonal = 0
    for length in (3, 4, 6):
        image = tf.fill((12, 12, 1), 7.0)
        inside_whole = 0
        rows_hit = set()
        for position in range(80):
            out = augmentation.apply(image, _position(position, seed=1),
                                     augmentation.Augment(cutout=length), _source((12, 12, 1)))
            mask = out.numpy()[..., 0] != 7.0
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            assert mask.any() and np.array_equal(mask, np.outer(mask.any(axis=1), mask.any(axis=0)))
            assert np.array_equal(rows, np.arange(rows[0], rows[-1] + 1))
            assert np.array_equal(cols, np.arange(cols[0], cols[-1] + 1))
            assert len(rows) <= length and len(cols) <= length
            rows_hit.update(rows)
            off_diagonal += rows[0] != cols[0]  # the centre's row and column are drawn apart
            if 0 < rows[0] and rows[-1] < 11 and 0 < cols[0] and cols[-1] < 11:
                inside_whole += 1
                assert len(rows) == length and len(cols) == length
        assert inside_whole >= 10 and rows_hit == set(range(12))
    assert off_diagonal > 150


def test_resized_crop_takes_8_to_100_percent_of_the_area_at_a_3_4_to_4_3_aspect():
    # torchvision's RandomResizedCrop defaults, as DARTS's ImageNet training uses
    # them. A picture of its own coordinates shows where each crop came from.
    side, size = 120, 24
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    image = tf.constant(np.stack([x, y, np.zeros_like(x)], axis=-1))
    areas, aspects = [], []
    for position in range(150):
        out = augmentation.random_resized_crop(image, size, _position(position)).numpy()
        assert out.shape == (size, size, 3)
        # Output pixel centres span (size - 1) / size of the crop.
        width = (out[..., 0].max() - out[..., 0].min()) * size / (size - 1)
        height = (out[..., 1].max() - out[..., 1].min()) * size / (size - 1)
        areas.append(width * height / side**2)
        aspects.append(width / height)
    areas, aspects = np.array(areas), np.array(aspects)
    assert areas.min() > 0.08 * 0.85 and areas.max() <= 1.02
    assert areas.min() < 0.2 and areas.max() > 0.6
    assert aspects.min() > 0.75 * 0.9 and aspects.max() < 4 / 3 * 1.1
    assert aspects.min() < 0.85 and aspects.max() > 1.2


def test_resized_crop_averages_what_it_shrinks():
    # Antialiased, as torchvision resizes tensors and PIL images: a fine
    # checkerboard shrunk at least 2.8 times comes out near its mean grey, not
    # as a sample of black and white pixels.
    board = (np.indices((120, 120)).sum(axis=0) % 2 * 255.0).astype(np.float32)
    image = tf.constant(np.repeat(board[..., None], 3, axis=-1))
    for position in range(20):
        out = augmentation.random_resized_crop(image, 12, _position(position)).numpy()
        assert np.abs(out - 127.5).max() < 40


def test_augmentation_settings_are_frozen():
    augment = augmentation.Augment(cutout=16)
    with pytest.raises(dataclasses.FrozenInstanceError):
        augment.cutout = 8
    assert {augment: 1}[augmentation.Augment(cutout=16)] == 1  # hashable, by value


def test_contrast_is_its_own_draw_in_torchvisions_range():
    # Two grey levels: brightness scales both (and their mean) by f, contrast
    # then spreads them about their mean by c.
    image = tf.constant(np.repeat([100.0, 150.0], 8).reshape(4, 4, 1), tf.float32)
    brightness, contrast = [], []
    for position in range(150):
        out = augmentation.apply(image, _position(position), augmentation.Augment(color_jitter=True),
                                 _source((4, 4, 1))).numpy()
        f = out.mean() / 125.0
        brightness.append(f)
        contrast.append((out.max() - out.min()) / (50.0 * f))
    contrast = np.array(contrast)
    assert contrast.min() >= 0.6 - 1e-3 and contrast.max() <= 1.4 + 1e-3
    assert contrast.min() < 0.7 and contrast.max() > 1.3
    assert abs(np.corrcoef(brightness, contrast)[0, 1]) < 0.3


def test_autoaugment_draws_a_policy_per_image_apart_from_the_cutout():
    rng = np.random.RandomState(0)
    image = tf.constant(rng.randint(0, 256, (12, 12, 3)).astype(np.float32))
    source = _source((12, 12, 3), (0.5,) * 3, (0.25,) * 3)
    outputs = {augmentation.apply(image, _position(p), augmentation.Augment(autoaugment=True),
                                  source).numpy().tobytes() for p in range(40)}
    assert len(outputs) >= 15


def test_the_cutout_square_is_drawn_apart_from_the_crop():
    # A ramp of distinct values, padded with zeros: the crop shows as a shift,
    # the cutout as pixels of the mean (127.5, no value of the ramp).
    ramp = np.arange(1, 145, dtype=np.float32).reshape(12, 12)
    padded = np.pad(ramp, 2)
    augment = augmentation.Augment(crop_padding=2, cutout=3)
    squares_by_shift = {}
    for position in range(150):
        out = augmentation.apply(tf.constant(ramp[..., None]), _position(position), augment,
                                 _source((12, 12, 1))).numpy()[..., 0]
        cut = out == 127.5
        shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                  if np.array_equal(out[~cut], padded[2 + dy:14 + dy, 2 + dx:14 + dx][~cut])]
        assert len(shifts) == 1
        squares_by_shift.setdefault(shifts[0], set()).add(cut.tobytes())
    assert sum(len(squares) >= 2 for squares in squares_by_shift.values()) >= 10


def test_every_random_decision_of_an_image_draws_from_a_seed_of_its_own(monkeypatch):
    # Stateless draws from one seed are the same numbers: two decisions sharing a
    # seed (the flip and the crop, saturation and hue) would move together.
    seeds = []

    def recording(name, function):
        def call(*args, **kwargs):
            seed = kwargs.get("seed", args[-1] if args else None)
            seeds.append((name, tuple(np.asarray(seed).tolist())))
            return function(*args, **kwargs)
        return call

    for module, name in ((tf.image, "stateless_random_crop"),
                         (tf.image, "stateless_random_flip_left_right"),
                         (tf.image, "stateless_random_contrast"),
                         (tf.image, "stateless_random_saturation"),
                         (tf.image, "stateless_random_hue"),
                         (tf.random, "stateless_uniform")):
        monkeypatch.setattr(module, name, recording(name, getattr(module, name)))
    augment = augmentation.Augment(crop_padding=2, flip=True, color_jitter=True,
                                   autoaugment=True, cutout=3)
    image = tf.constant(np.random.RandomState(0).randint(0, 256, (8, 8, 3)).astype(np.float32))
    augmentation.apply(image, _position(5, seed=11), augment, _source((8, 8, 3), (0.5,) * 3,
                                                                       (0.25,) * 3))
    drawn = [name for name, _ in seeds]
    for name in ("stateless_random_crop", "stateless_random_flip_left_right",
                 "stateless_random_contrast", "stateless_random_saturation",
                 "stateless_random_hue"):
        assert name in drawn
    assert drawn.count("stateless_uniform") >= 4  # brightness, policy, its draws, cutout
    assert len({seed for _, seed in seeds}) == len(seeds), seeds


def test_cutout_centres_reach_every_row_and_column():
    image = tf.fill((6, 14, 1), 7.0)
    rows_hit, cols_hit = set(), set()
    for position in range(200):
        out = augmentation.apply(image, _position(position, seed=4),
                                 augmentation.Augment(cutout=1), _source((6, 14, 1)))
        cut = out.numpy()[..., 0] != 7.0
        assert cut.sum() == 1
        rows_hit.update(np.flatnonzero(cut.any(axis=1)).tolist())
        cols_hit.update(np.flatnonzero(cut.any(axis=0)).tolist())
    assert rows_hit == set(range(6)) and cols_hit == set(range(14))


# Whole pipelines last: slower (tfds's mock data), and a mutation run stops at the
# first failing test.

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


def test_cutout_centres_cover_a_wide_image():
    image = tf.fill((6, 14, 1), 7.0)
    cols_hit = set()
    for position in range(80):
        out = augmentation.apply(image, _position(position, seed=2),
                                 augmentation.Augment(cutout=3), _source((6, 14, 1)))
        cols_hit.update(np.flatnonzero((out.numpy()[..., 0] != 7.0).any(axis=0)).tolist())
    assert cols_hit == set(range(14))
