import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from stacnas_tf import augmentation
from stacnas_tf import pipelines
from stacnas_tf import sources

import helpers


def _sklearn_digits():
    """scikit-learn's own reading of the digits file: the reference for ours."""
    from sklearn import datasets

    return datasets.load_digits()


def test_fashion_mnist_from_debian_files():
    train = sources.load("fashion_mnist")
    assert (train.num_examples, train.image_shape, train.num_classes) == (60000, (28, 28, 1), 10)
    assert 0.25 < train.mean[0] < 0.32 and 0.3 < train.std[0] < 0.4
    image, label = next(iter(train.dataset))
    assert image.dtype == tf.uint8 and image.shape == (28, 28, 1) and 0 <= int(label) < 10
    assert sources.load("fashion_mnist", "test").num_examples == 10000


def test_packaged_datasets_name_their_classes_as_their_publishers_do():
    # Fashion-MNIST: the label table of the README Debian ships with the data.
    import gzip
    import re

    readme = "/usr/share/doc/dataset-fashion-mnist/README.md.gz"
    if os.path.exists(readme):
        with gzip.open(readme, "rt") as f:
            table = dict(re.findall(r"^\| (\d) \| ([^|]+?) \|$", f.read(), re.MULTILINE))
        assert sources.load("fashion_mnist").class_names == tuple(table[str(k)] for k in range(10))
    assert sources.load("digits", "test").class_names == tuple(
        str(name) for name in _sklearn_digits().target_names)


def test_missing_fashion_mnist_files_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz.*dataset-fashion-mnist"):
        sources.load("fashion_mnist", data_dir=str(tmp_path))


def test_digits_from_scikit_learn_file():
    train, test = sources.load("digits"), sources.load("digits", "test")
    assert train.image_shape == (8, 8, 1) and train.num_classes == 10
    assert train.num_examples + test.num_examples == 1797
    pixels = np.stack([x.numpy() for x, _ in train.dataset.take(50)])
    assert pixels.max() == 255 and pixels.min() == 0


def test_tfds_loader_on_mock_data_builds_from_manual_archive(tmp_path):
    manual = helpers.manual_dir(tmp_path, "cifar10")
    with tfds.testing.mock_data(num_examples=12):
        source = sources.load("cifar10", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))
        assert (source.num_examples, source.image_shape, source.num_classes) == (12, (32, 32, 3), 10)
        batches = list(pipelines.train_pipeline(source, 4, seed=0, epochs=1,
                                           augment=augmentation.default_augment("cifar10")))
        assert len(batches) == 3 and batches[0][0].shape == (4, 32, 32, 3)
        assert batches[0][0].dtype == tf.float32


# Published per-channel statistics of the training images, as fractions of 255:
# CIFAR-10 from DARTS's cnn/utils.py (CIFAR_MEAN, CIFAR_STD); CIFAR-100 as
# weiaicunzai/pytorch-cifar100's conf/global_settings.py computes them;
# ImageNet torchvision's (the ones DARTS's train_imagenet.py normalises with).
PUBLISHED_STATISTICS = {
    "cifar10": ((0.49139968, 0.48215827, 0.44653124), (0.24703233, 0.24348505, 0.26158768)),
    "cifar100": ((0.5070751592371323, 0.48654887331495095, 0.4409178433670343),
                 (0.2673342858792401, 0.2564384629170883, 0.27615047132568404)),
    "imagenet2012": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_STATISTICS))
def test_tfds_datasets_are_normalised_by_their_published_statistics(tmp_path, name):
    # Mock images have their own statistics: the published ones must win.
    manual = helpers.manual_dir(tmp_path, name)
    with tfds.testing.mock_data(num_examples=4):
        for split in ("train", "test"):
            source = sources.load(name, split, data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))
            mean, std = PUBLISHED_STATISTICS[name]
            np.testing.assert_allclose(source.mean, mean, rtol=1e-6)
            np.testing.assert_allclose(source.std, std, rtol=1e-6)


def test_imagenet_loader_on_mock_data_resizes(tmp_path):
    manual = helpers.manual_dir(tmp_path, "imagenet2012")
    with tfds.testing.mock_data(num_examples=4):
        source = sources.load("imagenet2012", "test", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))
        assert source.num_classes == 1000 and source.image_shape == (None, None, 3)  # sizes vary
        images, _ = next(iter(pipelines.eval_pipeline(source, 2, image_size=32)))
        assert images.shape == (2, 32, 32, 3)


