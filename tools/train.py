"""Trains a final network from a genotype.

  bazel run //tools:train -- --genotype=runs/search/genotype.json      # embedded default
  bazel run //tools:train -- --preset=base --genotype=STACNAS_CIFAR10 \
      --data_dir=$HOME/tensorflow_datasets --output_dir=runs/train_c10 --strategy=mirrored \
      --precision=mixed_float16 --jit_compile

Flags left unset take the preset's values. Rerunning on the same
--output_dir resumes after the last completed epoch.
"""

import os

from tools import cli  # noqa: I001 (first: it sets TensorFlow's environment)
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from stacnas_tf import config as config_lib  # noqa: E402
from stacnas_tf import files  # noqa: E402
from stacnas_tf import genotype as genotype_lib  # noqa: E402
from tools import scale_flags  # noqa: E402

_PRESET = flags.DEFINE_enum("preset", "default", sorted(config_lib.TRAIN_PRESETS),
                            "Recipe: base (DARTS CIFAR), fancy (base + AutoAugment), imagenet_base, default "
                            "(Fashion-MNIST), smoke.")
_GENOTYPE = flags.DEFINE_string("genotype", None,
                                "Published name (DARTS_V1, DARTS_V2, STACNAS_CIFAR10), genotype file "
                                "(JSON or DARTS text) or DARTS text. Default: the preset's.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/train", "Checkpoints, logs, config, metrics.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset folder (as in tools/search.py).")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Official archives to build a tfds dataset from.")
_DATASET = flags.DEFINE_string("dataset", None,
                               "cifar10, cifar100, imagenet2012, fashion_mnist, digits or folder:PATH.")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Training epochs.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Global batch size at one replica (see --scaling_rule).")
_CHANNELS = flags.DEFINE_integer("channels", None, "Initial channels C.")
_NUM_CELLS = flags.DEFINE_integer("num_cells", None, "Cells of the network.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Resize images to this square size.")
_NUM_TRAIN = flags.DEFINE_integer("num_train_examples", None, "Use only the first N training examples.")
_LR = flags.DEFINE_float("lr", None, "Initial learning rate.")
_DROP_PATH = flags.DEFINE_float("drop_path", None, "Final drop-path rate (ramped linearly).")
_AUX_WEIGHT = flags.DEFINE_float("aux_weight", None, "Auxiliary loss weight (0: no auxiliary head).")
_AUTOAUGMENT = flags.DEFINE_bool("autoaugment", None, "AutoAugment's CIFAR-10 policy (fancy recipe).")
_DEFORMABLE = flags.DEFINE_bool("deformable", None,
                                "Keep `none` on every edge as a learned scale (Algorithm 1, stage 3).")
_SEED = flags.DEFINE_integer("seed", None, "Random seed.")


def _config() -> config_lib.TrainConfig:
    overrides = {
        name: flag.value for name, flag in {
            "dataset": _DATASET, "epochs": _EPOCHS, "batch_size": _BATCH_SIZE,
            "channels": _CHANNELS, "num_cells": _NUM_CELLS, "image_size": _IMAGE_SIZE,
            "num_train_examples": _NUM_TRAIN, "lr": _LR, "drop_path": _DROP_PATH,
            "aux_weight": _AUX_WEIGHT, "deformable": _DEFORMABLE, "seed": _SEED,
            "autoaugment": _AUTOAUGMENT,
        }.items() if flag.value is not None
    }
    if _GENOTYPE.value is not None:
        spec = files.user_file_or_value(_GENOTYPE.value)
        genotype_lib.resolve(spec)  # refuse a bad genotype before any work
        overrides["genotype"] = spec
    return config_lib.TRAIN_PRESETS[_PRESET.value].replace(**overrides)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    output_dir = files.user_path(_OUTPUT_DIR.value)
    data_dir, manual_dir = files.user_path(_DATA_DIR.value), files.user_path(_MANUAL_DIR.value)
    try:
        config = _config()
        files.check_input_folders({"--data_dir": data_dir, "--manual_dir": manual_dir})
        from stacnas_tf import training as train

        strategy = scale_flags.open_strategy()
        config = scale_flags.for_strategy(config, strategy, ("lr", "lr_min"))
        metrics = train.run_training(config, output_dir, data_dir=data_dir, manual_dir=manual_dir,
                                     strategy=strategy, jit_compile=scale_flags.JIT_COMPILE.value)
    except (ValueError, FileNotFoundError) as e:
        raise app.UsageError(str(e)) from None
    print(f"top-1 {metrics['top1']:.4f}, top-5 {metrics['top5']:.4f} "
          f"({metrics['parameters']:,} parameters); metrics in {os.path.join(output_dir, 'metrics.json')}")


if __name__ == "__main__":
    cli.run(main)
