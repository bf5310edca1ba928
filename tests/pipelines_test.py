import numpy as np
import pytest
import tensorflow as tf

from stacnas_tf import augmentation
from stacnas_tf import pipelines
from stacnas_tf import sources

import helpers


def test_bi_level_halves_share_no_image():
    import hashlib

    source = sources.load("digits")
    weights, architecture = set(), set()
    for weight_batch, architecture_batch in pipelines.bi_level_pipeline(source, 64, seed=0, epochs=1):
        weights.update(hashlib.sha256(x.tobytes()).hexdigest() for x in weight_batch[0].numpy())
        architecture.update(hashlib.sha256(x.tobytes()).hexdigest()
                            for x in architecture_batch[0].numpy())
    assert len(weights) > 600 and len(architecture) > 600 and not weights & architecture


@pytest.mark.parametrize("height,width", [(300, 400), (400, 300)])
def test_imagenet_evaluation_crop_is_torchvisions_resize_256_center_crop_224(height, width):
    # The reference: PIL (torchvision's backend) resizes the shorter side to 256,
    # then the centre 224 x 224 is cut out.
    from PIL import Image

    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([(xx * 0.6) % 256, (yy * 0.8) % 256, ((xx + yy) * 0.3) % 256], -1).astype(np.uint8)
    image[100:140, 150:170] = 255
    new_w, new_h = ((int(256 * width / height), 256) if height <= width
                    else (256, int(256 * height / width)))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR), np.float32)
    top, left = int(round((new_h - 224) / 2.0)), int(round((new_w - 224) / 2.0))
    expected = resized[top:top + 224, left:left + 224]
    source = sources.Source("imagenet2012", "test", None, 1, 1000, (None, None, 3), (0.0,) * 3, (1.0,) * 3)
    got = pipelines._pixels(tf.constant(image), source, 224).numpy()
    assert got.shape == (224, 224, 3)
    # Antialiased bilinear in TF and in PIL differ by rounding only.
    assert np.abs(got - expected).mean() < 0.5 and np.abs(got - expected).max() < 2


def test_train_pipeline_is_a_function_of_seed_and_epoch():
    source = sources.load("digits")
    augment = augmentation.Augment(crop_padding=2, flip=True)

    def batches(seed, initial_epoch):
        return [x.numpy() for x, _ in pipelines.train_pipeline(
            source, 32, seed=seed, epochs=3, initial_epoch=initial_epoch, augment=augment,
            num_examples=128)]

    full = batches(0, 0)
    assert len(full) == 12  # 3 epochs x 4 batches, incomplete batches dropped
    resumed = batches(0, 2)
    for a, b in zip(full[8:], resumed):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(full[0], full[4])  # a new order every epoch
    assert not np.array_equal(full[0], batches(1, 0)[0])  # and per seed


def test_bi_level_halves_are_disjoint_and_cover_the_examples():
    # Every image holds its own index, so each batch says which examples it used.
    count = 64
    source = _indexed(count)
    pipeline = pipelines.bi_level_pipeline(source, batch_size=8, seed=0, epochs=2,
                                      augment=augmentation.Augment(), num_examples=count)
    seen = {"weights": [], "architecture": []}
    for weight_batch, arch_batch in pipeline:
        for name, (batch_images, _) in (("weights", weight_batch), ("architecture", arch_batch)):
            seen[name] += _indices(source, batch_images)
    assert len(seen["weights"]) == len(seen["architecture"]) == 2 * count // 2  # 2 epochs of a half
    assert set(seen["weights"]) == set(range(32)) and set(seen["architecture"]) == set(range(32, 64))


def _indexed(count):
    # Every image holds its own index (as uint8 pixels), so a batch says which examples it used.
    return sources._in_memory("indexed", "train", helpers.indexed_images(count),
                              np.arange(count) % 2)


def _indices(source, batch_images):
    # Pipelines hand the networks raw pixels, so the pixel is the index.
    return np.rint(batch_images.numpy()[:, 0, 0, 0]).astype(int).tolist()


def test_short_epochs_cut_one_stream_of_fresh_images():
    # The default search's epochs are shorter than a pass over the data: consecutive
    # epochs continue the pass, so no image repeats until every one has been seen.
    source = _indexed(200)
    stream = [_indices(source, x) for x, _ in pipelines.train_pipeline(
        source, 8, seed=4, epochs=5, augment=augmentation.Augment(), epoch_steps=4)]
    assert len(stream) == 20
    seen = [i for batch in stream for i in batch]
    assert len(seen) == 160 and len(set(seen)) == 160  # 5 epochs x 4 steps x 8, all distinct
    # Resuming at epoch 3 gives the uninterrupted run's epochs 3 and 4.
    resumed = [_indices(source, x) for x, _ in pipelines.train_pipeline(
        source, 8, seed=4, epochs=5, initial_epoch=3, augment=augmentation.Augment(), epoch_steps=4)]
    assert resumed == stream[12:]
    # Past a pass the stream goes on over a new shuffle of every image.
    long = [i for x, _ in pipelines.train_pipeline(source, 8, seed=4, epochs=2, augment=augmentation.Augment(),
                                              epoch_steps=25) for i in _indices(source, x)]
    assert sorted(long[:200]) == list(range(200)) and long[200:] != long[:200]
