"""Strategies, replica scaling, per-worker input, and a 2-process
MultiWorkerMirroredStrategy search on 127.0.0.1."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import config as config_lib
from stacnas_tf import pipelines
from stacnas_tf import sources
from stacnas_tf import strategy as strategy_lib

import helpers

_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multi_worker_main.py")


def test_auto_is_one_device_without_gpus_and_bad_names_are_refused(monkeypatch):
    assert isinstance(strategy_lib.make_strategy("auto"), tf.distribute.OneDeviceStrategy)
    with pytest.raises(ValueError, match="--strategy: expected one of"):
        strategy_lib.make_strategy("horovod")
    with pytest.raises(ValueError, match="--num_gpus=2, but this machine has 0"):
        strategy_lib.make_strategy("mirrored", num_gpus=2)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="set TF_CONFIG on every worker"):
        strategy_lib.make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(ValueError, match="TF_CONFIG is not valid"):
        strategy_lib.make_strategy("multi_worker")


class _Cluster:
    def __init__(self, spec, task_type, task_id):
        self.cluster_resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(spec), task_type=task_type, task_id=task_id)


def test_the_chief_is_task_chief_or_worker_zero():
    workers = {"worker": ["a:1", "b:1"]}
    assert strategy_lib.is_chief(None)
    assert strategy_lib.is_chief(tf.distribute.get_strategy())
    assert strategy_lib.is_chief(_Cluster(workers, "worker", 0))
    assert not strategy_lib.is_chief(_Cluster(workers, "worker", 1))
    with_chief = {"chief": ["c:1"], **workers}
    assert strategy_lib.is_chief(_Cluster(with_chief, "chief", 0))
    assert not strategy_lib.is_chief(_Cluster(with_chief, "worker", 0))


def test_a_scaled_batch_too_large_for_the_data_says_it_was_scaled():
    base = config_lib.TRAIN_PRESETS["smoke"]  # batch 32, 128 training examples
    with pytest.raises(ValueError, match="--batch_size=256 is larger than --num_train_examples=128.*"
                                         "\\(--batch_size=32 x 8 replicas by --scaling_rule=linear"):
        strategy_lib.scale_for_replicas(base, "linear", 8, ("lr",))


def test_batch_and_learning_rate_scale_by_the_rule():
    base = config_lib.PRESETS["default"]
    assert strategy_lib.scale_for_replicas(base, "none", 4, ("weight_lr",)) == base
    linear = strategy_lib.scale_for_replicas(base, "linear", 4, ("weight_lr", "weight_lr_min"))
    assert linear.batch_size == 4 * base.batch_size
    assert linear.weight_lr == pytest.approx(4 * base.weight_lr)
    assert linear.weight_lr_min == pytest.approx(4 * base.weight_lr_min)
    assert linear.arch_lr == base.arch_lr
    root = strategy_lib.scale_for_replicas(config_lib.TRAIN_PRESETS["base"], "sqrt", 4, ("lr",))
    assert (root.batch_size, root.lr) == (4 * 96, pytest.approx(2 * 0.025))
    with pytest.raises(ValueError, match="does not split evenly over 3 replicas"):
        strategy_lib.scale_for_replicas(base, "none", 3, ("weight_lr",))
    with pytest.raises(ValueError, match="--scaling_rule"):
        strategy_lib.scale_factor("cubic", 2)


def _indexed_source(count):
    # Each image holds its own index, so a batch says which examples it holds.
    return sources._in_memory("indexed", "train", helpers.indexed_images(count), np.arange(count))


@pytest.mark.parametrize("workers,replicas", [(2, 2), (2, 4), (1, 2)])
def test_worker_shards_together_make_the_single_process_batches(workers, replicas):
    source, batch, epochs = _indexed_source(48), 8, 2
    single = list(pipelines.train_pipeline(source, batch, seed=3, epochs=epochs))
    shards = [
        list(pipelines.train_pipeline(source, batch, seed=3, epochs=epochs,
                                 input_context=tf.distribute.InputContext(workers, w, replicas)))
        for w in range(workers)
    ]
    per_worker = replicas // workers
    for shard in shards:
        assert len(shard) == len(single) * per_worker
        assert all(images.shape[0] == batch // replicas for images, _ in shard)
    for step, (_, labels) in enumerate(single):
        step_labels = np.concatenate([
            labels.numpy()
            for shard in shards for _, labels in shard[step * per_worker:(step + 1) * per_worker]])
        # Same examples in each global step; no example seen by two workers.
        assert sorted(step_labels) == sorted(labels.numpy())


def _run_workers(output_dirs, epochs, result_dir, scratch_dir, stop_after=None):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in helpers.free_ports(len(output_dirs))]}
    processes = []
    for index, output_dir in enumerate(output_dirs):
        env = helpers.program_env(TMPDIR=scratch_dir, TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            [sys.executable, _WORKER, output_dir, str(epochs), f"{result_dir}/worker{index}.json"]
            + ([str(stop_after)] if stop_after else []),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=420)[0].decode(errors="replace"))
    finally:
        for process in processes:
            process.kill()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    return [helpers.read_json(f"{result_dir}/worker{index}.json")
            for index in range(len(output_dirs))]


def test_two_workers_agree_only_the_chief_writes_and_a_restart_resumes(tmp_path):
    chief_dir, worker_dir = str(tmp_path / "chief"), str(tmp_path / "worker")
    scratch = tmp_path / "tmp"  # the workers' TMPDIR: their checkpoint scratch folders
    scratch.mkdir()
    # Two epochs, interrupted after the first. The worker is given its own
    # folder: it must write nothing there.
    first = _run_workers([chief_dir, worker_dir], 2, str(tmp_path), str(scratch), stop_after=1)
    assert [r["chief"] for r in first] == [True, False]
    assert [r["began"] for r in first] == [[1], [1]]
    assert all(r["replicas"] == 2 for r in first)
    assert not os.path.exists(worker_dir)
    assert sorted(os.listdir(chief_dir)) == ["stage1", "tensorboard"]
    assert os.listdir(os.path.join(chief_dir, "stage1", "checkpoints")) != []
    assert [h["epoch"] for h in helpers.read_json(f"{chief_dir}/stage1/history.json")] == [1]

    # A restarted cluster (both on the shared folder) resumes from the chief's checkpoint.
    second = _run_workers([chief_dir, chief_dir], 2, str(tmp_path), str(scratch))
    assert second[0]["logits"] == second[1]["logits"]
    assert [r["began"] for r in second] == [[2], [2]]  # after the saved epoch
    history = helpers.read_json(f"{chief_dir}/stage1/history.json")
    assert [h["epoch"] for h in history] == [1, 2]

    # ... and ends where an uninterrupted cluster ends.
    reference_dir = str(tmp_path / "reference")
    reference = _run_workers([reference_dir, str(tmp_path / "reference_worker")], 2,
                             str(tmp_path), str(scratch))
    assert reference[0]["logits"] == reference[1]["logits"]
    assert helpers.read_json(f"{reference_dir}/stage1/history.json") == history
    assert second[0]["logits"] == reference[0]["logits"]
    # The worker's scratch checkpoints are gone (Python may keep its caches there).
    assert [name for name in os.listdir(scratch) if name.startswith("stacnas-worker-")] == []
