import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import augmentation
from stacnas_tf import config as config_lib
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import network as network_lib
from stacnas_tf import sources as sources_lib
from stacnas_tf import training as train

import helpers

TINY = config_lib.TrainConfig(
    genotype="DARTS_V2", dataset="digits", channels=8, num_cells=3, epochs=3, batch_size=32,
    lr=0.05, cutout=2, drop_path=0.2, aux_weight=0.0, seed=1,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tf.config.experimental.enable_op_determinism()
    out = str(tmp_path_factory.mktemp("train"))
    return out, train.run_training(TINY, out, verbose=0)


def test_tiny_training_on_digits_beats_chance(trained):
    out, metrics = trained
    assert metrics["top1"] > 0.5  # chance is 0.1
    assert metrics["top5"] > metrics["top1"]
    assert helpers.read_json(os.path.join(out, "metrics.json")) == metrics
    history = helpers.read_json(os.path.join(out, "history.json"))
    assert [h["epoch"] for h in history] == [1, 2, 3]
    # drop path ramps linearly over training: max * epoch / epochs at each epoch's start
    assert [h["drop_path_rate"] for h in history] == pytest.approx([0.0, 0.2 / 3, 0.4 / 3])
    assert history[0]["lr"] > history[1]["lr"] > history[2]["lr"]
    assert "val_accuracy" in history[0]


def test_evaluate_reads_the_folder(trained):
    out, metrics = trained
    result = train.evaluate(out)
    assert result["top1"] == pytest.approx(metrics["top1"], abs=1e-6)
    assert result["examples"] == 360


def test_resume_continues_the_schedule(trained, tmp_path):
    reference_dir, reference = trained
    out = str(tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        train.run_training(TINY, out, verbose=0, callbacks=[helpers.interrupt_after_epoch(1)])
    assert [h["epoch"] for h in helpers.read_json(os.path.join(out, "history.json"))] == [1]
    recorder, began = helpers.epochs_begun()
    resumed = train.run_training(TINY, out, verbose=0, callbacks=[recorder])
    assert began == [2, 3]  # after the saved epoch, not from the start
    want = helpers.read_json(os.path.join(reference_dir, "history.json"))
    got = helpers.read_json(os.path.join(out, "history.json"))
    assert [h["lr"] for h in got] == pytest.approx([h["lr"] for h in want])  # same lr at the same step
    assert got[2]["loss"] == pytest.approx(want[2]["loss"], rel=1e-4)
    assert resumed["top1"] == pytest.approx(reference["top1"], abs=1e-6)


def test_other_genotype_on_the_folder_is_refused(trained):
    out, _ = trained
    before = open(os.path.join(out, "metrics.json")).read()
    with pytest.raises(ValueError, match="another genotype"):
        train.run_training(TINY.replace(genotype="DARTS_V1"), out, verbose=0)
    with pytest.raises(ValueError, match="not the genotype the checkpoints"):
        train.evaluate(out, genotype=genotype_lib.resolve("DARTS_V1"))
    with pytest.raises(ValueError, match="epochs=3 there, 5 now"):
        train.run_training(TINY.replace(epochs=5), out, verbose=0)
    assert open(os.path.join(out, "metrics.json")).read() == before


def test_checkpoint_of_another_network_gives_a_clear_error(trained, tmp_path):
    out, _ = trained
    other = str(tmp_path / "other")
    os.makedirs(other)
    config = TINY.replace(genotype="DARTS_V1", epochs=1)
    with open(os.path.join(other, "config.json"), "w") as f:
        json.dump(config.to_dict(), f)
    from stacnas_tf import genotype as genotype_lib
    with open(os.path.join(other, "genotype.json"), "w") as f:
        f.write(genotype_lib.PUBLISHED["DARTS_V1"].to_json())
    checkpoint = tf.train.latest_checkpoint(os.path.join(out, "checkpoints"))
    with pytest.raises(ValueError, match="does not fit this network"):
        train.evaluate(other, checkpoint_path=checkpoint)


@pytest.mark.parametrize("damage,message", [
    (lambda path: path.write_text(json.dumps(json.loads(path.read_text())[:1])),
     "records 1 epoch\\(s\\), but the checkpoint holds 3"),
    (lambda path: path.write_text("{}"), "is not a history"),
    (lambda path: path.write_text(json.dumps([{"epoch": 2}, {"epoch": 1}, {"epoch": 3}])),
     "is not a history"),
    (lambda path: path.unlink(), "is missing, but the checkpoint holds 3 epoch"),
])
def test_a_damaged_history_is_refused_on_resume_not_left_with_gaps(trained, tmp_path, damage,
                                                                  message):
    import shutil

    out, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "metrics.json").unlink()  # an unfinished training, as after a crash
    damage(copy / "history.json")
    with pytest.raises(ValueError, match=f"^training: .*history.json {message}.*restore it, or "
                                         "move .*checkpoints away"):
        train.run_training(TINY, str(copy), verbose=0)


def test_a_genotype_json_edited_after_training_is_refused(trained, tmp_path):
    # max_pool <-> avg_pool: no weights differ, so the checkpoint alone cannot tell.
    import shutil

    out, _ = trained
    edited = tmp_path / "edited"
    shutil.copytree(out, edited)
    text = (edited / "genotype.json").read_text()
    assert "max_pool_3x3" in text
    (edited / "genotype.json").write_text(text.replace("max_pool_3x3", "avg_pool_3x3"))
    with pytest.raises(ValueError, match="genotype.json holds .*avg_pool_3x3.* but checkpoint "
                                         ".*ckpt-3 was trained with .*max_pool_3x3"):
        train.evaluate(str(edited))


def test_a_missing_checkpoint_is_named_not_blamed_on_the_network(trained, tmp_path):
    out, _ = trained
    missing = str(tmp_path / "ckpt-7")
    with pytest.raises(FileNotFoundError, match=r"--checkpoint: .*ckpt-7 is not a readable "
                                                r"checkpoint \(expected .*ckpt-7.index.*holds: "
                                                r".*ckpt-3"):
        train.evaluate(out, checkpoint_path=missing)


def test_evaluate_takes_the_bounds_it_names(trained, capsys):
    out, _ = trained
    # Quiet, and every argument after the split by name only.
    assert train.evaluate(out, split="test", num_examples=32)["examples"] == 32
    assert capsys.readouterr().out == ""
    with pytest.raises(TypeError):
        train.evaluate(out, "test", None)
    # The digits test split has 360 images: all of them, or fewer, in batches of one.
    assert train.evaluate(out, num_examples=360)["examples"] == 360
    assert train.evaluate(out, num_examples=3, batch_size=1)["examples"] == 3
    with pytest.raises(ValueError, match="--num_examples=361: the test split has 360 examples"):
        train.evaluate(out, num_examples=361)
    # The folder's genotype read back from JSON is a copy, not the same object: equal.
    copy = genotype_lib.Genotype.from_json(genotype_lib.PUBLISHED["DARTS_V2"].to_json())
    assert copy is not genotype_lib.PUBLISHED["DARTS_V2"]
    assert train.evaluate(out, genotype=copy, num_examples=32)["examples"] == 32


def _load_and_drop(out, caplog, **kwargs):
    """The checkpoint path `load_network` read, and TensorFlow's "unrestored
    values" warnings once the network is collected."""
    import gc

    net, path = train.load_network(out, 10, (8, 8, 1), **kwargs)
    del net
    gc.collect()
    return path, [r for r in caplog.records if "unrestored" in r.getMessage()]


def test_loading_a_trained_network_does_not_warn_of_the_optimizers_left_out(trained, caplog):
    # The checkpoint holds the optimizers too; the network alone restores part
    # of it on purpose, so TensorFlow's "unrestored values" warning would be noise.
    out, _ = trained
    path, warnings = _load_and_drop(out, caplog)
    assert path.endswith("ckpt-3")
    assert not warnings


def _array_sources(channels=(1, 1), seed=0):
    images = np.random.default_rng(seed).integers(0, 256, (96, 8, 8, 1))
    labels = np.arange(96) % 4
    train_images, test_images = (np.repeat(part, count, axis=-1) for part, count in
                                 zip((images[:64], images[64:]), channels))
    return (sources_lib.from_arrays(train_images, labels[:64], split="train"),
            sources_lib.from_arrays(test_images, labels[64:], split="test"))


def test_images_given_in_python_are_checked_between_splits_and_on_resume(tmp_path, capsys):
    config = TINY.replace(epochs=1, channels=4, cutout=0)
    out = str(tmp_path / "run")
    # Height and width are 8: a message reading either as the channels would say 8.
    with pytest.raises(ValueError, match=r"in_memory: the test images have 3 channel\(s\), the "
                                         r"train images 1: give both splits as grey"):
        train.run_training(config, out, verbose=0, sources=_array_sources(channels=(1, 3)))
    first = train.run_training(config, out, verbose=2, sources=_array_sources())
    # The header says what runs: 64 images in batches of 32, no XLA unless asked.
    assert capsys.readouterr().out.startswith(
        f"Training 3 cells, C=4: {first['parameters']:,} parameters (without auxiliary head), "
        f"1 epochs of 2 steps, 1 replica(s), {config.precision}\n")
    assert train.run_training(config, out, verbose=0, sources=_array_sources()) == first
    with pytest.raises(ValueError, match="on other images .the test and train images differ"):
        train.run_training(config, out, verbose=0, sources=_array_sources(seed=1))


def test_imagenet_stem_needs_both_sides_multiples_of_32():
    config = TINY.replace(network="imagenet", cutout=16)
    train.check_recipe_fits_images(config, (64, 96, 3))
    for shape in ((64, 80, 3), (80, 64, 3), (80, 80, 3)):
        with pytest.raises(ValueError, match="--network=imagenet: .* multiples of 32"):
            train.check_recipe_fits_images(config, shape)
    # A cutout square must be smaller than the shorter side (16 on 17x64 fits).
    train.check_recipe_fits_images(TINY.replace(cutout=16), (17, 64, 3))
    for side in (16, 12):
        with pytest.raises(ValueError, match="--cutout=16: .* expected a side below " + str(side)):
            train.check_recipe_fits_images(TINY.replace(cutout=16), (side, 64, 3))


def test_deformable_training_moves_edge_scales(tmp_path):
    config = TINY.replace(deformable=True, epochs=1, num_train_examples=256, arch_lr=1e-2)
    train.run_training(config, str(tmp_path), verbose=0)
    history = helpers.read_json(os.path.join(tmp_path, "history.json"))
    scales = history[0]["edge_scales"]
    assert len(scales) == 3 and len(scales[0]) == 8
    assert max(abs(s - 0.5) for cell in scales for s in cell) > 1e-3
    # The checkpoint holds the edge logits' Adam moments, so a resumed run goes on with them.
    checkpoint = tf.train.latest_checkpoint(os.path.join(tmp_path, "checkpoints"))
    names = [name for name, _ in tf.train.list_variables(checkpoint)]
    moments = [n for n in names if n.startswith("architecture_optimizer/") and "VARIABLE_VALUE" in n]
    assert len(moments) >= 2 * 3  # first and second moments of 3 cells' logits (and the counter)
    reader = tf.train.load_checkpoint(checkpoint)
    assert max(np.abs(reader.get_tensor(n)).max() for n in moments) > 0


# What DARTS's recipes apply (train_search/train.py/train_imagenet.py of the DARTS code).
@pytest.mark.parametrize("preset,expected", [
    ("base", augmentation.Augment(crop_padding=4, flip=True, cutout=16)),
    ("fancy", augmentation.Augment(crop_padding=4, flip=True, autoaugment=True, cutout=16)),
    ("imagenet_base", augmentation.Augment(flip=True, random_resized_crop=True, color_jitter=True)),
    ("default", augmentation.Augment(cutout=4)),
    ("smoke", augmentation.Augment(cutout=2)),
])
def test_each_training_preset_applies_its_recipes_augmentation(preset, expected):
    assert train.train_augment(config_lib.TRAIN_PRESETS[preset]) == expected


def test_learning_rate_schedules_end_where_the_recipe_says():
    config = TINY.replace(lr=0.1, lr_min=0.002, epochs=4)
    schedule = train.lr_schedule(config, steps_per_epoch=5)
    assert float(schedule(0)) == pytest.approx(0.1)
    assert float(schedule(20)) == pytest.approx(0.002)
    assert float(schedule(10)) == pytest.approx(0.002 + 0.5 * (0.1 - 0.002) * (1 + np.cos(np.pi / 2)))
    imagenet = train.lr_schedule(config_lib.TRAIN_PRESETS["imagenet_base"], steps_per_epoch=5)
    assert float(imagenet(4)) == pytest.approx(0.1) and float(imagenet(5)) == pytest.approx(0.097)


def test_final_network_step_adds_decay_and_weighted_auxiliary_loss():
    """One SGD step of lr 1 (no momentum, no clipping): every weight moves by
    -(gradient of loss + aux_weight x auxiliary loss) - weight_decay x w."""
    config = TINY.replace(aux_weight=0.4, weight_decay=3e-3, grad_clip_norm=1e9, drop_path=0.0,
                          momentum=0.0, lr=1.0, lr_min=1.0)
    keras.utils.set_random_seed(0)
    net = network_lib.build(config, genotype_lib.PUBLISHED["DARTS_V2"], 10, (32, 32, 3))
    train.compile_network(net, config, steps_per_epoch=1)
    x, y = helpers.random_batch(4, side=32, channels=3)
    variables = net.weight_variables
    before = [v.numpy().copy() for v in variables]
    with tf.GradientTape(persistent=True) as tape:
        logits, aux_logits = net(x, training=True)
        main = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        aux = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, aux_logits, from_logits=True))
    main_grads = [0.0 if g is None else g for g in tape.gradient(main, variables)]
    aux_grads = [0.0 if g is None else g for g in tape.gradient(aux, variables)]
    net.train_on_batch(x, y)
    head = {id(v) for v in net.auxiliary_head.trainable_variables}
    checked = 0
    for v, b, g_main, g_aux in zip(variables, before, main_grads, aux_grads):
        expected = b - (np.asarray(g_main) + 0.4 * np.asarray(g_aux) + 3e-3 * b)
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-3, atol=2e-5, err_msg=v.path)
        checked += id(v) in head
    assert checked == len(head) > 0


