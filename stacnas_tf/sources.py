"""Dataset sources: every `--dataset` as a `Source`, a split's examples and what a
model needs to know of them.

Sources (`--dataset`):
  * `cifar10`, `cifar100`, `imagenet2012`: tensorflow-datasets, read from a
    prepared `data_dir`, or built from the official archives placed in
    `manual_dir`. Nothing is ever downloaded: a missing dataset is an error
    that names the file to put where.
  * `fashion_mnist`: the IDX files of Debian's `dataset-fashion-mnist`.
  * `digits`: scikit-learn's bundled 8x8 digits (read without importing sklearn).
  * `folder:PATH`: one sub-folder of images per class (PATH/train and
    PATH/test are used when present; `folder_datasets` reads them).
  * `in_memory`: images given in Python (`from_arrays`, `from_dataset`; the
    `stacnas_tf.search` / `train` calls), which no binary can load again.

Every source yields (uint8 HWC image, int64 label); `pipelines` batches them.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.util
import os

import numpy as np
import tensorflow as tf

from stacnas_tf import folder_datasets
from stacnas_tf.dataset_names import IN_MEMORY
from stacnas_tf.dataset_names import check_dataset_name

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
    """(train, test) of one in-memory source: a seeded share of every class is the
    test split, as for a folder without test images (`folder_datasets.held_out_indices`)."""
    images, labels = (np.stack(a) for a in zip(*source.dataset.as_numpy_iterator()))
    test = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        test[members[folder_datasets.held_out_indices(len(members))]] = True
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


def _folder(name, root, split, image_size) -> Source:
    """The images of a folder (`folder_datasets.read`), normalised by a sample's statistics."""
    dataset, count, classes, image_shape = folder_datasets.read(name, root, split, image_size)
    # The first files of the stratified order: a seeded sample of every class.
    sample = np.stack([image.numpy() for image, _ in dataset.take(256)])
    mean, std = _statistics(sample)
    return Source(name=name, split=split, dataset=dataset, num_examples=count,
                  num_classes=len(classes), image_shape=image_shape, mean=mean, std=std,
                  class_names=classes)


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


# --- what a source allows --------------------------------------------------------------------


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
