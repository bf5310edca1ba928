import os

import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import checkpoints
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import network


def _net(name="DARTS_V2"):
    net = network.FinalNetwork(genotype_lib.PUBLISHED[name], 10, 4, 3, auxiliary=False, name="net")
    net(tf.random.normal([4, 8, 8, 3]), training=True)  # moves the BatchNorm statistics
    return net


def _unrestored_warnings(caplog):
    """What TensorFlow logs of values a restore left, once the checkpoint objects are gone."""
    import gc

    gc.collect()
    return [r for r in caplog.records if "unrestored values" in r.getMessage()
            or "could not be found in the restored object" in r.getMessage()
            or "Unresolved object" in r.getMessage()]


def test_round_trip_keeps_batch_norm_statistics_and_rng_state(tmp_path):
    source = _net()
    source.derived_cells[0].drop_paths[0].seed_generator.next()
    path = checkpoints.make(source).save(str(tmp_path / "ckpt"))
    names = [name for name, _ in tf.train.list_variables(path)]
    assert any("moving_mean" in name for name in names)
    assert any("seed_generator" in name for name in names)
    target = _net()
    checkpoints.restore(checkpoints.make(target), path)
    for a, b in zip(source.variables, target.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_unnamed_sublayers_restore_in_a_model_built_later(tmp_path):
    # Keras numbers unnamed layers process-wide: the second model's layers are
    # conv2d_2, batch_normalization_1, ... where the first's were conv2d, ...
    import keras

    def model():
        inner = keras.Sequential([keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization(),
                                  keras.layers.Conv2D(2, 1)])
        outer = keras.Sequential([inner, keras.layers.Dense(3)])
        outer.build((None, 6, 6, 2))
        return outer

    first, second = model(), model()
    assert [v.path for v in first.variables] != [v.path for v in second.variables]
    for variable in first.variables:
        variable.assign(tf.random.normal(variable.shape))
    path = checkpoints.make(first).save(str(tmp_path / "ckpt"))
    checkpoints.restore(checkpoints.make(second), path)
    for a, b in zip(first.variables, second.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_named_layers_keep_their_keras_paths_as_keys():
    # Checkpoints of this package's own networks keep the keys they always had.
    net = _net()
    keys = checkpoints.model_variables(net)
    plain = {k for k in keys if "seed_generator" not in k}
    assert plain == {v.path for v in net.variables if "seed_generator" not in v.path}
    assert checkpoints._segments(["edge_0", "edge_1", "conv2d", "conv2d_7", "stem", "sep_3"]) == [
        "edge_0", "edge_1", "conv2d_0", "conv2d_1", "stem", "sep"]


def test_a_checkpoint_from_before_in_model_normalisation_says_so(tmp_path):
    old = _net()
    variables = {k: v for k, v in checkpoints.model_variables(old).items()
                 if "pixel_normalization" not in k}
    path = tf.train.Checkpoint(model_variables=variables).save(str(tmp_path / "ckpt"))
    with pytest.raises(ValueError, match="stacnas_tf 0.2 or older.*normalise raw pixels"):
        checkpoints.restore(checkpoints.make(_net()), path)


def test_checkpoint_of_another_network_is_a_clear_error(tmp_path):
    path = checkpoints.make(_net("DARTS_V2")).save(str(tmp_path / "ckpt"))
    with pytest.raises(ValueError, match="does not fit this network"):
        checkpoints.restore(checkpoints.make(_net("DARTS_V1")), path)


@pytest.mark.parametrize("classes,channels,message", [
    (5, 3, "its network tells 10 classes apart, this one 5 \\(data with other classes"),
    (12, 3, "its network tells 10 classes apart, this one 12 \\(data with other classes"),
    (10, 1, "its network takes images with 3 channel\\(s\\), these have 1 \\(grey images"),
])
def test_a_checkpoint_for_other_data_names_what_differs_and_leaves_no_warnings(
        tmp_path, caplog, classes, channels, message):
    path = checkpoints.make(_net()).save(str(tmp_path / "ckpt"))
    other = network.FinalNetwork(genotype_lib.PUBLISHED["DARTS_V2"], classes, 4, 3,
                                 auxiliary=False, name="net")
    other(tf.zeros([2, 8, 8, channels]))
    checkpoint = checkpoints.make(other)
    with pytest.raises(ValueError, match=f"does not fit this network: {message}"):
        checkpoints.restore(checkpoint, path)
    # A half-done restore makes TensorFlow list every value it left, when the
    # checkpoint object goes (at exit, after the one line a user should read).
    del checkpoint, other
    assert not _unrestored_warnings(caplog)


def _saved_twice(tmp_path):
    """Two epochs' checkpoints of one network, as the training loop keeps them."""
    net = _net()
    checkpoint = checkpoints.make(net)
    manager = tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=2)
    manager.save(checkpoint_number=1)
    first = [v.numpy().copy() for v in net.variables]
    net(tf.random.normal([4, 8, 8, 3]), training=True)  # moves the statistics again
    manager.save(checkpoint_number=2)
    return first, [v.numpy().copy() for v in net.variables]


def _data_file(path):
    return next(f for f in os.listdir(os.path.dirname(path)) if f.startswith(os.path.basename(path) + ".data"))


@pytest.mark.parametrize("damage", ["truncate_data", "flip_data_bit", "truncate_index", "garbage_state"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, damage, caplog):
    first, second = _saved_twice(tmp_path)
    newest = str(tmp_path / "ckpt-2")
    if damage == "truncate_data":
        data = tmp_path / _data_file(newest)
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    elif damage == "flip_data_bit":
        data = tmp_path / _data_file(newest)
        content = bytearray(data.read_bytes())
        content[len(content) // 3] ^= 0x10
        data.write_bytes(bytes(content))
    elif damage == "truncate_index":
        index = tmp_path / "ckpt-2.index"
        index.write_bytes(index.read_bytes()[:40])
    else:
        (tmp_path / "checkpoint").write_text("not a checkpoint state\x00")
    target = _net()
    with caplog.at_level("WARNING"):
        path = checkpoints.restore_latest(checkpoints.make(target), str(tmp_path))
    # A fallback says which checkpoint it skipped; a damaged state file is not
    # read at all (checkpoints are found from their files).
    assert ("skipped damaged" in caplog.text) == (damage != "garbage_state")
    expected = second if damage == "garbage_state" else first
    assert path == str(tmp_path / ("ckpt-2" if damage == "garbage_state" else "ckpt-1"))
    for value, variable in zip(expected, target.variables):
        np.testing.assert_array_equal(value, variable.numpy())


def test_every_checkpoint_damaged_is_an_error_naming_them(tmp_path):
    _saved_twice(tmp_path)
    for name in ("ckpt-1", "ckpt-2"):
        data = tmp_path / _data_file(str(tmp_path / name))
        data.write_bytes(b"")
    with pytest.raises(ValueError, match="every checkpoint .* is damaged: .*ckpt-2.*ckpt-1"):
        checkpoints.restore_latest(checkpoints.make(_net()), str(tmp_path))
    assert checkpoints.restore_latest(checkpoints.make(_net()), str(tmp_path / "empty")) is None


def test_keys_are_layer_paths_with_positions_at_every_level():
    # A deeper layer sharing a base name with a shallower one changes neither's
    # key: positions count siblings only (the keys of every checkpoint written).
    import keras

    inner = keras.Sequential([keras.layers.Dense(3, name="dense_4")], name="block")
    model = keras.Sequential([inner, keras.layers.Dense(2, name="dense_9")], name="model")
    model.build((None, 5))
    assert sorted(checkpoints.model_variables(model)) == [
        "model/block/dense/bias", "model/block/dense/kernel", "model/dense/bias", "model/dense/kernel"]


def test_variables_sharing_a_key_are_refused_and_many_are_not():
    import keras

    class Twice(keras.layers.Layer):
        def build(self, input_shape):
            self.a = self.add_weight(shape=(1,), name="w")
            self.b = self.add_weight(shape=(2,), name="w")

        def call(self, x):
            return x

    model = keras.Sequential([Twice(name="twice")], name="model")
    model.build((None, 1))
    with pytest.raises(ValueError, match="model: variable names are not unique"):
        checkpoints.model_variables(model)
    # More variables than Python's cached small integers: counts compare by value.
    many = keras.Sequential([keras.layers.Dense(1) for _ in range(150)], name="many")
    many.build((None, 1))
    assert len(checkpoints.model_variables(many)) == 300


def test_a_restore_expects_the_whole_checkpoint_unless_partial(tmp_path, caplog):
    # A checkpoint that also holds an optimizer, read into the model alone:
    # TensorFlow says at exit what was left out, unless the caller said that
    # only part is wanted (as evaluation does).
    net = _net()
    optimizer = tf.keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build(net.trainable_variables)
    path = tf.train.Checkpoint(model_variables=checkpoints.model_variables(net),
                               optimizer=optimizer).save(str(tmp_path / "ckpt"))
    checkpoint = checkpoints.make(_net())
    checkpoints.restore(checkpoint, path, partial=True)
    del checkpoint
    assert not _unrestored_warnings(caplog)
    for restore in (lambda c: checkpoints.restore(c, path),
                    lambda c: checkpoints.restore_latest(c, str(tmp_path))):
        caplog.clear()
        checkpoint = checkpoints.make(_net())
        restore(checkpoint)
        del checkpoint
        assert _unrestored_warnings(caplog)


def test_another_networks_checkpoint_leaves_no_warnings_and_quotes_the_first_line(tmp_path, caplog):
    path = checkpoints.make(_net("DARTS_V2")).save(str(tmp_path / "ckpt"))
    checkpoint = checkpoints.make(_net("DARTS_V1"))
    with pytest.raises(ValueError) as error:
        checkpoints.restore(checkpoint, path)
    cause = str(error.value.__cause__)
    assert len(cause.splitlines()) > 1
    assert str(error.value).endswith("?): " + cause.splitlines()[0][:300])
    del checkpoint
    assert not _unrestored_warnings(caplog)


@pytest.mark.parametrize("where", ["missing", "empty"])
def test_a_folder_without_the_checkpoint_is_not_taken_for_an_old_one(tmp_path, where):
    path = str(tmp_path / "ckpt-1") if where == "missing" else str(tmp_path)
    with pytest.raises(ValueError) as error:
        checkpoints.restore(checkpoints.make(_net()), path)
    assert "does not fit this network" in str(error.value)
    assert "0.2 or older" not in str(error.value)


def test_the_class_count_of_the_newest_readable_checkpoint(tmp_path):
    def save(classes, number, auxiliary=True):
        net = network.FinalNetwork(genotype_lib.PUBLISHED["DARTS_V2"], classes, 4, 3,
                                   auxiliary=auxiliary, name="net")
        net(tf.zeros([1, 32, 32, 3]))  # the auxiliary head's classifier has the width too
        checkpoint = checkpoints.make(net)
        tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=3).save(checkpoint_number=number)

    assert checkpoints.class_count(str(tmp_path)) is None
    save(7, 1, auxiliary=False)
    assert checkpoints.class_count(str(tmp_path)) == 7
    save(5, 2)
    assert checkpoints.class_count(str(tmp_path)) == 5
    (tmp_path / "ckpt-2.index").write_bytes(b"damaged")  # the newest unreadable: the one before
    assert checkpoints.class_count(str(tmp_path)) == 7
    plain = tf.train.Checkpoint(step=tf.Variable(1)).save(str(tmp_path / "other" / "ckpt"))
    assert checkpoints.class_count(os.path.dirname(plain)) is None  # no classifier in it


def test_the_genotype_a_checkpoint_was_trained_with(tmp_path):
    record = checkpoints.genotype_record('{"version": 1}')
    assert record.trainable is False
    with_genotype = tf.train.Checkpoint(genotype=record).save(str(tmp_path / "a" / "ckpt"))
    assert checkpoints.recorded_genotype(with_genotype) == '{"version": 1}'
    without = tf.train.Checkpoint(step=tf.Variable(1)).save(str(tmp_path / "b" / "ckpt"))
    assert checkpoints.recorded_genotype(without) is None
    assert checkpoints.recorded_genotype(str(tmp_path / "missing")) is None


def test_why_a_checkpoint_is_unreadable_is_its_error_and_first_line(tmp_path):
    _saved_twice(tmp_path)
    assert checkpoints.readable(str(tmp_path / "ckpt-1")) is None
    (tmp_path / _data_file(str(tmp_path / "ckpt-2"))).write_bytes(b"")
    problem = checkpoints.readable(str(tmp_path / "ckpt-2"))
    name, _, message = problem.partition(": ")
    assert name.isidentifier() and name.endswith("Error")
    assert message and "\n" not in message
