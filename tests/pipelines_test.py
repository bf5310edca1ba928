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


@pytest.mark.parametrize("height,width,size", [(300, 400, 224), (400, 300, 224), (90, 300, 32),
                                               (301, 90, 32), (41, 40, 32)])
def test_imagenet_evaluation_crop_is_torchvisions_resize_256_center_crop_224(height, width, size):
    # The reference: PIL (torchvision's backend) resizes the shorter side to 256,
    # then the centre 224 x 224 is cut out.
    from PIL import Image

    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([(xx * 0.6) % 256, (yy * 0.8) % 256, ((xx + yy) * 0.3) % 256], -1).astype(np.uint8)
    image[100:140, 150:170] = 255
    # DARTS's train_imagenet.py: Resize(256) then CenterCrop(224); at other
    # sizes the shorter side keeps the ratio, round(size * 256 / 224): 37 for 32.
    shorter = round(size * 256 / 224)
    new_w, new_h = ((int(shorter * width / height), shorter) if height <= width
                    else (shorter, int(shorter * height / width)))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR), np.float32)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    expected = resized[top:top + size, left:left + size]
    source = sources.Source("imagenet2012", "test", None, 1, 1000, (None, None, 3), (0.0,) * 3, (1.0,) * 3)
    got = pipelines._pixels(tf.constant(image), source, size).numpy()
    assert got.shape == (size, size, 3)
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


def _multi_index(count, shape=(2, 2, 3)):
    # Images holding their index in two pixels (index // 256, index % 256).
    images = np.zeros((count,) + shape, np.uint8)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = np.arange(count) // 256, np.arange(count) % 256
    return sources._in_memory("indexed", "train", images, np.arange(count) % 2)


def _positions(batch_images):
    pixels = np.rint(batch_images.numpy()[:, 0, 0]).astype(int)
    return (pixels[:, 0] * 256 + pixels[:, 1]).tolist()


def test_one_worker_of_a_strategy_takes_every_nth_position_in_replica_batches():
    # 2 workers x 3 replicas each, a global batch of 12: each worker keeps every
    # 2nd position of the shared stream and cuts it into replica batches of 2;
    # one global step is 3 of them per worker, so the take() count is per step.
    source = _indexed(64)
    kwargs = dict(seed=3, epochs=2, augment=augmentation.Augment())
    single = [i for x, _ in pipelines.train_pipeline(source, 12, **kwargs) for i in _indices(source, x)]
    assert len(single) == 2 * 5 * 12  # 2 epochs of 5 full batches
    workers = []
    for worker in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=worker,
                                             num_replicas_in_sync=6)
        batches = [_indices(source, x) for x, _ in pipelines.train_pipeline(
            source, 12, input_context=context, **kwargs)]
        assert [len(b) for b in batches] == [2] * (2 * 5 * 3)  # 2 epochs x 5 steps x 3 replicas
        workers.append([i for b in batches for i in b])
    assert workers[0] == single[0::2] and workers[1] == single[1::2]
    # One worker with 2 replicas: batches of 4, two per step.
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                         num_replicas_in_sync=2)
    batches = [_indices(source, x) for x, _ in pipelines.train_pipeline(
        source, 8, input_context=context, **kwargs)]
    assert [i for b in batches for i in b] == [
        i for x, _ in pipelines.train_pipeline(source, 8, **kwargs) for i in _indices(source, x)]
    assert {len(b) for b in batches} == {4}
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                         num_replicas_in_sync=3)
    with pytest.raises(ValueError, match="--batch_size=8 does not split evenly over 3 replicas"):
        pipelines.train_pipeline(source, 8, input_context=context, **kwargs)


def test_examples_from_first_example_on_and_none_past_the_end():
    source = _indexed(10)
    kwargs = dict(seed=0, epochs=1, augment=augmentation.Augment())
    used = {i for x, _ in pipelines.train_pipeline(source, 2, first_example=6, **kwargs)
            for i in _indices(source, x)}
    assert used == {6, 7, 8, 9}
    assert [_indices(source, x) for x, _ in pipelines.train_pipeline(
        source, 1, first_example=9, **kwargs)] == [[9]]
    with pytest.raises(ValueError, match="first_example=10 is past the 10 examples"):
        pipelines.train_pipeline(source, 1, first_example=10, **kwargs)


