"""`bazel run //tools:confusion -- --help`: the program of stacnas_tf/commands/confusion.py
(installed with pip: `stacnas-confusion`)."""

from stacnas_tf.commands import confusion

if __name__ == "__main__":
    confusion.run()
