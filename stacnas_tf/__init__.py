"""stacnas_tf: StacNAS (stable and consistent differentiable NAS) in Keras 3 / TensorFlow.

    import stacnas_tf
    found = stacnas_tf.search((images, labels))          # a SearchResult: .genotype, .history
    trained = stacnas_tf.train(found.genotype, (images, labels))
    stacnas_tf.export(trained, "export/", data=(images, labels))

Names are loaded on first use, so `import stacnas_tf` is quick and leaves
TensorFlow's environment (set by the command-line tools) untouched until then.

Its Keras classes (`FinalNetwork`, `SearchNetwork`, their layers, the fused
SGD) are registered with Keras as soon as Keras is loaded, whichever comes
first, so `keras.models.load_model("net.keras")` works after a plain
`import stacnas_tf`. How, without loading TensorFlow here: when Keras (or
TensorFlow, which loads Keras) is already loaded, the classes' modules are
imported at once; otherwise a one-time import hook imports them right after
the first `import keras` / `import tensorflow` has finished. A process that
never imports stacnas_tf loads its files with
`keras.models.load_model(path, custom_objects=...)`, or after
`import stacnas_tf.network, stacnas_tf.supernet`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import sys
import warnings
from typing import TYPE_CHECKING

from stacnas_tf.version import __version__

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
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend != "tensorflow" and "keras" not in sys.modules:
        # Keras would try to load that backend and fail deep inside its import.
        raise ImportError(f"stacnas_tf.{name}: KERAS_BACKEND={backend}, but stacnas_tf runs on "
                          "TensorFlow; unset it or set KERAS_BACKEND=tensorflow.")
    value = getattr(importlib.import_module(f"stacnas_tf.{module}"), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return __all__


# The modules whose classes carry @keras.saving.register_keras_serializable.
_SERIALIZABLE_MODULES = ("ops", "batched_ops", "mixed_op", "cells", "preprocessing", "supernet",
                         "network", "optimizers")
_LOADERS_OF_KERAS = ("keras", "tensorflow")


def _register_keras_classes() -> None:
    for module in _SERIALIZABLE_MODULES:
        try:
            importlib.import_module(f"stacnas_tf.{module}")
        except ModuleNotFoundError as e:
            # A partial install (a Bazel target's own dependencies) may lack some
            # modules; what is there is registered. Anything else is a real error.
            if not (e.name or "").startswith("stacnas_tf."):
                raise


class _RegisterAfterKerasLoads(importlib.abc.MetaPathFinder):
    """Finds nothing itself. When `keras` or `tensorflow` is imported for the first
    time, it wraps that module's loading so that, once it has finished (the other
    one is loaded inside it), the Keras classes get registered, then it leaves."""

    def __init__(self):
        self._looking = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _LOADERS_OF_KERAS or self._looking:
            return None
        self._looking = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._looking = False
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            try:
                _register_keras_classes()
            except Exception as e:  # noqa: BLE001 - never break the user's `import keras`
                warnings.warn(f"stacnas_tf could not register its Keras classes ({e}); "
                              "import stacnas_tf.network before loading a .keras file.",
                              stacklevel=2)

        loader.exec_module = exec_then_register
        return spec


if any(name in sys.modules for name in _LOADERS_OF_KERAS):
    _register_keras_classes()
elif not any(isinstance(f, _RegisterAfterKerasLoads) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKerasLoads())


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