def test_a_folder_in_use_by_another_training_is_refused(tmp_path):
    from stacnas_tf import files

    with files.output_lock(str(tmp_path)):
        with pytest.raises(ValueError, match="in use by another run"):
            train.run_training(TINY, str(tmp_path), verbose=0)
    assert os.listdir(tmp_path) == []


def test_a_failed_start_leaves_nothing_and_the_corrected_rerun_works(tmp_path):
    out = tmp_path / "run"
    # The auxiliary head needs an 8x8 map: 8x8 digits are too small, found while building.
    with pytest.raises(ValueError, match="auxiliary head needs a map of at least 8x8"):
        train.run_training(TINY.replace(aux_weight=0.4, epochs=1), str(out), verbose=0)
    assert not out.exists()
    # The same genotype by file instead of by name is the same run.
    genotype_file = tmp_path / "g.json"
    genotype_file.write_text(genotype_lib.PUBLISHED["DARTS_V2"].to_json())
    config = TINY.replace(epochs=1, num_train_examples=64, num_eval_examples=32)
    first = train.run_training(config, str(out), verbose=0)
    assert train.run_training(config.replace(genotype=str(genotype_file)), str(out), verbose=0) == first


def test_a_search_folder_is_no_training_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(config_lib.PRESETS["smoke"].to_dict()))
    with pytest.raises(ValueError, match="--train_dir: .* is not a training run's settings .a search"):
        train.evaluate(str(tmp_path))
    with pytest.raises(ValueError, match="not a training run's settings"):
        train.run_training(TINY, str(tmp_path), verbose=0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="neither a published genotype"):
        train.run_training(TINY.replace(genotype="NOPE"), "/tmp/unused-stacnas-run", verbose=0)
    assert not os.path.exists("/tmp/unused-stacnas-run/config.json")
    with pytest.raises(ValueError, match="--lr_schedule"):
        TINY.replace(lr_schedule="step")
    with pytest.raises(ValueError, match="--epochs"):
        TINY.replace(epochs=0)
    for field, value in (("seed", -1), ("image_size", -4), ("image_size", 0),
                         ("num_train_examples", 0), ("num_train_examples", -5),
                         ("num_eval_examples", 0)):
        with pytest.raises(ValueError, match=f"--{field}"):
            TINY.replace(**{field: value})
    with pytest.raises(ValueError, match="--train_dir"):
        train.evaluate("/nonexistent-train-dir")
    for flag, kwargs in (("--batch_size", {"batch_size": 0}), ("--num_examples", {"num_examples": -5})):
        with pytest.raises(ValueError, match=flag):
            train.evaluate("/nonexistent-train-dir", **kwargs)


