"""Converts and draws a genotype: published name, JSON/DARTS-text file or DARTS text.

  python tools/genotype.py --genotype=STACNAS_CIFAR10 --output_dir=cells/

writes genotype.json, genotype_graph.json (nodes and labelled edges, ready to
draw), genotype.dot (Graphviz) and, where Graphviz's `dot` is installed,
genotype.png.
"""

import os
import re
import shutil
import subprocess

from stacnas_tf.commands import cli  # noqa: I001 (first: it sets TensorFlow's environment)
from absl import app
from absl import flags

from stacnas_tf import files
from stacnas_tf import genotype as genotype_lib

_GENOTYPE = flags.DEFINE_string("genotype", None, "Published name, genotype file, or DARTS text.",
                                required=True)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where to write; prints the JSON when unset.")


_WRITES = ("genotype.json", "genotype_graph.json", "genotype.dot", "genotype.png")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        genotype = genotype_lib.resolve(files.user_file_or_value(_GENOTYPE.value))
        if not _OUTPUT_DIR.value:
            print(genotype.to_json())
            return
        out = files.user_path(_OUTPUT_DIR.value)
        # Only a folder of earlier genotype files is written over: never a run
        # folder (its genotype.json belongs to its checkpoints) or the user's files.
        files.check_only_holds(out, "|".join(re.escape(name) for name in _WRITES),
                               "what this program writes")
        out = files.prepare_output_dir(out)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    files.write_text(os.path.join(out, "genotype.json"), genotype.to_json() + "\n")
    files.write_json(os.path.join(out, "genotype_graph.json"), genotype.to_graph())
    dot_path = os.path.join(out, "genotype.dot")
    files.write_text(dot_path, genotype.to_dot())
    if shutil.which("dot"):
        png = subprocess.run(["dot", "-Tpng", dot_path], check=True, capture_output=True).stdout
        with open(os.path.join(out, ".genotype.png.tmp"), "wb") as f:
            f.write(png)
        os.replace(os.path.join(out, ".genotype.png.tmp"), os.path.join(out, "genotype.png"))
    print(genotype.to_darts())


def run() -> None:
    """The console entry point."""
    cli.run(main)


if __name__ == "__main__":
    run()
