"""Final networks from a genotype: DARTS's CIFAR and ImageNet (mobile) networks.

Layer for layer as the DARTS reference (`NetworkCIFAR`, `NetworkImageNet`):
affine BatchNorm, no conv biases, reduction cells at 1/3 and 2/3 of the
depth, drop path on non-identity edges, and an auxiliary head on the output of
the cell at 2/3 of the depth, used in training only.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from stacnas_tf import cells as cells_lib
from stacnas_tf import genotype as genotype_lib
from stacnas_tf import ops as ops_lib
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
        self.classifier = keras.layers.Dense(num_classes, name="classifier")

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
class FinalNetwork(keras.Model):
    """A network of `num_cells` DerivedCells built from `genotype`.

    stem="cifar": 3x3 conv to 3C + BN; stem="imagenet": DARTS's two-stage
    stride-2 stem (224 -> 28 before the first cell). Returns logits; in
    training with `auxiliary=True`, returns (logits, auxiliary logits).
    `drop_path_rate` is a variable that the training loop ramps.
    """

    def __init__(self, genotype, num_classes, channels=36, num_cells=20, stem="cifar",
                 auxiliary=True, deformable=False, **kwargs):
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

        if stem == "cifar":
            self.stem_layers = _conv_bn(3 * channels, 3, 1, "stem")
            self.stem1_layers = []
            filters_prev_prev = filters_prev = 3 * channels
            reduction_prev = False
        else:
            self.stem_layers = (_conv_bn(channels // 2, 3, 2, "stem0_a")
                                + [keras.layers.ReLU(name="stem0_relu")]
                                + _conv_bn(channels, 3, 2, "stem0_b"))
            self.stem1_layers = _conv_bn(channels, 3, 2, "stem1", relu_first=True)
            filters_prev_prev = filters_prev = channels
            reduction_prev = True
        del filters_prev_prev, filters_prev  # Keras layers infer their input widths
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
        self.classifier = keras.layers.Dense(num_classes, name="classifier")

    def call(self, images, training=None):
        x = images
        for layer in self.stem_layers:
            x = layer(x, training=training)
        s0 = x
        for layer in self.stem1_layers:
            x = layer(x, training=training)
        s1 = x
        aux_logits = None
        for index, cell in enumerate(self.derived_cells):
            s0, s1 = s1, cell((s0, s1), self.drop_path_rate, training=training)
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

    def parameter_count(self, include_auxiliary=False) -> int:
        """Trainable parameters (weights and deformable logits), as PyTorch counts them."""
        aux_ids = ({id(v) for v in self.auxiliary_head.trainable_variables}
                   if self.auxiliary_head is not None and not include_auxiliary else set())
        return int(sum(v.numpy().size for v in self.trainable_variables if id(v) not in aux_ids))

    def get_config(self):
        config = super().get_config()
        config.update({
            "genotype": self.genotype.to_dict(), "num_classes": self.num_classes,
            "channels": self.channels, "num_cells": self.num_cells, "stem": self.stem,
            "auxiliary": self.auxiliary, "deformable": self.deformable,
        })
        return config
