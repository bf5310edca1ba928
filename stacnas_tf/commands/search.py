r"""Runs a StacNAS search and writes its genotype.

  stacnas-search                                  # the embedded default (Fashion-MNIST)
  stacnas-search --preset=paper_cifar10 --data_dir=~/tensorflow_datasets \
      --output_dir=runs/cifar10 --strategy=mirrored --scaling_rule=linear --precision=mixed_float16
  TF_CONFIG='{"cluster": {"worker": ["h1:12345", "h2:12345"]}, "task": {"type": "worker", "index": 0}}' \
      stacnas-search --strategy=multi_worker --output_dir=/shared/runs/cifar10 ...
  stacnas-search --grouping=flat --optimization=bi_level   # DARTS (first order)
  stacnas-search --config=runs/search/config.json --output_dir=runs/again   # reproduce a run

Every field of SearchConfig is a flag; flags left unset take the values of
--config, else of --preset. Rerunning on the same --output_dir resumes.
"""

from stacnas_tf.commands import cli  # noqa: I001 (first: it sets TensorFlow's environment)
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from stacnas_tf import config as config_lib  # noqa: E402
from stacnas_tf import files  # noqa: E402
from stacnas_tf import search_space  # noqa: E402
from stacnas_tf.commands import config_flags  # noqa: E402
from stacnas_tf.commands import scale_flags  # noqa: E402

_PRESET = flags.DEFINE_enum("preset", "default", sorted(config_lib.PRESETS),
                            "Named configuration; other flags override its fields.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/search",
                                  "Folder for checkpoints, history, TensorBoard logs and the genotype.")
_DATA_DIR = flags.DEFINE_string("data_dir", None,
                                "tensorflow-datasets folder (cifar/imagenet), or the folder of the "
                                "fashion_mnist / digits files.")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None,
                                  "Folder holding official archives to build a tfds dataset from.")
_GROUPS = flags.DEFINE_string("groups", None,
                              'JSON file {"groups": [[op, ...], ...]} replacing the paper\'s groups.')

_HELP = {
    "dataset": "cifar10, cifar100, imagenet2012, fashion_mnist, digits or folder:PATH.",
    "stage1_cells": "Cells of the stage-1 supernet (paper: 14).",
    "stage2_cells": "Cells of the stage-2 supernet (paper: 20).",
    "stage1_epochs": "Training epochs of stage 1.",
    "stage2_epochs": "Training epochs of stage 2.",
    "batch_size": "Global batch size at one replica (see --scaling_rule).",
    "channels": "Initial channels C of the supernet (paper: 16).",
    "image_size": "Resize images to this square size (none: keep their own size).",
    "num_train_examples": "Use only the first N training examples (none: all of them).",
    "steps_per_epoch": "Steps of an epoch (none: one pass over the examples); epochs then "
                       "cut one reshuffled stream, so images stay fresh across them.",
    "arch_warmup_epochs": "Epochs at the start of each stage before alpha moves (the weights "
                          "train first; the paper: 0).",
    "seed": "Random seed of weights, logits, shuffling and augmentation.",
    "per_cell_logits": "Give every cell its own architecture logits (the enlarged space).",
    "optimization": "one_level: w and alpha from the same batch (StacNAS); bi_level: DARTS's "
                    "first-order alternation on two halves of the data (ablation).",
    "grouping": "grouped: StacNAS's two stages; flat: DARTS's single stage over every op, with "
                "--stage1_cells/--stage1_epochs (ablation).",
    "weight_init": "How the supernet's convolution and dense weights start: pytorch (as the "
                   "reference code: U(+-1/sqrt(fan_in))) or keras (Glorot-uniform).",
    "weight_lr": "Initial learning rate of the weights' SGD (cosine-annealed).",
    "weight_lr_min": "Final learning rate of the weights' SGD.",
    "weight_momentum": "Momentum of the weights' SGD.",
    "weight_decay": "L2 decay of the weights.",
    "grad_clip_norm": "Global-norm clipping of the weights' gradients (0: none).",
    "arch_lr": "Learning rate of the architecture logits' Adam.",
    "arch_beta_1": "Adam beta_1 of the architecture logits.",
    "arch_beta_2": "Adam beta_2 of the architecture logits.",
    "arch_epsilon": "Adam epsilon of the architecture logits.",
    "arch_weight_decay": "L2 decay of the architecture logits.",
    "num_nodes": "Intermediate nodes per cell (DARTS: 4).",
}
_FIELDS = config_flags.define(config_lib.SearchConfig, _HELP, skip=("precision",))


def _config() -> config_lib.SearchConfig:
    overrides = config_flags.overrides(_FIELDS)
    if _GROUPS.value:
        overrides["groups"] = search_space.load_groups(files.user_path(_GROUPS.value))
    base = config_flags.base_config(config_lib.SearchConfig, config_lib.PRESETS, _PRESET)
    return base.replace(**overrides)


def main(argv):
    from stacnas_tf import api  # here: --help needs none of what it loads

    # The API call, its messages naming this program's flags.
    search_call = api.with_flag_names(api.search)
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    output_dir = files.user_path(files.require_path(_OUTPUT_DIR.value))
    data_dir, manual_dir = files.user_path(_DATA_DIR.value), files.user_path(_MANUAL_DIR.value)
    config = _config()
    files.check_input_folders({"--data_dir": data_dir, "--manual_dir": manual_dir})
    strategy = scale_flags.open_strategy()
    config = scale_flags.for_strategy(config, strategy, ("weight_lr", "weight_lr_min"))
    print(f"search settings:\n{config_flags.describe(config)}", flush=True)
    result = search_call(config.dataset, config=config, output_dir=output_dir,
                         data_dir=data_dir, manual_dir=manual_dir, strategy=strategy,
                         jit_compile=scale_flags.JIT_COMPILE.value)
    print(f"genotype: {result.genotype.to_darts()}")
    print(f"written to {result.genotype_path}")


def run() -> None:
    """The console entry point."""
    cli.run(main)


if __name__ == "__main__":
    run()
