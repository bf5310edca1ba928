"""The folders runs leave behind, and the one place that knows their layout.

A search folder:
  config.json                     the run's SearchConfig
  images.json                     content hashes of images given in Python (if any)
  stage{1,2}/history.json         per epoch: loss, accuracy, lr, logits, softmax
  stage{1,2}/result.json          final logits and softmax per edge, winners,
                                  activated groups (stage 1)
  stage{1,2}/checkpoints/         weights, logits, both optimizers, epoch
  tensorboard/stage{1,2}/         Keras and architecture summaries
  tensorboard/search/             the genotype and settings
  report/                         the search's report
  genotype.json                   the final genotype (versioned JSON), written last
  genotype_graph.json, .dot, .txt picture-ready graph, Graphviz, DARTS text

A training folder:
  config.json, genotype.json      the run's TrainConfig and the genotype it trains
  images.json                     as above
  checkpoints/                    weights, optimizers (schedule position), epoch
  history.json                    per epoch: Keras's metrics, lr, drop-path rate
  metrics.json                    final evaluation, written last
  tensorboard/                    Keras summaries

A genotype folder (the genotype program's): genotype.json, genotype_graph.json,
genotype.dot and, where Graphviz's `dot` is installed, genotype.png.

`SearchFolder`, its `StageFolder`s and `TrainingFolder` claim a folder (lock),
decide whether it may be used for a run (`check_run`: the one guard), and read
and write its files, checked, with errors naming the folder flag. Every other
module reaches a run's files through them; `GenotypeFolder` writes a genotype
outside any run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess

from stacnas_tf import config as config_lib
from stacnas_tf import files
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import search_space
from stacnas_tf.dataset_names import IN_MEMORY

_CONFIG = "config.json"
_GENOTYPE = "genotype.json"
_IMAGES = "images.json"
_HISTORY = "history.json"
_RESULT = "result.json"
_METRICS = "metrics.json"
_CHECKPOINTS = "checkpoints"
_TENSORBOARD = "tensorboard"
_GRAPH = "genotype_graph.json"
_DOT = "genotype.dot"
_DARTS_TEXT = "genotype.txt"
_PNG = "genotype.png"


class _RunFolder:
    """What search and training folders share: the path, the flag that named it,
    claiming, the settings guard and the record of images given in Python."""

    kind = "run"  # "search" / "training run": in messages

    def __init__(self, path: str, flag: str = "--output_dir"):
        if isinstance(path, _RunFolder):
            path = path.path
        self.path = os.fspath(path)
        self.flag = flag

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    def absolute(self) -> "_RunFolder":
        """The same folder at its absolute path (a later change of the working
        directory does not move it)."""
        return type(self)(os.path.abspath(self.path), self.flag)

    def _file(self, *names: str) -> str:
        return os.path.join(self.path, *names)

    @property
    def config_path(self) -> str:
        return self._file(_CONFIG)

    @property
    def tensorboard_dir(self) -> str:
        return self._file(_TENSORBOARD)

    @property
    def genotype_path(self) -> str:
        # Both kinds keep one: the search's result, the training's input.
        return self._file(_GENOTYPE)

    def has_config(self) -> bool:
        return os.path.exists(self.config_path)

    @contextlib.contextmanager
    def claimed(self):
        """This process's hold on the folder for the block: creates it, checks it is
        writable (sub-folders too), locks it (`files.output_lock`), and removes it
        again when the block fails before anything was written in it. Yields the
        folder at its absolute path."""
        path = os.path.abspath(files.require_path(self.path, self.flag))
        with files.removed_if_left_empty(path):
            files.prepare_output_dir(path, self.flag)
            folder = type(self)(path, self.flag)
            folder.check_writable_tree()
            with files.output_lock(path, self.flag):
                yield folder

    def check_writable_tree(self) -> None:
        """Refuses a run folder with a sub-folder this process cannot write in (a
        resumed run writes checkpoints and logs there), before any work. Only a
        run's folder (one with its config.json) is walked: any other folder with
        files in it is refused as not a run's, and walking it could mean walking
        the file system."""
        if not self.has_config():
            return
        for directory, subdirectories, _ in os.walk(self.path):
            for name in subdirectories:
                sub = os.path.join(directory, name)
                if not os.access(sub, os.W_OK | os.X_OK):
                    raise ValueError(f"{self.flag}: cannot write in {sub}; fix its permissions or "
                                     "use another folder.")

    def has_progress(self) -> bool:
        """Whether the folder holds any finished work: a checkpoint, a stage
        result or final metrics. A folder without any only holds the settings of
        a start that failed, which a corrected command may replace."""
        for _, _, names in os.walk(self.path):
            if any(n.endswith(".index") or n in (_RESULT, _METRICS) for n in names):
                return True
        return False

    def _check_holds_a_run(self) -> None:
        """Refuses a folder that holds files but no run (no config.json): a run
        never mixes its files into a folder it did not make."""
        if self.has_config():
            return
        foreign = sorted(set(os.listdir(self.path)) - {files.LOCK_NAME})
        if foreign:
            listed = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise ValueError(f"{self.flag}={self.path} is not empty ({listed}) and holds no "
                             f"{self.kind}; choose a new or empty folder.")

    # Images given in Python: their content hashes, so a resumed or reused run
    # never answers for other images than those it ran on.

    def _images_record(self) -> dict | None:
        path = self._file(_IMAGES)
        if not os.path.exists(path):
            return None
        recorded = files.read_json(path)
        if not (isinstance(recorded, dict) and isinstance(recorded.get("fingerprints"), dict)):
            raise ValueError(f"{self.flag}: {path} is not a record of images (expected a "
                             "JSON object with their fingerprints).")
        return recorded

    def check_same_images(self, fingerprints: dict) -> None:
        """Refuses to resume or reuse the run with images given in Python other
        than those it ran on (`fingerprints`: split -> content hash, as
        `images.json` records them). A finished run would otherwise answer with
        the metrics or genotype of the first images."""
        recorded = self._images_record()
        if not fingerprints or recorded is None:
            return
        changed = sorted(split for split, value in fingerprints.items()
                         if recorded["fingerprints"].get(split) not in (None, value))
        if changed:
            raise ValueError(
                f"{self.flag}={self.path} holds a {self.kind} on other images (the "
                f"{' and '.join(changed)} images differ from those it ran on); pass the same "
                "images to resume it, or choose another output folder.")

    def record_images(self, fingerprints: dict, image_shape) -> None:
        """Writes `images.json` for images given in Python: split -> content hash,
        and the shape of one image (what the network was built for)."""
        if fingerprints:
            files.write_json(self._file(_IMAGES),
                             {"fingerprints": fingerprints, "image_shape": list(image_shape)})


class _FitFolder:
    """Where `resumable.fit` keeps a run's progress: its checkpoints and
    per-epoch history (and, from the subclass, its TensorBoard folder)."""

    path: str

    @property
    def checkpoint_dir(self) -> str:
        return os.path.join(self.path, _CHECKPOINTS)

    @property
    def history_path(self) -> str:
        return os.path.join(self.path, _HISTORY)


class StageFolder(_FitFolder):
    """One stage of a search: its history, result, checkpoints and logs."""

    def __init__(self, search: SearchFolder, stage: int):
        self.search = search
        self.stage = stage
        self.path = search._file(f"stage{stage}")

    def __repr__(self) -> str:
        return f"StageFolder({self.path!r})"

    @property
    def result_path(self) -> str:
        return os.path.join(self.path, _RESULT)

    @property
    def tensorboard_dir(self) -> str:
        return os.path.join(self.search.tensorboard_dir, f"stage{self.stage}")

    def make(self) -> None:
        os.makedirs(self.path, exist_ok=True)

    def has_result(self) -> bool:
        return os.path.exists(self.result_path)

    def write_result(self, result: dict) -> None:
        files.write_json(self.result_path, result)

    def read_result(self) -> dict:
        """What the finished stage recorded (result.json): its candidates
        (`space`, also as `stage_space` a `StageSpace`), depth, logits, softmax
        weights and winners, checked: a damaged or hand-edited file is an error
        naming it and the key."""
        flag, path = self.search.flag, self.result_path
        if not self.has_result():
            raise ValueError(f"{flag}: {self.search.path} holds no finished stage {self.stage} "
                             f"({path} is missing).")
        result = files.read_json(path)
        expected = {"space": dict, "num_cells": int, "logits": dict, "winners": dict}
        wrong = ([] if not isinstance(result, dict) else
                 [key for key, kind in expected.items() if not isinstance(result.get(key), kind)
                  or isinstance(result.get(key), bool)])
        if not isinstance(result, dict) or wrong:
            detail = "a JSON object" if not isinstance(result, dict) else (
                ", ".join(f'"{key}" ({expected[key].__name__})' for key in wrong))
            raise ValueError(f"{flag}: {path} is not a stage result: expected {detail}.")
        try:
            space = search_space.StageSpace.from_dict(result["space"])
            weights = [[edge["weights"] for edge in edges] for edges in result["logits"].values()]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{flag}: {path} is not a stage result: its \"space\" or \"logits\" "
                             f"is damaged ({type(e).__name__}: {e}).") from e
        if len(weights) != len(space.cells) or any(
                len(cell) != len(candidates) or any(len(w) != len(c)
                                                    for w, c in zip(cell, candidates))
                for cell, candidates in zip(weights, space.cells)):
            raise ValueError(f"{flag}: {path} is not a stage result: its \"logits\" do not match "
                             "its \"space\" (cells, edges or candidates).")
        return {**result, "stage_space": space, "weights": weights}

    def read_history(self) -> list | None:
        """The stage's history (one entry per epoch with its loss, accuracy and
        weights), checked; None where the stage has none."""
        path = self.history_path
        if not os.path.exists(path):
            return None
        history = files.read_json(path)
        if not isinstance(history, list) or not history or not all(
                isinstance(entry, dict) and isinstance(entry.get("weights"), dict)
                and entry["weights"] and isinstance(entry.get("epoch"), int)
                and all(isinstance(entry.get(key), (int, float)) for key in ("loss", "accuracy"))
                for entry in history):
            raise ValueError(f"{self.search.flag}: {path} is not a search history (a non-empty "
                             "list of epochs, each with its epoch, loss, accuracy and weights).")
        return history


class SearchFolder(_RunFolder):
    """A search's folder (see the module's docstring for its layout)."""

    kind = "search"

    def stage(self, number: int) -> StageFolder:
        return StageFolder(self, number)

    @property
    def report_dir(self) -> str:
        return self._file("report")

    @property
    def summary_dir(self) -> str:
        """TensorBoard's run with the genotype and the settings."""
        return os.path.join(self.tensorboard_dir, "search")

    def read_config(self) -> config_lib.SearchConfig:
        """The search's settings."""
        if not self.has_config():
            raise ValueError(f"{self.flag}: {self.path} holds no {_CONFIG} (not a search folder).")
        try:
            return config_lib.SearchConfig.from_dict(files.read_json(self.config_path),
                                                     source=f"{self.flag}: {self.config_path}")
        except TypeError as e:
            raise ValueError(f"{self.flag}: {self.config_path} is not a search's settings "
                             f"({e}).") from e

    def check_run(self, config: config_lib.SearchConfig, *, record: bool = False) -> None:
        """Whether this search may run here: the folder holds nothing or this
        search, begun with `config` (a search that failed before its first epoch
        holds nothing to keep: its settings are replaced). `record`: write
        `config` as the folder's settings (once the inputs are known to be good,
        so that a failed start leaves none behind)."""
        self._check_holds_a_run()
        if not self.has_config():
            if record:
                files.write_json(self.config_path, config.to_dict())
            return
        wanted = config.to_dict()
        try:
            saved = config_lib.SearchConfig.from_dict(
                files.read_json(self.config_path), source=self.config_path).to_dict()
        except (OSError, ValueError, TypeError) as e:
            raise ValueError(f"{self.flag}: {self.config_path} is unreadable ({e}); use another "
                             "folder.") from e
        if not self.has_progress():
            if record:
                files.write_json(self.config_path, wanted)
            return
        files.check_same_config(self.path, f"a {self.kind}", saved, wanted)

    def has_genotype(self) -> bool:
        """Whether the search finished (its genotype is written last)."""
        return os.path.exists(self.genotype_path)

    def read_genotype(self) -> genotype_lib.Genotype:
        with open(self.genotype_path) as f:
            return genotype_lib.Genotype.from_json(f.read(), source=self.genotype_path)

    def write_genotype(self, genotype: genotype_lib.Genotype) -> None:
        """The genotype in every form; genotype.json last, as it marks the search done."""
        files.write_json(self._file(_GRAPH), genotype.to_graph())
        files.write_text(self._file(_DOT), genotype.to_dot())
        files.write_text(self._file(_DARTS_TEXT), genotype.to_darts() + "\n")
        files.write_text(self.genotype_path, genotype.to_json() + "\n")

    def has_report(self) -> bool:
        return os.path.exists(os.path.join(self.report_dir, "report.html"))

    def histories(self) -> dict:
        """{"stage1": history, "stage2": history} of the stages that have one."""
        return {f"stage{number}": history for number in (1, 2)
                if (history := self.stage(number).read_history()) is not None}


