"""Evaluates a training folder's checkpoint on a dataset split; prints JSON.

  stacnas-evaluate --train_dir=runs/train --split=test
"""

import json

from stacnas_tf.commands import cli  # noqa: I001 (first: it sets TensorFlow's environment)
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from stacnas_tf import files  # noqa: E402

_TRAIN_DIR = flags.DEFINE_string("train_dir", "runs/train", "Output folder of tools/train.py.")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "test"], "Dataset split.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Checkpoint prefix (default: the latest).")
_GENOTYPE = flags.DEFINE_string("genotype", None,
                                "Optional: the genotype expected in the folder (checked, not used).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset folder.")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Official archives for a tfds dataset.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Evaluation batch size.")
_NUM_EXAMPLES = flags.DEFINE_integer("num_examples", None, "Evaluate only the first N examples.")


def main(argv):
    from stacnas_tf import api  # here: --help needs none of what it loads

    # The API call, its messages naming this program's flags.
    evaluate_call = api.with_flag_names(api.evaluate)
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    train_dir = files.user_path(_TRAIN_DIR.value)
    from stacnas_tf import run_folder  # noqa: PLC0415

    run_folder.TrainingFolder.existing(train_dir).check_loadable_from_the_command_line(
        f"stacnas_tf.evaluate({train_dir!r}, data=(images, labels))")
    genotype = None if _GENOTYPE.value is None else files.user_file_or_value(_GENOTYPE.value)
    result = evaluate_call(
        train_dir, split=_SPLIT.value, data_dir=files.user_path(_DATA_DIR.value),
        manual_dir=files.user_path(_MANUAL_DIR.value), checkpoint=files.user_path(_CHECKPOINT.value),
        batch_size=_BATCH_SIZE.value, num_examples=_NUM_EXAMPLES.value, genotype=genotype)
    print(json.dumps(result, indent=2))


def run() -> None:
    """The console entry point."""
    cli.run(main)


if __name__ == "__main__":
    run()