def test_compile_network_uses_xla_only_when_asked():
    net = network_lib.build(TINY, genotype_lib.PUBLISHED["DARTS_V2"], 10, (8, 8, 1))
    # Asked for, not granted: Keras turns XLA off under op determinism (the
    # trained fixture's), so the request is read from the compile config.
    train.compile_network(net, TINY, steps_per_epoch=1)
    assert net.get_compile_config()["jit_compile"] is False
    train.compile_network(net, TINY, steps_per_epoch=1, jit_compile=True)
    assert net.get_compile_config()["jit_compile"] is True


def test_a_folder_holding_other_files_is_refused_before_the_images_are_read(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    # The images do not fit each other either: the folder is named first.
    with pytest.raises(ValueError, match=r"is not empty \(notes.txt\) and holds no training"):
        train.run_training(TINY, str(tmp_path), verbose=0, sources=_array_sources(channels=(1, 3)))
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_a_worker_checks_the_chiefs_settings_before_answering(trained, monkeypatch):
    # A non-chief worker of a multi-worker run writes nothing: it must still
    # refuse a folder the chief trained with other settings, not answer with
    # the chief's metrics.
    out, _ = trained
    monkeypatch.setattr(train.strategy_lib, "is_chief", lambda strategy: False)
    with pytest.raises(ValueError, match="epochs=3 there, 4 now"):
        train.run_training(TINY.replace(epochs=4), out, verbose=0)


def test_a_worker_checks_the_class_names_its_images_bring(trained, tmp_path, monkeypatch):
    # The names are known once the images are: a worker given images of other
    # classes than the chief's is refused before it trains.
    import shutil

    out, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "metrics.json").unlink()  # unfinished, as after a crash
    images, labels = helpers.random_batch(64, classes=10)
    names = [f"class_{i}" for i in range(10)]
    other = tuple(sources_lib.from_arrays(images, labels, class_names=names, split=split)
                  for split in ("train", "test"))
    monkeypatch.setattr(train.strategy_lib, "is_chief", lambda strategy: False)
    with pytest.raises(ValueError, match="class_names"):
        train.run_training(TINY, str(copy), verbose=0, sources=other)


