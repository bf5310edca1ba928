"""`bazel run //tools:export -- --help`: the program of stacnas_tf/commands/export.py
(installed with pip: `stacnas-export`)."""

from stacnas_tf.commands import export

if __name__ == "__main__":
    export.run()