def test_float_images_are_pixels_and_unscaled_ones_are_refused():
    labels = np.arange(8) % 2
    pixels = np.linspace(0, 255, 8 * 4 * 4).reshape(8, 4, 4).astype(np.float32)
    source = sources.from_arrays(pixels, labels)
    stored = np.stack([x for x, _ in source.dataset.as_numpy_iterator()])[..., 0]
    np.testing.assert_array_equal(stored, np.round(pixels).astype(np.uint8))
    with pytest.raises(ValueError, match=r"lie in \[0, 1\].*images \* 255"):
        sources.from_arrays(pixels / 255, labels)
    with pytest.raises(ValueError, match=r"expected pixel values.*bool"):
        sources.from_arrays(pixels > 100, labels)
    with pytest.raises(ValueError, match=r"expected pixel values.*complex"):
        sources.from_arrays(pixels.astype(np.complex64), labels)


def test_too_few_images_to_hold_out_any_say_so():
    source = sources.from_arrays(np.zeros((10, 8, 8, 1), np.uint8), np.arange(10))  # one per class
    with pytest.raises(ValueError, match="^data: no class has 2 or more of the 10 images.*"
                                         "validation_data="):
        sources.held_out_splits(source)
    train, test = sources.held_out_splits(
        sources.from_arrays(np.zeros((20, 8, 8, 1), np.uint8), np.arange(20) % 10))
    assert (train.num_examples, test.num_examples) == (10, 10)


def test_a_dataset_that_repeats_forever_is_refused_not_read_forever():
    images = np.zeros((4, 8, 8, 1), np.uint8)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(4) % 2)).repeat()
    with pytest.raises(ValueError, match="^data: the dataset repeats forever"):
        sources.from_dataset(dataset)
    finite = sources.from_dataset(tf.data.Dataset.from_tensor_slices((images, np.arange(4) % 2))
                               .repeat(2))
    assert finite.num_examples == 8


def test_tfds_never_downloads_and_says_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"^cifar100: not prepared in --data_dir={tmp_path} "
                                                "and cannot be downloaded here. Put "
                                                "cifar-100-binary.tar.gz.*--manual_dir"):
        sources.load("cifar100", data_dir=str(tmp_path))


def test_steps_per_epoch_checks_the_batch_size():
    source = sources.load("digits")
    assert sources.steps_per_epoch(source, 100, num_examples=1000) == 10
    with pytest.raises(ValueError, match="--batch_size=5000"):
        sources.steps_per_epoch(source, 5000)


def test_arrays_that_do_not_fit_are_refused_with_what_was_expected():
    images = np.zeros((4, 8, 8, 1), np.uint8)
    with pytest.raises(ValueError, match=r"^data: no images \(an empty array of shape "
                                         r"\(0, 8, 8, 3\)\)"):
        sources.from_arrays(np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0, np.int64))
    for count in ("10", True, 1):
        with pytest.raises(ValueError, match="^num_classes: expected a count of classes >= 2"):
            sources.from_arrays(images, np.arange(4) % 2, num_classes=count)
    with pytest.raises(ValueError, match=r"^data: labels must lie in 0\.\.9 \(10 classes, at least "
                                         r"2\); got 0\.\.10\."):
        sources.from_arrays(images, np.array([0, 1, 2, 10]), num_classes=10)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.0 \(1 classes, at least 2\)"):
        sources.from_arrays(images, np.zeros(4, np.int64))  # one class counted from the labels
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.9 .*got 0\.\.11"):
        sources.from_arrays(images, np.array([0, 1, 2, 11]), num_classes=10)
    assert sources.from_arrays(images, np.arange(4) % 2, num_classes=2).num_classes == 2
    with pytest.raises(ValueError, match=r"integer images must be pixels in 0-255; got values in "
                                         r"\[256, 256\]"):
        sources.from_arrays(np.full((4, 8, 8, 1), 256), np.arange(4) % 2)
    with pytest.raises(ValueError, match=r"the float images lie in \[0, 1\]"):
        sources.from_arrays(np.full((4, 8, 8, 1), 0.5), np.arange(4) % 2)
    with pytest.raises(ValueError, match="^class_names: every class needs its own name; 'a' names "
                                         "more than one class"):
        sources.from_arrays(images, np.arange(4) % 3, class_names=["a", "b", "a"])
    named = sources.from_arrays(images, np.arange(4) % 3, class_names=["a", "b", "c"])
    assert named.class_names == ("a", "b", "c")


