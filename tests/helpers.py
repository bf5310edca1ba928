"""What several test files share: the repository's path, small data, running a
program as a user does, a layer check in keras-hub's manner
(`run_layer_test`), and a callback that interrupts a run after an epoch.

TensorFlow and Keras are imported inside the functions that need them: the
test files without TensorFlow (flags, dataset names, the binaries' help) stay
without it.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Files and processes.

def read_json(path):
    with open(path) as f:
        return json.load(f)


def program_env(**overrides) -> dict:
    """The environment a program of the repository runs in: this one, with the
    repository importable, TensorFlow's start-up logs off and no TF_CONFIG of
    this process (a test's multi-worker setting is the program's only if given)."""
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_CONFIG", None)
    env.update(overrides)
    return env


def run_program(name, *flags, cwd=None, env=None, timeout=900, **kwargs):
    """tools/`name`.py run as a user runs it, its output captured as text."""
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", f"{name}.py"), *flags],
                          capture_output=True, text=True, env=program_env() if env is None else env,
                          cwd=cwd, timeout=timeout, **kwargs)


def free_ports(count):
    """`count` distinct TCP ports of 127.0.0.1 that were free a moment ago."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def dead_pid() -> int:
    """The id of a process that has ended (what a killed run leaves in a lock or
    a staging folder's name)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# Data.

def random_batch(count=8, side=8, channels=1, classes=10, seed=0):
    """(raw float32 pixels in [0, 255), int64 labels), as the pipelines hand the
    networks a batch. `seed` may be a np.random.RandomState to draw on from."""
    rng = seed if isinstance(seed, np.random.RandomState) else np.random.RandomState(seed)
    pixels = rng.uniform(0, 255, (count, side, side, channels)).astype(np.float32)
    return pixels, rng.randint(0, classes, count).astype(np.int64)


def indexed_images(count, side=4):
    """uint8 images each filled with its own index: a batch says which examples it holds."""
    return np.ascontiguousarray(np.broadcast_to(
        np.arange(count, dtype=np.uint8)[:, None, None, None], (count, side, side, 1)))


def write_png(path, pixels):
    """Writes `pixels` (height x width x channels, uint8) as a PNG, making its folder."""
    import tensorflow as tf

    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    tf.io.write_file(str(path), tf.io.encode_png(np.asarray(pixels, np.uint8)))


def write_image_folder(root, classes=("cat", "dog"), per_class=3, size=8, seed=0, channels=3):
    """A class-per-sub-folder image folder of random `size` x `size` PNGs named 0.png, 1.png, ..."""
    rng = np.random.RandomState(seed)
    for cls in classes:
        for i in range(per_class):
            write_png(os.path.join(str(root), cls, f"{i}.png"),
                      rng.randint(0, 256, (size, size, channels)))


# What TFDS's builders look for in --manual_dir (tfds.testing.mock_data reads none of it).
_MANUAL_ARCHIVES = {"cifar10": ("cifar-10-binary.tar.gz",),
                    "cifar100": ("cifar-100-binary.tar.gz",),
                    "imagenet2012": ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")}


def manual_dir(tmp_path, dataset):
    """`tmp_path`/manual holding empty stand-ins for `dataset`'s archives: enough
    for its loader to build under tfds.testing.mock_data."""
    folder = os.path.join(str(tmp_path), "manual")
    os.makedirs(folder, exist_ok=True)
    for name in _MANUAL_ARCHIVES[dataset]:
        open(os.path.join(folder, name), "wb").close()
    return folder


def per_cell_genotype():
    """A genotype of 3 cells, each its own: DARTS_V1's normal cell, then
    DARTS_V2's reduction cell twice (a 3-cell network reduces at cells 1 and 2)."""
    from stacnas_tf import genotype as genotype_lib

    published = genotype_lib.PUBLISHED
    cells = tuple(genotype_lib.CellGenotype(base.edges, base.concat, reduction=reduction)
                  for base, reduction in ((published["DARTS_V1"].normal, False),
                                          (published["DARTS_V2"].reduce, True),
                                          (published["DARTS_V2"].reduce, True)))
    return genotype_lib.Genotype(normal=cells[0], reduce=cells[1], cells=cells)


# Runs.

def interrupt_after_epoch(epoch, check=None):
    """A Keras callback that raises KeyboardInterrupt (a Ctrl-C) at the end of
    epoch `epoch` (counted from 1), after calling `check(model)` if given.

    Passed through the public `callbacks=` of a search, a stage or a training,
    it runs after the epoch was recorded in history.json and checkpointed
    (`resumable.fit` runs the user's callbacks after its own): it leaves the
    folder an interruption right after that epoch leaves.
    """
    import keras

    class InterruptAfterEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, index, logs=None):
            if index + 1 == epoch:
                if check is not None:
                    check(self.model)
                raise KeyboardInterrupt(f"simulated interruption after epoch {epoch}")

    return InterruptAfterEpoch()


def epochs_begun():
    """(a Keras callback, the list it fills with the number, counted from 1, of
    each epoch that begins): a resumed run begins after its saved epoch."""
    import keras

    begun = []
    return keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda index, logs: begun.append(index + 1)), begun


