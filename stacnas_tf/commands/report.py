"""Writes a search's report: one HTML page with its pictures (cells, weights,
op counts per epoch, curves, final network sizes) and report.json.

  stacnas-report --search_dir=runs/search          # into runs/search/report/
"""

from stacnas_tf.commands import cli  # noqa: I001 (first: it sets TensorFlow's environment)
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from stacnas_tf import files  # noqa: E402

_SEARCH_DIR = flags.DEFINE_string("search_dir", "runs/search", "Output folder of a search.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where to write (default: SEARCH_DIR/report).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from stacnas_tf import report
    from stacnas_tf import run_folder

    search = run_folder.SearchFolder(files.user_path(_SEARCH_DIR.value), "--search_dir")
    path = report.write(search, files.user_path(_OUTPUT_DIR.value))
    print(f"report: {path}")


def run() -> None:
    """The console entry point."""
    cli.run(main)


if __name__ == "__main__":
    run()
