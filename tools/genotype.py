"""`bazel run //tools:genotype -- --help`: the program of stacnas_tf/commands/genotype.py
(installed with pip: `stacnas-genotype`)."""

from stacnas_tf.commands import genotype

if __name__ == "__main__":
    genotype.run()
