import os

import numpy as np
import pytest

from stacnas_tf import folder_datasets
from stacnas_tf import sources

import helpers


def test_folder_dataset(tmp_path):
    helpers.write_image_folder(tmp_path / "train", size=10)
    helpers.write_image_folder(tmp_path / "test", per_class=2, size=10)
    source = sources.load(f"folder:{tmp_path}", image_size=8)
    assert (source.num_examples, source.num_classes, source.image_shape) == (6, 2, (8, 8, 3))
    assert source.class_names == ("cat", "dog")
    labels = sorted(int(y) for _, y in source.dataset)
    assert labels == [0, 0, 0, 1, 1, 1]
    assert sources.load(f"folder:{tmp_path}", "test", image_size=8).num_examples == 4


def _labels(dataset):
    return [int(y) for _, y in dataset]


def test_folder_subsets_are_stratified_seeded_samples(tmp_path):
    helpers.write_image_folder(tmp_path / "train", classes=("a", "b", "c"), per_class=12, size=4)
    helpers.write_image_folder(tmp_path / "test", classes=("a", "b", "c"), per_class=4, size=4)
    source = sources.load(f"folder:{tmp_path}")
    labels = _labels(source.dataset)
    # Any prefix (num_train_examples, the bi-level halves, the statistics'
    # sample) holds every class in proportion, not one class.
    for prefix in (3, 6, 18):
        assert np.bincount(labels[:prefix], minlength=3).tolist() == [prefix // 3] * 3
    # Not the sorted file order within a class, and the same on every load.
    files, _ = folder_datasets._stratified_order(folder_datasets._list_images(str(tmp_path / "train"))[1], seed=0)
    first_of_a = [int(os.path.basename(f)[:-4]) for f in files if "/a/" in f][:6]
    assert first_of_a != sorted(first_of_a)
    assert _labels(sources.load(f"folder:{tmp_path}").dataset) == labels
    # A 2-class evaluation subset is not all one class.
    assert len(set(_labels(sources.load(f"folder:{tmp_path}", "test").dataset.take(3)))) == 3


def test_folder_without_test_images_holds_out_a_share_of_each_class(tmp_path):
    helpers.write_image_folder(tmp_path, classes=("a", "b"), per_class=20, size=4)
    train = sources.load(f"folder:{tmp_path}")
    test = sources.load(f"folder:{tmp_path}", "test")
    assert (train.num_examples, test.num_examples) == (36, 4)
    assert sorted(_labels(test.dataset)) == [0, 0, 1, 1]
    train_images = {x.numpy().tobytes() for x, _ in train.dataset}
    assert not any(x.numpy().tobytes() in train_images for x, _ in test.dataset)


def test_folder_leaves_out_unreadable_images_with_a_warning_naming_them(tmp_path, caplog):
    root = tmp_path / "train"
    helpers.write_image_folder(root, per_class=4, size=10)
    helpers.write_image_folder(tmp_path / "test", per_class=2, size=10)
    good = (root / "cat" / "0.png").read_bytes()
    (root / "cat" / "0.png").write_bytes(good[: len(good) // 2])  # truncated
    (root / "dog" / "1.png").write_bytes(b"not an image at all")  # corrupt
    os.symlink("loop.png", root / "dog" / "loop.png")  # a symlink loop
    (root / "dog" / "empty.jpg").write_bytes(b"")
    with caplog.at_level("WARNING"):
        source = sources.load(f"folder:{tmp_path}", image_size=8)
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
        sources.load(f"folder:{tmp_path}")


def test_folder_mixing_grey_and_colour_images_reads_them_all_in_colour(tmp_path):
    for cls, channels in (("a", 1), ("b", 3)):
        for split in ("train", "test"):
            helpers.write_png(tmp_path / split / cls / "0.png",
                              np.full((6, 6, channels), 100, np.uint8))
    source = sources.load(f"folder:{tmp_path}")
    assert source.image_shape == (6, 6, 3)
    assert [tuple(x.shape) for x, _ in source.dataset] == [(6, 6, 3), (6, 6, 3)]


def test_bad_folder_and_unknown_dataset(tmp_path):
    with pytest.raises(ValueError, match="one sub-folder of images per class"):
        sources.load(f"folder:{tmp_path}")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sources.load(f"folder:{tmp_path}/missing")
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        sources.load("mnist")
