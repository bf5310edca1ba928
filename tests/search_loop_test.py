import json
import os

import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import config as config_lib
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import pipelines
from stacnas_tf import run_folder
from stacnas_tf import search_loop as search
from stacnas_tf import search_space
from stacnas_tf import sources

import helpers

TINY = config_lib.SearchConfig(
    dataset="digits", stage1_cells=3, stage2_cells=3, stage1_epochs=2, stage2_epochs=1,
    batch_size=32, channels=4, num_train_examples=64, seed=3, arch_lr=3e-2,
)

# digits names its classes as scikit-learn does; a search records them.
DIGITS = tuple(str(digit) for digit in range(10))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("search"))
    tf.config.experimental.enable_op_determinism()
    return out, search.run_search(TINY, out, verbose=0)


def test_end_to_end_outputs(finished):
    out, genotype = finished
    assert genotype_lib.Genotype.from_json(open(os.path.join(out, "genotype.json")).read()) == genotype
    assert helpers.read_json(os.path.join(out, "config.json")) == TINY.replace(
        class_names=DIGITS).to_dict()
    stage1 = helpers.read_json(os.path.join(out, "stage1", "result.json"))
    assert set(stage1["logits"]) == {"normal", "reduce"}
    edge = stage1["logits"]["normal"][0]
    assert edge["candidates"] == ["none", "skip_connect", "max_pool_3x3", "sep_conv_3x3", "dil_conv_3x3"]
    assert abs(sum(edge["weights"]) - 1) < 1e-5 and len(edge["logits"]) == 5
    assert len(stage1["activated_groups"]["normal"]) == 14
    stage2 = helpers.read_json(os.path.join(out, "stage2", "result.json"))
    # stage 2 searches inside the group stage 1 activated on each edge
    for groups, edge in zip(stage1["activated_groups"]["normal"], stage2["logits"]["normal"]):
        assert edge["candidates"] == ["none"] + groups
    # ... and that group is the one of the strongest non-`none` stage-1 op.
    for name in ("normal", "reduce"):
        for edge, groups in zip(stage1["logits"][name], stage1["activated_groups"][name]):
            strongest = max((w, op) for op, w in zip(edge["candidates"], edge["weights"]) if op != "none")
            assert strongest[1] in groups
    # The genotype is derived from the final (stage-2) weights.
    stage2_space = search_space.StageSpace.from_dict(stage2["space"])
    weights = [[e["weights"] for e in stage2["logits"][name]] for name in ("normal", "reduce")]
    assert genotype == genotype_lib.derive_genotype(stage2_space, weights, TINY.stage2_cells)
    history = helpers.read_json(os.path.join(out, "stage1", "history.json"))
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[0]["lr"] > history[1]["lr"] > 0
    assert history[0]["logits"]["normal"] != history[1]["logits"]["normal"]  # alpha trained
    assert all(0 <= h["accuracy"] <= 1 and h["loss"] > 0 for h in history)
    graph = helpers.read_json(os.path.join(out, "genotype_graph.json"))
    assert len(graph["normal"]["edges"]) == 12
    assert genotype_lib.Genotype.from_darts(open(os.path.join(out, "genotype.txt")).read()) == genotype
    events = [f for _, _, fs in os.walk(os.path.join(out, "tensorboard")) for f in fs]
    assert any(f.startswith("events.out.tfevents") for f in events)


