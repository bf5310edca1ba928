"""Cases from probing the programs as a new user would (bad values, odd
folders, damaged files, wrong environments): each is refused up front with one
line naming the flag or file, or handled, and nothing the user had is touched."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from stacnas_tf import config as config_lib
from stacnas_tf import exporting
from stacnas_tf import files
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import run_folder
from stacnas_tf import sources
from stacnas_tf import strategy as strategy_lib
from stacnas_tf import training
from stacnas_tf.analysis import confusion
from stacnas_tf.analysis import correlate

import helpers

SEARCH = config_lib.PRESETS["smoke"]
TRAIN = config_lib.TRAIN_PRESETS["smoke"]


@pytest.mark.parametrize("make,message", [
    (lambda: TRAIN.replace(lr=float("nan")), "--lr: expected a finite number, got nan"),
    (lambda: TRAIN.replace(aux_weight=float("nan")), "--aux_weight: expected a finite number"),
    (lambda: SEARCH.replace(weight_lr=float("inf")), "--weight_lr: expected a finite number"),
    (lambda: TRAIN.replace(channels=1_000_000_000), "--channels: at most 1024"),
    (lambda: TRAIN.replace(num_cells=100000), "--num_cells: at most 100"),
    (lambda: TRAIN.replace(image_size=4096), "--image_size: at most 1024"),
    (lambda: SEARCH.replace(num_train_examples=-5), "--num_train_examples: expected a positive"),
    (lambda: SEARCH.replace(batch_size=1000, num_train_examples=200),
     "--batch_size=1000 is larger than --num_train_examples=200"),
])
def test_settings_that_cannot_work_are_refused(make, message):
    with pytest.raises(ValueError, match=message.replace("[", "\\[")):
        make()


def test_more_examples_than_the_data_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="--num_train_examples=100000: digits has 1437"):
        training.run_training(TRAIN.replace(num_train_examples=100000), str(out), verbose=0)
    assert not out.exists()


def _png(path, value=100, size=6):
    helpers.write_png(path, np.full((size, size, 3), value, np.uint8))


def test_folder_with_an_empty_class_is_refused_naming_it(tmp_path):
    for cls in ("cats", "dogs"):
        _png(tmp_path / "train" / cls / "0.png")
        _png(tmp_path / "test" / cls / "0.png")
    os.makedirs(tmp_path / "train" / "birds")
    _png(tmp_path / "train" / "birds" / "nested" / "0.png")  # not read: a sub-folder
    with pytest.raises(ValueError, match="class folder\\(s\\) birds .* hold no images"):
        sources.load(f"folder:{tmp_path}")


def test_hidden_folders_are_not_classes_and_non_images_are_counted(tmp_path, caplog):
    for cls in ("a", "b"):
        _png(tmp_path / cls / "0.png")
        _png(tmp_path / cls / "1.png")
        (tmp_path / cls / "notes.webp").write_bytes(b"x")
    _png(tmp_path / ".ipynb_checkpoints" / "x.png")
    with caplog.at_level("WARNING"):
        source = sources.load(f"folder:{tmp_path}")
    assert source.class_names == ("a", "b")
    assert "2 .webp" in caplog.text


def test_a_test_folder_without_train_is_refused(tmp_path):
    for cls in ("a", "b"):
        _png(tmp_path / cls / "0.png")
        _png(tmp_path / "test" / cls / "0.png")
    with pytest.raises(ValueError, match="has a test/ folder but no train/ folder"):
        sources.load(f"folder:{tmp_path}")


def test_folder_paths_are_recorded_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = SEARCH.replace(dataset="folder:images")
    assert config.dataset == f"folder:{tmp_path / 'images'}"
    assert config_lib.TrainConfig(dataset="folder:~/x").dataset == \
        f"folder:{os.path.expanduser('~/x')}"


def test_evaluating_on_other_classes_is_refused(tmp_path):
    for split in ("train", "test"):
        for cls in ("cats", "dogs"):
            for i in range(40 if split == "train" else 4):
                _png(tmp_path / "data" / split / cls / f"{i}.png", value=i * 3 + (cls == "dogs") * 100)
    config = TRAIN.replace(dataset=f"folder:{tmp_path / 'data'}", image_size=8,
                           num_train_examples=64, num_eval_examples=8)
    training.run_training(config, str(tmp_path / "run"), verbose=0)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["class_names"]
    assert recorded == ["cats", "dogs"]
    with pytest.raises(ValueError, match="--num_examples=1000: the test split has 8 examples"):
        training.evaluate(str(tmp_path / "run"), num_examples=1000)
    for split in ("train", "test"):
        os.rename(tmp_path / "data" / split / "cats", tmp_path / "data" / split / "zebras")
    with pytest.raises(ValueError, match="--train_dir: the data's classes \\['dogs', 'zebras'\\] "
                                         "are not the classes this run was made with"):
        training.evaluate(str(tmp_path / "run"))


def test_a_start_that_never_finished_an_epoch_can_be_corrected(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(TRAIN.replace(epochs=7).to_dict()))
    (out / "genotype.json").write_text(genotype_lib.PUBLISHED["DARTS_V1"].to_json())
    metrics = training.run_training(TRAIN, str(out), verbose=0)  # other settings, no epoch done
    assert metrics["epochs"] == 1
    assert json.loads((out / "config.json").read_text())["epochs"] == 1
    with pytest.raises(ValueError, match="epochs=1 there, 2 now"):
        training.run_training(TRAIN.replace(epochs=2), str(out), verbose=0)


def test_damaged_json_names_the_file(tmp_path):
    path = tmp_path / "history.json"
    path.write_text('[{"epoch": 1,')
    with pytest.raises(ValueError, match=f"{path} is not valid JSON"):
        files.read_json(str(path))


def test_folder_flags_name_a_file_given_for_a_folder_and_an_empty_value(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="--data_dir: .* is a file; expected a folder"):
        files.check_input_folders({"--data_dir": str(tmp_path / "f")})
    with pytest.raises(ValueError, match="--output_dir: expected a folder path, got an empty"):
        with run_folder.SearchFolder("").claimed():
            pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_sub_folder_is_refused_before_any_work(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "config.json").write_text("{}")  # a run's folder: the one walked
    os.chmod(tmp_path / "run" / "checkpoints", 0o500)
    try:
        with pytest.raises(ValueError, match="cannot write in .*checkpoints"):
            with run_folder.TrainingFolder(str(tmp_path / "run")).claimed():
                pass
    finally:
        os.chmod(tmp_path / "run" / "checkpoints", 0o700)


def test_check_writable_tree_names_the_folder(tmp_path, monkeypatch):
    (tmp_path / "run" / "stage1").mkdir(parents=True)
    (tmp_path / "run" / "config.json").write_text("{}")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: not str(p).endswith("stage1")
                        and real_access(p, mode))
    with pytest.raises(ValueError, match="--output_dir: cannot write in .*stage1"):
        run_folder.TrainingFolder(str(tmp_path / "run")).check_writable_tree()


@pytest.mark.parametrize("name,flags,what", [
    ("search", ["--preset=smoke"], "search"),
    ("train", ["--preset=smoke", "--genotype=DARTS_V2"], "training run"),
])
def test_the_root_folder_or_a_dangling_link_as_output_folder_is_refused_in_one_line(
        tmp_path, name, flags, what):
    result = helpers.run_program(name, *flags, "--output_dir=/", cwd=str(tmp_path))
    # Root may write in /: then the folder is refused as not a run's (without a walk
    # of the file system); anyone else cannot write there.
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1
    assert (lines[0].startswith(f"{name}.py: error: --output_dir=/ is not empty (")
            and f"holds no {what}" in lines[0]) or lines[0].startswith(
        f"{name}.py: error: --output_dir: cannot write in / (")
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "gone" / "x")
    result = helpers.run_program(name, *flags, f"--output_dir={link}", cwd=str(tmp_path))
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"{name}.py: error: --output_dir: {link} is a link to {tmp_path / 'gone' / 'x'}, which "
        "does not exist; create that folder or choose another."]
    assert sorted(os.listdir(tmp_path)) == ["out"] and not (tmp_path / "gone").exists()


def test_export_never_replaces_a_link_or_foreign_files(tmp_path):
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "export_report.json").write_text("{}")
    (earlier / "model.onnx").write_text("x")
    os.symlink(earlier, tmp_path / "link")
    with pytest.raises(ValueError, match="is a symbolic link"):
        exporting.check_output_dir(str(tmp_path / "link"), overwrite=True)
    exporting.check_output_dir(str(earlier), overwrite=True)  # an earlier export: replaceable
    (earlier / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds files an export did not write \\(notes.txt\\)"):
        exporting.check_output_dir(str(earlier), overwrite=True)
    with pytest.raises(ValueError, match="--opset: expected an ONNX opset from 11 to 18, got 9"):
        exporting.ExportOptions(opset=9)


def test_a_genotype_error_names_the_flag_once():
    text = genotype_lib.PUBLISHED["DARTS_V2"].to_darts().replace("sep_conv_3x3", "sep_cnv_3x3", 1)
    with pytest.raises(ValueError) as error:
        genotype_lib.resolve(text)
    assert str(error.value).startswith("--genotype: unknown op name(s) ['sep_cnv_3x3']")


def test_genotype_files_with_unknown_keys_or_binary_content_are_refused(tmp_path):
    value = genotype_lib.PUBLISHED["DARTS_V2"].to_dict()
    value["cell"] = value.pop("cells")
    with pytest.raises(ValueError, match="unknown genotype field\\(s\\) \\['cell'\\]"):
        genotype_lib.Genotype.from_dict(value)
    (tmp_path / "g.json").write_bytes(bytes(range(200, 256)))
    with pytest.raises(ValueError, match="--genotype file .*g.json is not text"):
        genotype_lib.resolve(str(tmp_path / "g.json"))


@pytest.mark.parametrize("tf_config,message", [
    ({"cluster": {"worker": "localhost:1"}, "task": {"type": "worker", "index": 0}},
     "cluster.worker must be a list of \"host:port\""),
    ({"cluster": {"worker": ["no port here"]}, "task": {"type": "worker", "index": 0}},
     "cluster.worker must be a list"),
    ({"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 5}},
     "task must be a worker"),
])
def test_tf_config_is_checked(tf_config, message, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    with pytest.raises(ValueError, match="--strategy=multi_worker: TF_CONFIG.*" + message):
        strategy_lib.make_strategy("multi_worker")


def _start_multi_worker(tmp_path, timeout, ports):
    # Worker 0 of two; worker 1 never starts.
    tf_config = {"cluster": {"worker": [f"localhost:{port}" for port in ports]},
                 "task": {"type": "worker", "index": 0}}
    env = helpers.program_env(TF_CONFIG=json.dumps(tf_config))
    code = ("import sys; sys.argv = ['start.py']; from stacnas_tf import strategy; "
            f"strategy.make_strategy('multi_worker', worker_timeout={timeout}); print('started')")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp_path))


def test_a_multi_worker_start_with_a_missing_worker_gives_up_in_time(tmp_path):
    start = time.monotonic()
    ports = helpers.free_ports(2)
    process = _start_multi_worker(tmp_path, 8, ports)
    out, err = process.communicate(timeout=120)
    assert process.returncode != 0 and "started" not in out
    assert time.monotonic() - start < 60
    assert err.strip().splitlines()[-1] == (
        "start.py: error: --strategy=multi_worker: not every worker of TF_CONFIG "
        f"(localhost:{ports[0]}, localhost:{ports[1]}) connected within 8 s (--worker_timeout); "
        "start the same command on every worker and check the addresses and ports.")
    with pytest.raises(ValueError, match="--worker_timeout: expected a positive number"):
        strategy_lib.make_strategy("multi_worker", worker_timeout=0)


def test_a_waiting_multi_worker_start_ends_on_ctrl_c(tmp_path):
    process = _start_multi_worker(tmp_path, 300, helpers.free_ports(2))
    time.sleep(12)  # TensorFlow loaded, waiting for worker 1
    assert process.poll() is None
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGINT


def test_cpu_replicas_only_with_a_mirrored_strategy():
    with pytest.raises(ValueError, match="--cpu_replicas=4 applies to --strategy=mirrored"):
        strategy_lib.make_strategy("one_device", cpu_replicas=4)


def test_analysis_settings_are_checked_before_any_training():
    with pytest.raises(ValueError, match="--num_batches: expected at least 2"):
        confusion.ConfusionConfig(num_batches=1)
    with pytest.raises(ValueError, match="--stage2_depths: a depth is listed twice"):
        confusion.ConfusionConfig(stage2_depths=(3, 3))
    with pytest.raises(ValueError, match="--ops: expected at least 2 distinct ops"):
        correlate.flat_config(SEARCH, ["none"])


def test_genotype_program_never_writes_over_a_run_or_other_files(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "genotype.json").write_text("kept")
    result = helpers.run_program("genotype", "--genotype=DARTS_V2", f"--output_dir={run}",
                                 cwd=str(tmp_path))
    assert result.returncode == 2 and "holds other files (config.json)" in result.stderr
    assert (run / "genotype.json").read_text() == "kept"
    again = helpers.run_program("genotype", "--genotype=DARTS_V2",
                                f"--output_dir={tmp_path / 'g'}", cwd=str(tmp_path))
    assert again.returncode == 0
    rewritten = helpers.run_program("genotype", "--genotype=DARTS_V1",
                                    f"--output_dir={tmp_path / 'g'}", cwd=str(tmp_path))
    assert rewritten.returncode == 0  # a folder it wrote itself


def test_visualize_leaves_nothing_on_a_failed_start(tmp_path):
    result = helpers.run_program("visualize", "--genotype=NOPE",
                                 f"--output_dir={tmp_path / 'v'}", cwd=str(tmp_path))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "v").exists()
    (tmp_path / "s" / "stage1").mkdir(parents=True)
    (tmp_path / "s" / "stage1" / "history.json").write_text('{"a": 1}')
    bad = helpers.run_program("visualize", f"--search_dir={tmp_path / 's'}",
                              f"--output_dir={tmp_path / 'v'}", cwd=str(tmp_path))
    assert bad.returncode == 2 and "is not a search history" in bad.stderr
    assert not (tmp_path / "v").exists()


def test_visualize_writes_only_a_pictures_folder_and_never_half_a_set(tmp_path):
    import resource

    run = tmp_path / "train"
    run.mkdir()
    (run / "config.json").write_text("{}")
    refused = helpers.run_program("visualize", "--genotype=DARTS_V2", f"--output_dir={run}",
                                  cwd=str(tmp_path))
    assert refused.returncode == 2 and "holds other files (config.json)" in refused.stderr
    assert os.listdir(run) == ["config.json"]
    pictures = tmp_path / "pictures"
    assert helpers.run_program("visualize", "--genotype=DARTS_V2", f"--output_dir={pictures}",
                               cwd=str(tmp_path)).returncode == 0
    before = {name: (pictures / name).read_bytes() for name in os.listdir(pictures)}
    assert sorted(before) == ["normal.png", "normal.svg", "reduce.png", "reduce.svg"]
    # A disk that fills while the second set is written (a file-size limit: the
    # smallest pictures fit, the largest does not) leaves the first set whole.
    limit = sorted(len(content) for content in before.values())[1]

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    full = helpers.run_program("visualize", "--genotype=DARTS_V1", f"--output_dir={pictures}",
                               cwd=str(tmp_path), preexec_fn=small_files)
    assert full.returncode != 0
    assert {name: (pictures / name).read_bytes() for name in os.listdir(pictures)} == before


def test_running_out_of_an_address_space_limit_is_the_out_of_memory_line(tmp_path):
    import resource

    # 6 GB of address space: TensorFlow loads, a batch of 512x512 activations does
    # not fit. With oneDNN's kernels this was an abort or a segfault (status 134/139).
    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (6_000_000_000, resource.RLIM_INFINITY))

    env = helpers.program_env()
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)
    result = helpers.run_program(
        "train", "--preset=smoke", "--genotype=DARTS_V2", "--image_size=512",
        f"--output_dir={tmp_path / 't'}", env=env, cwd=str(tmp_path), preexec_fn=limited)
    # TensorFlow's allocator reports it (the usual case with oneDNN off), or an
    # allocation elsewhere kills the process and the supervising parent says so.
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error: out of memory") and "ulimit -v: 5.6 GiB" in last
    assert "oneDNN kernels, which crash rather than report" in result.stderr


def test_the_programs_send_a_training_on_python_images_back_to_python(tmp_path):
    import stacnas_tf

    rng = np.random.RandomState(0)
    images, labels = rng.randint(0, 256, (40, 8, 8, 1)).astype(np.uint8), np.arange(40) % 2
    train_dir = str(tmp_path / "t")
    stacnas_tf.train("DARTS_V2", (images, labels), preset="smoke", output_dir=train_dir, verbose=0)
    result = helpers.run_program("evaluate", f"--train_dir={train_dir}", cwd=str(tmp_path))
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"evaluate.py: error: --train_dir: {train_dir} was trained on images given in Python, which "
        f"the command line cannot load; from Python: stacnas_tf.evaluate({train_dir!r}, "
        "data=(images, labels))."]
    export_dir = str(tmp_path / "e")
    result = helpers.run_program("export", f"--train_dir={train_dir}",
                                 f"--output_dir={export_dir}", cwd=str(tmp_path))
    assert result.returncode == 2 and "data=" not in result.stderr.split("from Python:")[0]
    assert f"stacnas_tf.export({train_dir!r}, {export_dir!r}, data=(training images" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["t"]


def test_a_training_that_diverges_stops_with_a_line_and_saves_nothing_of_it(tmp_path):
    import stacnas_tf

    with pytest.raises(ValueError, match="^the loss became (nan|inf) in epoch 1: training diverged"):
        stacnas_tf.train("DARTS_V2", "digits", preset="smoke", lr=1e30, grad_clip_norm=0.0,
                         output_dir=str(tmp_path / "t"), verbose=0)
    assert not (tmp_path / "t" / "metrics.json").exists()
    assert not os.path.exists(tmp_path / "t" / "checkpoints") or not any(
        name.endswith(".index") for name in os.listdir(tmp_path / "t" / "checkpoints"))


def test_a_test_split_of_colour_images_for_grey_training_images_is_refused_before_training(
        tmp_path):
    import stacnas_tf

    rng = np.random.RandomState(0)
    for split, channels in (("train", 1), ("test", 3)):
        for cls in ("a", "b"):
            for i in range(4):
                helpers.write_png(tmp_path / "images" / split / cls / f"{i}.png",
                                  rng.randint(0, 256, (8, 8, channels)))
    with pytest.raises(ValueError, match="the test images have 3 channel\\(s\\), the train images 1"):
        stacnas_tf.train("DARTS_V2", f"folder:{tmp_path / 'images'}", preset="smoke",
                         num_train_examples=None, num_eval_examples=None, batch_size=4,
                         output_dir=str(tmp_path / "t"), verbose=0)
    assert not (tmp_path / "t").exists()


def test_an_empty_output_folder_is_refused_not_replaced_by_a_temporary_one(tmp_path):
    import stacnas_tf

    # The API names its keyword argument (the programs name the flag).
    with pytest.raises(ValueError, match="^output_dir: expected a folder path, got an empty"):
        stacnas_tf.train("DARTS_V2", "digits", preset="smoke", output_dir="")
    result = helpers.run_program("train", "--preset=smoke", "--genotype=DARTS_V2",
                                 "--output_dir=", cwd=str(tmp_path))
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "train.py: error: --output_dir: expected a folder path, got an empty value."]


def test_config_flag_given_a_folder_says_so(tmp_path):
    result = helpers.run_program("search", f"--config={tmp_path}",
                                 f"--output_dir={tmp_path / 'x'}", cwd=str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"search.py: error: --config: {tmp_path} is a folder; expected a run's config.json."]


@pytest.mark.parametrize("name", ["evaluate", "export"])
def test_a_folder_that_is_not_a_training_run_is_named_by_its_flag(tmp_path, name):
    flags = [f"--train_dir={tmp_path / 'missing'}"]
    if name == "export":
        flags.append(f"--output_dir={tmp_path / 'export'}")
    result = helpers.run_program(name, *flags, cwd=str(tmp_path))
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"{name}.py: error: --train_dir: {tmp_path / 'missing'} holds no config.json (not a "
        "training folder)."]
    assert sorted(os.listdir(tmp_path)) == []


def test_a_fifo_as_an_input_file_is_refused_without_waiting(tmp_path):
    # Opening a FIFO blocks until something writes into it: a program given one as
    # --groups or --config would wait forever.
    from stacnas_tf import search_space

    fifo = str(tmp_path / "pipe")
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="--groups: .*pipe is not a regular file"):
        search_space.load_groups(fifo)
    result = helpers.run_program("search", f"--config={fifo}",
                                 f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"search.py: error: --config: {fifo} is not a regular file (a FIFO, socket or device); "
        "expected a run's config.json."]
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("setting,message", [
    ({"KERAS_BACKEND": "jax"}, "describe.py: error: KERAS_BACKEND=jax: stacnas_tf runs on "
                               "TensorFlow; unset it or set KERAS_BACKEND=tensorflow."),
    ({"floatx": "float16"}, "describe.py: error: Keras's floatx is 'float16'"),
    ({"image_data_format": "channels_first"},
     "describe.py: error: Keras's image_data_format is 'channels_first'"),
    ({"backend": "jax"}, None),  # keras.json's backend: these programs pin TensorFlow
])
def test_a_keras_set_up_for_something_else_is_named_or_pinned(tmp_path, setting, message):
    env = helpers.program_env(KERAS_HOME=str(tmp_path / "keras_home"))
    env.pop("KERAS_BACKEND", None)
    keras_json = {k: v for k, v in setting.items() if k != "KERAS_BACKEND"}
    if keras_json:
        (tmp_path / "keras_home").mkdir()
        (tmp_path / "keras_home" / "keras.json").write_text(json.dumps(keras_json))
    env.update({k: v for k, v in setting.items() if k == "KERAS_BACKEND"})
    result = helpers.run_program("describe", "--genotype=DARTS_V2", env=env)
    if message is None:
        assert result.returncode == 0, result.stderr[-2000:]
        assert '"parameters": 3349342' in result.stdout
    else:
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(message), lines


def test_the_api_refuses_a_keras_set_up_for_something_else():
    import keras

    import stacnas_tf

    keras.config.set_floatx("float16")
    try:
        with pytest.raises(ValueError, match="Keras's floatx is 'float16'.*set floatx to float32"):
            stacnas_tf.describe("DARTS_V2")
    finally:
        keras.config.set_floatx("float32")
    assert stacnas_tf.describe("DARTS_V2")["parameters"] == 3349342
