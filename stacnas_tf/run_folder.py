"""Reading the folders runs leave behind: a search's or a training's settings,
genotype and stage results, each checked, with errors naming the folder flag.

Every reader of a run folder (training, evaluation, export, the analyses, the
API) goes through here, so they agree on what a folder holds.
"""

from __future__ import annotations

import dataclasses
import os

from stacnas_tf import config as config_lib
from stacnas_tf import files
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import search_space
from stacnas_tf.dataset_names import IN_MEMORY


@dataclasses.dataclass(frozen=True)
class TrainingFolder:
    path: str
    config: config_lib.TrainConfig
    genotype: genotype_lib.Genotype

    @property
    def checkpoint_dir(self) -> str:
        return os.path.join(self.path, "checkpoints")

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
                f"--train_dir: {os.path.join(self.path, 'genotype.json')} holds "
                f"{self.genotype.to_darts()}, but checkpoint {checkpoint_path} was trained with "
                f"{trained.to_darts()}: the file was changed after training; put the trained "
                "genotype back.")

    @property
    def finished(self) -> bool:
        """Whether the training ran to its end (it writes metrics.json last)."""
        return os.path.exists(os.path.join(self.path, "metrics.json"))


def training(train_dir: str, flag: str = "--train_dir") -> TrainingFolder:
    """The settings and genotype of a training folder."""
    config_path = os.path.join(train_dir, "config.json")
    if not os.path.exists(config_path):
        raise ValueError(f"{flag}: {train_dir} holds no config.json (not a training folder).")
    config = config_lib.TrainConfig.from_dict(files.read_json(config_path),
                                              source=f"{flag}: {config_path}")
    genotype_path = os.path.join(train_dir, "genotype.json")
    if not os.path.exists(genotype_path):
        raise ValueError(f"{flag}: {train_dir} holds no genotype.json (a training that never "
                         "started).")
    with open(genotype_path) as f:
        genotype = genotype_lib.Genotype.from_json(f.read(), source=genotype_path)
    return TrainingFolder(train_dir, config, genotype)


def check_loadable_from_the_command_line(train_dir: str, call: str) -> None:
    """Refuses, for a program, a training on images given in Python: nothing
    but the caller holds them. `call`: the API call that does it instead."""
    if training(train_dir).config.dataset == IN_MEMORY:
        raise ValueError(f"--train_dir: {train_dir} was trained on images given in Python, which "
                         f"the command line cannot load; from Python: {call}.")


def search_config(search_dir: str, flag: str = "--search_dir") -> config_lib.SearchConfig:
    """The settings of a search folder."""
    config_path = os.path.join(search_dir, "config.json")
    if not os.path.exists(config_path):
        raise ValueError(f"{flag}: {search_dir} holds no config.json (not a search folder).")
    try:
        return config_lib.SearchConfig.from_dict(files.read_json(config_path),
                                                 source=f"{flag}: {config_path}")
    except TypeError as e:
        raise ValueError(f"{flag}: {config_path} is not a search's settings ({e}).") from e


def stage_result(search_dir: str, stage: int, flag: str = "--search_dir") -> dict:
    """What a finished search stage recorded (result.json): its candidates
    (`space`, also as `stage_space` a `StageSpace`), depth, logits, softmax
    weights and winners, checked: a damaged or hand-edited file is an error
    naming it and the key."""
    path = os.path.join(search_dir, f"stage{stage}", "result.json")
    if not os.path.exists(path):
        raise ValueError(f"{flag}: {search_dir} holds no finished stage {stage} ({path} is "
                         "missing).")
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
        raise ValueError(f"{flag}: {path} is not a stage result: its \"space\" or \"logits\" is "
                         f"damaged ({type(e).__name__}: {e}).") from e
    if len(weights) != len(space.cells) or any(
            len(cell) != len(candidates) or any(len(w) != len(c) for w, c in zip(cell, candidates))
            for cell, candidates in zip(weights, space.cells)):
        raise ValueError(f"{flag}: {path} is not a stage result: its \"logits\" do not match "
                         "its \"space\" (cells, edges or candidates).")
    return {**result, "stage_space": space, "weights": weights}


def stage_history(search_dir: str, stage: int, flag: str = "--search_dir") -> list | None:
    """A search stage's history (stage*/history.json: one entry per epoch with
    its loss, accuracy and weights), checked; None where the stage has none."""
    path = os.path.join(search_dir, f"stage{stage}", "history.json")
    if not os.path.exists(path):
        return None
    history = files.read_json(path)
    if not isinstance(history, list) or not history or not all(
            isinstance(entry, dict) and isinstance(entry.get("weights"), dict)
            and entry["weights"] and isinstance(entry.get("epoch"), int)
            and all(isinstance(entry.get(key), (int, float)) for key in ("loss", "accuracy"))
            for entry in history):
        raise ValueError(f"{flag}: {path} is not a search history (a non-empty list of epochs, "
                         "each with its epoch, loss, accuracy and weights).")
    return history


IMAGES_RECORD = "images.json"


def _images_record(output_dir: str, flag: str) -> dict | None:
    path = os.path.join(output_dir, IMAGES_RECORD)
    if not os.path.exists(path):
        return None
    recorded = files.read_json(path)
    if not (isinstance(recorded, dict) and isinstance(recorded.get("fingerprints"), dict)):
        raise ValueError(f"{flag}: {path} is not a record of images (expected a JSON object with "
                         "their fingerprints).")
    return recorded


def check_same_images(output_dir: str, fingerprints: dict, what: str,
                      flag: str = "--output_dir") -> None:
    """Refuses to resume or reuse `what` in `output_dir` with images given in
    Python other than those it ran on (`fingerprints`: split -> content hash, as
    `images.json` records them). A finished run would otherwise answer with
    the metrics or genotype of the first images."""
    recorded = _images_record(output_dir, flag)
    if not fingerprints or recorded is None:
        return
    changed = sorted(split for split, value in fingerprints.items()
                     if recorded["fingerprints"].get(split) not in (None, value))
    if changed:
        raise ValueError(
            f"{flag}={output_dir} holds {what} on other images (the {' and '.join(changed)} "
            "images differ from those it ran on); pass the same images to resume it, or choose "
            "another output folder.")


def record_images(output_dir: str, fingerprints: dict, image_shape) -> None:
    """Writes `images.json` for images given in Python: split -> content hash, and
    the shape of one image (what the network was built for)."""
    if fingerprints:
        files.write_json(os.path.join(output_dir, IMAGES_RECORD),
                         {"fingerprints": fingerprints, "image_shape": list(image_shape)})


def image_fingerprints(**sources) -> dict:
    """{split: content hash} of the sources given in Python (others have none)."""
    return {split: source.fingerprint for split, source in sources.items()
            if source is not None and source.fingerprint}


def check_image_shape(train_dir: str, config, image_shape, flag: str = "data") -> None:
    """Refuses images given in Python of another shape than the network of
    `train_dir` was trained on, where nothing resizes them (no `image_size`):
    a network of convolutions and global pooling would run on them, and answer
    for images of another scale than it learned."""
    recorded = _images_record(train_dir, "--train_dir")
    if config.image_size is not None or recorded is None or not recorded.get("image_shape"):
        return
    trained = tuple(recorded["image_shape"])
    if tuple(image_shape) != trained:
        raise ValueError(f"{flag}: the images are {shape_text(image_shape)}; the network was trained "
                         f"on {shape_text(trained)} images: resize them to that size first.")


def shape_text(shape) -> str:
    """An image shape as messages write it: 8x8x1."""
    return f"{shape[0]}x{shape[1]}x{shape[2]}"
