"""Run settings: `SearchConfig` (a search) and `TrainConfig` (a final network
and its recipe), frozen dataclasses with named presets (`PRESETS`,
`TRAIN_PRESETS`, `NETWORK_PRESETS`), their range checks, and their JSON form
(what a run folder's config.json holds)."""

from __future__ import annotations

import dataclasses

from stacnas_tf import dataset_names
from stacnas_tf import precision as precision_lib
from stacnas_tf import search_space


OPTIMIZATIONS = ("one_level", "bi_level")
GROUPINGS = ("grouped", "flat")
WEIGHT_INITS = ("pytorch", "keras")


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Everything that determines the result of a StacNAS search.

    Defaults follow the paper / DARTS for the optimizers; the network and data
    sizes default to the small embedded job (see `PRESETS`).
    """

    dataset: str = "fashion_mnist"
    image_size: int | None = None  # resize images to this square size; None keeps them
    num_train_examples: int | None = None  # use the first N training examples; None: all
    # Steps of an epoch; None: one pass over the examples. Fewer steps than a pass make
    # epochs report points along one stream of fresh images (the stream is reshuffled
    # and repeated, so a stage of E epochs x S steps sees E*S*batch_size images in turn).
    steps_per_epoch: int | None = None
    stage1_cells: int = 14
    stage2_cells: int = 20
    stage1_epochs: int = 100
    stage2_epochs: int = 100
    batch_size: int = 64
    channels: int = 16
    seed: int = 0
    per_cell_logits: bool = False
    groups: tuple[tuple[str, ...], ...] = search_space.PAPER_GROUPS
    # Ablations (paper table 4). one_level: w and alpha from the same batch (StacNAS);
    # bi_level: DARTS's first-order alternation, alpha on one half of the data, w on the other.
    optimization: str = "one_level"
    # grouped: StacNAS's two stages; flat: DARTS's single stage over every op
    # (stage1_cells / stage1_epochs; the stage-2 fields are unused).
    grouping: str = "grouped"
    # float32, mixed_float16 or mixed_bfloat16 (alpha, its softmax and the loss stay float32).
    precision: str = "float32"
    # How the supernet's convolution and dense weights start: "pytorch" as the
    # reference code's (U(+-1/sqrt(fan_in)), PyTorch's default), or "keras"
    # (Glorot-uniform kernels, zero biases). See stacnas_tf/initialization.py.
    weight_init: str = "pytorch"
    # Weights: SGD, cosine-annealed learning rate, L2 decay, global-norm clipping.
    weight_lr: float = 0.025
    weight_lr_min: float = 0.001
    weight_momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip_norm: float = 5.0  # global norm; 0 turns clipping off
    # Architecture logits: Adam, L2 decay.
    arch_lr: float = 3e-4
    arch_beta_1: float = 0.5
    arch_beta_2: float = 0.999
    arch_epsilon: float = 1e-8
    arch_weight_decay: float = 1e-3
    # Epochs at the start of each stage in which alpha stays at its initial value while
    # the weights train (P-DARTS / PC-DARTS's warm-up; the paper has none: 0).
    arch_warmup_epochs: int = 0
    # Intermediate nodes of a cell (DARTS: 4).
    num_nodes: int = 4
    # The dataset's class names (label -> name), recorded from the data.
    class_names: tuple[str, ...] | None = None

    def __post_init__(self):
        _check_types(self)
        search_space.check_groups_shape(self.groups)
        object.__setattr__(self, "groups", tuple(tuple(g) for g in self.groups))
        object.__setattr__(self, "dataset", dataset_names.canonical_name(self.dataset))
        _freeze_class_names(self)
        _check_numbers(self)
        if not isinstance(self.num_nodes, int) or not 1 <= self.num_nodes <= 16:
            raise ValueError(f"--num_nodes: expected 1 to 16 nodes per cell, got {self.num_nodes!r}.")
        dataset_names.check_dataset_name(self.dataset)
        for name in ("stage1_cells", "stage2_cells", "stage1_epochs", "stage2_epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name}: expected a positive integer, got {value!r}.")
        for name in ("stage1_cells", "stage2_cells"):
            if getattr(self, name) < 3:
                # Reductions sit at 1/3 and 2/3 of the depth: 1 or 2 cells are all reductions.
                raise ValueError(f"--{name}: a supernet of {getattr(self, name)} cell(s) has no "
                                 "normal cell to search; expected at least 3.")
        _check_seed(self.seed)
        if self.channels < 2 or self.channels % 2:
            raise ValueError(f"--channels: expected an even number >= 2, got {self.channels}.")
        if self.image_size is not None and (self.image_size < 4 or self.image_size % 4):
            raise ValueError(
                f"--image_size: expected a positive multiple of 4 (two reductions halve it), got "
                f"{self.image_size}."
            )
        if self.num_train_examples is not None and (
                not isinstance(self.num_train_examples, int) or self.num_train_examples < 1):
            raise ValueError(f"--num_train_examples: expected a positive number of examples (or "
                             f"none for all), got {self.num_train_examples!r}.")
        if self.num_train_examples is not None and self.num_train_examples < self.batch_size:
            raise ValueError(
                f"--batch_size={self.batch_size} is larger than --num_train_examples="
                f"{self.num_train_examples}; an epoch needs at least one batch."
            )
        if self.steps_per_epoch is not None and (
                not isinstance(self.steps_per_epoch, int) or isinstance(self.steps_per_epoch, bool)
                or self.steps_per_epoch < 1):
            raise ValueError(f"--steps_per_epoch: expected a positive number of steps (or none for "
                             f"one pass over the examples), got {self.steps_per_epoch!r}.")
        warmup = self.arch_warmup_epochs
        if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
            raise ValueError(f"--arch_warmup_epochs: expected a number of epochs >= 0, got {warmup!r}.")
        stage_epochs = ((self.stage1_epochs,) if self.grouping == "flat"
                        else (self.stage1_epochs, self.stage2_epochs))
        if warmup and warmup >= min(stage_epochs):
            raise ValueError(f"--arch_warmup_epochs={warmup} leaves no epoch in which alpha moves "
                             f"(stages of {'/'.join(map(str, stage_epochs))} epochs); expected fewer.")
        for name in ("weight_lr", "arch_lr", "arch_epsilon"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name}: expected a positive number, got {getattr(self, name)}.")
        _check_ranges(self, {"weight_decay": _NON_NEGATIVE, "arch_weight_decay": _NON_NEGATIVE,
                             "grad_clip_norm": _NON_NEGATIVE, "weight_momentum": _FRACTION,
                             "arch_beta_1": _FRACTION, "arch_beta_2": _FRACTION})
        if not 0 <= self.weight_lr_min <= self.weight_lr:
            raise ValueError(f"--weight_lr_min: expected a rate in [0, --weight_lr={self.weight_lr}] "
                             f"(a negative rate climbs the loss), got {self.weight_lr_min}.")
        if self.optimization not in OPTIMIZATIONS:
            raise ValueError(f"--optimization: expected one of {list(OPTIMIZATIONS)}, got {self.optimization!r}.")
        if self.grouping not in GROUPINGS:
            raise ValueError(f"--grouping: expected one of {list(GROUPINGS)}, got {self.grouping!r}.")
        if self.weight_init not in WEIGHT_INITS:
            raise ValueError(f"--weight_init: expected one of {list(WEIGHT_INITS)}, got "
                             f"{self.weight_init!r}.")
        if self.optimization == "bi_level" and self.num_train_examples is not None \
                and self.num_train_examples < 2 * self.batch_size:
            raise ValueError(
                f"--num_train_examples: bi_level splits the data in two halves of at least one batch "
                f"({self.batch_size}) each, got {self.num_train_examples}.")
        search_space.SearchSpace(groups=self.groups, num_nodes=self.num_nodes)
        precision_lib.check(self.precision)

    @property
    def space(self) -> search_space.SearchSpace:
        return search_space.SearchSpace(groups=self.groups, num_nodes=self.num_nodes)

    def to_dict(self) -> dict:
        value = dataclasses.asdict(self)
        value["groups"] = [list(g) for g in self.groups]
        value["class_names"] = None if self.class_names is None else list(self.class_names)
        return value

    @classmethod
    def from_dict(cls, value: dict, source: str = "config.json") -> "SearchConfig":
        """Fields missing from `value` (files written by older versions) take their
        defaults; errors name `source` and the key."""
        known = {field.name for field in dataclasses.fields(cls)}
        if not isinstance(value, dict):
            raise ValueError(f"{source}: expected the settings of a search.")
        unknown = sorted(set(value) - known)
        if unknown:
            what = " (a training run's settings)" if "genotype" in value and "epochs" in value else ""
            raise ValueError(f"{source}: not a search's settings{what}: unknown fields "
                             f"{unknown[:5]}.")
        return _from_file(cls, value, source)

    def replace(self, **changes) -> "SearchConfig":
        return dataclasses.replace(self, **changes)


# Upper bounds that catch a typo before it asks for all the memory there is
# (the paper's largest: 48 channels, 20 cells, 224x224 images).
MAX_CHANNELS = 1024
MAX_CELLS = 100
MAX_IMAGE_SIZE = 1024


# What each annotated kind of setting accepts, and how an error names it. JSON
# and Python both let a number arrive as a string or a bool, which would fail
# later inside TensorFlow, or (booleans) count silently as 0 and 1.
_KINDS = {
    "int": ((int,), "an integer"),
    "float": ((int, float), "a number"),
    "bool": ((bool,), "true or false"),
    "str": ((str,), "a string"),
}


def _check_types(config) -> None:
    """Every setting of a plain kind (int, float, bool, str, or one of them or
    None) holds a value of that kind."""
    for field in dataclasses.fields(config):
        kind, _, optional = str(field.type).partition(" | ")
        if kind not in _KINDS or optional not in ("", "None"):
            continue
        value = getattr(config, field.name)
        if value is None and optional:
            continue
        types, description = _KINDS[kind]
        if not isinstance(value, types) or (kind != "bool" and isinstance(value, bool)):
            raise ValueError(f"--{field.name}: expected {description}"
                             f"{' (or none)' if optional else ''}, got {value!r}.")


def _from_file(cls, value: dict, source: str):
    """`cls(**value)`, its errors naming the file and key instead of a flag."""
    try:
        return cls(**value)
    except ValueError as e:
        message = str(e)
        if message.startswith("--"):  # "--FIELD: ...": the key instead of the flag
            name, colon, rest = message[2:].partition(":")
            if colon and name in {field.name for field in dataclasses.fields(cls)}:
                message = f'"{name}":{rest}'
        raise ValueError(f"{source}: {message}") from e


# (lowest, highest, whether the highest is excluded, what the range means)
_NON_NEGATIVE = (0, None, False, "a number >= 0")
_FRACTION = (0, 1, True, "a number in [0, 1)")


def _check_ranges(config, ranges: dict) -> None:
    for name, (lowest, highest, open_top, expected) in ranges.items():
        value = getattr(config, name)
        if value < lowest or (highest is not None and (value >= highest if open_top
                                                       else value > highest)):
            raise ValueError(f"--{name}: expected {expected}, got {value}.")


def _check_numbers(config) -> None:
    """Every float setting finite, sizes within the bounds above."""
    import math

    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"--{field.name}: expected a finite number, got {value}.")
    for name, bound in (("channels", MAX_CHANNELS), ("num_cells", MAX_CELLS),
                        ("stage1_cells", MAX_CELLS), ("stage2_cells", MAX_CELLS),
                        ("image_size", MAX_IMAGE_SIZE)):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > bound:
            raise ValueError(f"--{name}: at most {bound}, got {value}.")


def _freeze_class_names(config) -> None:
    names = config.class_names
    if names is None:
        return
    if (not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names)
            or len(names) < 2):
        raise ValueError(f"class_names: expected a list of at least 2 names, got {names!r}.")
    object.__setattr__(config, "class_names", tuple(names))


def with_class_names(config, class_names, where: str = "--dataset"):
    """`config` with the data's class names recorded; names recorded earlier must agree."""
    if class_names is None:
        return config
    class_names = tuple(class_names)
    if config.class_names is not None and config.class_names != class_names:
        raise ValueError(f"{where}: the data's classes {list(class_names)[:10]} are not the "
                         f"classes this run was made with {list(config.class_names)[:10]}.")
    return config.replace(class_names=class_names)


