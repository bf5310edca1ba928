"""Search, train and export on an in-memory tf.data.Dataset (scikit-learn's digits).

    python examples/quickstart.py            # the default preset: a few minutes on 2 CPU cores
    python examples/quickstart.py smoke      # seconds: checks that everything runs
"""

import sys

import keras
import tensorflow as tf
from sklearn.datasets import load_digits

import stacnas_tf

preset = sys.argv[1] if len(sys.argv) > 1 else "default"
digits = load_digits()  # 1797 grey 8x8 images, pixels 0-16, bundled with scikit-learn
# Pixels in [0, 255], as images come; the model normalises them itself, so
# `trained.model.predict` takes the same kind of images later.
images = digits.images[..., None].astype("float32") * (255 / 16)
data = tf.data.Dataset.from_tensor_slices((images, digits.target))


class Report(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        print(f"\nepoch {epoch + 1}: loss {logs['loss']:.3f}")


found = stacnas_tf.search(data, preset=preset, image_size=None, callbacks=[Report()])
print("found:", found.genotype.to_darts())
trained = stacnas_tf.train(found, data, preset=preset, image_size=None)
print("test accuracy:", trained.metrics["top1"])
print("first predictions:", trained.model.predict(images[:8], verbose=0).argmax(-1),
      "labels:", digits.target[:8])
report = stacnas_tf.export(trained, "digits_export", data=data, overwrite=True)
print("exported:", sorted(report["formats"]), "to digits_export/")
