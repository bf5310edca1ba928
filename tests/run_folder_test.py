"""The run folders: their layout, claiming, the one guard, and typed files."""

import dataclasses
import json
import os

import pytest

from stacnas_tf import config as config_lib
from stacnas_tf import files
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import run_folder
from stacnas_tf import search_space

SEARCH = config_lib.PRESETS["smoke"]
TRAIN = config_lib.TRAIN_PRESETS["smoke"]


def _genotype(seed=0):
    return genotype_lib.random_genotype(search_space.SearchSpace(), seed)


def test_the_layout_is_the_one_the_module_docstring_lists(tmp_path):
    # Written out by hand from the docstring: a reader of a folder (a user, the
    # report, an older version resuming) relies on these names.
    search = run_folder.SearchFolder(str(tmp_path))
    stage = search.stage(2)
    assert os.path.relpath(search.config_path, tmp_path) == "config.json"
    assert os.path.relpath(search.genotype_path, tmp_path) == "genotype.json"
    assert os.path.relpath(search.report_dir, tmp_path) == "report"
    assert os.path.relpath(search.summary_dir, tmp_path) == os.path.join("tensorboard", "search")
    assert os.path.relpath(stage.checkpoint_dir, tmp_path) == os.path.join("stage2", "checkpoints")
    assert os.path.relpath(stage.history_path, tmp_path) == os.path.join("stage2", "history.json")
    assert os.path.relpath(stage.result_path, tmp_path) == os.path.join("stage2", "result.json")
    assert os.path.relpath(stage.tensorboard_dir, tmp_path) == os.path.join("tensorboard",
                                                                              "stage2")
    training = run_folder.TrainingFolder(str(tmp_path))
    assert {name: os.path.relpath(getattr(training, name), tmp_path) for name in (
        "config_path", "genotype_path", "checkpoint_dir", "history_path", "metrics_path",
        "tensorboard_dir")} == {
        "config_path": "config.json", "genotype_path": "genotype.json",
        "checkpoint_dir": "checkpoints", "history_path": "history.json",
        "metrics_path": "metrics.json", "tensorboard_dir": "tensorboard"}


def test_claiming_makes_locks_and_takes_back_a_folder_whose_start_failed(tmp_path, monkeypatch):
    target = tmp_path / "new" / "search"
    monkeypatch.chdir(tmp_path)
    with run_folder.SearchFolder(os.path.join("new", "search")).claimed() as folder:
        assert folder.path == str(target) and os.path.isabs(folder.path)
        assert os.path.exists(target / files.LOCK_NAME)
        with pytest.raises(ValueError, match="--output_dir"):  # a second claim is refused
            with run_folder.SearchFolder(str(target)).claimed():
                pass
        (target / "config.json").write_text("{}")
    assert not os.path.exists(target / files.LOCK_NAME)
    assert os.listdir(target) == ["config.json"]
    # A start that fails before writing anything leaves no folder behind.
    with pytest.raises(RuntimeError):
        with run_folder.TrainingFolder(str(tmp_path / "other"), "--train_dir").claimed():
            raise RuntimeError("failed start")
    assert not os.path.exists(tmp_path / "other")


def test_the_guard_records_replaces_an_unstarted_run_and_refuses_another(tmp_path):
    folder = run_folder.SearchFolder(str(tmp_path), "--search_dir")
    folder.check_run(SEARCH)
    assert not folder.has_config()  # checked, not recorded
    folder.check_run(SEARCH, record=True)
    assert folder.read_config() == SEARCH
    other = dataclasses.replace(SEARCH, seed=SEARCH.seed + 1)
    # No progress yet: the folder's settings are those of a start that failed.
    folder.check_run(other, record=True)
    assert folder.read_config() == other
    assert not folder.has_progress()
    folder.stage(1).make()
    folder.stage(1).write_result({"space": {}, "num_cells": 1, "logits": {}, "winners": {}})
    assert folder.has_progress()
    folder.check_run(other)
    with pytest.raises(ValueError, match=r"seed=1 there, 0 now|seed=\d+ there, \d+ now"):
        folder.check_run(SEARCH, record=True)
    assert folder.read_config() == other


def test_a_folder_of_other_files_is_not_a_run_and_is_left_alone(tmp_path):
    (tmp_path / "holiday.jpg").write_bytes(b"\xff\xd8")
    for folder in (run_folder.SearchFolder(str(tmp_path)),
                   run_folder.TrainingFolder(str(tmp_path), "--train_dir")):
        with pytest.raises(ValueError, match=f"is not empty \\(holiday.jpg\\) and holds no "
                                             f"{folder.kind}"):
            folder.check_run(*((SEARCH,) if isinstance(folder, run_folder.SearchFolder)
                               else (TRAIN, _genotype())))
    assert os.listdir(tmp_path) == ["holiday.jpg"]


def test_progress_is_a_checkpoint_a_stage_result_or_final_metrics(tmp_path):
    for name in ("stage1/checkpoints/ckpt-1.index", "stage2/result.json", "metrics.json"):
        folder = tmp_path / name.replace("/", "_")
        path = folder / name
        path.parent.mkdir(parents=True)
        assert not run_folder.SearchFolder(str(folder)).has_progress()
        path.write_text("{}")
        assert run_folder.SearchFolder(str(folder)).has_progress(), name
    folder = tmp_path / "history_only"
    (folder / "stage1").mkdir(parents=True)
    (folder / "stage1" / "history.json").write_text("[]")
    assert not run_folder.SearchFolder(str(folder)).has_progress()


