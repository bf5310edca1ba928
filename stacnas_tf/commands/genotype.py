"""Converts and draws a genotype: published name, JSON/DARTS-text file or DARTS text.

  python tools/genotype.py --genotype=STACNAS_CIFAR10 --output_dir=cells/

writes genotype.json, genotype_graph.json (nodes and labelled edges, ready to
draw), genotype.dot (Graphviz) and, where Graphviz's `dot` is installed,
genotype.png.
"""

from stacnas_tf.commands import cli  # noqa: I001 (first: it sets TensorFlow's environment)
from absl import app
from absl import flags

from stacnas_tf import files
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import run_folder

_GENOTYPE = flags.DEFINE_string("genotype", None, "Published name, genotype file, or DARTS text.",
                                required=True)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where to write; prints the JSON when unset.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        genotype = genotype_lib.resolve(files.user_file_or_value(_GENOTYPE.value))
        if not _OUTPUT_DIR.value:
            print(genotype.to_json())
            return
        run_folder.GenotypeFolder(files.user_path(_OUTPUT_DIR.value)).write(genotype)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    print(genotype.to_darts())


def run() -> None:
    """The console entry point."""
    cli.run(main)


if __name__ == "__main__":
    run()