class TrainingFolder(_RunFolder, _FitFolder):
    """A training's folder (see the module's docstring for its layout). Its
    settings and genotype are read when first asked for."""

    kind = "training run"

    @classmethod
    def existing(cls, path: str, flag: str = "--train_dir") -> TrainingFolder:
        """A folder a training has started in: its settings and genotype read and checked."""
        folder = cls(path, flag)
        folder.config  # noqa: B018 (reads and checks it)
        folder.genotype  # noqa: B018
        return folder

    @property
    def metrics_path(self) -> str:
        return self._file(_METRICS)

    @functools.cached_property
    def config(self) -> config_lib.TrainConfig:
        if not self.has_config():
            raise ValueError(f"{self.flag}: {self.path} holds no {_CONFIG} (not a training "
                             "folder).")
        return config_lib.TrainConfig.from_dict(files.read_json(self.config_path),
                                                source=f"{self.flag}: {self.config_path}")

    @functools.cached_property
    def genotype(self) -> genotype_lib.Genotype:
        if not os.path.exists(self.genotype_path):
            raise ValueError(f"{self.flag}: {self.path} holds no {_GENOTYPE} (a training that "
                             "never started).")
        with open(self.genotype_path) as f:
            return genotype_lib.Genotype.from_json(f.read(), source=self.genotype_path)

    def check_run(self, config: config_lib.TrainConfig, genotype: genotype_lib.Genotype) -> None:
        """Whether this training may run here: the folder holds nothing, or this
        training (the same settings and genotype). A training that failed before
        its first epoch holds nothing to keep: its settings are replaced."""
        self._check_holds_a_run()
        if self.has_config():
            # Through TrainConfig: fields added since the folder was made take their
            # defaults. The genotype is compared below by value: a name and a file of
            # the same genotype are the same run.
            saved = config_lib.TrainConfig.from_dict(
                files.read_json(self.config_path), f"{self.flag}: {self.config_path}").to_dict()
            if not self.has_progress():
                return
            saved.pop("genotype")
            wanted = config.to_dict()
            wanted.pop("genotype")
            files.check_same_config(self.path, f"a {self.kind}", saved, wanted)
        if os.path.exists(self.genotype_path):
            saved = self.genotype
            if saved != genotype:
                there, here = saved.to_darts(), genotype.to_darts()
                if there == here:  # the shared cells agree: only the per-cell genotypes differ
                    there, here = (f"{g.to_darts()} with {'no' if g.cells is None else len(g.cells)}"
                                   " per-cell genotypes" for g in (saved, genotype))
                raise ValueError(
                    f"{self.flag}={self.path} holds a network trained with another genotype "
                    f"({there}); this run asks for {here}. Choose another {self.flag}.")

    def record(self, config: config_lib.TrainConfig, genotype: genotype_lib.Genotype) -> None:
        files.write_json(self.config_path, config.to_dict())
        files.write_text(self.genotype_path, genotype.to_json() + "\n")

    @property
    def finished(self) -> bool:
        """Whether the training ran to its end (it writes metrics.json last)."""
        return os.path.exists(self.metrics_path)

    def read_metrics(self) -> dict:
        return files.read_json(self.metrics_path)

    def write_metrics(self, metrics: dict) -> None:
        files.write_json(self.metrics_path, metrics)

    def read_history(self) -> list:
        """The per-epoch history ([] before the first epoch ends)."""
        return files.read_json(self.history_path) if os.path.exists(self.history_path) else []

    def check_checkpoint_genotype(self, checkpoint_path: str) -> None:
        """Refuses a genotype.json that differs from the genotype the checkpoint
        was trained with (a hand edit would run another network on its weights:
        parameter-free ops such as max_pool and avg_pool hold none to disagree)."""
        from stacnas_tf import checkpoints

        recorded = checkpoints.recorded_genotype(checkpoint_path)
        if recorded is None:
            return
        trained = genotype_lib.Genotype.from_json(recorded, source=checkpoint_path)
        if trained != self.genotype:
            raise ValueError(
                f"{self.flag}: {self.genotype_path} holds {self.genotype.to_darts()}, but "
                f"checkpoint {checkpoint_path} was trained with {trained.to_darts()}: the file "
                "was changed after training; put the trained genotype back.")

    def check_loadable_from_the_command_line(self, call: str) -> None:
        """Refuses, for a program, a training on images given in Python: nothing
        but the caller holds them. `call`: the API call that does it instead."""
        if self.config.dataset == IN_MEMORY:
            raise ValueError(f"{self.flag}: {self.path} was trained on images given in Python, "
                             f"which the command line cannot load; from Python: {call}.")

    def check_image_shape(self, image_shape, flag: str = "data") -> None:
        """Refuses images given in Python of another shape than the network was
        trained on, where nothing resizes them (no `image_size`): a network of
        convolutions and global pooling would run on them, and answer for images
        of another scale than it learned."""
        recorded = self._images_record()
        if self.config.image_size is not None or recorded is None or not recorded.get(
                "image_shape"):
            return
        trained = tuple(recorded["image_shape"])
        if tuple(image_shape) != trained:
            raise ValueError(f"{flag}: the images are {shape_text(image_shape)}; the network was "
                             f"trained on {shape_text(trained)} images: resize them to that size "
                             "first.")


