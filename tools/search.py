"""Runs a StacNAS search and writes its genotype.

  python tools/search.py                         # the embedded default (Fashion-MNIST)
  python tools/search.py --preset=paper_cifar10 --data_dir=~/tensorflow_datasets \
      --output_dir=runs/cifar10 --strategy=mirrored --scaling_rule=linear --precision=mixed_float16
  TF_CONFIG='{"cluster": {"worker": ["h1:12345", "h2:12345"]}, "task": {"type": "worker", "index": 0}}' \
      python tools/search.py --strategy=multi_worker --output_dir=/shared/runs/cifar10 ...
  python tools/search.py --grouping=flat --optimization=bi_level   # DARTS (first order)

Flags left unset take the preset's values. Rerunning on the same
--output_dir resumes the search.
"""

import os

from tools import cli  # noqa: I001 (first: it sets TensorFlow's environment)
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from stacnas_tf import config as config_lib  # noqa: E402
from stacnas_tf import files  # noqa: E402
from tools import scale_flags  # noqa: E402

_PRESET = flags.DEFINE_enum("preset", "default", sorted(config_lib.PRESETS),
                            "Named configuration; other flags override its fields.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/search",
                                  "Folder for checkpoints, history, TensorBoard logs and the genotype.")
_DATA_DIR = flags.DEFINE_string("data_dir", None,
                                "tensorflow-datasets folder (cifar/imagenet), or the folder of the "
                                "fashion_mnist / digits files.")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None,
                                  "Folder holding official archives to build a tfds dataset from.")
_DATASET = flags.DEFINE_string("dataset", None,
                               "cifar10, cifar100, imagenet2012, fashion_mnist, digits or folder:PATH.")
_STAGE1_CELLS = flags.DEFINE_integer("stage1_cells", None, "Cells of the stage-1 supernet (paper: 14).")
_STAGE2_CELLS = flags.DEFINE_integer("stage2_cells", None, "Cells of the stage-2 supernet (paper: 20).")
_STAGE1_EPOCHS = flags.DEFINE_integer("stage1_epochs", None, "Training epochs of stage 1.")
_STAGE2_EPOCHS = flags.DEFINE_integer("stage2_epochs", None, "Training epochs of stage 2.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Global batch size at one replica (see --scaling_rule).")
_CHANNELS = flags.DEFINE_integer("channels", None, "Initial channels C of the supernet (paper: 16).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Resize images to this square size.")
_NUM_TRAIN = flags.DEFINE_integer("num_train_examples", None,
                                  "Use only the first N training examples.")
_SEED = flags.DEFINE_integer("seed", None, "Random seed of weights, logits, shuffling and augmentation.")
_PER_CELL = flags.DEFINE_bool("per_cell_logits", None,
                              "Give every cell its own architecture logits (the enlarged space).")
_GROUPS = flags.DEFINE_string("groups", None,
                              'JSON file {"groups": [[op, ...], ...]} replacing the paper\'s groups.')
_OPTIMIZATION = flags.DEFINE_enum(
    "optimization", None, ["one_level", "bi_level"],
    "one_level: w and alpha from the same batch (StacNAS); bi_level: DARTS's first-order "
    "alternation on two halves of the data (ablation).")
_GROUPING = flags.DEFINE_enum(
    "grouping", None, ["grouped", "flat"],
    "grouped: StacNAS's two stages; flat: DARTS's single stage over every op, with "
    "--stage1_cells/--stage1_epochs (ablation).")


def _config() -> config_lib.SearchConfig:
    from stacnas_tf import search_space

    overrides = {
        name: flag.value
        for name, flag in {
            "dataset": _DATASET, "stage1_cells": _STAGE1_CELLS, "stage2_cells": _STAGE2_CELLS,
            "stage1_epochs": _STAGE1_EPOCHS, "stage2_epochs": _STAGE2_EPOCHS,
            "batch_size": _BATCH_SIZE, "channels": _CHANNELS, "image_size": _IMAGE_SIZE,
            "num_train_examples": _NUM_TRAIN, "seed": _SEED, "per_cell_logits": _PER_CELL,
            "optimization": _OPTIMIZATION, "grouping": _GROUPING,
        }.items()
        if flag.value is not None
    }
    if _GROUPS.value:
        overrides["groups"] = search_space.load_groups(files.user_path(_GROUPS.value))
    return config_lib.PRESETS[_PRESET.value].replace(**overrides)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    output_dir = files.user_path(_OUTPUT_DIR.value)
    data_dir, manual_dir = files.user_path(_DATA_DIR.value), files.user_path(_MANUAL_DIR.value)
    try:
        config = _config()
        files.check_input_folders({"--data_dir": data_dir, "--manual_dir": manual_dir})
        from stacnas_tf import search_loop as search

        strategy = scale_flags.open_strategy()
        config = scale_flags.for_strategy(config, strategy, ("weight_lr", "weight_lr_min"))
        genotype = search.run_search(config, output_dir, data_dir=data_dir,
                                     manual_dir=manual_dir, strategy=strategy,
                                     jit_compile=scale_flags.JIT_COMPILE.value)
    except (ValueError, FileNotFoundError) as e:
        raise app.UsageError(str(e)) from None
    print(f"genotype: {genotype.to_darts()}")
    print(f"written to {os.path.join(os.path.abspath(output_dir), 'genotype.json')}")


if __name__ == "__main__":
    cli.run(main)