def test_statistics_are_per_channel_on_the_0_to_1_scale():
    # A hand count: channel 0 all 255, channel 1 all 0, channel 2 half of each.
    images = np.zeros((2, 4, 4, 3), np.uint8)
    images[..., 0] = 255
    images[0, ..., 2] = 255
    source = sources.from_arrays(images, np.array([0, 1]))
    assert source.mean == pytest.approx((1.0, 0.0, 0.5))
    assert source.std == pytest.approx((1e-3, 1e-3, 0.5))  # a constant channel's std is floored


def test_datasets_of_one_hot_labels_are_refused_and_batches_are_unbatched():
    images, labels = np.zeros((4, 8, 8, 3), np.uint8), np.arange(4) % 2
    one_hot = np.eye(10, dtype=np.float32)[labels]
    for dataset in (tf.data.Dataset.from_tensor_slices((images, one_hot)),
                    tf.data.Dataset.from_tensor_slices((images[..., :1], one_hot)),
                    tf.data.Dataset.from_tensor_slices((images, one_hot)).batch(2)):
        with pytest.raises(ValueError, match=r"^data: expected one integer class label per image, "
                                             r"got labels of shape .*one-hot"):
            sources.from_dataset(dataset)
    batched = sources.from_dataset(tf.data.Dataset.from_tensor_slices((images, labels)).batch(3))
    # Grey batches without a channel axis: [batch, 8, 8] images, [batch] labels.
    grey = sources.from_dataset(tf.data.Dataset.from_tensor_slices((images[..., 0], labels)).batch(2))
    assert [(s.num_examples, s.image_shape) for s in (batched, grey)] == [(4, (8, 8, 3)),
                                                                          (4, (8, 8, 1))]


def test_from_arrays_takes_what_its_docstring_says_and_refuses_the_rest_by_shape():
    images = np.zeros((4, 8, 8, 1), np.uint8)
    column = (np.arange(4) % 2)[:, None]  # [N, 1], as Keras's sparse labels often are
    source = sources.from_arrays(images=images, labels=column, num_classes=3)
    assert [int(label) for _, label in source.dataset] == [0, 1, 0, 1]
    assert source.num_classes == 3
    with pytest.raises(TypeError):  # settings after the arrays are keyword-only
        sources.from_arrays(images, column, 3)
    with pytest.raises(ValueError, match="one-hot labels: argmax them first"):
        sources.from_arrays(images, np.eye(2, dtype=np.int64)[np.arange(4) % 2])
    negative = np.zeros((4, 8, 8, 1), np.int64)
    negative[0, 0, 0, 0] = -1  # would wrap to 255 as uint8
    with pytest.raises(ValueError, match=r"integer images must be pixels in 0-255; got values in "
                                         r"\[-1, 0\]"):
        sources.from_arrays(negative, np.arange(4) % 2)
    with pytest.raises(ValueError, match=r"float images must be pixels in \[0, 255\]; got values "
                                         r"in \[-0.5, 0\]"):
        sources.from_arrays(negative * 0.5, np.arange(4) % 2)
    dark = np.zeros((4, 8, 8, 1), np.float32)
    dark[0, 0, 0, 0] = 2.0  # pixels, not [0, 1]: kept
    assert int(next(iter(sources.from_arrays(dark, np.arange(4) % 2).dataset))[0].numpy().max()) == 2
    # Labels need not use class 0; negative ones are refused.
    assert sources.from_arrays(images, np.array([1, 2, 1, 2])).num_classes == 3
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.2 .*got -1\.\.2"):
        sources.from_arrays(images, np.array([-1, 2, 1, 2]), num_classes=3)
    with pytest.raises(ValueError, match="^class_names: expected 3 names"):
        sources.from_arrays(images, np.arange(4) % 2, num_classes=3, class_names=["a", "b"])
    with pytest.raises(ValueError, match="^class_names: expected 2 names .*got 3"):
        sources.from_arrays(images, np.arange(4) % 2, num_classes=2, class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"one integer class label per image \(4\), got int64 labels "
                                         r"of shape \(4, 0\)"):
        sources.from_arrays(images, np.zeros((4, 0), np.int64))
    with pytest.raises(ValueError, match=r"one integer class label per image \(4\), got int64 labels "
                                         r"of shape \(3,\)"):
        sources.from_arrays(images, np.arange(3) % 2)  # one label short
    with pytest.raises(ValueError, match=r"of shape \(4, 1, 1\)"):  # only [N, 1] is a column
        sources.from_arrays(images, np.zeros((4, 1, 1), np.int64))
    with pytest.raises(ValueError, match=r"got shape \(4, 2, 8, 8, 1\)"):  # a batch of volumes
        sources.from_arrays(np.zeros((4, 2, 8, 8, 1), np.uint8), np.arange(4) % 2)
    bright = sources.from_arrays(np.full((4, 8, 8, 1), 7, np.int64), np.arange(4) % 2)
    assert bright.mean == pytest.approx((7 / 255,))  # integer pixels need no 0 among them
    with pytest.raises(ValueError, match=r"float images must be pixels in \[0, 255\]"):
        sources.from_arrays(np.full((4, 8, 8, 1), 255.5), np.arange(4) % 2)  # would round to 256
    for shape in ((4, 8), (4, 3)):  # no image side at all (3 is no channel count here)
        with pytest.raises(ValueError, match=rf"^data: expected images \[N, H, W\] .*got shape "
                                             rf"\({shape[0]}, {shape[1]}\)\."):
            sources.from_arrays(np.zeros(shape, np.uint8), np.arange(4) % 2)
    with pytest.raises(dataclasses.FrozenInstanceError):  # a source is a value: shared, never edited
        source.num_examples = 3
    # As many classes as ImageNet's and more (a count past Python's small integers).
    many = sources.from_arrays(np.zeros((300, 4, 4, 1), np.uint8), np.arange(300),
                               class_names=[f"class {k}" for k in range(300)])
    assert (many.num_classes, many.class_names[299]) == (300, "class 299")


