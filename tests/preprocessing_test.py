"""PixelNormalization: the first layer of both networks (raw pixels in)."""

import keras
import numpy as np
import pytest

from stacnas_tf import preprocessing

import helpers

# DARTS's CIFAR-10 statistics (utils._data_transforms_cifar10).
CIFAR_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR_STD = (0.24703233, 0.24348505, 0.26158768)


def test_normalises_uint8_and_float_pixels_as_torchvision_normalize_does():
    pixels = np.array([[[[0, 128, 255]]]], np.uint8)
    layer = preprocessing.PixelNormalization(CIFAR_MEAN, CIFAR_STD)
    # torchvision: ToTensor() (x / 255) then Normalize(mean, std), by hand.
    expected = (pixels / 255.0 - np.asarray(CIFAR_MEAN)) / np.asarray(CIFAR_STD)
    np.testing.assert_allclose(layer(pixels).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(layer(pixels.astype(np.float32)).numpy(), expected, rtol=1e-6)
    assert layer(pixels).dtype == "float32"


def test_mean_zero_and_std_one_255th_is_exactly_the_identity():
    # What the parity benchmark against DARTS (which normalises in its loader) uses.
    x = np.random.RandomState(0).randn(2, 4, 4, 3).astype(np.float32)
    layer = preprocessing.PixelNormalization((0.0,) * 3, (1 / 255,) * 3)
    np.testing.assert_array_equal(layer(x).numpy(), x)


def test_output_stays_float32_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        layer = preprocessing.PixelNormalization((0.5,), (0.25,))
        assert layer(np.full((1, 2, 2, 1), 200, np.uint8)).dtype == "float32"
    finally:
        keras.config.set_dtype_policy(previous)


def test_statistics_are_weights_that_save_and_load(tmp_path):
    inputs = keras.Input((4, 4, 3), dtype="uint8")
    layer = preprocessing.PixelNormalization(name="pixel_normalization")
    model = keras.Model(inputs, layer(inputs))
    assert layer.statistics() == ((0.5,) * 3, (0.5,) * 3)  # the default until loaded over
    layer.set_weights([np.array(CIFAR_MEAN, np.float32), np.array(CIFAR_STD, np.float32)])
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    restored = loaded.get_layer("pixel_normalization")
    np.testing.assert_allclose(restored.statistics()[0], CIFAR_MEAN, rtol=1e-6)
    np.testing.assert_allclose(restored.statistics()[1], CIFAR_STD, rtol=1e-6)
    assert len(restored.non_trainable_weights) == 2 and not restored.trainable_weights


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_config_saving_and_training(dtype):
    pixels = np.random.RandomState(0).randint(0, 256, (2, 8, 8, 3)).astype(dtype)
    helpers.run_layer_test(preprocessing.PixelNormalization, {"mean": CIFAR_MEAN, "std": CIFAR_STD},
                           pixels, (2, 8, 8, 3), expected_num_trainable_weights=0,
                           expected_num_non_trainable_weights=2)


def test_bad_statistics_are_refused():
    with pytest.raises(ValueError, match="both mean and std"):
        preprocessing.PixelNormalization((0.5,), None)
    with pytest.raises(ValueError, match="std must be positive"):
        preprocessing.PixelNormalization((0.5,), (0.0,))
    with pytest.raises(ValueError, match="statistics of 3 channels, images of 1"):
        preprocessing.PixelNormalization(CIFAR_MEAN, CIFAR_STD)(np.zeros((1, 2, 2, 1)))


# Each case a way to get the statistics wrong; together, every direction of each
# check (the tool-made mutation run left these directions untested).
@pytest.mark.parametrize("mean,std,images,message", [
    (None, (0.5,), None, "both mean and std"),  # std without mean
    ((0.5, 0.5), (0.5,), None, "one value per channel, got 2 and 1"),
    ((0.5,), (0.5, 0.5), None, "one value per channel, got 1 and 2"),
    ((), (), None, "one value per channel, got 0 and 0"),
    ((0.5,), (-0.25,), None, "std must be positive"),
    ((0.5,), (float("inf"),), None, "std must be positive"),
    ((0.5,), (0.5,), np.zeros((1, 2, 2, 3)), "statistics of 1 channels, images of 3"),
])
def test_statistics_that_do_not_fit_are_refused(mean, std, images, message):
    with pytest.raises(ValueError, match=message):
        layer = preprocessing.PixelNormalization(mean, std)
        if images is not None:
            layer(images)
