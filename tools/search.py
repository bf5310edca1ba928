"""`bazel run //tools:search -- --help`: the program of stacnas_tf/commands/search.py
(installed with pip: `stacnas-search`)."""

from stacnas_tf.commands import search

if __name__ == "__main__":
    search.run()
