"""`bazel run //tools:report -- --help`: the program of stacnas_tf/commands/report.py
(installed with pip: `stacnas-report`)."""

from stacnas_tf.commands import report

if __name__ == "__main__":
    report.run()
