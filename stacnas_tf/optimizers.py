"""SGD with momentum as one fused TensorFlow kernel per variable.

A supernet has thousands of small variables (every depthwise and pointwise
kernel of every candidate op). Keras's SGD builds its momentum update from
about seven ops per variable in Python, which made the optimizer a sixth of
the first step's graph-building time; `ResourceApplyKerasMomentum` does the
same arithmetic in one op.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="stacnas_tf")
class FusedSGD(keras.optimizers.SGD):
    """`keras.optimizers.SGD` whose momentum update (m = momentum * m - lr * g;
    w = w + m) runs as one `ResourceApplyKerasMomentum` op per variable on the
    TensorFlow backend. Nesterov momentum and momentum 0 use Keras's own update.
    Same variables, so checkpoints are interchangeable with Keras's SGD."""

    def update_step(self, gradient, variable, learning_rate):
        if self.momentum == 0 or self.nesterov or keras.backend.backend() != "tensorflow":
            return super().update_step(gradient, variable, learning_rate)
        momentum = self.momentums[self._get_variable_index(variable)]
        accumulator = momentum.value if isinstance(momentum, keras.Variable) else momentum
        target = variable.value if isinstance(variable, keras.Variable) else variable
        dtype = target.dtype
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=target.handle, accum=accumulator.handle,
            lr=tf.cast(learning_rate, dtype), grad=tf.cast(gradient, dtype),
            momentum=self._momentum_tensor(dtype), use_locking=False, use_nesterov=False)

    def _momentum_tensor(self, dtype):
        # One constant per graph, not one per variable.
        graph = tf.compat.v1.get_default_graph()
        cached = self.__dict__.get("_momentum_constant")
        if cached is None or cached[0] is not graph or cached[1].dtype != dtype:
            cached = (graph, tf.constant(self.momentum, dtype))
            # Set past __setattr__: a graph tensor is no state to track or save.
            self.__dict__["_momentum_constant"] = cached
        return cached[1]
