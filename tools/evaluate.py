"""`bazel run //tools:evaluate -- --help`: the program of stacnas_tf/commands/evaluate.py
(installed with pip: `stacnas-evaluate`)."""

from stacnas_tf.commands import evaluate

if __name__ == "__main__":
    evaluate.run()