class GenotypeFolder:
    """The genotype program's folder: a genotype as versioned JSON, as a graph
    ready to draw, as Graphviz text and, where Graphviz's `dot` is installed, as
    a PNG. Only a folder of such files is written over: never a run folder (its
    genotype.json belongs to its checkpoints) or the user's other files."""

    _WRITES = (_GENOTYPE, _GRAPH, _DOT, _PNG)

    def __init__(self, path: str, flag: str = "--output_dir"):
        self.path = os.fspath(path)
        self.flag = flag

    def check(self) -> None:
        """Refuses a folder that holds anything but what `write` writes."""
        files.check_only_holds(self.path, "|".join(re.escape(name) for name in self._WRITES),
                               "what the genotype program writes", self.flag)

    def write(self, genotype: genotype_lib.Genotype) -> None:
        self.check()
        path = files.prepare_output_dir(self.path, self.flag)
        files.write_text(os.path.join(path, _GENOTYPE), genotype.to_json() + "\n")
        files.write_json(os.path.join(path, _GRAPH), genotype.to_graph())
        files.write_text(os.path.join(path, _DOT), genotype.to_dot())
        if shutil.which("dot"):
            drawn = subprocess.run(["dot", "-Tpng", os.path.join(path, _DOT)], check=True,
                                   capture_output=True).stdout
            files.write_bytes(os.path.join(path, _PNG), drawn)


def search_folder(value: SearchFolder | str, flag: str = "--search_dir") -> SearchFolder:
    """`value` as a search folder: itself, or the folder at that path."""
    return value if isinstance(value, SearchFolder) else SearchFolder(value, flag)


def training_folder(value: TrainingFolder | str, flag: str = "--train_dir") -> TrainingFolder:
    """`value` as a training folder: itself, or the folder at that path, its
    settings and genotype read and checked."""
    return value if isinstance(value, TrainingFolder) else TrainingFolder.existing(value, flag)


def image_fingerprints(**sources) -> dict:
    """{split: content hash} of the sources given in Python (others have none)."""
    return {split: source.fingerprint for split, source in sources.items()
            if source is not None and source.fingerprint}


def shape_text(shape) -> str:
    """An image shape as messages write it: 8x8x1."""
    return f"{shape[0]}x{shape[1]}x{shape[2]}"
