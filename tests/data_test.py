import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from stacnas_tf import data  # noqa: E402


def test_fashion_mnist_from_debian_files():
    train = data.load("fashion_mnist")
    assert (train.num_examples, train.image_shape, train.num_classes) == (60000, (28, 28, 1), 10)
    assert 0.25 < train.mean[0] < 0.32 and 0.3 < train.std[0] < 0.4
    image, label = next(iter(train.dataset))
    assert image.dtype == tf.uint8 and image.shape == (28, 28, 1) and 0 <= int(label) < 10
    assert data.load("fashion_mnist", "test").num_examples == 10000


def test_packaged_datasets_name_their_classes_as_their_publishers_do():
    # Fashion-MNIST: the label table of the README Debian ships with the data.
    import gzip
    import re

    readme = "/usr/share/doc/dataset-fashion-mnist/README.md.gz"
    if os.path.exists(readme):
        with gzip.open(readme, "rt") as f:
            table = dict(re.findall(r"^\| (\d) \| ([^|]+?) \|$", f.read(), re.MULTILINE))
        assert data.load("fashion_mnist").class_names == tuple(table[str(k)] for k in range(10))
    from sklearn import datasets

    assert data.load("digits", "test").class_names == tuple(
        str(name) for name in datasets.load_digits().target_names)


def _hashes(source):
    import hashlib

    return [hashlib.sha256(image.tobytes()).hexdigest()
            for image, _ in source.dataset.as_numpy_iterator()]


def _write_images(root, seed, per_class=4, classes=("cat", "dog")):
    rng = np.random.RandomState(seed)
    for cls in classes:
        os.makedirs(os.path.join(root, cls))
        for i in range(per_class):
            png = tf.io.encode_png(rng.randint(0, 256, (8, 8, 3)).astype(np.uint8))
            tf.io.write_file(os.path.join(root, cls, f"{i}.png"), png)


def test_no_source_tests_on_an_image_it_trains_on(tmp_path):
    # By content: a test split that overlapped the training split (a wrong file,
    # a split computed twice with other seeds) would pass every count.
    _write_images(str(tmp_path / "split" / "train"), seed=1)
    _write_images(str(tmp_path / "split" / "test"), seed=2)
    _write_images(str(tmp_path / "held_out"), seed=3, per_class=10)
    rng = np.random.RandomState(4)
    in_memory = data.from_arrays(rng.randint(0, 256, (50, 8, 8, 1)), np.arange(50) % 5)
    pairs = {
        "fashion_mnist": (data.load("fashion_mnist"), data.load("fashion_mnist", "test")),
        "digits": (data.load("digits"), data.load("digits", "test")),
        "folder with test/": tuple(data.load(f"folder:{tmp_path / 'split'}", split)
                                   for split in ("train", "test")),
        "folder without test/": tuple(data.load(f"folder:{tmp_path / 'held_out'}", split)
                                      for split in ("train", "test")),
        "images given in Python": data.held_out_splits(in_memory),
    }
    sizes = {}
    for name, (train, test) in pairs.items():
        train_hashes, test_hashes = _hashes(train), _hashes(test)
        assert len(set(train_hashes)) == len(train_hashes) == train.num_examples, name
        assert test_hashes and not set(train_hashes) & set(test_hashes), name
        sizes[name] = [len(train_hashes), len(test_hashes)]
    # Fashion-MNIST's published split sizes; digits' 1,797 images, 20% held out.
    assert sizes["fashion_mnist"] == [60000, 10000] and sizes["digits"] == [1437, 360]


def test_bi_level_halves_share_no_image():
    import hashlib

    source = data.load("digits")
    weights, architecture = set(), set()
    for weight_batch, architecture_batch in data.bi_level_pipeline(source, 64, seed=0, epochs=1):
        weights.update(hashlib.sha256(x.tobytes()).hexdigest() for x in weight_batch[0].numpy())
        architecture.update(hashlib.sha256(x.tobytes()).hexdigest()
                            for x in architecture_batch[0].numpy())
    assert len(weights) > 600 and len(architecture) > 600 and not weights & architecture


def test_missing_fashion_mnist_files_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz.*dataset-fashion-mnist"):
        data.load("fashion_mnist", data_dir=str(tmp_path))


