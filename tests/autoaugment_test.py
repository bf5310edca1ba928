import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import autoaugment as aa

IMAGE = tf.constant(np.random.RandomState(0).randint(0, 256, (12, 12, 3)), tf.float32)


def test_policy_and_magnitudes_are_the_papers():
    assert len(aa.CIFAR10_POLICY) == 25
    assert aa.CIFAR10_POLICY[0] == (("Invert", 0.1, None), ("Contrast", 0.2, 6))
    assert aa.magnitude("Rotate", 9) == pytest.approx(30.0)
    assert aa.magnitude("ShearX", 0) == 0.0
    assert aa.magnitude("Posterize", 9) == 4 and aa.magnitude("Posterize", 0) == 8
    assert aa.magnitude("Solarize", 0) == 256.0 and aa.magnitude("Solarize", 9) == pytest.approx(0.0)


def test_pixel_ops():
    x = IMAGE.numpy()
    np.testing.assert_array_equal(aa.apply_op("Invert", IMAGE, 0.0).numpy(), 255 - x)
    posterized = aa.apply_op("Posterize", IMAGE, 4.0).numpy()
    assert np.all(posterized % 16 == 0) and np.all(x - posterized < 16)
    solarized = aa.apply_op("Solarize", IMAGE, 128.0).numpy()
    np.testing.assert_array_equal(solarized, np.where(x >= 128, 255 - x, x))
    dim = tf.constant(np.linspace(50, 100, 12 * 12 * 3).reshape(12, 12, 3), tf.float32)
    stretched = aa.apply_op("AutoContrast", dim, 0.0).numpy()
    assert stretched.min() == pytest.approx(0) and stretched.max() == pytest.approx(255)
    wide = tf.constant(np.linspace(50, 100, 32 * 32 * 3).round().reshape(32, 32, 3), tf.float32)
    equalized = aa.apply_op("Equalize", wide, 0.0).numpy()
    assert equalized.max() > 200 and equalized.min() < 10  # spread over the whole range
    # Like PIL, images of fewer than 255 pixels per channel are left as they are.
    np.testing.assert_array_equal(aa.apply_op("Equalize", IMAGE, 0.0).numpy(), IMAGE.numpy())
    for name in ("Brightness", "Color", "Contrast", "Sharpness"):  # factor 1 changes nothing
        np.testing.assert_allclose(aa.apply_op(name, IMAGE, 0.0).numpy(), x, atol=1e-3)
    assert aa.apply_op("Brightness", IMAGE, -0.9).numpy().mean() < 0.2 * x.mean()


def test_geometric_ops():
    x = IMAGE.numpy()
    for name in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"):
        np.testing.assert_array_equal(aa.apply_op(name, IMAGE, 0.0).numpy(), x)
    shifted = aa.apply_op("TranslateX", IMAGE, 2 / 12).numpy()
    np.testing.assert_array_equal(shifted[:, :-2], x[:, 2:])
    assert np.all(shifted[:, -2:] == 128)  # uncovered pixels are grey
    quarter = aa.apply_op("Rotate", tf.constant(x[:, :, :1]), 90.0).numpy()[:, :, 0]
    assert np.array_equal(quarter, np.rot90(x[:, :, 0], k=1)) or np.array_equal(quarter, np.rot90(x[:, :, 0], k=-1))


def test_policy_is_deterministic_in_its_seed_and_keeps_range():
    seed = tf.constant([3, 11], tf.int64)
    a = aa.cifar10_policy(IMAGE, seed).numpy()
    b = aa.cifar10_policy(IMAGE, seed).numpy()
    np.testing.assert_array_equal(a, b)
    outputs = [aa.cifar10_policy(IMAGE, tf.constant([3, k], tf.int64)).numpy() for k in range(40)]
    assert all(o.shape == (12, 12, 3) and o.min() >= 0 and o.max() <= 255 for o in outputs)
    assert sum(not np.array_equal(o, IMAGE.numpy()) for o in outputs) > 10
    gray = aa.cifar10_policy(IMAGE[:, :, :1], seed)
    assert gray.shape == (12, 12, 1)
