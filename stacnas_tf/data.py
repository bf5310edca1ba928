"""Image datasets as tf.data pipelines.

Sources (`--dataset`):
  * `cifar10`, `cifar100`, `imagenet2012`: tensorflow-datasets, read from a
    prepared `data_dir`, or built from the official archives placed in
    `manual_dir`. Nothing is ever downloaded: a missing dataset is an error
    that names the file to put where.
  * `fashion_mnist`: the IDX files of Debian's `dataset-fashion-mnist`.
  * `digits`: scikit-learn's bundled 8x8 digits (read without importing sklearn).
  * `folder:PATH`: one sub-folder of images per class (PATH/train and
    PATH/test are used when present).
  * `in_memory`: images given in Python (`from_arrays`, `from_dataset`; the
    `stacnas_tf.search` / `train` calls), which no binary can load again.

Every source yields (uint8 HWC image, int64 label). Training pipelines are
deterministic functions of (seed, epoch): the shuffle order and the
augmentation of each position are seeded by both, so a resumed run sees the
same batches as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.util
import os

import numpy as np
import tensorflow as tf
from absl import logging

from stacnas_tf import autoaugment
from stacnas_tf import files

# The names, without TensorFlow (configs and --help need only them).
from stacnas_tf.dataset_names import DATASETS  # noqa: E402,F401
from stacnas_tf.dataset_names import IN_MEMORY  # noqa: E402
from stacnas_tf.dataset_names import TFDS_DATASETS  # noqa: E402
from stacnas_tf.dataset_names import canonical_name  # noqa: E402,F401
from stacnas_tf.dataset_names import check_dataset_name  # noqa: E402

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

# Label -> name, as the datasets publish them (Fashion-MNIST: Zalando's README;
# digits: scikit-learn's `target_names`), so that exports name their classes.
_CLASS_NAMES = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
    "digits": tuple(str(digit) for digit in range(10)),
}

# DARTS's CIFAR statistics and the usual ImageNet ones.
_STATS = {
    "cifar10": ((0.49139968, 0.48215827, 0.44653124), (0.24703233, 0.24348505, 0.26158768)),
    "cifar100": ((0.5070751, 0.48654887, 0.44091785), (0.26733428, 0.25643846, 0.27615047)),
    "imagenet2012": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
# What tfds's manual build expects in manual_dir.
_MANUAL_FILES = {
    "cifar10": ("cifar-10-binary.tar.gz",),
    "cifar100": ("cifar-100-binary.tar.gz",),
    "imagenet2012": ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
}
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclasses.dataclass(frozen=True)
class Source:
    """A dataset split: its examples and what a model needs to know of them."""

    name: str
    split: str
    dataset: tf.data.Dataset  # (uint8 [H, W, C] image, int64 label)
    num_examples: int
    num_classes: int
    image_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...] | None = None  # label -> name, where the source has names
    # Content hash of images given in Python: a run folder records it, so that a
    # rerun with other images is refused instead of answered from the first ones.
    fingerprint: str | None = None


def load(name: str, split: str = "train", data_dir: str | None = None,
         manual_dir: str | None = None, image_size: int | None = None) -> Source:
    """Loads split `split` ("train" or "test") of dataset `name`."""
    check_dataset_name(name)
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}.")
    if name == "fashion_mnist":
        return _in_memory(name, split, *_read_fashion_mnist(data_dir or FASHION_MNIST_DIR, split))
    if name == "digits":
        return _in_memory(name, split, *_read_digits(data_dir, split))
    if name.startswith("folder:"):
        return _folder(name, name[len("folder:"):], split, image_size)
    if name == IN_MEMORY:
        raise ValueError(f"--dataset={IN_MEMORY}: this run's images were given in Python; pass "
                         "them again (stacnas_tf.search / train with the same data) to go on.")
    return _tfds(name, split, data_dir, manual_dir)


# --- images given in Python ---------------------------------------------------------


def from_arrays(images, labels, *, num_classes: int | None = None,
                class_names=None, split: str = "train", what: str = "data") -> Source:
    """A source of in-memory images: `images` [N, H, W] or [N, H, W, C], pixels
    in [0, 255] (uint8, integers or floats; floats are rounded) and integer
    `labels` [N] (0 .. num_classes - 1). The networks take pixels in this range
    at `predict` too, so images scaled to [0, 1] are refused rather than
    rescaled: a network trained on them would see other values than the user
    gives it later."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.size == 0:
        raise ValueError(f"{what}: no images (an empty array of shape {images.shape}).")
    if num_classes is not None and (not isinstance(num_classes, (int, np.integer))
                                    or isinstance(num_classes, bool) or num_classes < 2):
        raise ValueError(f"num_classes: expected a count of classes >= 2 (or none to count the "
                         f"labels), got {num_classes!r}.")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) == 0:
        raise ValueError(f"{what}: expected images [N, H, W] or [N, H, W, 1 or 3], got shape "
                         f"{images.shape}.")
    if images.dtype == bool or not (np.issubdtype(images.dtype, np.integer)
                                    or np.issubdtype(images.dtype, np.floating)):
        raise ValueError(f"{what}: expected pixel values (uint8, integers or floats), got "
                         f"{images.dtype} images.")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{what}: expected one integer class label per image ({len(images)}), got "
                         f"{labels.dtype} labels of shape {labels.shape} (one-hot labels: "
                         "argmax them first).")
    if np.issubdtype(images.dtype, np.floating):
        if not np.isfinite(images).all() or images.min() < 0 or images.max() > 255:
            raise ValueError(f"{what}: float images must be pixels in [0, 255]; got values in "
                             f"[{images.min():.3g}, {images.max():.3g}].")
        if images.max() <= 1:
            raise ValueError(f"{what}: the float images lie in [0, 1]; the networks take pixels "
                             "in [0, 255] (and so does predict later): pass images * 255, or "
                             "uint8 pixels.")
        images = np.round(images)
    elif images.min() < 0 or images.max() > 255:
        raise ValueError(f"{what}: integer images must be pixels in 0-255; got values in "
                         f"[{images.min()}, {images.max()}].")
    names = tuple(str(n) for n in class_names) if class_names is not None else None
    num_classes = num_classes or max(len(names or ()), int(labels.max()) + 1)
    if names is not None and len(names) != num_classes:
        raise ValueError(f"class_names: expected {num_classes} names (one per class), got "
                         f"{len(names)}.")
    if labels.min() < 0 or labels.max() >= num_classes or num_classes < 2:
        raise ValueError(f"{what}: labels must lie in 0..{num_classes - 1} "
                         f"({num_classes} classes, at least 2); got {labels.min()}..{labels.max()}.")
    if names is not None and len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"class_names: every class needs its own name; {', '.join(map(repr, repeated))} "
                         "names more than one class.")
    images, labels = images.astype(np.uint8), labels.astype(np.int64)
    mean, std = _statistics(images)
    content = hashlib.sha256(repr((images.shape, num_classes)).encode())
    content.update(np.ascontiguousarray(images).data)
    content.update(np.ascontiguousarray(labels).data)
    return Source(
        name=IN_MEMORY, split=split,
        dataset=tf.data.Dataset.from_tensor_slices((images, labels)),
        num_examples=len(images), num_classes=num_classes, image_shape=tuple(images.shape[1:]),
        mean=mean, std=std, class_names=names, fingerprint=content.hexdigest())


