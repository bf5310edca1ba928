"""resumable.fit on a one-layer model: what each epoch leaves in the folder,
and how a rerun, a divergence and a non-chief worker go on from it."""

import glob
import io
import os
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import checkpoints
from stacnas_tf import files
from stacnas_tf import resumable

import helpers

EPOCHS = 5  # the divergence case needs a fourth epoch: epoch index 3 tells + 1 from | 1, << 1, ...


def _folder(path):
    return types.SimpleNamespace(checkpoint_dir=str(path / "checkpoints"),
                                 history_path=str(path / "history.json"),
                                 tensorboard_dir=str(path / "tensorboard"))


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="dense")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def _inputs(nan_from_epoch=None):
    """One batch per epoch; the batches from `nan_from_epoch` (counted from 1) on
    are NaN, so the loss diverges in that epoch."""
    x = np.random.default_rng(0).normal(size=(EPOCHS, 4, 4)).astype("float32")
    if nan_from_epoch is not None:
        x[nan_from_epoch - 1:] = np.nan
    return x


class _Run:
    """The arguments of one `resumable.fit`, and what it asked for."""

    def __init__(self, path, strategy=None, nan_from_epoch=None):
        self.folder = _folder(path)
        self.strategy = strategy or tf.distribute.get_strategy()
        self.inputs = _inputs(nan_from_epoch)
        self.dataset_calls = []  # (initial_epoch, input_context) of each make_dataset call

    def make_dataset(self, initial_epoch, input_context):
        self.dataset_calls.append((initial_epoch, input_context))
        x = tf.data.Dataset.from_tensor_slices(self.inputs).skip(initial_epoch)
        return x.map(lambda batch: (batch, tf.zeros((4, 2))))

    def fit(self, epochs=EPOCHS, **kwargs):
        model = kwargs.pop("model", None) or _model()
        kwargs.setdefault("verbose", 0)
        return resumable.fit(
            model, self.strategy, epochs=epochs, steps_per_epoch=1, folder=self.folder,
            trackables={"optimizer": model.optimizer}, make_dataset=self.make_dataset,
            record=lambda model, epoch, logs: {"epoch": epoch + 1, "loss": float(logs["loss"])},
            what="stage 1", **kwargs)


def _completed_epochs(path):
    reader = tf.train.load_checkpoint(path)
    [name] = [n for n, _ in tf.train.list_variables(path) if n.startswith("completed_epochs/")]
    return int(reader.get_tensor(name))


def _checkpoint_numbers(folder):
    return sorted(int(p.split("-")[-1]) for p in checkpoints.candidates(folder.checkpoint_dir))


def test_each_epoch_is_recorded_then_checkpointed_with_its_count(tmp_path):
    run = _Run(tmp_path)
    seen = []  # what a user's callback finds at each epoch's end: fit's own ran before it

    def look(index, logs):
        history = files.read_json(run.folder.history_path)
        latest = tf.train.latest_checkpoint(run.folder.checkpoint_dir)
        seen.append(([h["epoch"] for h in history], os.path.basename(latest),
                     _completed_epochs(latest)))

    history = run.fit(callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=look)])
    assert seen == [(list(range(1, k + 1)), f"ckpt-{k}", k) for k in range(1, EPOCHS + 1)]
    assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1))
    assert files.read_json(run.folder.history_path) == history
    assert _checkpoint_numbers(run.folder) == [EPOCHS - 1, EPOCHS]  # two kept
    assert run.dataset_calls == [(0, None)]  # one strategy: no input context
    # Keras's TensorBoard logs, without the graph (a supernet's has thousands of ops).
    [events] = glob.glob(os.path.join(run.folder.tensorboard_dir, "train", "events.*"))
    summaries = list(tf.compat.v1.train.summary_iterator(events))
    assert any(e.summary.value for e in summaries)
    assert not any(e.graph_def for e in summaries)


