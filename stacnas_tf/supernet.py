"""The search network (supernet) and its one-level training step."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from stacnas_tf import cells as cells_lib
from stacnas_tf import one_level
from stacnas_tf import ops as ops_lib
from stacnas_tf import preprocessing
from stacnas_tf import search_space

# Logit given to padding entries of the logit matrices (edges with fewer
# candidates than the widest edge): exp() of it is exactly zero.
_MASKED_LOGIT = -1e9


@keras.saving.register_keras_serializable(package="stacnas_tf")
class ArchitectureLogits(keras.layers.Layer):
    """Holds the architecture logits alpha: one [num_edges, width] matrix per
    logit set (normal/reduce, or one per cell), `width` being the largest
    candidate count. Entries past an edge's candidate count are padding.

    These are the only variables of this layer, so the supernet tells them
    apart from the weights by construction.
    """

    def __init__(self, candidate_counts, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.candidate_counts = [list(map(int, counts)) for counts in candidate_counts]
        self.seed = seed
        self.width = max(max(counts) for counts in self.candidate_counts)
        self._masks = [
            np.arange(self.width)[None, :] < np.asarray(counts)[:, None]
            for counts in self.candidate_counts
        ]
        # DARTS initialises alpha as 1e-3 * N(0, 1), every set with its own draw:
        # a seeded Keras initializer returns the same values on every call, so
        # each set gets its own seed.
        self.logits = [
            self.add_weight(
                shape=(len(counts), self.width),
                initializer=keras.initializers.RandomNormal(
                    stddev=1e-3, seed=None if seed is None else seed * 1009 + index),
                autocast=False,  # alpha and its softmax stay float32 under mixed precision
                name=f"alpha_{index}",
            )
            for index, counts in enumerate(self.candidate_counts)
        ]
        self.built = True

    def probabilities(self):
        """Softmax of each logit matrix over the candidates of each edge."""
        return [
            tf.nn.softmax(tf.where(mask, tf.convert_to_tensor(logits), _MASKED_LOGIT), axis=-1)
            for logits, mask in zip(self.logits, self._masks)
        ]

    def get_config(self):
        config = super().get_config()
        config.update({"candidate_counts": self.candidate_counts, "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="stacnas_tf")
class SearchNetwork(one_level.TrainingHooks, keras.Model):
    """The DARTS/StacNAS supernet, trained with one-level optimization.

    raw pixels -> `PixelNormalization(mean, std)` (as the final network) ->
    stem (3x3 conv to stem_multiplier * channels, BatchNorm) -> `num_cells`
    SearchCells (reduction cells at 1/3 and 2/3 of the depth double the
    channels) -> global average pooling -> linear classifier.

    `train_step` makes one forward/backward pass on a training batch and
    updates the weights with the compiled optimizer (SGD) and the
    architecture logits with `architecture_optimizer` (Adam), both from the
    same gradients (StacNAS section 2.3.1). Weight gradients are clipped by
    their global norm; both get L2 weight decay added to the gradient, as
    PyTorch's `weight_decay` does in DARTS.
    """

    def __init__(
        self,
        stage_space,
        num_classes,
        channels=16,
        num_cells=8,
        *,
        stem_multiplier=3,
        weight_decay=3e-4,
        architecture_weight_decay=1e-3,
        grad_clip_norm=5.0,
        seed=None,
        optimization="one_level",
        mean=None,
        std=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(stage_space, dict):
            stage_space = search_space.StageSpace.from_dict(stage_space)
        if num_cells < 1:
            raise ValueError(f"num_cells: expected a positive number of cells, got {num_cells}.")
        if channels < 2 or channels % 2:
            raise ValueError(f"channels: expected an even number >= 2, got {channels}.")
        if stage_space.per_cell and len(stage_space.cells) != num_cells:
            raise ValueError(
                f"per-cell logits need {num_cells} cells of candidates, got {len(stage_space.cells)}."
            )
        if optimization not in ("one_level", "bi_level"):
            raise ValueError(f"optimization: expected 'one_level' or 'bi_level', got {optimization!r}.")
        self.stage_space = stage_space
        self.optimization = optimization
        self.num_classes = num_classes
        self.channels = channels
        self.num_cells = num_cells
        self.stem_multiplier = stem_multiplier
        self.weight_decay = weight_decay
        self.architecture_weight_decay = architecture_weight_decay
        self.grad_clip_norm = grad_clip_norm
        self.seed = seed
        self.architecture_optimizer = None

        # The final network's first layer too: both take raw pixels.
        self.pixel_normalization = preprocessing.PixelNormalization(
            mean, std, name="pixel_normalization")
        self.architecture = ArchitectureLogits(
            [[len(edge) for edge in cell] for cell in stage_space.cells], seed=seed, name="architecture"
        )
        self.stem_conv = keras.layers.Conv2D(
            stem_multiplier * channels, 3, padding="same", use_bias=False, name="stem_conv"
        )
        self.stem_bn = ops_lib.BatchNorm(affine=True, name="stem_bn")
        reductions = search_space.reduction_positions(num_cells)
        self.cell_logit_set = []
        self.search_cells = []
        filters, reduction_prev = channels, False
        for index in range(num_cells):
            reduction = index in reductions
            if reduction:
                filters *= 2
            logit_set = stage_space.set_of_cell(index, reduction)
            self.cell_logit_set.append(logit_set)
            self.search_cells.append(
                cells_lib.SearchCell(
                    stage_space.cells[logit_set], filters, reduction, reduction_prev,
                    num_nodes=search_space.nodes_for_edges(len(stage_space.cells[logit_set])),
                    name=f"cell_{index}_{'reduce' if reduction else 'normal'}",
                )
            )
            reduction_prev = reduction
        self.global_pool = keras.layers.GlobalAveragePooling2D(name="global_pool")
        # Logits in float32 under mixed precision, as Keras recommends.
        self.classifier = keras.layers.Dense(num_classes, dtype="float32", name="classifier")

    def build(self, input_shape):
        # Explicit, so building creates the variables without tracing the network.
        stem_shape = tuple(input_shape[:-1]) + (self.stem_multiplier * self.channels,)
        self.pixel_normalization.build(input_shape)
        self.stem_conv.build(input_shape)
        self.stem_bn.build(stem_shape)
        shape0 = shape1 = stem_shape
        for cell in self.search_cells:
            cell.build((shape0, shape1))
            # Kernels depend on channel counts alone.
            shape0, shape1 = shape1, (None, None, None, cell.num_nodes * cell.filters)
        self.global_pool.build(shape1)
        self.classifier.build((None, shape1[-1]))

    def call(self, images, training=None):
        return self.classifier(self.global_pool(self.run_cells(images, training=training)))

    def run_cells(self, images, training=None, on_cell=None):
        """The stem and the cells; returns the last cell's output.

        `on_cell(cell, (s0, s1), edge_weights)`, when given, sees every cell's
        inputs (the operator-correlation analysis reads the ops' outputs there).
        """
        probabilities = self.architecture.probabilities()
        s0 = s1 = self.stem_bn(self.stem_conv(self.pixel_normalization(images)), training=training)
        for cell, logit_set in zip(self.search_cells, self.cell_logit_set):
            if on_cell is not None:
                on_cell(cell, (s0, s1), probabilities[logit_set])
            s0, s1 = s1, cell((s0, s1), probabilities[logit_set], training=training)
        return s1

    # --- variables -------------------------------------------------------------

    @property
    def architecture_variables(self):
        return list(self.architecture.trainable_variables)

    @property
    def weight_variables(self):
        # Derived on every access: a cached list on a built layer is frozen state.
        architecture_ids = {id(v) for v in self.architecture.trainable_variables}
        return [v for v in self.trainable_variables if id(v) not in architecture_ids]

    # --- training --------------------------------------------------------------

    def compile(self, optimizer, architecture_optimizer, **kwargs):
        """Compiles with `optimizer` for the weights; `architecture_optimizer` steps alpha.

        Both optimizers must be created under the caller's strategy scope. Each
        is built here on its own variables so neither touches the other's.
        """
        kwargs.setdefault("loss", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        kwargs.setdefault("metrics", ["accuracy"])
        # Explicit: Keras's "auto" would turn XLA on wherever there is a GPU.
        kwargs.setdefault("jit_compile", False)
        # Under mixed_float16 Keras wraps the weight optimizer in a LossScaleOptimizer.
        super().compile(optimizer=optimizer, **kwargs)
        architecture_optimizer = one_level.matching_loss_scaling(self.optimizer,
                                                                 architecture_optimizer)
        self.architecture_optimizer = architecture_optimizer
        if not self.built:
            raise ValueError("SearchNetwork.compile: build the network first "
                             "(model.build((None, height, width, channels)), or call it on a "
                             "batch of images): the optimizers are made for its variables.")
        self.optimizer.build(self.weight_variables)
        architecture_optimizer.build(self.architecture_variables)
        self._build_compiled_state()

    def one_level_gradients(self, images, labels):
        """Loss, logits and processed gradients of one forward/backward pass.

        Returns (loss, logits, weight_grads, architecture_grads, raw weight-gradient
        norm); see `one_level.processed_gradients`.
        """
        def forward():
            logits = self(images, training=True)
            # compute_loss divides by the replica count under a strategy.
            return self.compute_loss(x=images, y=labels, y_pred=logits, training=True), logits

        return self._one_level_gradients(forward)

    def train_step(self, data):
        if self.optimization == "bi_level":
            return self.bi_level_step(*data)
        images, labels, _ = keras.utils.unpack_x_y_sample_weight(data)
        loss, logits, weight_grads, arch_grads, _ = self.one_level_gradients(images, labels)
        one_level.apply(self.optimizer, weight_grads, self.weight_variables,
                        self.architecture_optimizer, arch_grads, self.architecture_variables)
        return self._step_logs(images, labels, logits, loss)

    def bi_level_step(self, weight_batch, architecture_batch):
        """DARTS's first-order bi-level step (the ablation of table 4).

        alpha takes an Adam step on the loss of `architecture_batch` (drawn from
        the held-out half of the data), then w takes an SGD step on
        `weight_batch` with the updated alpha, as DARTS's `architect.step` then
        `optimizer.step` do.
        """
        arch_vars, weight_vars = self.architecture_variables, self.weight_variables
        images, labels = architecture_batch
        with tf.GradientTape() as tape:
            loss = self.compute_loss(x=images, y=labels, y_pred=self(images, training=True),
                                     training=True)
        arch_grads = one_level.architecture_update(
            one_level.reduced_gradients(tape, loss, arch_vars), arch_vars,
            self.architecture_weight_decay)
        one_level.apply(self.architecture_optimizer, arch_grads, arch_vars)
        images, labels = weight_batch
        with tf.GradientTape() as tape:
            logits = self(images, training=True)
            loss = self.compute_loss(x=images, y=labels, y_pred=logits, training=True)
        weight_grads, _ = one_level.weight_update(
            one_level.reduced_gradients(tape, loss, weight_vars), weight_vars,
            self.grad_clip_norm, self.weight_decay)
        one_level.apply(self.optimizer, weight_grads, weight_vars)
        return self._step_logs(images, labels, logits, loss)

    # --- results ---------------------------------------------------------------

    def architecture_weights(self) -> dict:
        """The architecture as it stands, for callbacks and notebooks:
        {logit set ("normal", "reduce", or "cell_K" with per-cell logits):
        [{"edge": "SOURCE->NODE", "candidates": [op, ...], "weights": [softmax
        weight per candidate]}, ...] in edge order}. Inside a Keras callback:
        `self.model.architecture_weights()`."""
        names = self.stage_space.set_names(self.num_cells)
        endpoints = search_space.edge_endpoints(self.search_cells[0].num_nodes)
        return {
            name: [{"edge": f"{source}->{node}", "candidates": list(edge), "weights": weights}
                   for (source, node), (edge, _, weights) in zip(endpoints, values)]
            for name, values in zip(names, self.logit_values())
        }

    def logit_values(self):
        """Per logit set: a list over edges of (candidates, logits, softmax weights)."""
        result = []
        probabilities = [p.numpy() for p in self.architecture.probabilities()]
        for cell, logits, probs in zip(self.stage_space.cells, self.architecture.logits, probabilities):
            logits = np.asarray(logits.numpy())
            result.append([
                (edge, logits[e, : len(edge)].tolist(), probs[e, : len(edge)].tolist())
                for e, edge in enumerate(cell)
            ])
        return result

    def get_config(self):
        config = super().get_config()
        config.update({
            "stage_space": self.stage_space.to_dict(), "num_classes": self.num_classes,
            "channels": self.channels, "num_cells": self.num_cells,
            "stem_multiplier": self.stem_multiplier, "weight_decay": self.weight_decay,
            "architecture_weight_decay": self.architecture_weight_decay,
            "grad_clip_norm": self.grad_clip_norm, "seed": self.seed,
            "optimization": self.optimization,
            **dict(zip(("mean", "std"), self.pixel_normalization.statistics())),
        })
        return config