def test_batches_of_grey_images_are_unbatched_whatever_their_sides():
    # [batch, 3, 8] is a batch of 3x8 grey images (its last side, 8, is no channel count).
    labels = np.arange(6) % 2
    found = []
    for images, batch in ((np.zeros((6, 3, 8), np.uint8), 2), (np.zeros((6, 8, 2), np.uint8), 2),
                          (np.zeros((6, 8, 4), np.uint8), 2), (np.zeros((6, 8, 8), np.uint8), 3)):
        # drop_remainder: a batch axis of known size (3), no channel count either.
        dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch, drop_remainder=True)
        source = sources.from_dataset(dataset)
        found.append((source.num_examples, source.image_shape))
    assert found == [(6, (3, 8, 1)), (6, (8, 2, 1)), (6, (8, 4, 1)), (6, (8, 8, 1))]
    named = sources.from_dataset(dataset=dataset, num_classes=3, class_names=["a", "b", "c"])
    assert named.class_names == ("a", "b", "c")
    with pytest.raises(TypeError):  # settings after the dataset are keyword-only
        sources.from_dataset(dataset, 3)


def test_datasets_of_labels_or_images_that_do_not_fit_are_refused_for_what_is_wrong():
    dataset = tf.data.Dataset.from_tensors((np.zeros((8, 8), np.uint8), np.arange(8) % 2))
    with pytest.raises(ValueError, match="^data: expected one integer class label per image"):
        sources.from_dataset(dataset)
    grid = tf.data.Dataset.from_tensor_slices((np.zeros((4, 8, 8, 1), np.uint8),
                                               np.zeros((4, 2, 5, 1), np.int64)))  # rank-3 labels
    with pytest.raises(ValueError, match=r"per image, got labels of shape \(2, 5, 1\)"):
        sources.from_dataset(grid)
    two_channels = tf.data.Dataset.from_tensor_slices((np.zeros((4, 8, 8, 2), np.uint8),
                                                       np.arange(4) % 2))
    with pytest.raises(ValueError, match=r"expected images \[N, H, W\] or \[N, H, W, 1 or 3\], "
                                         r"got shape \(4, 8, 8, 2\)"):
        sources.from_dataset(two_channels)
    volumes = tf.data.Dataset.from_tensors((np.zeros((2, 4, 4, 4, 2), np.uint8), np.arange(2)))
    with pytest.raises(ValueError, match=r"got shape \(1, 2, 4, 4, 4, 2\)"):  # read as is
        sources.from_dataset(volumes)
    rows = tf.data.Dataset.from_tensors((np.zeros((8, 3), np.uint8), np.arange(8) % 2))
    with pytest.raises(ValueError, match=r"per image \(1\), got int64 labels of shape \(1, 8\)"):
        sources.from_dataset(rows)  # one 8x3 image with eight labels
    with pytest.raises(ValueError, match=r"^data: expected a tf.data.Dataset of \(image, label\) "
                                         r"pairs"):
        sources.from_dataset(tf.data.Dataset.from_tensor_slices((np.zeros((4, 8, 8, 1), np.uint8),)))
    with pytest.raises(ValueError, match=r"^data: expected a tf.data.Dataset of \(image, label\) "
                                         r"pairs"):  # (image, label, weight) triples
        sources.from_dataset(tf.data.Dataset.from_tensor_slices(
            (np.zeros((4, 8, 8, 1), np.uint8), np.arange(4) % 2, np.ones(4))))
    mixed_sizes = tf.data.Dataset.from_generator(
        lambda: ((np.zeros((side, side, 1), np.uint8), 0) for side in (8, 4)),
        output_signature=(tf.TensorSpec((None, None, 1), tf.uint8), tf.TensorSpec((), tf.int64)))
    with pytest.raises(ValueError, match="^data: the images differ in shape; resize them to one size"):
        sources.from_dataset(mixed_sizes)
    # A dataset of unknown length (filtered) is read to its end.
    filtered = tf.data.Dataset.from_tensor_slices((np.zeros((6, 8, 8, 1), np.uint8),
                                                   np.arange(6) % 2)).filter(lambda x, y: y < 2)
    assert int(filtered.cardinality()) == int(tf.data.UNKNOWN_CARDINALITY)
    assert sources.from_dataset(filtered).num_examples == 6


