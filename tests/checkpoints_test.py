import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from stacnas_tf import checkpoints  # noqa: E402
from stacnas_tf import genotype as genotype_lib  # noqa: E402
from stacnas_tf import network  # noqa: E402


def _net(name="DARTS_V2"):
    net = network.FinalNetwork(genotype_lib.PUBLISHED[name], 10, 4, 3, auxiliary=False, name="net")
    net(tf.random.normal([4, 8, 8, 3]), training=True)  # moves the BatchNorm statistics
    return net


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


def test_checkpoint_of_another_network_is_a_clear_error(tmp_path):
    path = checkpoints.make(_net("DARTS_V2")).save(str(tmp_path / "ckpt"))
    with pytest.raises(ValueError, match="does not fit this network"):
        checkpoints.restore(checkpoints.make(_net("DARTS_V1")), path)