def test_metrics_count_the_auxiliary_head_apart(tmp_path):
    # 32x32 images leave the auxiliary head an 8x8 map (8x8 digits are too small).
    images, labels = helpers.random_batch(64, side=32, channels=3, classes=4)
    data = tuple(sources_lib.from_arrays(images, labels, split=split) for split in ("train", "test"))
    config = TINY.replace(epochs=1, channels=4, cutout=0, aux_weight=0.4)
    metrics = train.run_training(config, str(tmp_path / "run"), verbose=0, sources=data)
    net = network_lib.build(config, genotype_lib.PUBLISHED["DARTS_V2"], 4, (32, 32, 3))
    assert (metrics["parameters"], metrics["parameters_with_auxiliary"]) == (
        net.parameter_count(), net.parameter_count(include_auxiliary=True))
    assert metrics["parameters_with_auxiliary"] > metrics["parameters"]


def test_the_architecture_optimizer_is_the_darts_adam():
    # quark0/darts architect.py: Adam(arch_lr, betas=(0.5, 0.999)) (eps PyTorch's 1e-8).
    config = TINY.replace(deformable=True, arch_lr=3e-4)
    net = network_lib.build(config, genotype_lib.PUBLISHED["DARTS_V2"], 10, (8, 8, 1))
    _, _, adam = train.compile_network(net, config, steps_per_epoch=1)
    assert (type(adam), float(adam.learning_rate), adam.beta_1, adam.beta_2, adam.epsilon) == (
        keras.optimizers.Adam, pytest.approx(3e-4), 0.5, 0.999, 1e-8)