def test_tfds_test_splits_are_the_ones_each_dataset_publishes(tmp_path, monkeypatch):
    # TFDS's catalog: CIFAR's held-out split is "test"; ImageNet's labelled one is "validation".
    requested = []
    make_builder = tfds.builder

    def builder(*args, **kwargs):
        built = make_builder(*args, **kwargs)
        as_dataset = built.as_dataset
        monkeypatch.setattr(built, "as_dataset", lambda split, **kw: (
            requested.append((built.name, split, kw)), as_dataset(split=split, **kw))[1])
        return built

    monkeypatch.setattr(tfds, "builder", builder)
    with tfds.testing.mock_data(num_examples=2):
        for name in ("".join(["cifar", "10"]), "cifar100", "".join(["imagenet", "2012"])):  # by value
            manual = helpers.manual_dir(tmp_path / name, name)
            for split in ("train", "test"):
                sources.load(name, split, data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))
    assert [request[:2] for request in requested] == [
        ("cifar10", "train"), ("cifar10", "test"), ("cifar100", "train"), ("cifar100", "test"),
        ("imagenet2012", "train"), ("imagenet2012", "validation")]
    # Files read in order: the pipelines shuffle with their own seed, which a resumed run repeats.
    assert all(kw == {"as_supervised": True, "shuffle_files": False} for *_, kw in requested)


def test_folder_statistics_come_from_the_first_256_images_of_its_order(tmp_path):
    # Past 256 the images are far brighter: a larger sample would move the mean.
    for index in range(260):  # a train/ folder: none of its images held out
        helpers.write_png(tmp_path / "data" / "train" / ("a" if index % 2 else "b") / f"{index:03d}.png",
                          np.full((4, 4, 1), 255 if index >= 256 else index % 7, np.uint8))
    helpers.write_image_folder(tmp_path / "data" / "test", classes=("a", "b"), size=4, channels=1)
    source = sources.load(f"folder:{tmp_path / 'data'}")
    assert source.num_examples == 260
    first = np.stack([image for image, _ in source.dataset.take(256).as_numpy_iterator()])
    assert source.mean == pytest.approx((first.mean() / 255,), rel=1e-5)


