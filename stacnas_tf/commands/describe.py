"""Prints, as JSON, the size of the paper's final network for a genotype:
parameters with and without the auxiliary head, and multiply-adds.

  stacnas-describe --genotype=DARTS_V2 --preset=imagenet_mobile
"""

import json

from stacnas_tf.commands import cli  # noqa: I001 (first: it sets TensorFlow's environment)
from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from stacnas_tf import config as config_lib  # noqa: E402
from stacnas_tf import files  # noqa: E402

_GENOTYPE = flags.DEFINE_string("genotype", "STACNAS_CIFAR10",
                                "Published name, genotype file (JSON or DARTS text) or DARTS text.")
_PRESET = flags.DEFINE_enum("preset", "cifar10", sorted(config_lib.NETWORK_PRESETS),
                            "Network size: cifar10/cifar100 (C=36, 20 cells) or imagenet_mobile "
                            "(C=48, 14 cells, 224x224).")


def main(argv):
    from stacnas_tf import api  # here: --help needs none of what it loads

    # The API call, its messages naming this program's flags.
    describe_call = api.with_flag_names(api.describe)
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    genotype = files.user_file_or_value(_GENOTYPE.value)
    print(json.dumps(describe_call(genotype, _PRESET.value), indent=2))


def run() -> None:
    """The console entry point."""
    cli.run(main)


if __name__ == "__main__":
    run()