def test_digits_from_scikit_learn_file():
    train, test = data.load("digits"), data.load("digits", "test")
    assert train.image_shape == (8, 8, 1) and train.num_classes == 10
    assert train.num_examples + test.num_examples == 1797
    pixels = np.stack([x.numpy() for x, _ in train.dataset.take(50)])
    assert pixels.max() == 255 and pixels.min() == 0


def _write_folder(root, classes=("cat", "dog"), per_class=3, size=10):
    rng = np.random.RandomState(0)
    for cls in classes:
        os.makedirs(os.path.join(root, cls))
        for i in range(per_class):
            png = tf.io.encode_png(rng.randint(0, 255, (size, size, 3)).astype(np.uint8))
            tf.io.write_file(os.path.join(root, cls, f"{i}.png"), png)


def test_folder_dataset(tmp_path):
    _write_folder(str(tmp_path / "train"))
    _write_folder(str(tmp_path / "test"), per_class=2)
    source = data.load(f"folder:{tmp_path}", image_size=8)
    assert (source.num_examples, source.num_classes, source.image_shape) == (6, 2, (8, 8, 3))
    assert source.class_names == ("cat", "dog")
    labels = sorted(int(y) for _, y in source.dataset)
    assert labels == [0, 0, 0, 1, 1, 1]
    assert data.load(f"folder:{tmp_path}", "test", image_size=8).num_examples == 4


def _labels(dataset):
    return [int(y) for _, y in dataset]