def from_dataset(dataset: tf.data.Dataset, *, num_classes: int | None = None, class_names=None,
                 split: str = "train", what: str = "data") -> Source:
    """A source of the (image, label) pairs of `dataset` (batched or not), read
    once into memory: the pipelines need their count and statistics, and a
    seeded shuffle of every epoch that a resumed run can repeat."""
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError(f"{what}: expected a tf.data.Dataset of (image, label) pairs, got elements "
                         f"{spec}.")
    if int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        raise ValueError(f"{what}: the dataset repeats forever (.repeat() without a count); pass "
                         "it without .repeat(): it is read into memory once, and epochs are "
                         "set by the preset.")
    image_spec, label_spec = spec
    if label_spec.shape.rank is not None and label_spec.shape.rank >= 2 or (
            label_spec.shape.rank == 1 and image_spec.shape.rank == 3
            and image_spec.shape[-1] in (1, 3)):
        raise ValueError(f"{what}: expected one integer class label per image, got labels of "
                         f"shape {label_spec.shape} (one-hot labels: map them with "
                         "tf.argmax first).")
    if image_spec.shape.rank == 4 or (image_spec.shape.rank == 3 and label_spec.shape.rank == 1
                                      and image_spec.shape[-1] not in (1, 3)):
        dataset = dataset.unbatch()
    images, labels = [], []
    for image, label in dataset.as_numpy_iterator():
        images.append(image)
        labels.append(label)
    if not images:
        raise ValueError(f"{what}: the dataset is empty.")
    try:
        stacked = np.stack(images)
    except ValueError as e:
        raise ValueError(f"{what}: the images differ in shape; resize them to one size "
                         "first.") from e
    return from_arrays(stacked, np.stack(labels), num_classes=num_classes,
                       class_names=class_names, split=split, what=what)