def _write_idx(path, header, body):
    import gzip

    with gzip.open(path, "wb") as f:
        f.write(bytes(header) + bytes(body))


@pytest.mark.parametrize("header", [
    [1, 0, 0x08, 3],  # another magic number
    [0, 1, 0x08, 3],
    [0, 0, 0x09, 3],  # signed bytes
    [0, 0, 0x0D, 3],  # floats
    [0, 0, 0x07, 3],  # no IDX type
    [0, 0, 0x08],  # cut short: no dimension count
])
def test_fashion_mnist_files_that_are_not_idx_unsigned_bytes_are_refused(tmp_path, header):
    dims = [0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 4]
    if len(header) == 3:
        _write_idx(tmp_path / "train-images-idx3-ubyte.gz", header, [])
    else:
        _write_idx(tmp_path / "train-images-idx3-ubyte.gz", header + dims, [0] * 32)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", [0, 0, 0x08, 1, 0, 0, 0, 2], [0, 1])
    with pytest.raises(ValueError, match="^fashion_mnist: .*train-images-idx3-ubyte.gz is not an "
                                         "IDX file of unsigned bytes"):
        sources.load("fashion_mnist", data_dir=str(tmp_path))
    # The same files with the right header load: 2 images of 4x4.
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", [0, 0, 0x08, 3] + dims, [0] * 32)
    assert sources.load("fashion_mnist", data_dir=str(tmp_path)).image_shape == (4, 4, 1)


def test_fashion_mnist_files_of_another_length_than_their_header_are_refused(tmp_path):
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", [0, 0, 0x08, 1, 0, 0, 0, 1], [3])
    header = [0, 0, 0x08, 3, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0]  # 1 image of 1x16,777,216
    for body, accepted in ((2 ** 24 - 1, False), (2 ** 24 + 1, False), (2 ** 24, True)):
        _write_idx(tmp_path / "train-images-idx3-ubyte.gz", header, bytes([7]) * body)
        if accepted:  # a side past 3 bytes: each dimension is 4 bytes, big-endian (IDX)
            source = sources.load("fashion_mnist", data_dir=str(tmp_path))
            # Ten classes, as Fashion-MNIST has, whichever labels the files hold (only 3 here).
            assert (source.image_shape, source.num_classes) == ((1, 2 ** 24, 1), 10)
        else:
            with pytest.raises(ValueError, match=r"is truncated \(expected shape \(1, 1, 16777216\)\)"):
                sources.load("fashion_mnist", data_dir=str(tmp_path))


def test_digits_pixels_are_scikit_learns_0_to_16_scaled_to_0_to_255():
    digits = _sklearn_digits()
    train, test = sources.load("digits"), sources.load("digits", "test")
    ours = {(label, image.tobytes()) for source in (train, test)
            for image, label in source.dataset.as_numpy_iterator()}
    expected = {(label, np.round(image * 255 / 16).astype(np.uint8)[..., None].tobytes())
                for image, label in zip(digits.images, digits.target)}
    assert ours == expected and max(image.max() for image, _ in train.dataset.as_numpy_iterator()) == 255


def test_names_and_splits_are_compared_by_value_not_identity():
    # Flags parse to strings built at run time, not the interned literals of the code.
    name, split = "".join(["fashion", "_mnist"]), "".join(["tr", "ain"])
    assert sources.load(name, split).num_examples == 60000
    assert sources.load("".join(["dig", "its"]), "".join(["te", "st"])).num_examples == 360
    assert sources.load("digits", "".join(["tr", "ain"])).num_examples == 1437
    with pytest.raises(ValueError, match="^--dataset=in_memory: this run's images were given in Python"):
        sources.load("".join(["in_", "memory"]))


def test_digits_hold_out_the_last_fifth_of_a_permutation_seeded_0():
    # The split recorded runs were made on: changing it would change every digits result.
    digits = _sklearn_digits()
    order = np.random.RandomState(0).permutation(len(digits.target))
    test = sources.load("digits", "test")
    assert [int(label) for _, label in test.dataset] == digits.target[order[1437:]].tolist()