def test_a_rerun_goes_on_after_the_saved_epoch_with_its_history(tmp_path):
    run = _Run(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run.fit(callbacks=[helpers.interrupt_after_epoch(2)])
    recorder, began = helpers.epochs_begun()
    resumed = _Run(tmp_path)
    history = resumed.fit(callbacks=[recorder])
    assert began == [3, 4, 5]
    assert resumed.dataset_calls == [(2, None)]  # the pipeline starts at the saved epoch
    first_two = files.read_json(run.folder.history_path)[:2]
    assert history[:2] == first_two and [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    # A rerun of a finished run changes nothing and builds no pipeline.
    again = _Run(tmp_path)
    assert again.fit() == history
    assert again.dataset_calls == []
    # Nor does one asking for fewer epochs than the folder holds.
    fewer = _Run(tmp_path)
    assert fewer.fit(epochs=3) == history
    assert fewer.dataset_calls == []


def test_an_epoch_recorded_but_not_checkpointed_is_done_again(tmp_path):
    # A crash between history.json and the checkpoint: the record has one epoch more.
    run = _Run(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run.fit(callbacks=[helpers.interrupt_after_epoch(2)])
    recorded = files.read_json(run.folder.history_path)
    files.write_json(run.folder.history_path, recorded + [{"epoch": 3, "loss": 999.0}])
    history = _Run(tmp_path).fit()
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    assert history[:2] == recorded and history[2]["loss"] != 999.0


def test_a_missing_history_is_refused_when_the_checkpoint_holds_epochs(tmp_path):
    run = _Run(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run.fit(callbacks=[helpers.interrupt_after_epoch(2)])
    os.remove(run.folder.history_path)
    with pytest.raises(ValueError, match=r"^stage 1: .*history.json is missing, but the checkpoint "
                                         r"holds 2 epoch\(s\); restore it, or move .*checkpoints "
                                         r"away to start stage 1 again\.$"):
        _Run(tmp_path).fit()


@pytest.mark.parametrize("recorded", [
    [{"epoch": 1}, {"epoch": 1}],  # an epoch twice
    [{"epoch": 2}, {"epoch": 3}],  # the first missing
    [{"epoch": 1}, [2]],
    {"epoch": 1},
])
def test_a_history_not_numbered_1_2_is_refused(tmp_path, recorded):
    run = _Run(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run.fit(callbacks=[helpers.interrupt_after_epoch(2)])
    files.write_json(run.folder.history_path, recorded)
    with pytest.raises(ValueError, match=r"history.json is not a history \(a list of per-epoch "
                                         r"records, epochs 1, 2, ...\); restore it"):
        _Run(tmp_path).fit()


def test_a_long_finished_run_is_read_back_not_refused(tmp_path):
    # 300 epochs: past the integers Python keeps one copy of (-5..256), so the
    # epoch numbers must be compared by value.
    model = _model()
    completed = tf.Variable(300, dtype=tf.int64, name="completed_epochs")
    checkpoint = checkpoints.make(model, completed_epochs=completed, optimizer=model.optimizer)
    folder = _folder(tmp_path)
    tf.train.CheckpointManager(checkpoint, folder.checkpoint_dir, 2).save(checkpoint_number=300)
    history = [{"epoch": k, "loss": 1.0} for k in range(1, 301)]
    files.write_json(folder.history_path, history)
    run = _Run(tmp_path)
    assert run.fit(epochs=300, model=model) == history
    assert run.dataset_calls == []


def test_a_diverged_epoch_is_named_and_never_saved(tmp_path):
    run = _Run(tmp_path, nan_from_epoch=4)
    with pytest.raises(ValueError, match=r"^the loss became nan in epoch 4: training diverged .*"
                                         r"This epoch was not saved"):
        run.fit()
    assert [h["epoch"] for h in files.read_json(run.folder.history_path)] == [1, 2, 3]
    assert _checkpoint_numbers(run.folder) == [2, 3]


def test_a_header_is_printed_only_when_the_run_prints(tmp_path, capsys):
    _Run(tmp_path / "quiet").fit(epochs=1, header="stage 1 of 2")
    assert "stage 1 of 2" not in capsys.readouterr().out
    _Run(tmp_path / "loud").fit(epochs=1, header="stage 1 of 2", verbose=2)
    assert capsys.readouterr().out.startswith("stage 1 of 2\n")
    _Run(tmp_path / "none").fit(epochs=1, verbose=2)
    assert "None" not in capsys.readouterr().out


class _FlushRecorder(io.StringIO):
    """sys.stdout that records what it held at each flush."""

    def __init__(self):
        super().__init__()
        self.flushed = []

    def flush(self):
        self.flushed.append(self.getvalue())
        super().flush()


def test_the_header_is_flushed_before_training_starts(tmp_path, monkeypatch):
    # A piped log (tee, nohup) shows which stage runs before its first epoch ends.
    stdout = _FlushRecorder()
    monkeypatch.setattr("sys.stdout", stdout)
    _Run(tmp_path).fit(epochs=1, header="stage 1 of 2", verbose=2)
    assert stdout.flushed[0] == "stage 1 of 2\n"


def test_settings_are_taken_by_keyword_only(tmp_path):
    # epochs and steps_per_epoch are both ints: by position they could be swapped unseen.
    run = _Run(tmp_path)
    model = _model()
    with pytest.raises(TypeError):
        resumable.fit(model, run.strategy, EPOCHS, 1, folder=run.folder, trackables={},
                      make_dataset=run.make_dataset, record=lambda *_: {}, what="stage 1")


class _SecondWorker:
    """The default strategy, seen as worker 1 of two (not the chief): its own
    input pipeline through `distribute_datasets_from_function`."""

    def __init__(self):
        self._strategy = tf.distribute.get_strategy()
        self.cluster_resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec({"worker": ["a:1", "b:1"]}), task_type="worker", task_id=1)
        self.input_context = tf.distribute.InputContext(2, 1, 2)

    def scope(self):
        return self._strategy.scope()

    def distribute_datasets_from_function(self, make_dataset):
        return make_dataset(self.input_context)


def _contents(folder):
    return {path.relative_to(folder): path.read_bytes() for path in folder.rglob("*")
            if path.is_file()}


def test_a_worker_resumes_from_the_chiefs_folder_and_writes_nothing_there(tmp_path, monkeypatch,
                                                                           capsys):
    chief = _Run(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        chief.fit(callbacks=[helpers.interrupt_after_epoch(2)])
    before = _contents(tmp_path)
    scratch = tmp_path.parent / (tmp_path.name + "-scratch")
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    worker = _Run(tmp_path, strategy=_SecondWorker())
    recorder, began = helpers.epochs_begun()
    assert worker.fit(header="stage 1 of 2", verbose=2, callbacks=[recorder]) == []
    assert began == [3, 4, 5]
    assert worker.dataset_calls == [(2, worker.strategy.input_context)]
    assert _contents(tmp_path) == before  # its checkpoints went to a scratch folder
    assert os.listdir(scratch) == []  # removed at the end
    assert capsys.readouterr().out == ""  # only the chief prints