def test_a_run_on_images_given_in_python_answers_only_for_those_images(tmp_path):
    folder = run_folder.TrainingFolder(str(tmp_path), "--train_dir")
    folder.check_same_images({"train": "abc"})  # nothing recorded: nothing to compare
    folder.record_images({"train": "abc", "validation": "def"}, (8, 8, 1))
    assert json.loads((tmp_path / "images.json").read_text()) == {
        "fingerprints": {"train": "abc", "validation": "def"}, "image_shape": [8, 8, 1]}
    folder.check_same_images({"train": "abc"})
    folder.check_same_images({"test": "xyz"})  # a split it never saw
    with pytest.raises(ValueError, match="the train and validation images differ"):
        folder.check_same_images({"train": "abd", "validation": "deg"})
    folder.record_images({}, (8, 8, 1))  # a named dataset records nothing
    assert json.loads((tmp_path / "images.json").read_text())["image_shape"] == [8, 8, 1]
    (tmp_path / "images.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="images.json is not a record of images"):
        folder.check_same_images({"train": "abc"})


def test_a_search_writes_its_genotype_in_every_form_and_reads_it_back(tmp_path):
    folder = run_folder.SearchFolder(str(tmp_path))
    genotype = _genotype(seed=3)
    assert not folder.has_genotype()
    folder.write_genotype(genotype)
    assert folder.has_genotype() and folder.read_genotype() == genotype
    assert (tmp_path / "genotype.txt").read_text() == genotype.to_darts() + "\n"
    assert (tmp_path / "genotype.dot").read_text() == genotype.to_dot()
    assert json.loads((tmp_path / "genotype_graph.json").read_text()) == json.loads(
        json.dumps(genotype.to_graph()))


def test_a_stage_result_and_history_are_checked_when_read(tmp_path):
    folder = run_folder.SearchFolder(str(tmp_path), "--search_dir")
    stage = folder.stage(1)
    with pytest.raises(ValueError, match=r"--search_dir: .* holds no finished stage 1"):
        stage.read_result()
    assert stage.read_history() is None and folder.histories() == {}
    stage.make()
    space = search_space.StageSpace(cells=((("none", "skip_connect"),),) * 2, per_cell=False)
    result = {"space": space.to_dict(), "num_cells": 3, "winners": {},
              "logits": {"normal": [{"weights": [0.4, 0.6]}], "reduce": [{"weights": [1.0, 0.0]}]}}
    stage.write_result(result)
    read = stage.read_result()
    assert read["stage_space"] == space and read["weights"] == [[[0.4, 0.6]], [[1.0, 0.0]]]
    stage.write_result({**result, "logits": {"normal": [{"weights": [1.0]}], "reduce": []}})
    with pytest.raises(ValueError, match="do not match its \"space\""):
        stage.read_result()
    stage.write_result({**result, "num_cells": True})
    with pytest.raises(ValueError, match='"num_cells" \\(int\\)'):
        stage.read_result()
    history = [{"epoch": 0, "loss": 1.0, "accuracy": 0.5, "weights": {"normal": [[0.5, 0.5]]}}]
    files.write_json(stage.history_path, history)
    assert stage.read_history() == history and folder.histories() == {"stage1": history}
    files.write_json(stage.history_path, [{"epoch": 0}])
    with pytest.raises(ValueError, match="is not a search history"):
        stage.read_history()


def test_a_training_folder_holds_one_genotype_and_its_metrics(tmp_path):
    folder = run_folder.TrainingFolder(str(tmp_path), "--train_dir")
    genotype = _genotype(seed=1)
    folder.check_run(TRAIN, genotype)
    folder.record(TRAIN, genotype)
    assert folder.read_history() == [] and not folder.finished
    folder.write_metrics({"top1": 0.5})
    assert folder.finished and folder.read_metrics() == {"top1": 0.5}
    again = run_folder.TrainingFolder.existing(str(tmp_path))
    assert again.config == TRAIN and again.genotype == genotype
    folder.check_run(TRAIN, genotype)
    with pytest.raises(ValueError, match="--train_dir=.* holds a network trained with another "
                                         "genotype"):
        folder.check_run(TRAIN, _genotype(seed=2))
    with pytest.raises(ValueError, match="with other settings"):
        folder.check_run(dataclasses.replace(TRAIN, epochs=TRAIN.epochs + 1), genotype)
    with pytest.raises(ValueError, match="--train_dir: .* holds no config.json"):
        run_folder.TrainingFolder.existing(str(tmp_path / "missing"))


def test_folders_given_as_paths_or_objects_keep_their_flag(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_folder.search_folder("runs/s").flag == "--search_dir"
    folder = run_folder.SearchFolder("runs/s", "--output_dir")
    assert run_folder.search_folder(folder) is folder
    # A training folder given by path is read at once: it must hold a training.
    with pytest.raises(ValueError, match="--train_dir: runs/t holds no config.json"):
        run_folder.training_folder("runs/t")
    training = run_folder.TrainingFolder("runs/t", "trained")
    assert run_folder.training_folder(training) is training
