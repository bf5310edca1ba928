"""The Python API (`stacnas_tf.search`, `train`, `evaluate`, `export`,
`describe`, `register_op`) on in-memory data, and the examples that use it."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import stacnas_tf
from stacnas_tf import search_space

import helpers

SMALL = dict(preset="smoke", verbose=0)
# The pipeline's training: three epochs, as one or two can leave a small network
# answering one class for every image, which would make its prediction checks vacuous.
TRAINING = dict(SMALL, epochs=3)


def _images(count=192, size=8, classes=3, seed=0):
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, classes, count)
    # Class-dependent brightness: something to learn.
    images = np.clip(rng.randint(0, 120, (count, size, size, 1)) + 60 * labels[:, None, None, None],
                     0, 255).astype(np.uint8)
    return images, labels


class _Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.ends = []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append((epoch, sorted(logs)))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """search -> train -> export on a batched tf.data.Dataset with class names."""
    root = tmp_path_factory.mktemp("api")
    images, labels = _images()
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
    names = ["dark", "grey", "light"]
    callback = _Epochs()
    found = stacnas_tf.search(dataset, class_names=names, output_dir=str(root / "search"),
                              callbacks=[callback], **SMALL)
    trained = stacnas_tf.train(found, (images, labels), output_dir=str(root / "train"), **TRAINING)
    report = stacnas_tf.export(trained, str(root / "export"), data=(images, labels),
                               formats=["saved_model", "tflite_float32"])
    return root, found, trained, report, callback


def test_search_returns_the_genotype_history_and_folder(pipeline):
    root, found, _, _, callback = pipeline
    assert isinstance(found.genotype, stacnas_tf.Genotype)
    assert found.output_dir == str(root / "search")
    assert sorted(found.history) == ["stage1", "stage2"] and len(found.history["stage1"]) == 1
    saved = json.loads((root / "search" / "genotype.json").read_text())
    assert stacnas_tf.Genotype.from_dict(saved) == found.genotype
    assert found.genotype_path == str(root / "search" / "genotype.json")
    # The user's callback ran in both stages' fit, with Keras's logs.
    assert [epoch for epoch, _ in callback.ends] == [0, 0]
    assert "loss" in callback.ends[0][1] and "accuracy" in callback.ends[0][1]


def test_class_names_travel_from_the_data_to_every_artifact(pipeline):
    root, found, trained, _, _ = pipeline
    names = ["dark", "grey", "light"]
    assert json.loads((root / "search" / "config.json").read_text())["class_names"] == names
    assert found.config.class_names == tuple(names)
    assert json.loads((root / "train" / "config.json").read_text())["class_names"] == names
    metadata = json.loads((root / "export" / "metadata.json").read_text())
    assert metadata["class_names"] == names
    assert json.loads((root / "export" / "saved_model" / "assets" / "stacnas_metadata.json")
                      .read_text())["class_names"] == names
    from stacnas_tf import exporting

    assert exporting.read_tflite_metadata(
        str(root / "export" / "model_float32.tflite"))["class_names"] == names


def test_train_returns_a_model_that_matches_its_metrics(pipeline):
    root, _, trained, _, _ = pipeline
    assert isinstance(trained.model, stacnas_tf.FinalNetwork)
    assert trained.config.dataset == "in_memory" and trained.metrics["epochs"] == 3
    assert json.loads(open(trained.metrics_path).read()) == trained.metrics
    assert trained.metrics_path == str(root / "train" / "metrics.json")
    result = stacnas_tf.evaluate(trained, _images(seed=1))
    assert result["examples"] == 192 and 0 <= result["top1"] <= 1
    # The held-out 10% of each class that the training's own metrics used.
    assert trained.metrics["eval_examples"] == sum(
        max(1, round(0.1 * n)) for n in np.bincount(_images()[1]))


def test_predict_on_raw_uint8_images_gives_evaluates_answers(pipeline):
    # The model normalises its input itself (with the training split's statistics,
    # saved as weights): predict takes the images as the user has them.
    _, _, trained, _, _ = pipeline
    images, labels = _images(seed=1)
    predicted = trained.model.predict(images, verbose=0).argmax(-1)
    result = stacnas_tf.evaluate(trained, (images, labels))
    assert result["top1"] == pytest.approx(np.mean(predicted == labels))
    assert len(set(predicted.tolist())) > 1  # not one class for everything
    float_pixels = trained.model.predict(images.astype(np.float32), verbose=0)
    np.testing.assert_allclose(trained.model.predict(images, verbose=0), float_pixels, rtol=1e-5)
    # Evaluation uses the model's statistics, not those of the data it is given:
    # appended white images leave the answers on the others unchanged.
    white = np.full((64,) + images.shape[1:], 255, np.uint8)
    both = stacnas_tf.evaluate(trained, (np.concatenate([images, white]),
                                         np.concatenate([labels, np.zeros(64, int)])))
    white_right = np.sum(trained.model.predict(white, verbose=0).argmax(-1) == 0)
    assert both["top1"] == pytest.approx(
        (np.sum(predicted == labels) + white_right) / (len(labels) + 64))
    stats = trained.model.pixel_normalization.statistics()
    train_images = _images()[0].astype(np.float64) / 255
    assert 0 < stats[0][0] < 1 and stats[0][0] == pytest.approx(train_images.mean(), abs=0.02)


def test_an_export_records_the_statistics_the_model_applies(pipeline, tmp_path):
    # Not those of the images it was given to check itself on.
    root, _, trained, _, _ = pipeline
    images, labels = _images()
    stacnas_tf.export(trained, str(tmp_path / "e"), data=(images[:40] // 4, labels[:40]),
                      formats=["saved_model"])
    metadata = json.loads((tmp_path / "e" / "metadata.json").read_text())
    mean, std = trained.model.pixel_normalization.statistics()
    assert metadata["preprocessing"]["mean"] == pytest.approx(mean)
    assert metadata["preprocessing"]["std"] == pytest.approx(std)
    assert metadata["preprocessing"]["inside_model"] and metadata["input"]["range"] == [0, 255]
    # The SavedModel takes the raw pixels too, and gives the Keras model's logits.
    loaded = tf.saved_model.load(str(tmp_path / "e" / "saved_model"))
    logits = loaded.signatures["serving_default"](images=tf.constant(images[:16], tf.float32))
    np.testing.assert_allclose(logits["logits"].numpy(),
                               trained.model.predict(images[:16], verbose=0), atol=1e-4)


def test_export_writes_only_the_formats_asked_for(pipeline):
    root, _, _, report, _ = pipeline
    assert sorted(report["formats"]) == ["saved_model", "tflite_float32"] and report["passed"]
    assert sorted(os.listdir(root / "export")) == [
        "export_report.json", "metadata.json", "model_float32.tflite", "saved_model"]


def test_a_finished_search_is_returned_again_and_other_settings_refused(pipeline):
    root, found, _, _, _ = pipeline
    images, labels = _images()
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(16)
    again = stacnas_tf.search(dataset, class_names=["dark", "grey", "light"],
                              output_dir=str(root / "search"), **SMALL)
    assert again.genotype == found.genotype
    with pytest.raises(ValueError, match="stage1_epochs=1 there, 2 now"):
        stacnas_tf.search(dataset, output_dir=str(root / "search"), stage1_epochs=2, **SMALL)
    with pytest.raises(ValueError, match="class_names=\\[.dark., .grey., .light.\\] there, \\[.a., .b., .c.\\] now"):
        stacnas_tf.search(dataset, class_names=["a", "b", "c"], output_dir=str(root / "search"),
                          **SMALL)


def test_a_finished_run_is_not_answered_again_for_other_images(pipeline):
    root, found, trained, _, _ = pipeline
    images, labels = _images()
    assert stacnas_tf.train(found, (images, labels), output_dir=str(root / "train"),
                            **TRAINING).metrics == trained.metrics
    # Same count, shape and classes: only the pixels differ.
    other_images, other_labels = _images(seed=1)
    with pytest.raises(ValueError, match="holds a training run on other images \\(the test and "
                                         "train images differ"):
        stacnas_tf.train(found, (other_images, other_labels), output_dir=str(root / "train"),
                         **TRAINING)
    with pytest.raises(ValueError, match="holds a search on other images \\(the train images"):
        stacnas_tf.search((other_images, other_labels), class_names=["dark", "grey", "light"],
                          output_dir=str(root / "search"), **SMALL)


def test_images_of_another_size_than_the_network_learned_are_refused(pipeline, tmp_path):
    root, found, trained, _, _ = pipeline
    larger = _images(count=32, size=12)
    with pytest.raises(ValueError, match="^data: the images are 12x12x1; the network was trained "
                                         "on 8x8x1 images: resize them"):
        stacnas_tf.evaluate(trained, data=larger)
    with pytest.raises(ValueError, match="^data: the images are 12x12x1; the network was trained"):
        stacnas_tf.export(trained, str(tmp_path / "export"), data=larger, formats=["saved_model"])
    with pytest.raises(ValueError, match="^validation_data: the images are 12x12x1; the training "
                                         "images are 8x8x1"):
        stacnas_tf.train(found, _images(), validation_data=larger,
                         output_dir=str(tmp_path / "train"), **SMALL)
    assert not os.listdir(tmp_path)
    own = stacnas_tf.evaluate(trained, data=_images(count=32))
    assert own["examples"] == 32 and own["split"] == "data"  # not a split of a named dataset


def test_a_test_subset_of_some_classes_is_evaluated_and_a_single_callback_taken(pipeline,
                                                                                 tmp_path):
    _, _, trained, _, _ = pipeline
    images, labels = _images(count=48)
    subset = labels < 2  # a subset holding 2 of the network's 3 classes
    assert stacnas_tf.evaluate(trained, data=(images[subset], labels[subset]))["examples"] == (
        int(subset.sum()))

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    # A callback that ends a stage early: the stage is not taken as finished.
    with pytest.raises(ValueError, match="^stage 1 stopped after 1 of 2 epochs \\(a callback set "
                                         "model.stop_training\\)"):
        stacnas_tf.search((images, labels), callbacks=Stop(), stage1_epochs=2,
                          output_dir=str(tmp_path / "s"), **SMALL)
    assert not (tmp_path / "s" / "stage1" / "result.json").exists()


def test_in_memory_data_needs_giving_again_where_a_folder_cannot_hold_it(pipeline):
    root, _, trained, _, _ = pipeline
    with pytest.raises(ValueError, match="data: this network was trained on images given in Python"):
        stacnas_tf.evaluate(trained)
    with pytest.raises(ValueError, match="data: this network was trained on images given in Python"):
        stacnas_tf.export(str(root / "train"), str(root / "export2"))


@pytest.mark.parametrize("call,message", [
    (lambda: stacnas_tf.search((np.full((8, 8, 8), 300.0), np.zeros(8, int))),
     "float images must be pixels in \\[0, 255\\]"),
    (lambda: stacnas_tf.search((np.full((8, 8, 8), 0.5), np.zeros(8, int))),
     "lie in \\[0, 1\\]; the networks take pixels in \\[0, 255\\]"),
    (lambda: stacnas_tf.search((np.zeros((8, 8, 8, 1), np.uint8), np.eye(8)[:, :3])),
     "one integer class label per image"),
    (lambda: stacnas_tf.search((np.zeros((8, 8, 8, 1), np.uint8), np.full(8, 5)), num_classes=3),
     "labels must lie in 0..2"),
    (lambda: stacnas_tf.search((np.zeros((8, 8, 8, 1), np.uint8), np.arange(8) % 2),
                               class_names=["a"]), "class_names: expected 2 names"),
    (lambda: stacnas_tf.search((np.zeros((8, 8, 8, 1), np.uint8), np.arange(8) % 3),
                               class_names=["a", "b", "a"]), "class_names: every class needs its "
     "own name; 'a' names more than one class"),
    (lambda: stacnas_tf.search(tf.data.Dataset.range(4)), "expected a tf.data.Dataset of"),
    (lambda: stacnas_tf.search(tf.data.Dataset.from_tensor_slices(
        (np.zeros((8, 8, 8, 1), np.uint8), np.eye(8)[:, :2])).batch(4)),
     "^data: expected one integer class label per image, got labels of shape \\(None, 2\\)"),
    (lambda: stacnas_tf.train("DARTS_V2", (np.zeros((8, 8, 8, 1), np.uint8), np.arange(8) % 2),
                              validation_data="digits"),
     "^validation_data: takes images given in Python.*not a dataset name \\('digits'\\)"),
    (lambda: stacnas_tf.train("DARTS_V2", (np.zeros((8, 8, 8, 1), np.uint8), np.arange(8) % 2),
                              validation_data=(np.zeros((4, 8, 8, 3), np.uint8), np.arange(4) % 2)),
     "^validation_data: the images are 8x8x3; the training images are 8x8x1"),
    (lambda: stacnas_tf.search((np.zeros((8, 8, 8, 1), np.uint8), np.arange(8) % 2),
                               dataset="cifar10"),
     "^dataset='cifar10': the images given in Python are this run's data"),
    (lambda: stacnas_tf.search((np.zeros((48, 8, 8, 1), np.uint8), np.arange(48) % 2),
                               preset="smoke", optimization="bi_level", output_dir="s"),
     "larger than the 24 training examples.*\\(bi_level trains the weights and alpha on two halves"),
    (lambda: stacnas_tf.search("digits", callbacks=[object()]),
     "^callbacks: expected keras.callbacks.Callback objects, got object"),
    (lambda: stacnas_tf.search("digits", groups="skip_connect"),
     "^groups: expected a list of groups, each a list of op names"),
    (lambda: stacnas_tf.export("DARTS_V2", "", random_init="cifar10"),
     "^output_dir: expected a folder path, got an empty value"),
    (lambda: stacnas_tf.Genotype.from_json({"normal": []}),
     "from_json takes JSON text, got dict \\(use Genotype.from_dict for a dict\\)"),
    (lambda: stacnas_tf.search((np.zeros((0, 8, 8, 1), np.uint8), np.zeros(0, int))),
     "^data: no images \\(an empty array of shape \\(0, 8, 8, 1\\)\\)"),
    (lambda: stacnas_tf.search((np.zeros((8, 8, 8, 1), np.uint8), np.arange(8) % 2), num_classes=-3),
     "^num_classes: expected a count of classes >= 2 \\(or none to count the labels\\), got -3"),
    (lambda: stacnas_tf.search("digits", strategy="mirrored"),
     "^strategy: expected a tf.distribute.Strategy opened by the caller"),
    (lambda: stacnas_tf.train("DARTS_V2", "digits", strategy="mirrored"),
     "^strategy: expected a tf.distribute.Strategy"),
    (lambda: stacnas_tf.search("digits", preset="smoke", output_dir=b"x"),
     "^output_dir: expected a folder path \\(a str or pathlib.Path\\), got bytes"),
    (lambda: stacnas_tf.train("DARTS_V2", "digits", preset="smoke", network="imagenet"),
     "network=imagenet: its stem halves the images three times.*these are 8x8"),
    (lambda: stacnas_tf.train("DARTS_V2", "digits", preset="smoke", cutout=8),
     "cutout=8: a square that large blanks the whole 8x8 image"),
    (lambda: stacnas_tf.search(42), "expected a dataset name, \\(images, labels\\)"),
    (lambda: stacnas_tf.search("digits", preset="huge"), "preset: expected one of"),
    (lambda: stacnas_tf.search((np.zeros((64, 8, 8, 1), np.uint8), np.arange(64) % 2),
                               config=stacnas_tf.TrainConfig(), output_dir="d"),
     "config: search takes a SearchConfig, got TrainConfig"),
    (lambda: stacnas_tf.train("DARTS_V2", "digits", config=stacnas_tf.SearchConfig(),
                              output_dir="d"), "config: train takes a TrainConfig, got SearchConfig"),
    (lambda: stacnas_tf.train("NOT_A_GENOTYPE", "digits"), "genotype: 'NOT_A_GENOTYPE' is neither"),
    (lambda: stacnas_tf.export(keras.Sequential(), "/tmp/x"), "expected a TrainResult or a training"),
])
def test_bad_input_is_a_clear_error_before_any_work(call, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        call()
    assert not os.listdir(tmp_path)


def test_errors_about_the_output_folder_name_the_api_argument_not_a_flag(tmp_path):
    # The API has no flags: its messages name the argument the caller wrote.
    taken = tmp_path / "taken"
    taken.write_text("mine")
    images, labels = _images(count=32)
    with pytest.raises(ValueError, match="^output_dir: .*taken exists and is not a folder"):
        stacnas_tf.search((images, labels), output_dir=str(taken), **SMALL)
    with pytest.raises(ValueError, match="^output_dir: .*taken exists and is not a folder"):
        stacnas_tf.train("DARTS_V2", (images, labels), output_dir=str(taken), **SMALL)
    assert taken.read_text() == "mine"


def test_a_presets_sizes_give_way_to_the_datas_and_messages_name_keywords(tmp_path):
    # The smoke preset is sized for digits (128 training, 64 evaluation images, 8x8):
    # 40 images of 12x12 given in Python are searched and trained whole, at 12x12.
    images, labels = _images(count=40, size=12)
    found = stacnas_tf.search((images, labels), output_dir=str(tmp_path / "search"), **SMALL)
    assert (found.config.num_train_examples, found.config.image_size,
            found.config.steps_per_epoch) == (None, None, None)
    trained = stacnas_tf.train(found, (images, labels), output_dir=str(tmp_path / "train"),
                               **SMALL)
    assert (trained.config.num_train_examples, trained.config.image_size) == (None, None)
    assert trained.model(np.zeros((1, 12, 12, 1), np.float32)).shape == (1, 3)
    # What the caller set still holds.
    kept = stacnas_tf.search((images, labels), output_dir=str(tmp_path / "kept"),
                             num_train_examples=32, **SMALL)
    assert kept.config.num_train_examples == 32
    # Errors name the keyword arguments, not the programs' flags.
    with pytest.raises(ValueError) as error:
        stacnas_tf.search((images, labels), batch_size=64, **SMALL)
    assert "batch_size=64" in str(error.value) and "--" not in str(error.value)
    with pytest.raises(ValueError, match="^image_size: expected a positive multiple of 4"):
        stacnas_tf.search((images, labels), image_size=10, **SMALL)


def test_an_unknown_setting_names_the_settings():
    with pytest.raises(TypeError, match="unknown settings \\['stage_1_cells'\\].*Did you mean "
                                        "stage1_cells= for stage_1_cells=\\?"):
        stacnas_tf.search("digits", stage_1_cells=3)


def test_keras_files_load_after_a_plain_import_in_a_new_process(tmp_path):
    net = stacnas_tf.FinalNetwork(stacnas_tf.Genotype.from_dict(
        stacnas_tf.PUBLISHED_GENOTYPES["DARTS_V2"].to_dict()), 3, channels=4, num_cells=3,
        auxiliary=False)
    net.build((None, 8, 8, 1))
    x = np.random.RandomState(0).rand(2, 8, 8, 1).astype(np.float32)
    path = str(tmp_path / "net.keras")
    net.save(path)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", net.predict(x, verbose=0))
    check = (f"import numpy as np, keras; m = keras.models.load_model({path!r}); "
             f"np.testing.assert_allclose(m.predict(np.load({str(tmp_path / 'x.npy')!r}), "
             f"verbose=0), np.load({str(tmp_path / 'y.npy')!r}), atol=1e-6); print('ok')")
    env = helpers.program_env()
    # stacnas_tf imported before Keras, after it, and (documented) only its network module.
    for prefix in ("import stacnas_tf; ", "import keras, stacnas_tf; ",
                   "import tensorflow, stacnas_tf; ", "import stacnas_tf.network; "):
        result = subprocess.run([sys.executable, "-c", prefix + check], capture_output=True,
                                text=True, env=env, timeout=300)
        assert result.stdout.strip() == "ok", (prefix, result.stderr[-2000:])
    # Without stacnas_tf Keras cannot know the class, and says which.
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode != 0 and "FinalNetwork" in result.stderr


def test_top_level_names_and_lazy_import():
    for name in stacnas_tf.__all__:
        assert getattr(stacnas_tf, name) is not None
    # `import stacnas_tf` alone loads neither TensorFlow nor Keras.
    code = "import sys, stacnas_tf; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=helpers.program_env(), timeout=120)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_cells_of_three_nodes_search_and_train(tmp_path):
    images, labels = _images(count=160)
    found = stacnas_tf.search((images, labels), num_nodes=3, output_dir=str(tmp_path / "s"),
                              **SMALL)
    assert found.genotype.normal.num_nodes == 3 and len(found.genotype.normal.edges) == 6
    trained = stacnas_tf.train(found, (images, labels), output_dir=str(tmp_path / "t"), **SMALL)
    assert trained.model(np.zeros((2, 8, 8, 1), np.float32)).shape == (2, 3)


def test_an_op_of_unnamed_keras_layers_searches_trains_and_exports(tmp_path):
    # A registered op as a user writes it: a Sequential of unnamed layers, whose
    # Keras names carry process-wide counters that differ between the network
    # that trains and the one rebuilt from its checkpoint.
    def factory(channels, stride, name):
        return keras.Sequential([
            keras.layers.ReLU(),
            keras.layers.Conv2D(channels, 3, strides=stride, padding="same", use_bias=False),
            keras.layers.BatchNormalization()], name=name)

    stacnas_tf.register_op("plain_conv_3x3", factory)
    try:
        images, labels = _images(count=96)
        groups = stacnas_tf.PAPER_GROUPS + (("plain_conv_3x3",),)
        found = stacnas_tf.search((images, labels), groups=groups, output_dir=str(tmp_path / "s"),
                                  **SMALL)
        # Whatever the smoke search chose, the op is trained: it is every normal edge.
        normal = found.genotype.normal
        genotype = stacnas_tf.Genotype.from_edges(
            [("plain_conv_3x3", index) for _, index in normal.edges], normal.concat,
            found.genotype.reduce.edges, found.genotype.reduce.concat)
        trained = stacnas_tf.train(genotype, (images, labels), output_dir=str(tmp_path / "t"),
                                   **SMALL)
        report = stacnas_tf.export(trained, str(tmp_path / "e"), data=(images, labels),
                                   formats=["saved_model"])
        # The model handed back is the trained one: its answers are evaluate's.
        again = stacnas_tf.evaluate(trained, (images, labels))
        predicted = trained.model.predict(images, verbose=0).argmax(-1)
    finally:
        search_space.remove_custom_op("plain_conv_3x3")
    assert report["passed"]
    assert any(op == "plain_conv_3x3" for op, _ in trained.model.genotype.normal.edges)
    assert again["top1"] == pytest.approx(np.mean(predicted == labels))


def test_register_op_refuses_a_layer_of_the_wrong_shape():
    with pytest.raises(ValueError, match="register_op: op 'halving' cannot be used: at stride 1 "
                                         "it maps \\(1, 8, 8, 4\\) to \\(1, 4, 4, 4\\)"):
        stacnas_tf.register_op("halving", lambda c, s, name: keras.layers.MaxPooling2D(
            2, name=name))
    assert "halving" not in search_space.op_names()
    with pytest.raises(ValueError, match="built-in op"):
        stacnas_tf.register_op("sep_conv_3x3", lambda c, s, name: keras.layers.Identity())
    with pytest.raises(ValueError, match="unknown op name\\(s\\) \\['halving'\\].*register_op"):
        stacnas_tf.SearchSpace(groups=(("halving",),))
