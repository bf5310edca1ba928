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
    assert ", ..." not in message  # all 4 named
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


def test_the_held_out_split_is_a_fixed_seeded_tenth_of_each_class():
    # A training run and a later evaluation must hold out the same images, in
    # every version: the indices are pinned (RandomState(0), first 10%).
    assert folder_datasets.held_out_indices(1).tolist() == []
    assert folder_datasets.held_out_indices(2).tolist() == [1]
    assert folder_datasets.held_out_indices(20).tolist() == [18, 1]
    assert sorted(folder_datasets.held_out_indices(35).tolist()) == [16, 20, 28, 29]  # round(3.5)


def test_a_train_folder_without_test_holds_out_a_share_of_its_own_images(tmp_path):
    helpers.write_image_folder(tmp_path / "train", classes=("a", "b"), per_class=10, size=4)
    assert sources.load(f"folder:{tmp_path}").num_examples == 18
    assert sources.load(f"folder:{tmp_path}", "".join(["te", "st"])).num_examples == 2


def test_a_warning_says_once_which_share_is_held_out(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(folder_datasets.logging, "log_first_n",
                        lambda level, message, n, *args: calls.append((n, message % args)))
    helpers.write_image_folder(tmp_path, classes=("a", "b"), per_class=10, size=4)
    sources.load(f"folder:{tmp_path}")
    assert len(calls) == 1 and calls[0][0] == 1
    assert "10% of each class's images (seeded) are held out" in calls[0][1]


@pytest.mark.parametrize("test_classes", [("a", "c"), ("a", "a0"), ("a", "b", "c")])
def test_test_classes_other_than_the_training_classes_are_refused(tmp_path, test_classes):
    helpers.write_image_folder(tmp_path / "train", classes=("a", "b"), per_class=2, size=4)
    helpers.write_image_folder(tmp_path / "test", classes=test_classes, per_class=2, size=4)
    # Also a split built at run time (not an interned literal): compared by value.
    for split in ("test", "".join(["te", "st"])):
        with pytest.raises(ValueError, match="they must be the same"):
            sources.load(f"folder:{tmp_path}", split)


def test_one_class_or_hidden_and_plain_files_are_not_classes(tmp_path):
    helpers.write_image_folder(tmp_path / "one", classes=("a",), per_class=3, size=4)
    with pytest.raises(ValueError, match=r"at least 2\) .*found 1 classes and 3 images"):
        sources.load(f"folder:{tmp_path / 'one'}")
    root = tmp_path / "two"
    helpers.write_image_folder(root, classes=("a", "b", ".ipynb_checkpoints", "_cache"), per_class=2,
                               size=4)
    (root / "README.txt").write_text("not a class")
    _, _, classes, _ = folder_datasets.read("folder:x", str(root), "train", None)
    assert classes == ("a", "b")


def test_what_is_not_an_image_is_counted_in_one_warning(tmp_path, caplog):
    helpers.write_image_folder(tmp_path / "train", per_class=2, size=4)
    helpers.write_image_folder(tmp_path / "test", per_class=2, size=4)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("x")
    (tmp_path / "train" / "cat" / "labels.txt").write_text("x")
    (tmp_path / "train" / "dog" / "Makefile").write_text("x")
    os.makedirs(tmp_path / "train" / "dog" / "more")
    with caplog.at_level("WARNING"):
        source = sources.load(f"folder:{tmp_path}")
    assert source.num_examples == 4
    assert ("left out what is not an image (.png .jpg .jpeg .bmp .gif) in "
            f"{tmp_path / 'train'}: 2 .txt, 1 no extension, 1 sub-folders") in caplog.text
    caplog.clear()
    # More images than Python's cached small integers: counts compare by value.
    helpers.write_image_folder(tmp_path / "clean" / "train", per_class=130, size=2)
    helpers.write_image_folder(tmp_path / "clean" / "test", per_class=2, size=4)
    with caplog.at_level("WARNING"):
        sources.load(f"folder:{tmp_path / 'clean'}")
    assert "left out" not in caplog.text and "cannot be read" not in caplog.text


def test_classes_without_images_are_named_or_the_folder_is_refused(tmp_path):
    root = tmp_path / "some"
    helpers.write_image_folder(root, classes=("z",), per_class=2, size=4)
    for name in "abcdef":
        os.makedirs(root / name)
    (root / "a" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"class folder\(s\) a, b, c, d, e in .* hold no images"):
        sources.load(f"folder:{root}")
    root = tmp_path / "none"
    for name in "ab":
        os.makedirs(root / name)
    with pytest.raises(ValueError, match="found 2 classes and 0 images"):
        sources.load(f"folder:{root}")


def test_the_stratified_order_places_each_class_by_rank_over_count(tmp_path):
    # The i-th of a class's n files sits at (i + 1/2) / n: with 4 of a and 8 of
    # b the order is b a b b a b b a b b a b (hand count); ties go to the
    # earlier label, even where file paths sort the other way ("a-b/" < "a/").
    files_by_class = [[f"a/{i}.png" for i in range(4)], [f"b/{i}.png" for i in range(8)]]
    _, labels = folder_datasets._stratified_order(files_by_class, seed=0)
    assert "".join("ab"[label] for label in labels) == "babbabbabbab"
    files_by_class = [[f"/d/a/{i}.png" for i in range(2)], [f"/d/a-b/{i}.png" for i in range(2)]]
    _, labels = folder_datasets._stratified_order(files_by_class, seed=0)
    assert labels == [0, 1, 0, 1]
    # The order within a class is seeded and pinned (a run's subsets depend on it).
    files, _ = folder_datasets._stratified_order([[str(i) for i in range(6)]], seed=0)
    assert files == ["5", "2", "1", "3", "0", "4"]


def test_images_are_resized_with_antialiasing_and_keep_their_black(tmp_path):
    # One bright column in every 4: the area average is 255 / 4 = 63.75;
    # resizing without antialiasing samples between columns and gives 0.
    pixels = np.zeros((16, 16, 1), np.uint8)
    pixels[:, ::4] = 255
    for cls in ("a", "b"):
        for split in ("train", "test"):
            helpers.write_png(tmp_path / split / cls / "0.png", pixels)
            helpers.write_png(tmp_path / split / cls / "1.png", np.zeros((16, 16, 1), np.uint8))
            helpers.write_png(tmp_path / split / cls / "2.png", np.full((16, 16, 1), 255, np.uint8))
    source = sources.load(f"folder:{tmp_path}", image_size=4)
    assert source.image_shape == (4, 4, 1)  # grey stays grey
    images = sorted((x.numpy() for x, _ in source.dataset), key=lambda x: int(x.sum()))
    assert images[0].max() == 0 and images[1].max() == 0  # black stays 0
    assert images[-1].min() == 255 and images[-2].min() == 255  # white stays 255
    assert 50 <= images[2].mean() <= 75 and 50 <= images[3].mean() <= 75


def test_grey_images_with_alpha_read_as_grey(tmp_path):
    for cls in ("a", "b"):
        for split in ("train", "test"):
            helpers.write_png(tmp_path / split / cls / "0.png", np.full((4, 4, 2), 77, np.uint8))
    source = sources.load(f"folder:{tmp_path}")
    assert source.image_shape == (4, 4, 1)
    assert {int(x.numpy().max()) for x, _ in source.dataset} == {77}


def test_the_first_readable_image_sets_the_size_and_rgba_reads_as_colour(tmp_path):
    sides = {"a/0.png": 5, "a/1.png": 6, "a/2.png": 9, "b/0.png": 7, "b/1.png": 8, "b/2.png": 10}
    for name, side in sides.items():
        helpers.write_png(tmp_path / "train" / name, np.full((side, side, 4), 90, np.uint8))
    helpers.write_image_folder(tmp_path / "test", classes=("a", "b"), per_class=1, size=4)
    files, _ = folder_datasets._stratified_order(
        folder_datasets._list_images(str(tmp_path / "train"))[1], seed=0)
    first = os.path.relpath(files[0], tmp_path / "train")
    assert first not in (os.path.relpath(files[1], tmp_path / "train"),
                         os.path.relpath(files[-1], tmp_path / "train"))
    source = sources.load(f"folder:{tmp_path}")
    assert source.image_shape == (sides[first], sides[first], 3)


def test_an_animated_gif_is_read_as_its_first_frame(tmp_path):
    from PIL import Image

    for cls in ("a", "b"):
        for split in ("train", "test"):
            os.makedirs(tmp_path / split / cls, exist_ok=True)
            frames = [Image.new("RGB", (6, 5), (value, 0, 0)) for value in (10, 200, 90)]
            frames[0].save(tmp_path / split / cls / "0.gif", save_all=True,
                           append_images=frames[1:], duration=50)
    source = sources.load(f"folder:{tmp_path}")
    assert source.image_shape == (5, 6, 3)
    assert {int(x.numpy()[0, 0, 0]) for x, _ in source.dataset} == {10}


def test_more_than_five_unreadable_images_are_named_five_and_counted(tmp_path, caplog):
    helpers.write_image_folder(tmp_path / "train", per_class=4, size=4)
    helpers.write_image_folder(tmp_path / "test", per_class=1, size=4)
    for index in range(3):
        (tmp_path / "train" / "cat" / f"bad{index}.png").write_bytes(b"x")
        (tmp_path / "train" / "dog" / f"bad{index}.png").write_bytes(b"x")
    with caplog.at_level("WARNING"):
        sources.load(f"folder:{tmp_path}")
    assert "6 of 14 images of the train split cannot be read" in caplog.text
    assert caplog.text.count("bad") == 5 and ", ..." in caplog.text
    caplog.clear()
    os.remove(tmp_path / "train" / "dog" / "bad2.png")
    with caplog.at_level("WARNING"):
        sources.load(f"folder:{tmp_path}")
    assert caplog.text.count("bad") == 5 and ", ..." not in caplog.text


def test_a_folder_of_unreadable_images_names_its_first_file(tmp_path):
    for split in ("train", "test"):
        for cls in ("a", "b"):
            os.makedirs(tmp_path / split / cls)
            for name in ("x.png", "y.png", "z.png"):
                (tmp_path / split / cls / name).write_bytes(b"garbage")
    files, _ = folder_datasets._stratified_order(
        folder_datasets._list_images(str(tmp_path / "train"))[1], seed=0)
    assert files[0] not in (files[1], files[-1])
    with pytest.raises(ValueError, match=r"none of the 6 images .* could be read as an "
                                         rf"image \(first: {files[0]}\)"):
        sources.load(f"folder:{tmp_path}")
