"""A search computes the same numbers whatever the number of CPU threads
(stacnas_tf/repeatable.py)."""

import json
import logging
import os
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from stacnas_tf import config as config_lib
from stacnas_tf import repeatable
from stacnas_tf import resumable
from stacnas_tf import search_loop

import helpers

TINY = config_lib.SearchConfig(
    dataset="digits", stage1_cells=3, stage2_cells=3, stage1_epochs=1, stage2_epochs=1,
    batch_size=32, channels=4, num_train_examples=64, seed=3, arch_lr=3e-2,
)


def _grappler_off() -> bool:
    return tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)


def test_search_graphs_turn_grappler_off_on_cpu_and_restore_the_setting():
    assert not tf.config.list_logical_devices("GPU")
    try:
        for before in (False, True):
            tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": before})
            with repeatable.search_graphs():
                assert _grappler_off()
            assert _grappler_off() is before
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False})
        with pytest.raises(RuntimeError, match="stopped"), repeatable.search_graphs():
            raise RuntimeError("stopped")
        assert not _grappler_off()
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False})


def test_every_stage_trains_without_grappler_and_says_when_threads_may_matter(
        tmp_path, monkeypatch, caplog):
    seen = []
    fit = resumable.fit

    def recording_fit(*args, **kwargs):
        seen.append(_grappler_off())
        return fit(*args, **kwargs)

    monkeypatch.setattr(resumable, "fit", recording_fit)
    with caplog.at_level(logging.INFO):
        search_loop.run_search(TINY, str(tmp_path), verbose=0, report=False)
    assert seen == [True, True] and not _grappler_off()
    said = "this search's numbers may change with the number of CPU threads" in caplog.text
    assert said == repeatable.thread_count_changes_results()
    assert repeatable.thread_count_changes_results() == (repeatable.threads_per_kernel() != 1)


def _stage_numbers(folder) -> dict:
    numbers = {}
    for stage in ("stage1", "stage2"):
        with open(os.path.join(folder, stage, "result.json")) as f:
            numbers[stage] = json.load(f)["logits"]
        with open(os.path.join(folder, stage, "history.json")) as f:
            numbers[stage + "_losses"] = [epoch["loss"] for epoch in json.load(f)]
    with open(os.path.join(folder, "genotype.json")) as f:
        numbers["genotype"] = json.load(f)
    return numbers


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 or shutil.which("taskset") is None,
                    reason="needs two CPUs and taskset")
def test_the_search_program_computes_the_same_numbers_on_one_cpu_and_on_two(tmp_path):
    # As a user would give it fewer CPUs: TensorFlow sizes its thread pools by
    # the CPUs the process may run on. Without one thread per kernel the two
    # runs' batch normalisations sum in other orders, and the logits differ.
    env = helpers.program_env()
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        env.pop(name, None)
    cpus = sorted(os.sched_getaffinity(0))[:2]
    numbers = []
    for count in (1, 2):
        out = tmp_path / f"cpus{count}"
        result = subprocess.run(
            ["taskset", "-c", ",".join(map(str, cpus[:count])), sys.executable,
             os.path.join(helpers.REPO, "tools", "search.py"), "--preset=smoke",
             "--stage1_epochs=2", "--stage2_epochs=1", f"--output_dir={out}"],
            capture_output=True, text=True, env=env, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        numbers.append(_stage_numbers(out))
    assert numbers[0] == numbers[1]