def test_a_network_name_read_at_run_time_is_checked_as_well():
    # A flag's value is built at run time, not interned as the literals are.
    config = TINY.replace(network="".join(["image", "net"]))
    with pytest.raises(ValueError, match="--network=imagenet"):
        train.check_recipe_fits_images(config, (64, 80, 3))


def test_a_quiet_training_prints_nothing(tmp_path, capsys):
    config = TINY.replace(epochs=1, channels=4, cutout=0)
    train.run_training(config, str(tmp_path / "run"), verbose=0, sources=_array_sources())
    assert capsys.readouterr().out == ""


def test_load_network_takes_the_checkpoint_and_head_by_name_only(trained):
    out, _ = trained
    net, path = train.load_network(trained=out, num_classes=10, image_shape=(8, 8, 1))
    assert path.endswith("ckpt-3") and net.auxiliary_head is None
    with pytest.raises(TypeError):
        train.load_network(out, 10, (8, 8, 1), path)


def test_a_schedule_name_read_at_run_time_picks_the_same_schedule():
    config = TINY.replace(lr_schedule="".join(["cos", "ine"]))
    assert isinstance(train.lr_schedule(config, 10), keras.optimizers.schedules.CosineDecay)


def test_other_training_images_alone_are_enough_to_refuse(tmp_path):
    config = TINY.replace(epochs=1, channels=4, cutout=0)
    out = str(tmp_path / "run")
    train.run_training(config, out, verbose=0, sources=_array_sources())
    same_train, same_test = _array_sources()
    other_train, _ = _array_sources(seed=1)
    with pytest.raises(ValueError, match=r"on other images \(the train images differ"):
        train.run_training(config, out, verbose=0, sources=(other_train, same_test))
    with pytest.raises(ValueError, match=r"on other images \(the test images differ"):
        train.run_training(config, out, verbose=0, sources=(same_train, _array_sources(seed=1)[1]))


