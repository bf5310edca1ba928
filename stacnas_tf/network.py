"""Final networks from a genotype: DARTS's CIFAR and ImageNet (mobile) networks.

Layer for layer as the DARTS reference (`NetworkCIFAR`, `NetworkImageNet`):
affine BatchNorm, no conv biases, reduction cells at 1/3 and 2/3 of the
depth, drop path on non-identity edges, and an auxiliary head on the output of
the cell at 2/3 of the depth, used in training only.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from stacnas_tf import cells as cells_lib
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import one_level
from stacnas_tf import ops as ops_lib
from stacnas_tf import precision
from stacnas_tf import preprocessing
from stacnas_tf import search_space

STEMS = ("cifar", "imagenet")


def _conv_bn(filters, kernel_size, stride, name, relu_first=False):
    """[ReLU] -> conv (PyTorch padding k // 2) -> affine BatchNorm."""
    layers = [keras.layers.ReLU(name=f"{name}_relu")] if relu_first else []
    if stride == 1:
        layers.append(keras.layers.Conv2D(filters, kernel_size, padding="same", use_bias=False,
                                          name=f"{name}_conv"))
    else:
        layers += [keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad"),
                   keras.layers.Conv2D(filters, kernel_size, strides=stride, padding="valid",
                                       use_bias=False, name=f"{name}_conv")]
    layers.append(ops_lib.BatchNorm(name=f"{name}_bn"))
    return layers


@keras.saving.register_keras_serializable(package="stacnas_tf")
class AuxiliaryHead(keras.layers.Layer):
    """DARTS's auxiliary classifier: ReLU, 5x5 average pool (stride 3 for the
    8x8 CIFAR map, 2 for the 14x14 ImageNet one), 1x1 conv to 128, BN, ReLU,
    2x2 conv to 768, [BN, as CIFAR only], ReLU, linear classifier."""

    def __init__(self, num_classes, stem="cifar", **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.stem = stem
        self.pool = keras.layers.AveragePooling2D(5, strides=3 if stem == "cifar" else 2, name="pool")
        self.conv1 = keras.layers.Conv2D(128, 1, use_bias=False, name="conv1")
        self.bn1 = ops_lib.BatchNorm(name="bn1")
        self.conv2 = keras.layers.Conv2D(768, 2, use_bias=False, name="conv2")
        # DARTS's ImageNet head has no BatchNorm here (kept as in the reference).
        self.bn2 = ops_lib.BatchNorm(name="bn2") if stem == "cifar" else None
        # Logits in float32 under mixed precision, as Keras recommends.
        self.classifier = keras.layers.Dense(num_classes, dtype="float32", name="classifier")

    def build(self, input_shape):
        _, height, width, channels = input_shape
        # The 5x5 pool (no padding) must leave 2x2 for the 2x2 convolution: 8x8 under
        # CIFAR's stride 3 (DARTS's head is written for 8x8), 7x7 under ImageNet's 2.
        stride = self.pool.strides[0]
        smallest = 5 + stride
        if height is None or width is None or height < smallest or width < smallest:
            raise ValueError(
                f"the auxiliary head needs a map of at least {smallest}x{smallest} (the "
                f"{self.stem} head), got {height}x{width}: use larger images or no auxiliary "
                "head (--aux_weight=0)."
            )
        # Explicit, with the spatial size: the classifier's input width depends on it.
        pooled = ((height - 5) // stride + 1, (width - 5) // stride + 1)
        self.conv1.build((None, height, width, channels))
        self.bn1.build((None, None, None, 128))
        self.conv2.build((None, pooled[0], pooled[1], 128))
        if self.bn2 is not None:
            self.bn2.build((None, None, None, 768))
        self.classifier.build((None, (pooled[0] - 1) * (pooled[1] - 1) * 768))

    def call(self, inputs, training=None):
        x = self.pool(tf.nn.relu(inputs))
        x = tf.nn.relu(self.bn1(self.conv1(x), training=training))
        x = self.conv2(x)
        if self.bn2 is not None:
            x = self.bn2(x, training=training)
        x = tf.nn.relu(x)
        return self.classifier(tf.reshape(x, [tf.shape(x)[0], x.shape[1] * x.shape[2] * x.shape[3]]))

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "stem": self.stem})
        return config


@keras.saving.register_keras_serializable(package="stacnas_tf")
class FinalNetwork(one_level.TrainingHooks, keras.Model):
    """A network of `num_cells` DerivedCells built from `genotype`.

    Takes raw pixels in [0, 255] (uint8 or float) and normalises them first with
    `mean` and `std` (per channel, fractions of the pixel range; see
    `preprocessing.PixelNormalization`), held as weights that save with the model.
    stem="cifar": 3x3 conv to 3C + BN; stem="imagenet": DARTS's two-stage
    stride-2 stem (224 -> 28 before the first cell). Returns logits; in
    training with `auxiliary=True`, returns (logits, auxiliary logits).
    `drop_path_rate` is a variable that the training loop ramps.
    """

    def __init__(self, genotype, num_classes, channels=36, num_cells=20, *, stem="cifar",
                 auxiliary=True, deformable=False, mean=None, std=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(genotype, dict):
            genotype = genotype_lib.Genotype.from_dict(genotype)
        if stem not in STEMS:
            raise ValueError(f"stem: expected one of {STEMS}, got {stem!r}.")
        if num_cells < 1:
            raise ValueError(f"num_cells: expected a positive number of cells, got {num_cells}.")
        if genotype.cells is not None and len(genotype.cells) != num_cells:
            raise ValueError(
                f"genotype has {len(genotype.cells)} per-cell genotypes; the network has {num_cells} cells."
            )
        self.genotype = genotype
        self.num_classes = num_classes
        self.channels = channels
        self.num_cells = num_cells
        self.stem = stem
        self.auxiliary = auxiliary
        self.deformable = deformable
        self.drop_path_rate = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="drop_path_rate")

        self.pixel_normalization = preprocessing.PixelNormalization(
            mean, std, name="pixel_normalization")
        # Input widths are inferred by Keras; only output widths are set here.
        if stem == "cifar":
            self.stem_layers = _conv_bn(3 * channels, 3, 1, "stem")
            self.stem1_layers = []
            reduction_prev = False
        else:
            # Two stride-2 stages, then a third: the first cell sees 1/8 of the input
            # and treats the stem as a reduction (its older input is halved again).
            self.stem_layers = (_conv_bn(channels // 2, 3, 2, "stem0_a")
                                + [keras.layers.ReLU(name="stem0_relu")]
                                + _conv_bn(channels, 3, 2, "stem0_b"))
            self.stem1_layers = _conv_bn(channels, 3, 2, "stem1", relu_first=True)
            reduction_prev = True
        reductions = search_space.reduction_positions(num_cells)
        self.aux_position = 2 * num_cells // 3
        filters = channels
        self.derived_cells = []
        for index in range(num_cells):
            reduction = index in reductions
            if reduction:
                filters *= 2
            cell = genotype.cell(index, reduction)
            if cell.reduction != reduction and genotype.cells is not None:
                raise ValueError(
                    f"genotype: per-cell genotype {index} is {'a reduction' if cell.reduction else 'a normal'} "
                    f"cell, but cell {index} of a {num_cells}-cell network is not."
                )
            self.derived_cells.append(cells_lib.DerivedCell(
                cell.edges, cell.concat, filters, reduction, reduction_prev, deformable=deformable,
                name=f"cell_{index}_{'reduce' if reduction else 'normal'}"))
            reduction_prev = reduction
        self.auxiliary_head = AuxiliaryHead(num_classes, stem, name="auxiliary_head") if auxiliary else None
        self.global_pool = keras.layers.GlobalAveragePooling2D(name="global_pool")
        # Logits in float32 under mixed precision, as Keras recommends.
        self.classifier = keras.layers.Dense(num_classes, dtype="float32", name="classifier")

    def build(self, input_shape):
        # Every sublayer is built here, before any call: Keras's loader
        # (`keras.models.load_model`) calls `build` and then assigns the saved
        # weights, so a variable made later would silently keep its initial value.
        shape = (None,) + tuple(input_shape[1:])
        self.pixel_normalization.build(shape)
        for layer in self.stem_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        shape0 = shape
        for layer in self.stem1_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        shape1 = shape
        for index, cell in enumerate(self.derived_cells):
            cell.build((shape0, shape1))
            shape0, shape1 = shape1, cell.compute_output_shape((shape0, shape1))
            if index == self.aux_position and self.auxiliary_head is not None:
                self.auxiliary_head.build(shape1)
        self.global_pool.build(shape1)
        self.classifier.build((None, shape1[-1]))

    def call(self, images, training=None):
        x = self.pixel_normalization(images)
        for layer in self.stem_layers:
            x = layer(x, training=training)
        s0 = x
        for layer in self.stem1_layers:
            x = layer(x, training=training)
        s1 = x
        aux_logits = None
        # Read only in training: an inference graph (and its exports) holds no stray variable read.
        drop_path_rate = self.drop_path_rate if training else 0.0
        for index, cell in enumerate(self.derived_cells):
            s0, s1 = s1, cell((s0, s1), drop_path_rate=drop_path_rate, training=training)
            if index == self.aux_position and self.auxiliary_head is not None and training:
                aux_logits = self.auxiliary_head(s1, training=training)
        logits = self.classifier(self.global_pool(s1))
        if aux_logits is not None:
            return logits, aux_logits
        return logits

    @property
    def architecture_variables(self):
        """The deformable edges' logits (empty unless `deformable`)."""
        return [cell.edge_logits for cell in self.derived_cells if cell.deformable]

    @property
    def weight_variables(self):
        architecture_ids = {id(v) for v in self.architecture_variables}
        return [v for v in self.trainable_variables if id(v) not in architecture_ids]

    # --- training --------------------------------------------------------------

    def compile(self, optimizer, architecture_optimizer=None, *, aux_weight=0.4,
                label_smoothing=0.0, grad_clip_norm=5.0, weight_decay=3e-4,
                architecture_weight_decay=1e-3, **kwargs):
        """Compiles for DARTS-style training: cross-entropy (optionally label-smoothed)
        plus `aux_weight` x the auxiliary head's, SGD on the weights, and, for
        deformable networks, `architecture_optimizer` on the edge logits (one-level).
        `optimizer` steps the weights."""
        kwargs.setdefault("loss", SparseCrossentropy(label_smoothing=label_smoothing))
        kwargs.setdefault("metrics", [
            keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"),
        ])
        # Explicit: Keras's "auto" would turn XLA on wherever there is a GPU.
        kwargs.setdefault("jit_compile", False)
        # Under mixed_float16 Keras wraps the weight optimizer in a LossScaleOptimizer.
        super().compile(optimizer=optimizer, **kwargs)
        if self.architecture_variables and architecture_optimizer is None:
            raise ValueError("a deformable network needs an architecture_optimizer.")
        architecture_optimizer = one_level.matching_loss_scaling(self.optimizer,
                                                                 architecture_optimizer)
        self.architecture_optimizer = architecture_optimizer
        self.aux_weight = aux_weight
        self.grad_clip_norm = grad_clip_norm
        self.weight_decay = weight_decay
        self.architecture_weight_decay = architecture_weight_decay
        if not self.built:
            raise ValueError("FinalNetwork.compile: build the network first "
                             "(model.build((None, height, width, channels)), or call it on a "
                             "batch of images): the optimizers are made for its variables.")
        self.optimizer.build(self.weight_variables)
        if self.architecture_variables:
            architecture_optimizer.build(self.architecture_variables)
        self._build_compiled_state()

    def _extra_compile_config(self):
        return {
            "architecture_optimizer": self.architecture_optimizer, "aux_weight": self.aux_weight,
            "grad_clip_norm": self.grad_clip_norm, "weight_decay": self.weight_decay,
            "architecture_weight_decay": self.architecture_weight_decay,
        }

    def train_step(self, data):
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)

        def forward():
            outputs = self(images, training=True)
            logits, aux_logits = outputs if isinstance(outputs, tuple) else (outputs, None)
            # Both terms are divided by the replica count under a strategy.
            loss = self.compute_loss(x=images, y=labels, y_pred=logits, training=True)
            if aux_logits is not None and self.aux_weight:
                loss += self.aux_weight * self.loss(labels, aux_logits)
            return loss, logits

        loss, logits, weight_grads, arch_grads, _ = self._one_level_gradients(forward)
        one_level.apply(self.optimizer, weight_grads, self.weight_variables,
                        self.architecture_optimizer, arch_grads, self.architecture_variables)
        return self._step_logs(images, labels, logits, loss)

    def test_step(self, data):
        return one_level.replica_logs(super().test_step(data))

    def parameter_count(self, include_auxiliary=False) -> int:
        """Trainable parameters (weights and deformable logits), as PyTorch counts them."""
        aux_ids = ({id(v) for v in self.auxiliary_head.trainable_variables}
                   if self.auxiliary_head is not None and not include_auxiliary else set())
        return int(sum(np.prod(v.shape) for v in self.trainable_variables if id(v) not in aux_ids))

    def get_config(self):
        config = super().get_config()
        config.update({
            "genotype": self.genotype.to_dict(), "num_classes": self.num_classes,
            "channels": self.channels, "num_cells": self.num_cells, "stem": self.stem,
            "auxiliary": self.auxiliary, "deformable": self.deformable,
            **dict(zip(("mean", "std"), self.pixel_normalization.statistics())),
        })
        return config


@keras.saving.register_keras_serializable(package="stacnas_tf")
class SparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels and logits, with optional label smoothing
    (DARTS's ImageNet recipe smooths by 0.1)."""

    def __init__(self, label_smoothing=0.0, name="sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        if not self.label_smoothing:
            return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        one_hot = tf.one_hot(tf.cast(tf.reshape(y_true, [-1]), tf.int32), tf.shape(y_pred)[-1],
                             dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=True, label_smoothing=self.label_smoothing)

    def get_config(self):
        config = super().get_config()
        config.update({"label_smoothing": self.label_smoothing})
        return config


def build(config, genotype, num_classes: int, image_shape, auxiliary: bool | None = None,
          statistics=None) -> FinalNetwork:
    """The final network of a `TrainConfig` (its network, channels, cells,
    precision, auxiliary weight and deformable edges), built on one image of
    `image_shape`. `auxiliary=False` leaves the auxiliary head out. `statistics`
    (mean, std) of the training pixels normalise its input (None: mean and std 0.5,
    until a checkpoint's weights replace them)."""
    with precision.policy_scope(config.precision):
        net = FinalNetwork(
            genotype, num_classes, channels=config.channels, num_cells=config.num_cells,
            stem=config.network, auxiliary=config.aux_weight > 0 if auxiliary is None else auxiliary,
            deformable=config.deformable, name="final_network",
            **dict(zip(("mean", "std"), statistics or (None, None))),
        )
        net(tf.zeros((1,) + tuple(image_shape)), training=False)
        # A symbolic call records the input and output shapes, which
        # keras.utils.plot_model and summary() show (else "?").
        net(keras.Input(tuple(image_shape)))
    return net
