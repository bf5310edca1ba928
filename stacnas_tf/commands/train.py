r"""Trains a final network from a genotype.

  stacnas-train --genotype=runs/search/genotype.json      # embedded default
  stacnas-train --preset=base --genotype=STACNAS_CIFAR10 \
      --data_dir=$HOME/tensorflow_datasets --output_dir=runs/train_c10 --strategy=mirrored \
      --precision=mixed_float16 --jit_compile
  stacnas-train --config=runs/train/config.json --output_dir=runs/again   # reproduce a run

Every field of TrainConfig is a flag; flags left unset take the values of
--config, else of --preset. Rerunning on the same --output_dir resumes after
the last completed epoch.
"""

from stacnas_tf.commands import cli  # noqa: I001 (first: it sets TensorFlow's environment)
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from stacnas_tf import config as config_lib  # noqa: E402
from stacnas_tf import files  # noqa: E402
from stacnas_tf.commands import config_flags  # noqa: E402
from stacnas_tf.commands import scale_flags  # noqa: E402

_PRESET = flags.DEFINE_enum("preset", "default", sorted(config_lib.TRAIN_PRESETS),
                            "Recipe: base (DARTS CIFAR), fancy (base + AutoAugment), imagenet_base, default "
                            "(Fashion-MNIST), smoke.")
_GENOTYPE = flags.DEFINE_string("genotype", None,
                                "Published name (DARTS_V1, DARTS_V2, STACNAS_CIFAR10, ...), genotype "
                                "file (JSON or DARTS text) or DARTS text. Default: the preset's.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/train", "Checkpoints, logs, config, metrics.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset folder (as in stacnas-search).")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Official archives to build a tfds dataset from.")

_HELP = {
    "dataset": "cifar10, cifar100, imagenet2012, fashion_mnist, digits or folder:PATH.",
    "image_size": "Resize images to this square size (none: keep their own size).",
    "num_train_examples": "Use only the first N training examples (none: all of them).",
    "num_eval_examples": "Evaluate on the first N test examples (none: all of them).",
    "network": "Stem: cifar (3x3 conv) or imagenet (two stride-2 convs, then a stride-2 cell).",
    "channels": "Initial channels C.",
    "num_cells": "Cells of the network.",
    "deformable": "Keep `none` on every edge as a learned scale (Algorithm 1, stage 3).",
    "epochs": "Training epochs.",
    "batch_size": "Global batch size at one replica (see --scaling_rule).",
    "lr": "Initial learning rate.",
    "lr_schedule": "cosine (to --lr_min) or exponential (x --lr_decay_rate per epoch).",
    "lr_min": "Final learning rate of the cosine schedule.",
    "lr_decay_rate": "Per-epoch factor of the exponential schedule.",
    "momentum": "SGD momentum.",
    "weight_decay": "L2 decay of the weights.",
    "grad_clip_norm": "Global-norm clipping of the gradients (0: none).",
    "cutout": "Cutout square side (0: none).",
    "autoaugment": "AutoAugment's CIFAR-10 policy (fancy recipe).",
    "drop_path": "Final drop-path rate (ramped linearly).",
    "aux_weight": "Auxiliary loss weight (0: no auxiliary head).",
    "label_smoothing": "Label smoothing of the loss.",
    "arch_lr": "Adam learning rate of the deformable edges' logits.",
    "arch_weight_decay": "L2 decay of the deformable edges' logits.",
    "seed": "Random seed.",
}
_FIELDS = config_flags.define(config_lib.TrainConfig, _HELP, skip=("precision",))


def _config() -> config_lib.TrainConfig:
    overrides = config_flags.overrides(_FIELDS)
    if _GENOTYPE.value is not None:
        overrides["genotype"] = files.user_file_or_value(_GENOTYPE.value)
    base = config_flags.base_config(config_lib.TrainConfig, config_lib.TRAIN_PRESETS, _PRESET)
    return base.replace(**overrides)


def main(argv):
    from stacnas_tf import api  # here: --help needs none of what it loads

    # The API call, its messages naming this program's flags.
    train_call = api.with_flag_names(api.train)
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    output_dir = files.user_path(files.require_path(_OUTPUT_DIR.value))
    data_dir, manual_dir = files.user_path(_DATA_DIR.value), files.user_path(_MANUAL_DIR.value)
    config = _config()
    from stacnas_tf import genotype as genotype_lib

    genotype = genotype_lib.resolve(config.genotype)  # parsed once, before any work
    files.check_input_folders({"--data_dir": data_dir, "--manual_dir": manual_dir})
    strategy = scale_flags.open_strategy()
    config = scale_flags.for_strategy(config, strategy, ("lr", "lr_min"))
    print(f"training settings:\n{config_flags.describe(config)}", flush=True)
    result = train_call(genotype, config.dataset, config=config,
                        output_dir=output_dir, data_dir=data_dir, manual_dir=manual_dir,
                        strategy=strategy, jit_compile=scale_flags.JIT_COMPILE.value)
    metrics = result.metrics
    print(f"top-1 {metrics['top1']:.4f}, top-5 {metrics['top5']:.4f} on "
          f"{metrics['eval_examples']:,} test images ({metrics['parameters']:,} parameters); "
          f"metrics in "
          f"{result.metrics_path}")


def run() -> None:
    """The console entry point."""
    cli.run(main)


if __name__ == "__main__":
    run()
