"""stacnas_tf: StacNAS (stable and consistent differentiable NAS) in Keras 3 / TensorFlow.

    import stacnas_tf
    found = stacnas_tf.search((images, labels))          # a SearchResult: .genotype, .history
    trained = stacnas_tf.train(found.genotype, (images, labels))
    stacnas_tf.export(trained, "export/", data=(images, labels))

Names are loaded on first use, so `import stacnas_tf` is quick and leaves
TensorFlow's environment (set by the command-line tools) untouched until then.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.2.0"

# name -> (module, attribute)
_EXPORTS = {
    "search": ("api", "search"),
    "train": ("api", "train"),
    "evaluate": ("api", "evaluate"),
    "export": ("api", "export"),
    "describe": ("api", "describe"),
    "SearchResult": ("api", "SearchResult"),
    "TrainResult": ("api", "TrainResult"),
    "register_op": ("ops", "register_op"),
    "Genotype": ("genotype", "Genotype"),
    "PUBLISHED_GENOTYPES": ("genotype", "PUBLISHED"),
    "SearchSpace": ("search_space", "SearchSpace"),
    "PAPER_GROUPS": ("search_space", "PAPER_GROUPS"),
    "SearchNetwork": ("supernet", "SearchNetwork"),
    "FinalNetwork": ("network", "FinalNetwork"),
    "SearchConfig": ("config", "SearchConfig"),
    "TrainConfig": ("config", "TrainConfig"),
    "SEARCH_PRESETS": ("config", "PRESETS"),
    "TRAIN_PRESETS": ("config", "TRAIN_PRESETS"),
    "ExportOptions": ("exporting", "ExportOptions"),
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'stacnas_tf' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(f"stacnas_tf.{module}"), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return __all__


if TYPE_CHECKING:  # for editors and type checkers
    from stacnas_tf.api import SearchResult, TrainResult, describe, evaluate, export, search, train
    from stacnas_tf.config import PRESETS as SEARCH_PRESETS
    from stacnas_tf.config import TRAIN_PRESETS, SearchConfig, TrainConfig
    from stacnas_tf.exporting import ExportOptions
    from stacnas_tf.genotype import PUBLISHED as PUBLISHED_GENOTYPES
    from stacnas_tf.genotype import Genotype
    from stacnas_tf.network import FinalNetwork
    from stacnas_tf.ops import register_op
    from stacnas_tf.search_space import PAPER_GROUPS, SearchSpace
    from stacnas_tf.supernet import SearchNetwork