def test_resume_equals_uninterrupted(finished, tmp_path):
    reference_dir, reference = finished
    out = str(tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        search.run_search(TINY, out, verbose=0, callbacks=[helpers.interrupt_after_epoch(1)])
    assert not os.path.exists(os.path.join(out, "genotype.json"))
    assert len(helpers.read_json(os.path.join(out, "stage1", "history.json"))) == 1
    recorder, began = helpers.epochs_begun()
    resumed = search.run_search(TINY, out, verbose=0, callbacks=[recorder])
    assert began == [2, 1]  # stage 1 after its saved epoch, then stage 2
    assert resumed == reference
    for stage in ("stage1", "stage2"):
        got = helpers.read_json(os.path.join(out, stage, "result.json"))["logits"]
        want = helpers.read_json(os.path.join(reference_dir, stage, "result.json"))["logits"]
        for name in want:
            for a, b in zip(got[name], want[name]):
                assert a["candidates"] == b["candidates"]
                assert a["logits"] == pytest.approx(b["logits"], abs=1e-6)
    assert helpers.read_json(os.path.join(out, "stage1", "history.json"))[1]["lr"] == pytest.approx(
        helpers.read_json(os.path.join(reference_dir, "stage1", "history.json"))[1]["lr"])


def test_other_config_on_same_folder_is_refused_and_outputs_kept(finished):
    out, _ = finished
    before = open(os.path.join(out, "genotype.json")).read()
    with pytest.raises(ValueError, match="stage1_epochs=2 there, 5 now"):
        search.run_search(TINY.replace(stage1_epochs=5), out, verbose=0)
    assert open(os.path.join(out, "genotype.json")).read() == before
    assert helpers.read_json(os.path.join(out, "config.json")) == TINY.replace(
        class_names=DIGITS).to_dict()


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="--output_dir"):
        search.run_search(TINY, str(blocker / "run"), verbose=0)
    with pytest.raises(ValueError, match="not a folder"):
        search.run_search(TINY, str(blocker), verbose=0)
    assert blocker.read_text() == "not a folder"


def test_missing_data_files_leave_no_config(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="fashion_mnist"):
        search.run_search(TINY.replace(dataset="fashion_mnist"), str(out), data_dir=str(tmp_path), verbose=0)
    assert not (out / "config.json").exists()


@pytest.mark.parametrize("field,value,flag", [
    ("stage1_cells", 0, "--stage1_cells"), ("stage2_epochs", -1, "--stage2_epochs"),
    ("dataset", "svhn", "--dataset"), ("channels", 3, "--channels"), ("image_size", 10, "--image_size"),
    ("optimization", "second_order", "--optimization"), ("grouping", "none", "--grouping"),
    ("seed", -1, "--seed"), ("seed", 1.5, "--seed"), ("stage1_cells", 1, "--stage1_cells.*no normal cell"),
    ("stage2_cells", 2, "--stage2_cells.*no normal cell"),
])
def test_bad_config_values_name_the_flag(field, value, flag):
    with pytest.raises(ValueError, match=flag):
        TINY.replace(**{field: value})


def test_a_folder_in_use_by_another_search_is_refused(tmp_path):
    from stacnas_tf import files

    with files.output_lock(str(tmp_path)):
        with pytest.raises(ValueError, match="in use by another run"):
            search.run_search(TINY, str(tmp_path), verbose=0)
    assert os.listdir(tmp_path) == []  # nothing written by the refused run


def test_a_folder_that_holds_no_search_is_refused(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "export_report.json").write_text("{}")
    with pytest.raises(ValueError, match="is not empty .* and holds no search"):
        search.run_search(TINY, str(tmp_path), verbose=0)
    assert sorted(os.listdir(tmp_path)) == ["cat", "export_report.json"]


def test_darts_ablation_flat_bi_level_search(tmp_path):
    config = TINY.replace(grouping="flat", optimization="bi_level", stage1_epochs=1,
                          batch_size=16, num_train_examples=64)
    genotype = search.run_search(config, str(tmp_path), verbose=0)
    assert not (tmp_path / "stage2").exists()
    stage1 = helpers.read_json(tmp_path / "stage1" / "result.json")
    assert stage1["logits"]["normal"][0]["candidates"] == [
        "none", "skip_connect", "max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3", "sep_conv_5x5",
        "dil_conv_3x3", "dil_conv_5x5"]
    history = helpers.read_json(tmp_path / "stage1" / "history.json")
    assert len(history) == 1
    # The genotype is derived from the flat stage's own weights.
    weights = [[e["weights"] for e in stage1["logits"][name]] for name in ("normal", "reduce")]
    space = search.search_space.StageSpace.from_dict(stage1["space"])
    assert genotype == genotype_lib.derive_genotype(space, weights, config.stage1_cells)
    assert helpers.read_json(tmp_path / "config.json")["optimization"] == "bi_level"


