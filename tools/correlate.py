"""`bazel run //tools:correlate -- --help`: the program of stacnas_tf/commands/correlate.py
(installed with pip: `stacnas-correlate`)."""

from stacnas_tf.commands import correlate

if __name__ == "__main__":
    correlate.run()