# Keras layers and models.

def variable_specs(layer):
    """(path, shape) of each of `layer`'s variables, in order."""
    return [(v.path, tuple(v.shape)) for v in layer.weights]


def assert_same_weights(expected, got):
    """`got` holds `expected`'s variables: the same paths, shapes and values, in order."""
    assert variable_specs(got) == variable_specs(expected)
    for want, have in zip(expected.weights, got.weights):
        np.testing.assert_array_equal(have.numpy(), want.numpy(), err_msg=want.path)


def _default_call(layer, inputs, training):
    return layer(inputs, training=training)


def _shapes(outputs):
    import keras

    return [tuple(output.shape) for output in keras.tree.flatten(outputs)]


def run_layer_test(cls, init_kwargs, input_data, expected_output_shape, *, call=None,
                   expected_num_trainable_weights=None, expected_num_non_trainable_weights=None,
                   run_training_check=True, seed=0):
    """keras-hub's `TestCase.run_layer_test`, for this library's layers and models.

    Makes `cls(**init_kwargs)`, runs it with `call(layer, input_data, training)`
    (by default `layer(input_data, training=training)`; a function to pass
    other arguments: a cell's weights, a drop rate) and checks, in one call:

    - `cls` is registered for Keras as "stacnas_tf>" + its name, and
      `cls.from_config(layer.get_config())` has an equal config;
    - the output shapes in inference mode: `expected_output_shape`, one shape,
      or a list of the shapes of a nest of outputs in `keras.tree` order;
    - the number of trainable / non-trainable weights, where given;
    - one training step (`run_training_check`): in training mode, with a
      loss that weighs every output element by its own random factor, a
      gradient reaches every trainable weight, and one SGD step changes each;
    - a `.keras` file saved in a temporary folder (after that step, so the
      weights are not their initial values) loads back as `cls` with every
      variable (the same paths and values) and the same outputs in inference
      mode (`reloaded`).

    Returns the layer.
    """
    import keras
    import tensorflow as tf

    call = call or _default_call
    keras.utils.set_random_seed(seed)
    layer = cls(**init_kwargs)
    name = keras.saving.get_registered_name(cls)
    assert name == f"stacnas_tf>{cls.__name__}", f"{cls.__name__} is not registered for Keras"
    assert keras.saving.get_registered_object(name) is cls
    config = layer.get_config()
    assert cls.from_config(config).get_config() == config

    outputs = call(layer, input_data, False)
    shapes = _shapes(outputs)
    if all(isinstance(size, (int, type(None))) for size in expected_output_shape):
        expected_output_shape = [expected_output_shape]
    expected_shapes = [tuple(shape) for shape in expected_output_shape]
    assert shapes == expected_shapes, f"output shapes {shapes}, expected {expected_shapes}"
    for weights, count in ((layer.trainable_weights, expected_num_trainable_weights),
                           (layer.non_trainable_weights, expected_num_non_trainable_weights)):
        assert count is None or len(weights) == count, [v.path for v in weights]

    trainable = layer.trainable_weights
    if run_training_check and trainable:
        with tf.GradientTape() as tape:
            outputs = keras.tree.flatten(call(layer, input_data, True))
            loss = tf.add_n([
                tf.reduce_sum(tf.cast(output, tf.float32)
                              * tf.random.stateless_normal(output.shape, seed=[seed, index]))
                for index, output in enumerate(outputs)])
        grads = tape.gradient(loss, trainable)
        for variable, grad in zip(trainable, grads):
            assert grad is not None and np.abs(np.asarray(grad)).max() > 0, (
                f"no gradient reaches {variable.path}")
        before = [variable.numpy().copy() for variable in trainable]
        keras.optimizers.SGD(0.1).apply(grads, trainable)
        for variable, value in zip(trainable, before):
            assert not np.array_equal(variable.numpy(), value), f"{variable.path} did not change"
    else:
        call(layer, input_data, True)  # moves any moving statistics off their initial values

    with tempfile.TemporaryDirectory() as folder:
        reloaded(layer, folder, input_data, call=call)
    return layer


def reloaded(layer, folder, input_data, *, call=None):
    """Saves `layer` (a layer or a model) as a `.keras` file in `folder`, loads
    it back and checks the copy: the same class, every variable (the same
    paths and values), the same outputs on `input_data` in inference mode
    (`call` as for `run_layer_test`). Returns the copy."""
    import keras

    call = call or _default_call
    expected = [np.asarray(output) for output in keras.tree.flatten(call(layer, input_data, False))]
    path = os.path.join(str(folder), f"{layer.name}.keras")
    keras.saving.save_model(layer, path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(layer)
    assert_same_weights(layer, loaded)
    got = keras.tree.flatten(call(loaded, input_data, False))
    assert len(got) == len(expected)
    for want, have in zip(expected, got):
        np.testing.assert_allclose(np.asarray(have), want, rtol=1e-6, atol=1e-6)
    return loaded
