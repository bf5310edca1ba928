"""`bazel run //tools:train -- --help`: the program of stacnas_tf/commands/train.py
(installed with pip: `stacnas-train`)."""

from stacnas_tf.commands import train

if __name__ == "__main__":
    train.run()
