"""`bazel run //tools:visualize -- --help`: the program of stacnas_tf/commands/visualize.py
(installed with pip: `stacnas-visualize`)."""

from stacnas_tf.commands import visualize

if __name__ == "__main__":
    visualize.run()