def _check_seed(seed) -> None:
    # Keras seeds every generator from it, and refuses negative ones mid-run.
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**31:
        raise ValueError(f"--seed: expected an integer in [0, 2^31), got {seed!r}.")


PRESETS = {
    # The embedded default: a two-stage search on Fashion-MNIST in ~8 minutes on 2 CPU
    # cores whose weights end well away from uniform (~1.23x, seed 0). At this scale its
    # cell still changes with the seed (as the authors' code's does), not with the thread
    # count (stacnas_tf/repeatable.py): docs/analyses.md. Its deviations from the paper,
    # chosen by the measured sweep in benchmarks/results/default_sweep.{md,png}:
    # - 800 steps a stage (8 epochs of 100 steps) over all 60,000 images, so every step
    #   sees fresh images (51,200 of them a stage) instead of a small subset reused;
    # - alpha's Adam rate scaled to the step count: the paper's 3e-4 over ~78,000 steps
    #   (100 epochs of CIFAR-10) moves alpha as far as 3e-2 over 800; at 3e-4 the
    #   weights end within 1% of uniform (the authors' code does the same at this length);
    # - alpha held still for the first 2 epochs while the weights train (P-DARTS,
    #   PC-DARTS), so its first steps do not follow the untrained ops' noise.
    "default": SearchConfig(
        dataset="fashion_mnist", image_size=16, num_train_examples=None, steps_per_epoch=100,
        stage1_cells=5, stage2_cells=5, stage1_epochs=8, stage2_epochs=8,
        batch_size=64, channels=8, arch_lr=3e-2, arch_warmup_epochs=2,
    ),
    # A few seconds of training: checks that everything runs.
    "smoke": SearchConfig(
        dataset="digits", stage1_cells=3, stage2_cells=3, stage1_epochs=1, stage2_epochs=1,
        batch_size=32, channels=4, num_train_examples=128,
    ),
    # The paper's CIFAR setting: 14 cells in stage 1, 20 in stage 2, 100 epochs each.
    "paper_cifar10": SearchConfig(dataset="cifar10"),
    "paper_cifar100": SearchConfig(dataset="cifar100"),
}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A final network and the recipe that trains it (StacNAS appendix C)."""

    genotype: str = "STACNAS_CIFAR10"  # published name, genotype file or DARTS text
    dataset: str = "cifar10"
    image_size: int | None = None
    num_train_examples: int | None = None
    num_eval_examples: int | None = None
    # Network.
    network: str = "cifar"  # stem: cifar or imagenet
    channels: int = 36
    num_cells: int = 20
    deformable: bool = False
    precision: str = "float32"  # float32, mixed_float16 or mixed_bfloat16
    # Recipe.
    epochs: int = 600
    batch_size: int = 96
    lr: float = 0.025
    lr_schedule: str = "cosine"  # cosine (to lr_min) or exponential (lr_decay_rate per epoch)
    lr_min: float = 0.0
    lr_decay_rate: float = 0.97
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip_norm: float = 5.0  # global norm; 0 turns clipping off
    cutout: int = 16
    autoaugment: bool = False  # AutoAugment's CIFAR-10 policy (the paper's `fancy` recipe)
    drop_path: float = 0.2
    aux_weight: float = 0.4
    label_smoothing: float = 0.0
    # Deformable edges' logits: Adam, as in the search.
    arch_lr: float = 3e-4
    arch_weight_decay: float = 1e-3
    seed: int = 0
    # The dataset's class names (label -> name), recorded from the data.
    class_names: tuple[str, ...] | None = None

    def __post_init__(self):
        _check_types(self)
        object.__setattr__(self, "dataset", dataset_names.canonical_name(self.dataset))
        dataset_names.check_dataset_name(self.dataset)
        _freeze_class_names(self)
        _check_numbers(self)
        for name in ("epochs", "batch_size", "num_cells", "channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name}: expected a positive integer, got {value!r}.")
        if self.channels % 2:
            raise ValueError(f"--channels: expected an even number, got {self.channels}.")
        _check_seed(self.seed)
        if self.image_size is not None and (
                not isinstance(self.image_size, int) or self.image_size < 4 or self.image_size % 4):
            raise ValueError(
                f"--image_size: expected a positive multiple of 4 (two reductions halve it), got "
                f"{self.image_size!r}."
            )
        for name in ("num_train_examples", "num_eval_examples"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"--{name}: expected a positive number of examples (or none for "
                                 f"all), got {value!r}.")
        if self.num_train_examples is not None and self.num_train_examples < self.batch_size:
            raise ValueError(f"--batch_size={self.batch_size} is larger than --num_train_examples="
                             f"{self.num_train_examples}; an epoch needs at least one batch.")
        if self.network not in ("cifar", "imagenet"):
            raise ValueError(f"--network: expected 'cifar' or 'imagenet', got {self.network!r}.")
        if self.lr_schedule not in ("cosine", "exponential"):
            raise ValueError(f"--lr_schedule: expected 'cosine' or 'exponential', got {self.lr_schedule!r}.")
        if not 0 <= self.drop_path < 1:
            raise ValueError(f"--drop_path: expected a rate in [0, 1), got {self.drop_path}.")
        for name in ("lr", "arch_lr"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name}: expected a positive number, got {getattr(self, name)}.")
        _check_ranges(self, {"aux_weight": _NON_NEGATIVE, "label_smoothing": _FRACTION,
                             "weight_decay": _NON_NEGATIVE, "arch_weight_decay": _NON_NEGATIVE,
                             "grad_clip_norm": _NON_NEGATIVE, "momentum": _FRACTION,
                             "cutout": _NON_NEGATIVE})
        if not 0 <= self.lr_min <= self.lr:
            raise ValueError(f"--lr_min: expected a rate in [0, --lr={self.lr}] (a negative rate "
                             f"climbs the loss), got {self.lr_min}.")
        if not 0 < self.lr_decay_rate <= 1:
            raise ValueError(f"--lr_decay_rate: expected a factor in (0, 1] (the rate is multiplied "
                             f"by it every epoch), got {self.lr_decay_rate}.")
        precision_lib.check(self.precision)

    def to_dict(self) -> dict:
        value = dataclasses.asdict(self)
        value["class_names"] = None if self.class_names is None else list(self.class_names)
        return value

    @classmethod
    def from_dict(cls, value, source: str = "config.json") -> "TrainConfig":
        """A training folder's settings; fields missing from `value` (older
        versions) take their defaults, anything else is refused by name."""
        known = {field.name for field in dataclasses.fields(cls)}
        if not isinstance(value, dict):
            raise ValueError(f"{source}: expected the settings of a training run.")
        unknown = sorted(set(value) - known)
        if unknown:
            what = " (a search's settings)" if "stage1_cells" in value else ""
            raise ValueError(f"{source} is not a training run's settings{what}: unknown fields "
                             f"{unknown[:5]}.")
        return _from_file(cls, value, source)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


TRAIN_PRESETS = {
    # DARTS's CIFAR recipe (the paper's `base`).
    "base": TrainConfig(),
    # The paper's `fancy` CIFAR recipe: base + AutoAugment (CIFAR-10 policy), 1200 epochs.
    "fancy": TrainConfig(autoaugment=True, epochs=1200),
    # DARTS's ImageNet (mobile) recipe.
    "imagenet_base": TrainConfig(
        dataset="imagenet2012", image_size=224, network="imagenet", channels=48, num_cells=14,
        epochs=250, batch_size=128, lr=0.1, lr_schedule="exponential", lr_decay_rate=0.97,
        weight_decay=3e-5, cutout=0, drop_path=0.0, aux_weight=0.4, label_smoothing=0.1,
    ),
    # The embedded default: a small network on Fashion-MNIST, minutes on 2 CPU cores.
    "default": TrainConfig(
        dataset="fashion_mnist", image_size=16, num_train_examples=8192, num_eval_examples=2000,
        channels=8, num_cells=5, epochs=4, batch_size=64, cutout=4, drop_path=0.1,
        aux_weight=0.0, lr=0.05,
    ),
    # Seconds: checks that everything runs.
    "smoke": TrainConfig(
        dataset="digits", channels=4, num_cells=3, epochs=1, batch_size=32, cutout=2,
        aux_weight=0.0, num_train_examples=128, num_eval_examples=64,
    ),
}

# Network sizes of the paper's final networks, for describing and exporting.
NETWORK_PRESETS = {
    "cifar10": dict(network="cifar", channels=36, num_cells=20, num_classes=10, image_shape=(32, 32, 3)),
    "cifar100": dict(network="cifar", channels=36, num_cells=20, num_classes=100, image_shape=(32, 32, 3)),
    "imagenet_mobile": dict(network="imagenet", channels=48, num_cells=14, num_classes=1000,
                            image_shape=(224, 224, 3)),
}