def test_config_files_of_older_versions_still_resume(finished):
    out, _ = finished
    saved = helpers.read_json(os.path.join(out, "config.json"))
    older = {k: v for k, v in saved.items() if k not in ("optimization", "grouping")}
    path = os.path.join(out, "config.json")
    with open(path, "w") as f:
        json.dump(older, f)
    try:
        folder = run_folder.SearchFolder(out)
        folder.check_run(TINY)  # defaults fill the missing fields
        with pytest.raises(ValueError, match="grouping"):
            folder.check_run(TINY.replace(grouping="flat"))
    finally:
        with open(path, "w") as f:
            json.dump(saved, f)


def _torch_adam(params, grads_per_step, lr, beta_1, beta_2, eps):
    """PyTorch's Adam (DARTS's architecture optimizer), in numpy."""
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    params = [p.copy() for p in params]
    for t, grads in enumerate(grads_per_step, start=1):
        for i, g in enumerate(grads):
            m[i] = beta_1 * m[i] + (1 - beta_1) * g
            v[i] = beta_2 * v[i] + (1 - beta_2) * g * g
            denominator = np.sqrt(v[i]) / np.sqrt(1 - beta_2 ** t) + eps
            params[i] = params[i] - lr / (1 - beta_1 ** t) * m[i] / denominator
    return params


def test_search_steps_follow_darts_optimizers_and_decays():
    """The search's own supernet and optimizers (paper defaults): over three steps
    alpha follows Adam(lr 3e-4, betas 0.5/0.999, eps 1e-8) on gradients that
    include 1e-3 * alpha, and the weights' gradients include 3e-4 * w."""
    config = config_lib.SearchConfig(dataset="digits", stage1_cells=3, channels=4, batch_size=8)
    stage = search_space.stage1_space(config.space, 3, per_cell=False)
    net = search.build_supernet(config, 1, stage, 3, 10, (8, 8, 1))
    schedule, weight_optimizer, architecture_optimizer = search.make_optimizers(config, 10, 2)
    net.compile(weight_optimizer, architecture_optimizer)
    assert float(schedule(0)) == pytest.approx(0.025) and float(schedule(20)) == pytest.approx(0.001)
    assert weight_optimizer.momentum == 0.9
    rng = np.random.RandomState(0)
    x, y = helpers.random_batch(8, seed=rng)
    # The decay terms, against the raw gradients.
    with tf.GradientTape() as tape:
        loss = net.compute_loss(x=x, y=y, y_pred=net(x, training=True), training=True)
    raw = tape.gradient(loss, net.architecture_variables)
    _, _, weight_grads, arch_grads, norm = net.one_level_gradients(x, y)
    for got, g, alpha in zip(arch_grads, raw, net.architecture_variables):
        np.testing.assert_allclose(got.numpy(), g.numpy() + 1e-3 * alpha.numpy(), rtol=1e-4, atol=1e-9)
    with tf.GradientTape() as tape:
        loss = net.compute_loss(x=x, y=y, y_pred=net(x, training=True), training=True)
    raw = tape.gradient(loss, net.weight_variables)
    scale = min(1.0, 5.0 / float(norm))  # global-norm clipping at 5, before the decay
    for got, g, w in list(zip(weight_grads, raw, net.weight_variables))[:20]:
        np.testing.assert_allclose(got.numpy(), scale * g.numpy() + 3e-4 * w.numpy(), rtol=1e-3,
                                   atol=1e-7)
    # Three steps: alpha moves at every one, as PyTorch's Adam moves it.
    initial = [v.numpy().copy() for v in net.architecture_variables]
    grads = []
    for step in range(3):
        batch = helpers.random_batch(8, seed=rng)
        grads.append([g.numpy() for g in net.one_level_gradients(*batch)[3]])
        before = [v.numpy().copy() for v in net.architecture_variables]
        net.train_on_batch(*batch)
        assert all(np.abs(v.numpy() - b).max() > 1e-5 for v, b in zip(net.architecture_variables, before))
    expected = _torch_adam(initial, grads, 3e-4, 0.5, 0.999, 1e-8)
    for got, want, start in zip(net.architecture_variables, expected, initial):
        np.testing.assert_allclose(got.numpy() - start, want - start, rtol=0.02, atol=3e-6)