def test_an_idx_file_of_a_header_alone_is_refused_as_truncated(tmp_path):
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", [0, 0, 0x08, 0], [])  # no dimensions, no data
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", [0, 0, 0x08, 1, 0, 0, 0, 1], [3])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz is truncated \(expected shape \(\)\)"):
        sources.load("fashion_mnist", data_dir=str(tmp_path))


def test_digits_without_scikit_learn_say_what_to_install(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(FileNotFoundError, match=r"scikit-learn is not installed \(pip install "):
        sources.digits_path()


def test_input_shapes_need_sides_divisible_by_4():
    source = sources.from_arrays(np.zeros((4, 8, 12, 1), np.uint8), np.arange(4) % 2)
    assert sources.model_input_shape(source, None) == (8, 12, 1)
    assert sources.model_input_shape(source, 16) == (16, 16, 1)
    assert sources.model_input_shape(source, 12) == (12, 12, 1)
    for image_size, side in ((10, "10x10"), (6, "6x6")):
        with pytest.raises(ValueError, match=f"--image_size: in_memory images are {side}; the two "
                                             "reduction cells need sides divisible by 4"):
            sources.model_input_shape(source, image_size)
    for sides in ((None, 8), (8, None)):  # one side unknown (images of varying size)
        varying = dataclasses.replace(source, image_shape=(*sides, 1))
        with pytest.raises(ValueError, match="in_memory images vary in size; set --image_size"):
            sources.model_input_shape(varying, None)
        assert sources.model_input_shape(varying, 8) == (8, 8, 1)
    narrow = sources.from_arrays(np.zeros((4, 8, 6, 1), np.uint8), np.arange(4) % 2)
    with pytest.raises(ValueError, match="images are 8x6"):
        sources.model_input_shape(narrow, None)


def test_example_counts_up_to_the_data_are_accepted():
    source = sources.from_arrays(np.zeros((8, 8, 8, 1), np.uint8), np.arange(8) % 2)
    sources.check_example_count(source, None, 4)
    sources.check_example_count(source, 8, 4)
    sources.check_example_count(source, 8, 8)  # one batch a step is enough
    with pytest.raises(ValueError, match="^--num_train_examples=9: in_memory has 8 training examples"):
        sources.check_example_count(source, 9, 4)
    with pytest.raises(ValueError, match="^--batch_size=8 is larger than the 6 training examples"):
        sources.check_example_count(source, 6, 8)


def _hashes(source):
    import hashlib

    # Read in batches: one image at a time costs seconds on Fashion-MNIST's 70,000.
    return [hashlib.sha256(image.tobytes()).hexdigest()
            for images, _ in source.dataset.batch(4096).as_numpy_iterator() for image in images]


def test_no_source_tests_on_an_image_it_trains_on(tmp_path):
    # By content: a test split that overlapped the training split (a wrong file,
    # a split computed twice with other seeds) would pass every count.
    helpers.write_image_folder(tmp_path / "split" / "train", per_class=4, seed=1)
    helpers.write_image_folder(tmp_path / "split" / "test", per_class=4, seed=2)
    helpers.write_image_folder(tmp_path / "held_out", per_class=10, seed=3)
    rng = np.random.RandomState(4)
    in_memory = sources.from_arrays(rng.randint(0, 256, (50, 8, 8, 1)), np.arange(50) % 5)
    pairs = {
        "fashion_mnist": (sources.load("fashion_mnist"), sources.load("fashion_mnist", "test")),
        "digits": (sources.load("digits"), sources.load("digits", "test")),
        "folder with test/": tuple(sources.load(f"folder:{tmp_path / 'split'}", split)
                                   for split in ("train", "test")),
        "folder without test/": tuple(sources.load(f"folder:{tmp_path / 'held_out'}", split)
                                      for split in ("train", "test")),
        "images given in Python": sources.held_out_splits(in_memory),
    }
    sizes = {}
    for name, (train, test) in pairs.items():
        train_hashes, test_hashes = _hashes(train), _hashes(test)
        assert len(set(train_hashes)) == len(train_hashes) == train.num_examples, name
        assert test_hashes and not set(train_hashes) & set(test_hashes), name
        sizes[name] = [len(train_hashes), len(test_hashes)]
    # Fashion-MNIST's published split sizes; digits' 1,797 images, 20% held out.
    assert sizes["fashion_mnist"] == [60000, 10000] and sizes["digits"] == [1437, 360]