def held_out_splits(source: Source) -> tuple[Source, Source]:
    """(train, test) of one in-memory source: a seeded `HELD_OUT_FRACTION` of every
    class is the test split, as for a folder without test images."""
    images, labels = (np.stack(a) for a in zip(*source.dataset.as_numpy_iterator()))
    test = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = max(1, round(HELD_OUT_FRACTION * len(members))) if len(members) >= 2 else 0
        test[members[np.random.RandomState(0).permutation(len(members))[:count]]] = True
    if not test.any():
        raise ValueError(f"data: no class has 2 or more of the {len(labels)} images, so none can "
                         "be held out for testing; give more images, or the test images as "
                         "validation_data=(images, labels).")
    return tuple(
        from_arrays(images[chosen], labels[chosen], num_classes=source.num_classes,
                    class_names=source.class_names, split=split)
        for split, chosen in (("train", ~test), ("test", test)))


# --- in-memory sources --------------------------------------------------------------


def _in_memory(name, split, images: np.ndarray, labels: np.ndarray) -> Source:
    mean, std = _statistics(images)
    return Source(
        name=name, split=split,
        dataset=tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int64))),
        num_examples=len(images), num_classes=(len(_CLASS_NAMES[name]) if name in _CLASS_NAMES
                                               else int(labels.max()) + 1),
        image_shape=tuple(images.shape[1:]), mean=mean, std=std,
        class_names=_CLASS_NAMES.get(name),
    )


def _statistics(images: np.ndarray):
    pixels = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    return tuple(pixels.mean(0).tolist()), tuple(np.maximum(pixels.std(0), 1e-3).tolist())


def _read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"fashion_mnist: {path} is not an IDX file of unsigned bytes.")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"fashion_mnist: {path} is truncated (expected shape {shape}).")
    return array.reshape(shape)


def _read_fashion_mnist(directory: str, split: str):
    prefix = "train" if split == "train" else "t10k"
    paths = [os.path.join(directory, f"{prefix}-{kind}-idx{n}-ubyte.gz")
             for kind, n in (("images", 3), ("labels", 1))]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"fashion_mnist: missing {path}. Install Debian's `dataset-fashion-mnist` "
                f"(apt-get install dataset-fashion-mnist) or pass --data_dir=DIR holding the "
                f"four *-ubyte.gz files."
            )
    images, labels = (_read_idx(p) for p in paths)
    return images[..., None], labels


def digits_path() -> str:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("digits: scikit-learn is not installed (pip install scikit-learn).")
    return os.path.join(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz")


def _read_digits(data_dir, split):
    path = os.path.join(data_dir, "digits.csv.gz") if data_dir else digits_path()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"digits: missing {path} (scikit-learn's bundled digits.csv.gz).")
    table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    images = np.round(table[:, :64] * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 8, 8, 1)
    labels = table[:, 64].astype(np.int64)
    # digits has no official split: a fixed 80/20 permutation.
    order = np.random.RandomState(0).permutation(len(images))
    cut = int(0.8 * len(images))
    chosen = order[:cut] if split == "train" else order[cut:]
    return images[chosen], labels[chosen]


# --- folders of images ----------------------------------------------------------------


# Share of every class held out as the test split of a folder without test/.
HELD_OUT_FRACTION = 0.1
_SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val", "validation")}