def test_alpha_rate_is_zero_through_the_warm_up_then_arch_lr():
    assert search.architecture_lr(TINY, steps_per_epoch=5) == TINY.arch_lr
    schedule = search.architecture_lr(
        TINY.replace(stage2_epochs=2, arch_warmup_epochs=1), steps_per_epoch=5)
    # Adam reads the rate at its step count before the update: steps 0-4 are epoch 1.
    assert [float(schedule(step)) for step in range(7)] == [0.0] * 5 + [
        pytest.approx(TINY.arch_lr)] * 2


def test_warm_up_holds_alpha_and_short_epochs_continue_the_stream(tmp_path, monkeypatch):
    config = TINY.replace(stage1_epochs=3, stage2_epochs=2, arch_warmup_epochs=1, steps_per_epoch=3)
    pipeline, batches = pipelines.train_pipeline, []

    def counted(*args, **kwargs):
        dataset = pipeline(*args, **kwargs)
        batches.append(int(dataset.cardinality()))
        return dataset

    monkeypatch.setattr(pipelines, "train_pipeline", counted)
    search.run_search(config, str(tmp_path), verbose=0, report=False)
    # Each stage's stream holds exactly its steps (3 epochs x 3, 2 x 3), more than a pass
    # (2 batches): the stream goes on instead of restarting the pass each epoch.
    assert batches == [9, 6]
    source = sources.load(config.dataset, "train")
    initial = search.build_supernet(config, 1, search_space.stage1_space(config.space, 3, False),
                                    3, source.num_classes, (8, 8, 1)).logit_values()
    history = helpers.read_json(os.path.join(tmp_path, "stage1", "history.json"))
    stage2 = helpers.read_json(os.path.join(tmp_path, "stage2", "history.json"))
    assert [len(history), len(stage2)] == [3, 2]
    initial_logits = [[logits for _, logits, _ in edges] for edges in initial]
    # Epoch 1 is the warm-up: alpha where it started; then it moves.
    np.testing.assert_allclose([history[0]["logits"][name] for name in ("normal", "reduce")],
                               initial_logits, rtol=0, atol=1e-7)
    assert history[1]["logits"]["normal"] != history[0]["logits"]["normal"]
    assert stage2[1]["logits"]["normal"] != stage2[0]["logits"]["normal"]
    # The weights' cosine runs over the stage's 3 x 3 steps, not over passes of the data.
    schedule = search.make_optimizers(config, 3, 3)[0]
    assert [h["lr"] for h in history] == pytest.approx([float(schedule(s)) for s in (3, 6, 9)])


def test_a_users_tensorboard_callback_gets_one_run_per_stage(tmp_path):
    import glob

    import keras

    logs = str(tmp_path / "logs")
    board = keras.callbacks.TensorBoard(log_dir=logs)
    search.run_search(TINY.replace(stage1_epochs=1), str(tmp_path / "search"), verbose=0,
                      report=False, callbacks=[board])
    runs = sorted({os.path.relpath(os.path.dirname(p), logs).split(os.sep)[0]
                   for p in glob.glob(os.path.join(logs, "**", "events.out.tfevents*"),
                                      recursive=True)})
    assert runs == ["stage1", "stage2"]
    assert board.stacnas_base_log_dir == logs
