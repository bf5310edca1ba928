"""Datasets read from folders of images (`--dataset=folder:PATH`): one sub-folder
of images per class, PATH/train and PATH/test (or val/, validation/) when
present. Without test images, a seeded share of every class is held out as
the test split (`held_out_indices`; images given in Python are split alike).

Reading yields the decoded examples, in a seeded stratified order, and what
`sources.load` needs to make them a `Source` of.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
from absl import logging

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")

# Share of every class held out as the test split of a folder without test/
# (and of images given in Python without validation images).
HELD_OUT_FRACTION = 0.1
_SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val", "validation")}


def held_out_indices(count: int) -> np.ndarray:
    """Which of a class's `count` examples are its test split: a seeded
    `HELD_OUT_FRACTION` of them, at least one of a class of two or more, none of
    a class of one. The one place the held-out split is drawn."""
    held = max(1, round(HELD_OUT_FRACTION * count)) if count >= 2 else 0
    return np.random.RandomState(0).permutation(count)[:held]


def read(name, root, split, image_size):
    """PATH/<class>/*.png, or PATH/train/<class> and PATH/test/<class> (also val/,
    validation/). Without a test folder, a seeded `HELD_OUT_FRACTION` of every
    class is the test split and is left out of the training split, so a test
    never scores images the network trained on.

    Examples come in a seeded, stratified order (every prefix holds the
    classes in proportion), so `num_train_examples` / `num_eval_examples`,
    the bi-level halves and the normalisation statistics see every class.

    Returns (examples: (uint8 [H, W, C] image, int64 label), their count, class
    names, image shape).
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"--dataset={name}: folder {root} does not exist.")
    existing = {split_name: next((os.path.join(root, d) for d in folders
                                  if os.path.isdir(os.path.join(root, d))), None)
                for split_name, folders in _SPLIT_FOLDERS.items()}
    held_out = existing["test"] is None
    if existing["test"] is not None and existing["train"] is None:
        raise ValueError(f"--dataset={name}: {root} has a {os.path.basename(existing['test'])}/ "
                         "folder but no train/ folder; put the training classes in "
                         f"{os.path.join(root, 'train')}.")
    directory = existing[split] or (existing["train"] if held_out else None) or root
    classes, files_by_class = _list_images(directory, name)
    if len(classes) < 2 or not any(files_by_class):
        raise ValueError(
            f"--dataset={name}: expected one sub-folder of images per class (at least 2) in "
            f"{directory}; found {len(classes)} classes and {sum(map(len, files_by_class))} images "
            f"(images: {' '.join(_IMAGE_EXTENSIONS)}; sub-folders of a class are not read)."
        )
    if existing["test"] is not None and existing["train"] is not None and split == "test":
        train_classes, _ = _list_images(existing["train"], name)
        if train_classes != classes:
            raise ValueError(f"--dataset={name}: {directory} has the classes {classes}, "
                             f"{existing['train']} has {train_classes}; they must be the same.")
    if held_out:
        # Once per process: training reads both splits.
        logging.log_first_n(
            logging.WARNING,
            "--dataset=%s has no test/ (or val/) folder: %d%% of each class's images (seeded) "
            "are held out as the test split, and are not trained on.", 1,
            name, round(100 * HELD_OUT_FRACTION))
        files_by_class = [_held_out_split(files, split) for files in files_by_class]
    files, labels = _stratified_order(files_by_class, seed=0)
    if not files:
        raise ValueError(f"--dataset={name}: no images in the {split} split of {directory}.")
    files, labels, first_size, channels = _readable_images(name, split, files, labels)
    size = (image_size, image_size) if image_size else first_size

    def decode(path, label):
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        image = tf.image.resize(image, size, antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        image.set_shape(size + (channels,))
        return image, label

    dataset = tf.data.Dataset.from_tensor_slices((files, np.asarray(labels, np.int64))).map(
        decode, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset, len(files), tuple(classes), size + (channels,)


def _readable_images(name, split, files, labels):
    """(files, labels, first image's size, channels) without the files TensorFlow cannot read or
    decode (truncated, corrupt, unreadable, a symlink loop). Every file is
    decoded once here, so a bad one is named before training instead of
    failing an epoch midway; they are left out with a warning that counts and
    names them, and if none is readable that is an error."""
    def check(index):
        image = tf.io.decode_image(tf.io.read_file(tf.gather(files, index)),
                                   expand_animations=False)
        return index, tf.shape(image)

    checked = (tf.data.Dataset.range(len(files))
               .map(check, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .ignore_errors())
    readable, shapes = [], []
    for index, shape in checked.as_numpy_iterator():
        readable.append(int(index))
        shapes.append(tuple(int(d) for d in shape))
    if not readable:
        raise ValueError(f"--dataset={name}: none of the {len(files)} images of the {split} split "
                         f"could be read as an image (first: {files[0]}).")
    if len(readable) < len(files):
        bad = sorted(set(range(len(files))) - set(readable))
        logging.warning("--dataset=%s: %d of %d images of the %s split cannot be read or decoded "
                        "and are left out: %s%s", name, len(bad), len(files), split,
                        ", ".join(files[i] for i in bad[:5]), ", ..." if len(bad) > 5 else "")
    # Grey and colour files mixed: every image is decoded to the most channels seen.
    channels = 3 if max(shape[-1] for shape in shapes) >= 3 else 1
    return [files[i] for i in readable], [labels[i] for i in readable], shapes[0][:2], channels


def _list_images(directory, name="folder"):
    """(class names, files of each class) of one sub-folder of images per class.
    Hidden folders (`.ipynb_checkpoints`, ...) are not classes; a class without
    images is an error, and files that are not images are counted in a warning."""
    classes = sorted(d for d in os.listdir(directory)
                     if os.path.isdir(os.path.join(directory, d)) and not d.startswith((".", "_")))
    files_by_class, empty, skipped = [], [], {}
    for cls in classes:
        entries = sorted(e for e in os.listdir(os.path.join(directory, cls)) if not e.startswith("."))
        images = [os.path.join(directory, cls, e) for e in entries
                  if e.lower().endswith(_IMAGE_EXTENSIONS)]
        for entry in entries:
            if not entry.lower().endswith(_IMAGE_EXTENSIONS):
                kind = ("sub-folders" if os.path.isdir(os.path.join(directory, cls, entry))
                        else os.path.splitext(entry)[1].lower() or "no extension")
                skipped[kind] = skipped.get(kind, 0) + 1
        if not images:
            empty.append(cls)
        files_by_class.append(images)
    if empty and len(empty) < len(classes):
        raise ValueError(
            f"--dataset={name}: class folder(s) {', '.join(empty[:5])} in {directory} hold no "
            f"images ({' '.join(_IMAGE_EXTENSIONS)}; sub-folders are not read). Remove them or add "
            "images.")
    if skipped and not empty:
        logging.warning("--dataset=%s: left out what is not an image (%s) in %s: %s", name,
                        " ".join(_IMAGE_EXTENSIONS), directory,
                        ", ".join(f"{count} {kind}" for kind, count in sorted(skipped.items())))
    return classes, files_by_class


def _held_out_split(files, split):
    """The `split` part of one class's files, in their order (`held_out_indices`
    are the test split)."""
    test = set(held_out_indices(len(files)).tolist())
    return [file for index, file in enumerate(files) if (index in test) == (split == "test")]


def _stratified_order(files_by_class, seed):
    """(files, labels) in a seeded order where the i-th of a class's n files sits
    at (i + 1/2) / n of the sequence: every prefix holds each class in proportion."""
    rng = np.random.RandomState(seed)
    keyed = []
    for label, files in enumerate(files_by_class):
        for rank, index in enumerate(rng.permutation(len(files))):
            keyed.append(((rank + 0.5) / len(files), label, files[index]))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [file for _, _, file in keyed], [label for _, label, _ in keyed]
