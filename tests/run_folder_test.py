"""The run folders: their layout, claiming, the one guard, and typed files."""

import dataclasses
import json
import os
import shutil
import subprocess

import pytest

from stacnas_tf import config as config_lib
from stacnas_tf import files
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import run_folder
from stacnas_tf import search_space
from stacnas_tf import sources

import helpers

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


def test_a_genotype_folder_holds_the_genotype_in_every_form_and_nothing_else(tmp_path):
    genotype = _genotype(seed=4)
    folder = run_folder.GenotypeFolder(str(tmp_path / "g"), "--out")
    folder.write(genotype)
    written = sorted(os.listdir(tmp_path / "g"))
    assert written == sorted(["genotype.json", "genotype_graph.json", "genotype.dot"]
                             + (["genotype.png"] if shutil.which("dot") else []))
    assert genotype_lib.Genotype.from_json((tmp_path / "g" / "genotype.json").read_text()) == genotype
    assert (tmp_path / "g" / "genotype.dot").read_text() == genotype.to_dot()
    if shutil.which("dot"):
        assert (tmp_path / "g" / "genotype.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other = _genotype(seed=5)
    folder.write(other)  # its own files are written over
    assert genotype_lib.Genotype.from_json((tmp_path / "g" / "genotype.json").read_text()) == other
    # A search folder's genotype belongs to its run: never written over.
    (tmp_path / "s").mkdir()
    search = run_folder.SearchFolder(str(tmp_path / "s"))
    search.write_genotype(genotype)
    with pytest.raises(ValueError, match="^--out: .* holds other files \\(genotype.txt\\)"):
        run_folder.GenotypeFolder(search.path, "--out").write(other)
    assert search.read_genotype() == genotype


def test_a_failing_graphviz_writes_no_picture(tmp_path, monkeypatch):
    # A `dot` that fails must not leave an empty or partial genotype.png.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dot").write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    (bin_dir / "dot").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(subprocess.CalledProcessError):
        run_folder.GenotypeFolder(str(tmp_path / "g")).write(_genotype(seed=6))
    assert not (tmp_path / "g" / "genotype.png").exists()


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


def test_a_run_folder_with_a_sub_folder_it_cannot_write_in_is_refused_before_any_work(
        tmp_path, monkeypatch):
    # Tests run as root here, for whom every folder is writable: the file
    # system's answer is what is simulated, for one sub-folder.
    stage = tmp_path / "run" / "stage1" / "checkpoints"
    stage.mkdir(parents=True)
    (tmp_path / "other" / "sub").mkdir(parents=True)
    real_access = os.access

    def access(path, mode):
        if os.path.basename(path) in ("checkpoints", "sub") and mode & os.W_OK and mode & os.X_OK:
            return False
        return real_access(path, mode)

    monkeypatch.setattr(run_folder.os, "access", access)
    folder = run_folder.SearchFolder(str(tmp_path / "run"))
    folder.check_writable_tree()  # no config.json: not a run's folder, not walked
    (tmp_path / "run" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=f"--output_dir: cannot write in {stage}"):
        folder.check_writable_tree()
    run_folder.SearchFolder(str(tmp_path / "other")).check_writable_tree()  # holds no run


def test_the_refusal_of_a_foreign_folder_lists_three_of_its_files(tmp_path):
    for count, listed in ((3, "a0, a1, a2)"), (4, "a0, a1, a2, ...)")):
        folder = tmp_path / str(count)
        folder.mkdir()
        for i in range(count):
            (folder / f"a{i}").write_text("")
        (folder / files.LOCK_NAME).write_text("{}")  # a lock is not a foreign file
        with pytest.raises(ValueError) as error:
            run_folder.SearchFolder(str(folder)).check_run(SEARCH)
        assert f"is not empty ({listed} and holds no search" in str(error.value)


def test_a_stage_folder_is_made_once_and_again(tmp_path):
    stage = run_folder.SearchFolder(str(tmp_path)).stage(2)
    stage.make()
    stage.make()  # resuming makes it again
    assert os.path.isdir(tmp_path / "stage2")


_SPACE = search_space.StageSpace(cells=((("none", "skip_connect"),),) * 2, per_cell=False)
_GOOD = {"space": _SPACE.to_dict(), "num_cells": 3, "winners": {},
         "logits": {"normal": [{"weights": [0.4, 0.6]}], "reduce": [{"weights": [1.0, 0.0]}]}}
_DAMAGED = {
    "an edge without weights (KeyError)": {**_GOOD, "logits": {"normal": [{}], "reduce": []}},
    "edges that are not objects (TypeError)": {**_GOOD, "logits": {"normal": [1], "reduce": []}},
    "a space of unknown ops (ValueError)": {**_GOOD, "space": {"cells": [[["bogus"]]] * 2}},
    "a cell more than the space": {**_GOOD, "logits": {**_GOOD["logits"], "extra": []}},
    "a cell fewer than the space": {**_GOOD, "logits": {"normal": _GOOD["logits"]["normal"]}},
    "an edge more": {**_GOOD, "logits": {**_GOOD["logits"], "normal": [{"weights": [0.5, 0.5]}] * 2}},
    "an edge fewer": {**_GOOD, "logits": {**_GOOD["logits"], "normal": []}},
    "a weight more": {**_GOOD, "logits": {**_GOOD["logits"], "normal": [{"weights": [0.2] * 3}]}},
    "a weight fewer": {**_GOOD, "logits": {**_GOOD["logits"], "normal": [{"weights": [1.0]}]}},
    "not an object": [_GOOD],
}


@pytest.mark.parametrize("damage", sorted(_DAMAGED))
def test_every_damaged_stage_result_is_named_not_raised_raw(damage, tmp_path):
    stage = run_folder.SearchFolder(str(tmp_path), "--search_dir").stage(1)
    stage.make()
    stage.write_result(_GOOD)
    assert stage.read_result()["weights"] == [[[0.4, 0.6]], [[1.0, 0.0]]]
    stage.write_result(_DAMAGED[damage])
    with pytest.raises(ValueError, match=r"--search_dir: .*result.json is not a stage result"):
        stage.read_result()


def test_every_damaged_history_is_named(tmp_path):
    stage = run_folder.SearchFolder(str(tmp_path), "--search_dir").stage(1)
    stage.make()
    entry = {"epoch": 0, "loss": 1.0, "accuracy": 0.5, "weights": {"normal": [[0.5, 0.5]]}}
    for history in ([], {"0": entry}, [{**entry, "weights": {}}], [{**entry, "epoch": "0"}],
                    [{**entry, "loss": "1.0"}], [{**entry, "accuracy": None}],
                    [{key: value for key, value in entry.items() if key != "epoch"}]):
        files.write_json(stage.history_path, history)
        with pytest.raises(ValueError, match="is not a search history"):
            stage.read_history()


def test_both_stages_histories_are_read(tmp_path):
    folder = run_folder.SearchFolder(str(tmp_path))
    entry = {"epoch": 0, "loss": 1.0, "accuracy": 0.5, "weights": {"normal": [[0.5, 0.5]]}}
    for number in (1, 2, 3):
        folder.stage(number).make()
        files.write_json(folder.stage(number).history_path, [{**entry, "epoch": number}])
    histories = folder.histories()
    assert sorted(histories) == ["stage1", "stage2"]
    assert histories["stage2"][0]["epoch"] == 2


def test_unreadable_settings_are_named_with_their_file(tmp_path):
    folder = run_folder.SearchFolder(str(tmp_path), "--search_dir")
    # {"groups": 5} fails inside the config's own reader with a TypeError.
    for text in ('{"groups": 5}', "{not json", '["a list"]'):
        (tmp_path / "config.json").write_text(text)
        with pytest.raises(ValueError, match="config.json"):
            folder.read_config()
        with pytest.raises(ValueError, match="--search_dir: .*config.json is unreadable"):
            folder.check_run(SEARCH)
    (tmp_path / "config.json").unlink()
    (tmp_path / "config.json").mkdir()  # unreadable as a file (OSError)
    with pytest.raises(ValueError, match="config.json is unreadable"):
        folder.check_run(SEARCH)


def test_the_guard_names_per_cell_genotypes_when_only_they_differ(tmp_path):
    per_cell = helpers.per_cell_genotype()
    shared = dataclasses.replace(per_cell, cells=None)  # the same shared cells, none per cell
    folder = run_folder.TrainingFolder(str(tmp_path), "--train_dir")
    folder.record(TRAIN, shared)
    folder.write_metrics({"top1": 0.5})  # progress: the folder's run is kept
    with pytest.raises(ValueError, match="with no per-cell genotypes\\); this run asks for .* with "
                                         "3 per-cell genotypes"):
        folder.check_run(TRAIN, per_cell)
    # Other shared cells: named by their cells alone, whichever sorts first.
    for seed in (5, 6, 7, 8):
        with pytest.raises(ValueError) as error:
            folder.check_run(TRAIN, _genotype(seed=seed))
        assert "per-cell" not in str(error.value)


def test_a_genotype_file_changed_after_training_is_refused(tmp_path):
    import tensorflow as tf

    from stacnas_tf import checkpoints

    folder = run_folder.TrainingFolder(str(tmp_path), "--train_dir")
    trained = _genotype(seed=6)
    folder.record(TRAIN, trained)
    path = tf.train.Checkpoint(genotype=checkpoints.genotype_record(trained.to_json())).write(
        str(tmp_path / "ckpt"))
    folder.check_checkpoint_genotype(path)
    bare = tf.train.Checkpoint(step=tf.Variable(1)).write(str(tmp_path / "bare"))
    folder.check_checkpoint_genotype(bare)  # an older checkpoint records none
    files.write_text(folder.genotype_path, _genotype(seed=7).to_json())
    edited = run_folder.TrainingFolder(str(tmp_path), "--train_dir")
    with pytest.raises(ValueError, match="the file was changed after training"):
        edited.check_checkpoint_genotype(path)
    edited.check_checkpoint_genotype(bare)


def test_programs_and_images_in_python(tmp_path):
    folder = run_folder.TrainingFolder(str(tmp_path), "--train_dir")
    folder.record(TRAIN, _genotype())
    folder.check_loadable_from_the_command_line("stacnas_tf.evaluate(...)")
    in_memory = run_folder.TrainingFolder(str(tmp_path / "m"), "--train_dir")
    os.mkdir(tmp_path / "m")
    in_memory.record(dataclasses.replace(TRAIN, dataset="in_memory", image_size=None), _genotype())
    with pytest.raises(ValueError, match="trained on images given in Python.*from Python: "
                                         "stacnas_tf.evaluate"):
        in_memory.check_loadable_from_the_command_line("stacnas_tf.evaluate(...)")
    # The shape it learned is checked where nothing resizes the images.
    in_memory.check_image_shape((9, 9, 1))  # no record: nothing to compare
    in_memory.record_images({"train": "abc"}, (8, 8, 1))
    in_memory.check_image_shape((8, 8, 1))
    with pytest.raises(ValueError, match="data: the images are 9x8x1; the network was trained "
                                         "on 8x8x1 images"):
        in_memory.check_image_shape((9, 8, 1))
    with pytest.raises(ValueError, match="^validation: the images are 8x8x3"):
        in_memory.check_image_shape((8, 8, 3), "validation")
    with pytest.raises(ValueError, match="the images are 7x8x1"):  # smaller ones too
        in_memory.check_image_shape((7, 8, 1))
    sized = run_folder.TrainingFolder(str(tmp_path / "s"), "--train_dir")
    os.mkdir(tmp_path / "s")
    sized.record(dataclasses.replace(TRAIN, dataset="in_memory", image_size=8), _genotype())
    sized.record_images({"train": "abc"}, (8, 8, 1))
    sized.check_image_shape((20, 20, 1))  # resized to 8x8 before the network


def test_image_fingerprints_keep_the_sources_given_in_python():
    named = sources.Source("fashion_mnist", "train", None, 1, 2, (8, 8, 1), (0.5,), (0.2,))
    given = dataclasses.replace(named, name="in_memory", fingerprint="f1")
    assert run_folder.image_fingerprints(train=given, validation=None, test=named) == {"train": "f1"}
    assert run_folder.shape_text((32, 24, 3)) == "32x24x3"