def test_the_shuffle_order_is_pinned_past_the_shuffle_buffer():
    # A run resumed by a later version must see the batches the first part
    # would have seen: the order of a 20,500-example source (more than the
    # 20,000-example shuffle buffer) is pinned.
    source = _multi_index(20500)
    first = _positions(next(iter(pipelines.train_pipeline(
        source, 12, seed=0, epochs=1, augment=augmentation.Augment())))[0])
    assert first == PINNED_FIRST_BATCH


PINNED_FIRST_BATCH = [14732, 9071, 6650, 490, 8657, 15666, 8765, 11747, 3270, 8724, 16180, 2382]


def _dataset_ops(dataset):
    graph = tf.compat.v1.GraphDef.FromString(dataset._as_serialized_graph().numpy())
    return {node.op: node for node in graph.node}


def test_training_batches_are_in_order_and_cached_only_when_asked():
    source = _indexed(16)
    default = _dataset_ops(pipelines.train_pipeline(source, 4, seed=0, epochs=1))
    assert "CacheDatasetV2" not in default
    assert default["ParallelMapDatasetV2"].attr["deterministic"].s == b"true"
    cached = _dataset_ops(pipelines.train_pipeline(source, 4, seed=0, epochs=1, cache=True))
    assert "CacheDatasetV2" in cached


@pytest.mark.parametrize("shape,expected", [((8, 8, 1), (8, 8, 1)), ((6, 8, 1), (6, 6, 1))])
def test_random_resized_crops_are_as_high_as_the_images_without_a_size(shape, expected):
    source = sources._in_memory("indexed", "train", np.full((4,) + shape, 9, np.uint8), np.arange(4) % 2)
    batch, _ = next(iter(pipelines.train_pipeline(
        source, 4, seed=0, epochs=1, augment=augmentation.Augment(random_resized_crop=True))))
    assert tuple(batch.shape[1:]) == expected


def test_the_crop_of_a_training_example_has_a_seed_apart_from_its_other_draws(monkeypatch):
    # ImageNet's random-resized crop is drawn in the pipeline, every other
    # decision in augmentation.apply: the crop's seed must be none of apply's
    # (stateless draws from one seed would move together).
    def fake_crop(image, size, seed):
        return tf.broadcast_to(tf.cast(tf.concat([seed, [0]], 0), tf.float32), [size, size, 3])

    def fake_apply(image, seed, augment, source):
        return tf.stack([image[..., 0], image[..., 1], tf.fill(tf.shape(image)[:2], tf.cast(
            seed[0], tf.float32)), tf.fill(tf.shape(image)[:2], tf.cast(seed[1], tf.float32))], -1)

    source = sources._in_memory("indexed", "train", np.zeros((8, 8, 8, 3), np.uint8), np.arange(8) % 2)
    augment = augmentation.Augment(random_resized_crop=True, flip=True, color_jitter=True,
                                   autoaugment=True, cutout=2)
    with monkeypatch.context() as patch:
        patch.setattr(augmentation, "random_resized_crop", fake_crop)
        patch.setattr(augmentation, "apply", fake_apply)
        batch, _ = next(iter(pipelines.train_pipeline(source, 8, seed=1, epochs=1, augment=augment)))
    pixels = np.rint(batch.numpy()[:, 0, 0]).astype(int)
    seeds = []

    def recording(function):
        def call(*args, **kwargs):
            seeds.append(tuple(np.asarray(kwargs.get("seed", args[-1])).tolist()))
            return function(*args, **kwargs)
        return call

    for module, name in ((tf.image, "stateless_random_flip_left_right"),
                         (tf.image, "stateless_random_contrast"), (tf.image, "stateless_random_saturation"),
                         (tf.image, "stateless_random_hue"), (tf.random, "stateless_uniform")):
        monkeypatch.setattr(module, name, recording(getattr(module, name)))
    # Each example's crop is its own (positions that shared a seed would crop alike).
    assert len({(crop0, crop1) for crop0, crop1, _, _ in pixels}) == len(pixels) == 8
    for crop0, crop1, apply0, apply1 in pixels:
        assert (apply0, apply1) != (crop0, crop1)
        seeds.clear()
        augmentation.apply(tf.zeros((8, 8, 3)), tf.constant([apply0, apply1], tf.int64), augment, source)
        assert len(seeds) >= 6 and (crop0, crop1) not in seeds, (crop0, crop1, seeds)