def test_folder_subsets_are_stratified_seeded_samples(tmp_path):
    _write_folder(str(tmp_path / "train"), classes=("a", "b", "c"), per_class=12, size=4)
    _write_folder(str(tmp_path / "test"), classes=("a", "b", "c"), per_class=4, size=4)
    source = data.load(f"folder:{tmp_path}")
    labels = _labels(source.dataset)
    # Any prefix (num_train_examples, the bi-level halves, the statistics'
    # sample) holds every class in proportion, not one class.
    for prefix in (3, 6, 18):
        assert np.bincount(labels[:prefix], minlength=3).tolist() == [prefix // 3] * 3
    # Not the sorted file order within a class, and the same on every load.
    files, _ = data._stratified_order(data._list_images(str(tmp_path / "train"))[1], seed=0)
    first_of_a = [int(os.path.basename(f)[:-4]) for f in files if "/a/" in f][:6]
    assert first_of_a != sorted(first_of_a)
    assert _labels(data.load(f"folder:{tmp_path}").dataset) == labels
    # A 2-class evaluation subset is not all one class.
    assert len(set(_labels(data.load(f"folder:{tmp_path}", "test").dataset.take(3)))) == 3


def test_folder_without_test_images_holds_out_a_share_of_each_class(tmp_path):
    _write_folder(str(tmp_path), classes=("a", "b"), per_class=20, size=4)
    train = data.load(f"folder:{tmp_path}")
    test = data.load(f"folder:{tmp_path}", "test")
    assert (train.num_examples, test.num_examples) == (36, 4)
    assert sorted(_labels(test.dataset)) == [0, 0, 1, 1]
    train_images = {x.numpy().tobytes() for x, _ in train.dataset}
    assert not any(x.numpy().tobytes() in train_images for x, _ in test.dataset)


def test_folder_leaves_out_unreadable_images_with_a_warning_naming_them(tmp_path, caplog):
    root = tmp_path / "train"
    _write_folder(str(root), per_class=4)
    _write_folder(str(tmp_path / "test"), per_class=2)
    good = (root / "cat" / "0.png").read_bytes()
    (root / "cat" / "0.png").write_bytes(good[: len(good) // 2])  # truncated
    (root / "dog" / "1.png").write_bytes(b"not an image at all")  # corrupt
    os.symlink("loop.png", root / "dog" / "loop.png")  # a symlink loop
    (root / "dog" / "empty.jpg").write_bytes(b"")
    with caplog.at_level("WARNING"):
        source = data.load(f"folder:{tmp_path}", image_size=8)
    assert source.num_examples == 8 - 2
    message = caplog.text
    assert "4 of 10 images of the train split cannot be read or decoded" in message
    for name in ("cat/0.png", "dog/1.png", "dog/loop.png", "dog/empty.jpg"):
        assert name in message
    # Every remaining image decodes: a whole epoch runs.
    assert sorted(int(y) for _, y in source.dataset) == [0, 0, 0, 1, 1, 1]


def test_folder_of_only_unreadable_images_is_an_error_naming_it(tmp_path):
    for cls in ("a", "b"):
        os.makedirs(tmp_path / cls)
        (tmp_path / cls / "x.png").write_bytes(b"garbage")
        (tmp_path / cls / "y.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"--dataset=folder:.*none of the 2 images of the train "
                                         r"split could be read"):
        data.load(f"folder:{tmp_path}")


def test_folder_mixing_grey_and_colour_images_reads_them_all_in_colour(tmp_path):
    for cls, channels in (("a", 1), ("b", 3)):
        os.makedirs(tmp_path / "train" / cls)
        os.makedirs(tmp_path / "test" / cls)
        image = np.full((6, 6, channels), 100, np.uint8)
        for split in ("train", "test"):
            tf.io.write_file(str(tmp_path / split / cls / "0.png"), tf.io.encode_png(image))
    source = data.load(f"folder:{tmp_path}")
    assert source.image_shape == (6, 6, 3)
    assert [tuple(x.shape) for x, _ in source.dataset] == [(6, 6, 3), (6, 6, 3)]


def test_bad_folder_and_unknown_dataset(tmp_path):
    with pytest.raises(ValueError, match="one sub-folder of images per class"):
        data.load(f"folder:{tmp_path}")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load(f"folder:{tmp_path}/missing")
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        data.load("mnist")


def test_tfds_loader_on_mock_data_builds_from_manual_archive(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "cifar-10-binary.tar.gz").write_bytes(b"")
    with tfds.testing.mock_data(num_examples=12):
        source = data.load("cifar10", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))
        assert (source.num_examples, source.image_shape, source.num_classes) == (12, (32, 32, 3), 10)
        batches = list(data.train_pipeline(source, 4, seed=0, epochs=1,
                                           augment=data.default_augment("cifar10")))
        assert len(batches) == 3 and batches[0][0].shape == (4, 32, 32, 3)
        assert batches[0][0].dtype == tf.float32


def test_fancy_augmentation_pipeline_is_deterministic(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "cifar-10-binary.tar.gz").write_bytes(b"")
    augment = data.Augment(crop_padding=4, flip=True, autoaugment=True, cutout=16)
    with tfds.testing.mock_data(num_examples=64):
        source = data.load("cifar10", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))
        first = [x.numpy() for x, _ in data.train_pipeline(source, 32, seed=5, epochs=2, augment=augment)]
        again = [x.numpy() for x, _ in data.train_pipeline(source, 32, seed=5, epochs=2, augment=augment)]
    assert len(first) == 4 and all(np.isfinite(b).all() for b in first)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_imagenet_loader_on_mock_data_resizes(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"):
        (manual / name).write_bytes(b"")
    with tfds.testing.mock_data(num_examples=4):
        source = data.load("imagenet2012", "test", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))
        assert source.num_classes == 1000
        images, _ = next(iter(data.eval_pipeline(source, 2, image_size=32)))
        assert images.shape == (2, 32, 32, 3)


@pytest.mark.parametrize("height,width", [(300, 400), (400, 300)])
def test_imagenet_evaluation_crop_is_torchvisions_resize_256_center_crop_224(height, width):
    # The reference: PIL (torchvision's backend) resizes the shorter side to 256,
    # then the centre 224 x 224 is cut out.
    from PIL import Image

    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([(xx * 0.6) % 256, (yy * 0.8) % 256, ((xx + yy) * 0.3) % 256], -1).astype(np.uint8)
    image[100:140, 150:170] = 255
    new_w, new_h = ((int(256 * width / height), 256) if height <= width
                    else (256, int(256 * height / width)))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR), np.float32)
    top, left = int(round((new_h - 224) / 2.0)), int(round((new_w - 224) / 2.0))
    expected = resized[top:top + 224, left:left + 224]
    source = data.Source("imagenet2012", "test", None, 1, 1000, (None, None, 3), (0.0,) * 3, (1.0,) * 3)
    got = data._pixels(tf.constant(image), source, 224).numpy()
    assert got.shape == (224, 224, 3)
    # Antialiased bilinear in TF and in PIL differ by rounding only.
    assert np.abs(got - expected).mean() < 0.5 and np.abs(got - expected).max() < 2


