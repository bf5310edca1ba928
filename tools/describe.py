"""`bazel run //tools:describe -- --help`: the program of stacnas_tf/commands/describe.py
(installed with pip: `stacnas-describe`)."""

from stacnas_tf.commands import describe

if __name__ == "__main__":
    describe.run()