@pytest.mark.parametrize("seed", [0, 1, 6])
def test_the_architecture_half_is_shuffled_and_augmented_by_a_seed_of_its_own(seed):
    # Both halves are 32 examples: with one seed they would be permuted alike
    # (the i-th of each half at the same place) and augmented alike.
    source = _indexed(64)
    pairs = list(pipelines.bi_level_pipeline(source, 8, seed=seed, epochs=1,
                                             augment=augmentation.Augment(), num_examples=64))
    weights = [i for (x, _), _ in pairs for i in _indices(source, x)]
    architecture = [i - 32 for _, (x, _) in pairs for i in _indices(source, x)]
    assert sorted(weights) == sorted(architecture) == list(range(32))
    assert weights != architecture


def test_evaluation_takes_the_first_examples_when_asked():
    source = _indexed(10)
    assert [i for x, _ in pipelines.eval_pipeline(source, 4, num_examples=6)
            for i in _indices(source, x)] == [0, 1, 2, 3, 4, 5]
    assert sum(int(x.shape[0]) for x, _ in pipelines.eval_pipeline(source, 4)) == 10


@pytest.mark.parametrize("shape", [(8, 8), (6, 8), (10, 8), (8, 6), (8, 10), (16, 16)])
def test_evaluation_resizes_whatever_is_not_the_asked_square(shape):
    source = sources._in_memory("indexed", "train", np.full((2,) + shape + (1,), 40, np.uint8),
                                np.arange(2))
    images = next(iter(pipelines.eval_pipeline(source, 2, image_size=8)))[0].numpy()
    assert images.shape == (2, 8, 8, 1)
    np.testing.assert_allclose(images, 40.0, atol=1e-3)


def test_evaluation_resizing_is_antialiased_and_only_imagenet_is_cropped():
    # One bright column in every 4: an antialiased resize averages it (63.75),
    # a plain bilinear one samples between columns (0); a centre crop would
    # cut the 16 x 16 square's border off. digits sorts before imagenet2012 and
    # in_memory after it: only the name itself is cropped.
    pixels = np.zeros((1, 16, 16, 1), np.uint8)
    pixels[:, :, ::4] = 255
    pixels[:, :4] = 0  # a dark band at the top that a centre crop would remove
    expected = tf.image.resize(tf.constant(pixels[0], tf.float32), (4, 4), antialias=True).numpy()
    for name in ("digits", "in_memory"):
        source = sources._in_memory(name, "test", pixels, np.zeros(1, np.int64))
        got = next(iter(pipelines.eval_pipeline(source, 1, image_size=4)))[0].numpy()[0]
        np.testing.assert_allclose(got, expected, atol=1e-4)
        assert 40 <= got[1:].mean() <= 75
    # ImageNet's name read from a flag (not an interned literal) is still ImageNet.
    imagenet = sources.Source("".join(["imagenet", "2012"]), "test", tf.data.Dataset.from_tensor_slices(
        (pixels, np.zeros(1, np.int64))), 1, 1000, (None, None, 1), (0.0,), (1.0,))
    got = next(iter(pipelines.eval_pipeline(imagenet, 1, image_size=4)))[0].numpy()[0]
    assert got.shape == (4, 4, 1) and not np.allclose(got, expected, atol=1e-4)
    raw = next(iter(pipelines.eval_pipeline(imagenet, 1)))[0].numpy()[0]
    np.testing.assert_array_equal(raw, pixels[0])  # no size asked: raw pixels