def test_imagenet_training_augmentation(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"):
        (manual / name).write_bytes(b"")
    augment = data.default_augment("imagenet2012")
    assert augment.random_resized_crop and augment.color_jitter and augment.flip
    with tfds.testing.mock_data(num_examples=8):
        source = data.load("imagenet2012", data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))
        batches = [x.numpy() for x, _ in data.train_pipeline(source, 4, seed=2, epochs=1, augment=augment,
                                                              image_size=32)]
        again = [x.numpy() for x, _ in data.train_pipeline(source, 4, seed=2, epochs=1, augment=augment,
                                                            image_size=32)]
    assert len(batches) == 2 and batches[0].shape == (4, 32, 32, 3)
    assert all(np.isfinite(b).all() for b in batches)
    np.testing.assert_array_equal(batches[0], again[0])


def test_cifar_crop_shifts_the_image_by_up_to_the_padding():
    image = tf.constant(np.arange(64, dtype=np.float32).reshape(8, 8, 1))
    source = data.Source("x", "train", None, 1, 2, (8, 8, 1), (0.0,), (1.0 / 255.0,))
    augment = data.Augment(crop_padding=2)
    shifts = set()
    for seed in range(40):
        out = data._augment(image, tf.constant([seed, 0], tf.int64), augment, source).numpy()[..., 0]
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
    source = data.Source("x", "train", None, 1, 2, (16, 16, 3), mean, std)
    image = tf.fill((16, 16, 3), 3.0)
    out = data._augment(image, tf.constant([4, 0], tf.int64), data.Augment(cutout=6), source)
    normalised = preprocessing.PixelNormalization(mean, std)(out[None])[0].numpy()
    inside = np.all(out.numpy() != 3.0, axis=-1)
    assert 9 <= inside.sum() <= 36  # a 6x6 square, clipped at the border
    np.testing.assert_allclose(out.numpy()[inside], np.tile(np.multiply(mean, 255), (inside.sum(), 1)),
                               rtol=1e-6)
    np.testing.assert_allclose(normalised[inside], 0.0, atol=1e-5)
    expected = (3.0 / 255 - np.asarray(mean)) / np.asarray(std)
    np.testing.assert_allclose(normalised[~inside], np.broadcast_to(expected, normalised[~inside].shape),
                               rtol=1e-5)


def test_float_images_are_pixels_and_unscaled_ones_are_refused():
    labels = np.arange(8) % 2
    pixels = np.linspace(0, 255, 8 * 4 * 4).reshape(8, 4, 4).astype(np.float32)
    source = data.from_arrays(pixels, labels)
    stored = np.stack([x for x, _ in source.dataset.as_numpy_iterator()])[..., 0]
    np.testing.assert_array_equal(stored, np.round(pixels).astype(np.uint8))
    with pytest.raises(ValueError, match=r"lie in \[0, 1\].*images \* 255"):
        data.from_arrays(pixels / 255, labels)
    with pytest.raises(ValueError, match=r"expected pixel values.*bool"):
        data.from_arrays(pixels > 100, labels)
    with pytest.raises(ValueError, match=r"expected pixel values.*complex"):
        data.from_arrays(pixels.astype(np.complex64), labels)


def test_too_few_images_to_hold_out_any_say_so():
    source = data.from_arrays(np.zeros((10, 8, 8, 1), np.uint8), np.arange(10))  # one per class
    with pytest.raises(ValueError, match="^data: no class has 2 or more of the 10 images.*"
                                         "validation_data="):
        data.held_out_splits(source)
    train, test = data.held_out_splits(
        data.from_arrays(np.zeros((20, 8, 8, 1), np.uint8), np.arange(20) % 10))
    assert (train.num_examples, test.num_examples) == (10, 10)


def test_a_dataset_that_repeats_forever_is_refused_not_read_forever():
    images = np.zeros((4, 8, 8, 1), np.uint8)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(4) % 2)).repeat()
    with pytest.raises(ValueError, match="^data: the dataset repeats forever"):
        data.from_dataset(dataset)
    finite = data.from_dataset(tf.data.Dataset.from_tensor_slices((images, np.arange(4) % 2))
                               .repeat(2))
    assert finite.num_examples == 8


