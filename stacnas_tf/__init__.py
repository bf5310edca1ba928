"""stacnas_tf: StacNAS (stable and consistent differentiable NAS) in Keras 3 / TensorFlow."""

__version__ = "0.2.0"