def _folder(name, root, split, image_size) -> Source:
    """PATH/<class>/*.png, or PATH/train/<class> and PATH/test/<class> (also val/,
    validation/). Without a test folder, a seeded `HELD_OUT_FRACTION` of every
    class is the test split and is left out of the training split, so a test
    never scores images the network trained on.

    Examples come in a seeded, stratified order (every prefix holds the
    classes in proportion), so `num_train_examples` / `num_eval_examples`,
    the bi-level halves and the normalisation statistics see every class.
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
    # The first files of the stratified order: a seeded sample of every class.
    sample = np.stack([image.numpy() for image, _ in dataset.take(256)])
    mean, std = _statistics(sample)
    return Source(name=name, split=split, dataset=dataset, num_examples=len(files),
                  num_classes=len(classes), image_shape=size + (channels,), mean=mean, std=std,
                  class_names=tuple(classes))


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
    """The `split` part of one class's files: a seeded HELD_OUT_FRACTION (at least
    one image of a class of two or more) is the test split."""
    order = np.random.RandomState(0).permutation(len(files))
    count = max(1, round(HELD_OUT_FRACTION * len(files))) if len(files) >= 2 else 0
    chosen = order[:count] if split == "test" else order[count:]
    return [files[i] for i in sorted(chosen)]


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


# --- tensorflow-datasets -----------------------------------------------------------------


def _tfds(name, split, data_dir, manual_dir) -> Source:
    import tensorflow_datasets as tfds  # imported here: slow, and only these sources need it

    builder = tfds.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
        needed = _MANUAL_FILES[name]
        missing = [f for f in needed if not (manual_dir and os.path.isfile(os.path.join(manual_dir, f)))]
        if missing:
            raise FileNotFoundError(
                f"{name}: not prepared in --data_dir={data_dir or builder.data_dir_root} and cannot be "
                f"downloaded here. Put {', '.join(missing)} in a folder and pass it as "
                f"--manual_dir (or point --data_dir at a prepared tensorflow-datasets folder)."
            )
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
        )
    tfds_split = {"train": "train", "test": "validation" if name == "imagenet2012" else "test"}[split]
    dataset = builder.as_dataset(split=tfds_split, as_supervised=True, shuffle_files=False)
    info = builder.info
    mean, std = _STATS[name]
    shape = info.features["image"].shape
    if name == "imagenet2012":
        shape = (None, None, 3)
    if tfds_split in info.splits:
        num_examples = info.splits[tfds_split].num_examples
    else:  # metadata without split sizes (mocked datasets): count the examples
        num_examples = int(dataset.reduce(0, lambda count, _: count + 1).numpy())
    return Source(
        name=name, split=split, dataset=dataset.map(lambda x, y: (x, tf.cast(y, tf.int64))),
        num_examples=num_examples,
        num_classes=info.features["label"].num_classes,
        image_shape=tuple(shape), mean=mean, std=std,
        class_names=tuple(info.features["label"].names),
    )


# --- pipelines ------------------------------------------------------------------------------


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


def _random_resized_crop(image, size, seed):
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


def _pixels(image, source: Source, image_size):
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


def _augment(image, seed, augment: Augment, source: Source):
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


def train_pipeline(source: Source, batch_size: int, seed: int, epochs: int,
                   initial_epoch: int = 0, augment: Augment | None = None,
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
    `steps_per_epoch` full batches (each replica of a strategy gets equal shares).
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
    augment = augment or Augment()
    available = source.num_examples - first_example
    count = min(num_examples or available, available)
    if count < 1:
        raise ValueError(f"first_example={first_example} is past the {source.num_examples} examples.")
    base = source.dataset.skip(first_example).take(count)
    if cache:
        base = base.cache()
    steps = epoch_steps or steps_per_epoch(source, batch_size, count)
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
            image = _random_resized_crop(tf.cast(image, tf.float32), size, pair + 3)
        else:
            image = _pixels(image, source, image_size)
        image = _augment(image, pair, augment, source)
        return image, label

    return (stream.map(transform, num_parallel_calls=parallel_calls, deterministic=deterministic)
            .batch(replica_batch, drop_remainder=True)
            .take((epochs - initial_epoch) * steps * batches_per_step)
            .prefetch(tf.data.AUTOTUNE))


def bi_level_split(source: Source, num_examples: int | None = None) -> tuple[int, int]:
    """(examples per half, first example of the second half) of DARTS's 50/50 split."""
    half = min(num_examples or source.num_examples, source.num_examples) // 2
    return half, half


def bi_level_pipeline(source: Source, batch_size: int, seed: int, epochs: int,
                      initial_epoch: int = 0, augment: Augment | None = None,
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


def eval_pipeline(source: Source, batch_size: int, image_size: int | None = None,
                  num_examples: int | None = None) -> tf.data.Dataset:
    base = source.dataset.take(num_examples) if num_examples else source.dataset
    return (base.map(lambda x, y: (_pixels(x, source, image_size), y),
                     num_parallel_calls=tf.data.AUTOTUNE)
            .batch(batch_size).prefetch(tf.data.AUTOTUNE))


def model_input_shape(source: Source, image_size: int | None) -> tuple[int, int, int]:
    """(height, width, channels) a network sees: sides divisible by 4 (two reductions)."""
    height, width, channels = source.image_shape
    if image_size:
        height = width = image_size
    if height is None or width is None:
        raise ValueError(f"--image_size: {source.name} images vary in size; set --image_size.")
    if height % 4 or width % 4:
        raise ValueError(
            f"--image_size: {source.name} images are {height}x{width}; the two reduction cells "
            "need sides divisible by 4. Pass --image_size."
        )
    return (height, width, channels)


def check_example_count(source: Source, num_examples: int | None, batch_size: int) -> None:
    """Refuses `--num_train_examples` beyond the data (it would be recorded as
    used) and a batch larger than the data."""
    if num_examples is not None and num_examples > source.num_examples:
        raise ValueError(f"--num_train_examples={num_examples}: {source.name} has "
                         f"{source.num_examples} training examples; pass at most that many, or "
                         "none for all.")
    steps_per_epoch(source, batch_size, num_examples)


def steps_per_epoch(source: Source, batch_size: int, num_examples: int | None = None) -> int:
    count = min(num_examples or source.num_examples, source.num_examples)
    steps = count // batch_size
    if steps < 1:
        raise ValueError(
            f"--batch_size={batch_size} is larger than the {count} training examples of {source.name}."
        )
    return steps
