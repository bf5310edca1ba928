r"""Measures gradient confusion over depths and recommends the search depths.

  python tools/confusion.py                               # embedded default (Fashion-MNIST)
  python tools/confusion.py --stage1_depths=8,11,14,17 --stage2_depths=14,17,20 \
      --final_cells=20 --dataset=cifar10 --data_dir=~/tensorflow_datasets --channels=16 ...

Every setting (stage-1 and stage-2 supernets at each depth, the final network)
is trained for --train_epochs, then zeta (equation 7) is estimated on
--num_batches random mini-batches, --num_iterations times, and divided by the
parameter count in millions (appendix D). Writes confusion.json, confusion.md
and confusion.png in --output_dir; finished settings are reused on a rerun.
"""

import dataclasses

from stacnas_tf.commands import cli  # noqa: I001 (first: it sets TensorFlow's environment)
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from stacnas_tf import files  # noqa: E402

_PRESET = flags.DEFINE_enum("preset", "default", ["default", "tiny"], "Sizes; flags override them.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/confusion", "Folder for the sweep.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset folder (see tools/search.py).")
_SEARCH_DIR = flags.DEFINE_string(
    "search_dir", None, "A search whose stage-1 winners define the stage-2 supernets "
    "(default: the groups of --genotype's ops).")
_DATASET = flags.DEFINE_string("dataset", None, "Dataset (see tools/search.py).")
_GENOTYPE = flags.DEFINE_string("genotype", None, "The final network's genotype.")
_STAGE1_DEPTHS = flags.DEFINE_list("stage1_depths", None, "Cell counts of the stage-1 supernets.")
_STAGE2_DEPTHS = flags.DEFINE_list("stage2_depths", None, "Cell counts of the stage-2 supernets.")
_INT_FIELDS = ("image_size", "num_train_examples", "channels", "batch_size", "train_epochs",
               "num_batches", "num_iterations", "final_cells", "seed")
_INT_FLAGS = {name: flags.DEFINE_integer(name, None, f"Overrides the preset's {name}.")
              for name in _INT_FIELDS}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        from stacnas_tf.analysis import confusion

        overrides = {name: flag.value for name, flag in _INT_FLAGS.items() if flag.value is not None}
        for name, flag in (("dataset", _DATASET), ("genotype", _GENOTYPE)):
            if flag.value:
                overrides[name] = files.user_file_or_value(flag.value)
        for name, flag in (("stage1_depths", _STAGE1_DEPTHS), ("stage2_depths", _STAGE2_DEPTHS)):
            if flag.value:
                try:
                    overrides[name] = tuple(int(v) for v in flag.value)
                except ValueError:
                    raise ValueError(f"--{name}: expected comma-separated cell counts, "
                                     f"got {','.join(flag.value)}.") from None
        config = dataclasses.replace(confusion.CONFUSION_PRESETS[_PRESET.value], **overrides)
        data_dir, search_dir = files.user_path(_DATA_DIR.value), files.user_path(_SEARCH_DIR.value)
        files.check_input_folders({"--data_dir": data_dir, "--search_dir": search_dir})
        result = confusion.sweep(config, files.user_path(_OUTPUT_DIR.value), data_dir=data_dir,
                                 search_dir=search_dir)
    except (ValueError, FileNotFoundError) as e:
        raise app.UsageError(str(e)) from None
    print(confusion.markdown(result))


def run() -> None:
    """The console entry point."""
    cli.run(main)


if __name__ == "__main__":
    run()