def test_a_training_run_is_a_frozen_value(tmp_path):
    import dataclasses

    from stacnas_tf import run_folder

    run = train.TrainingRun(config=TINY, genotype=genotype_lib.PUBLISHED["DARTS_V2"],
                            folder=run_folder.TrainingFolder(str(tmp_path)),
                            strategy=tf.distribute.get_strategy())
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.verbose = 0
    assert (run.jit_compile, run.verbose, run.sources, run.callbacks) == (False, "auto", None, ())


def test_grey_test_images_for_colour_training_images_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"the test images have 1 channel\(s\), the train "
                                         r"images 3"):
        train.run_training(TINY.replace(epochs=1, channels=4, cutout=0), str(tmp_path / "run"),
                           verbose=0, sources=_array_sources(channels=(3, 1)))


def test_a_given_checkpoint_loads_without_the_unrestored_values_warning(trained, caplog):
    out, _ = trained
    path = tf.train.latest_checkpoint(os.path.join(out, "checkpoints"))
    _, warnings = _load_and_drop(out, caplog, checkpoint_path=path)
    assert not warnings


def test_another_genotype_is_named_by_its_published_name_or_its_cells(trained):
    out, _ = trained
    with pytest.raises(ValueError, match="--genotype: 'DARTS_V1' is not the genotype"):
        train.evaluate(out, genotype=genotype_lib.PUBLISHED["DARTS_V1"])
    unnamed = helpers.per_cell_genotype()
    with pytest.raises(ValueError, match=r"--genotype: \"Genotype\(normal="):
        train.evaluate(out, genotype=unnamed)


def test_a_worker_writes_nothing_into_the_chiefs_folder(tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    monkeypatch.setattr(train.strategy_lib, "is_chief", lambda strategy: False)
    train.run_training(TINY.replace(epochs=1, channels=4, cutout=0), str(out), verbose=0,
                       sources=_array_sources())
    assert os.listdir(out) == []


def test_run_training_takes_its_options_by_name_only(tmp_path):
    # Refused by Python before anything runs (a third positional argument
    # taken as the genotype would fail later, and otherwise).
    with pytest.raises(TypeError):
        train.run_training(TINY, str(tmp_path / "no" / "such" / "folder"), None)


def test_evaluate_says_what_it_scored(trained):
    out, _ = trained
    assert train.evaluate(out, num_examples=32)["split"] == "test"
    images, labels = helpers.random_batch(32, side=8, channels=1)
    data = sources_lib.from_arrays(images, labels, num_classes=10, split="test")
    assert train.evaluate(out, source=data)["split"] == "data"


def test_a_worker_leaves_judging_the_folder_to_the_chief(tmp_path, monkeypatch):
    # Files that are no run are the chief's to refuse (it claims the folder);
    # a worker only reads the chief's checkpoints and writes nothing there.
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    monkeypatch.setattr(train.strategy_lib, "is_chief", lambda strategy: False)
    train.run_training(TINY.replace(epochs=1, channels=4, cutout=0), str(out), verbose=0,
                       sources=_array_sources())
    assert os.listdir(out) == ["notes.txt"]