def test_tfds_never_downloads_and_says_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-100-binary.tar.gz.*--manual_dir"):
        data.load("cifar100", data_dir=str(tmp_path))


def test_train_pipeline_is_a_function_of_seed_and_epoch():
    source = data.load("digits")
    augment = data.Augment(crop_padding=2, flip=True)

    def batches(seed, initial_epoch):
        return [x.numpy() for x, _ in data.train_pipeline(
            source, 32, seed=seed, epochs=3, initial_epoch=initial_epoch, augment=augment,
            num_examples=128)]

    full = batches(0, 0)
    assert len(full) == 12  # 3 epochs x 4 batches, incomplete batches dropped
    resumed = batches(0, 2)
    for a, b in zip(full[8:], resumed):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(full[0], full[4])  # a new order every epoch
    assert not np.array_equal(full[0], batches(1, 0)[0])  # and per seed


def test_steps_per_epoch_checks_the_batch_size():
    source = data.load("digits")
    assert data.steps_per_epoch(source, 100, num_examples=1000) == 10
    with pytest.raises(ValueError, match="--batch_size=5000"):
        data.steps_per_epoch(source, 5000)


def test_bi_level_halves_are_disjoint_and_cover_the_examples():
    # Every image holds its own index, so each batch says which examples it used.
    count = 64
    images = np.broadcast_to(np.arange(count, dtype=np.uint8)[:, None, None, None], (count, 4, 4, 1))
    source = data._in_memory("indexed", "train", np.ascontiguousarray(images),
                             np.arange(count) % 2)
    pipeline = data.bi_level_pipeline(source, batch_size=8, seed=0, epochs=2,
                                      augment=data.Augment(), num_examples=count)
    seen = {"weights": [], "architecture": []}
    for weight_batch, arch_batch in pipeline:
        for name, (batch_images, _) in (("weights", weight_batch), ("architecture", arch_batch)):
            seen[name] += np.rint(batch_images.numpy()[:, 0, 0, 0]).astype(int).tolist()
    assert len(seen["weights"]) == len(seen["architecture"]) == 2 * count // 2  # 2 epochs of a half
    assert set(seen["weights"]) == set(range(32)) and set(seen["architecture"]) == set(range(32, 64))


def _indexed(count):
    # Every image holds its own index (as uint8 pixels), so a batch says which examples it used.
    images = np.broadcast_to(np.arange(count, dtype=np.uint8)[:, None, None, None], (count, 4, 4, 1))
    return data._in_memory("indexed", "train", np.ascontiguousarray(images), np.arange(count) % 2)


def _indices(source, batch_images):
    # Pipelines hand the networks raw pixels, so the pixel is the index.
    return np.rint(batch_images.numpy()[:, 0, 0, 0]).astype(int).tolist()


def test_short_epochs_cut_one_stream_of_fresh_images():
    # The default search's epochs are shorter than a pass over the data: consecutive
    # epochs continue the pass, so no image repeats until every one has been seen.
    source = _indexed(200)
    stream = [_indices(source, x) for x, _ in data.train_pipeline(
        source, 8, seed=4, epochs=5, augment=data.Augment(), epoch_steps=4)]
    assert len(stream) == 20
    seen = [i for batch in stream for i in batch]
    assert len(seen) == 160 and len(set(seen)) == 160  # 5 epochs x 4 steps x 8, all distinct
    # Resuming at epoch 3 gives the uninterrupted run's epochs 3 and 4.
    resumed = [_indices(source, x) for x, _ in data.train_pipeline(
        source, 8, seed=4, epochs=5, initial_epoch=3, augment=data.Augment(), epoch_steps=4)]
    assert resumed == stream[12:]
    # Past a pass the stream goes on over a new shuffle of every image.
    long = [i for x, _ in data.train_pipeline(source, 8, seed=4, epochs=2, augment=data.Augment(),
                                              epoch_steps=25) for i in _indices(source, x)]
    assert sorted(long[:200]) == list(range(200)) and long[200:] != long[:200]
