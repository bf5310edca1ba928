"""Measures how the outputs of the candidate ops correlate and groups them.

  python tools/correlate.py                                # embedded default (Fashion-MNIST)
  python tools/correlate.py --search_dir=runs/flat_search  # a finished --grouping=flat search
  python tools/search.py --groups=runs/correlation/groups.json   # search on the groups found

Without --search_dir a flat supernet (every op on every edge) is trained in
--output_dir first (resumable), as the paper's appendix B does.
"""

import os

from stacnas_tf.commands import cli  # noqa: I001 (first: it sets TensorFlow's environment)
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from stacnas_tf import config as config_lib  # noqa: E402
from stacnas_tf import files  # noqa: E402
from stacnas_tf import search_space  # noqa: E402

_PRESET = flags.DEFINE_enum("preset", "default", sorted(config_lib.PRESETS),
                            "Search preset whose data, sizes and optimizers train the supernet.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/correlation",
                                  "Folder for correlation.json, correlation.png, groups.json "
                                  "(and the flat search when --search_dir is not given).")
_SEARCH_DIR = flags.DEFINE_string("search_dir", None,
                                  "A finished --grouping=flat search to measure instead of training one.")
_OPS = flags.DEFINE_list("ops", [op for op in search_space.PRIMITIVES if op != search_space.NONE],
                         "Candidate ops of the supernet (`none` is always added).")
_CELLS = flags.DEFINE_integer("cells", None, "Cells of the supernet (paper: 14).")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Training epochs of the supernet (paper: 100).")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 1024,
                                   "Training images passed through the trained supernet (paper: 10000).")
_MIN_CORRELATION = flags.DEFINE_float(
    "min_correlation", 0.2, "Ops whose average-linkage correlation reaches this share a group.")
_DATASET = flags.DEFINE_string("dataset", None, "Overrides the preset's dataset.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset folder (see tools/search.py).")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Official archives (see tools/search.py).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        from stacnas_tf.analysis import correlate

        overrides = {name: flag.value for name, flag in
                     {"stage1_cells": _CELLS, "stage1_epochs": _EPOCHS, "dataset": _DATASET}.items()
                     if flag.value is not None}
        config = correlate.flat_config(config_lib.PRESETS[_PRESET.value].replace(**overrides),
                                       _OPS.value)
        data_dir, manual_dir = files.user_path(_DATA_DIR.value), files.user_path(_MANUAL_DIR.value)
        files.check_input_folders({"--data_dir": data_dir, "--manual_dir": manual_dir,
                                   "--search_dir": files.user_path(_SEARCH_DIR.value)})
        result = correlate.run(config, files.user_path(_OUTPUT_DIR.value), _NUM_IMAGES.value,
                               min_correlation=_MIN_CORRELATION.value,
                               search_dir=files.user_path(_SEARCH_DIR.value),
                               data_dir=data_dir, manual_dir=manual_dir)
    except (ValueError, FileNotFoundError) as e:
        raise app.UsageError(str(e)) from None
    width = max(len(op) for op in result["ops"])
    print(" " * width + " " + " ".join(f"{op[:8]:>8}" for op in result["ops"]))
    for op, row in zip(result["ops"], result["mean"]):
        print(f"{op:>{width}} " + " ".join(f"{value:8.2f}" for value in row))
    print(f"groups: {result['groups']}")
    print(f"written to {os.path.abspath(files.user_path(_OUTPUT_DIR.value))}")


def run() -> None:
    """The console entry point."""
    cli.run(main)


if __name__ == "__main__":
    run()
