"""Draws a genotype's cells and a search's architecture weights over epochs.

  python tools/visualize.py --genotype=runs/search/genotype.json --output_dir=runs/pictures
  python tools/visualize.py --genotype=STACNAS_CIFAR10
  python tools/visualize.py --search_dir=runs/search            # weights history (+ its genotype)
"""

import os

from stacnas_tf.commands import cli  # noqa: I001 (first: it sets TensorFlow's environment)
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from stacnas_tf import files  # noqa: E402
from stacnas_tf import genotype as genotype_lib  # noqa: E402
from stacnas_tf import run_folder  # noqa: E402
from stacnas_tf import visualize  # noqa: E402

_GENOTYPE = flags.DEFINE_string("genotype", None,
                                "Published name, genotype file (JSON or DARTS text) or DARTS text.")
_SEARCH_DIR = flags.DEFINE_string("search_dir", None,
                                  "A search folder: plots its weights history (and draws its genotype).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/pictures", "Folder for the PNG and SVG files.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    search_dir = files.user_path(_SEARCH_DIR.value)
    if not _GENOTYPE.value and not search_dir:
        raise ValueError("give --genotype, --search_dir, or both.")
    files.check_input_folders({"--search_dir": search_dir})
    search = run_folder.SearchFolder(search_dir, "--search_dir") if search_dir else None
    # Every input is read and checked before the output folder is made.
    if _GENOTYPE.value:
        genotype = genotype_lib.resolve(files.user_file_or_value(_GENOTYPE.value))
    else:
        genotype = search.read_genotype() if search.has_genotype() else None
    if search is not None:
        visualize.read_history(search)
    output_dir = files.user_path(_OUTPUT_DIR.value)
    # A pictures folder: never a run's folder or the user's other files.
    files.check_only_holds(output_dir, r"[^/]+\.(png|svg)", "pictures (.png, .svg)")
    with files.removed_if_left_empty(os.path.abspath(output_dir)):
        output_dir = files.prepare_output_dir(output_dir)
        with files.output_lock(output_dir), files.staged_files(output_dir) as staging:
            written = visualize.cell_diagrams(genotype, staging) if genotype is not None else []
            if search is not None:
                written += visualize.weights_history_png(search, staging)
        written = [os.path.join(output_dir, os.path.basename(path)) for path in written]
    for path in written:
        print(path)


def run() -> None:
    """The console entry point."""
    cli.run(main)


if __name__ == "__main__":
    run()
