"""Logit parity of our FinalNetwork with the DARTS reference network (PyTorch).

  PYTHONPATH=. .venv/bin/python benchmarks/darts_parity.py \
      --weights=DUMPS/darts_v2_tiny_cifar.npz,DUMPS/darts_v2_tiny_imagenet.npz \
      --output=benchmarks/results/darts_parity_cpu.json

Measures, for each weight dump, the largest absolute and relative difference
between the logits of `stacnas_tf.network.FinalNetwork` in inference mode and
the logits the reference network (quark0/darts cnn/model.py, `NetworkCIFAR` or
`NetworkImageNet`) computed in eval mode from the same weights and input; for
a CIFAR dump with an auxiliary head, also the auxiliary head's logits on the
output of cell 2 * layers // 3.

A dump is an .npz of the reference's state_dict (PyTorch names, NCHW / OIHW
layouts) plus '__input__' (NCHW), '__logits_eval__', optionally
'__logits_eval_float64__' (the same reference in float64, reported as the
float32 noise floor), '__aux_logits_eval__' and '__note__' (how it was made).
The dumps are made outside this project (torch is not a dependency and is not
imported here). Every PyTorch tensor is mapped onto our variables by walking
our network's structure (conv OIHW -> HWIO, depthwise [C, 1, k, k] ->
[k, k, C, 1], BatchNorm weight / bias / running_mean / running_var -> gamma /
beta / moving_mean / moving_variance, Linear [out, in] -> [in, out];
num_batches_tracked is ignored); the run fails if any variable of ours is left
unassigned or any PyTorch tensor is left unused, so a wrong mapping cannot
pass. Training mode (batch statistics) is compared only where the dump holds
train-mode logits ('__logits_train__'); otherwise it is reported as not
measured.
"""

import datetime
import json
import os
import platform
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

# The dumps are made outside the project (docs/reference_numbers.md says how): no default.
_WEIGHTS = flags.DEFINE_list("weights", None, "Reference weight dumps (.npz), one case each.",
                             required=True)
_STEM = flags.DEFINE_enum("stem", None, ["cifar", "imagenet"],
                          "Stem of the network; by default read from the dump's note "
                          "(NetworkCIFAR or NetworkImageNet).")
_GENOTYPE = flags.DEFINE_string("genotype", "DARTS_V2", "Published genotype the dumps were made with.")
_CHANNELS = flags.DEFINE_integer("channels", 8, "Initial channels C of the dumped network.")
_NUM_CELLS = flags.DEFINE_integer("num_cells", 5, "Cells (layers) of the dumped network.")
_TOLERANCE = flags.DEFINE_float("tolerance", 1e-4,
                                "Exit with an error if a max absolute logit difference exceeds this.")
_OUTPUT = flags.DEFINE_string("output", None, "Write the JSON result to this file.")

TRAIN_NOT_MEASURED = "not measured (the dump has no train-mode logits)"


class MappingError(ValueError):
    """The PyTorch tensors and our variables do not correspond one to one."""


class _Mapper:
    """Assigns PyTorch tensors to our variables and records what was used."""

    def __init__(self, tensors):
        self.tensors = tensors
        self.used = set()
        self.assigned = {}  # id(variable) -> PyTorch name

    def _take(self, name):
        if name not in self.tensors:
            raise MappingError(f"PyTorch tensor {name!r} is not in the dump.")
        if name in self.used:
            raise MappingError(f"PyTorch tensor {name!r} mapped twice.")
        self.used.add(name)
        return self.tensors[name]

    def _assign(self, variable, value, name):
        if id(variable) in self.assigned:
            raise MappingError(f"{variable.path} assigned twice ({self.assigned[id(variable)]}, {name}).")
        if tuple(variable.shape) != tuple(value.shape):
            raise MappingError(f"{name} {tuple(value.shape)} does not fit {variable.path} "
                               f"{tuple(variable.shape)}.")
        variable.assign(value.astype(variable.dtype))
        self.assigned[id(variable)] = name

    def conv(self, layer, name):
        """Conv2D <- nn.Conv2d weight [O, I, kh, kw] (no bias)."""
        self._assign(layer.kernel, self._take(name).transpose(2, 3, 1, 0), name)

    def depthwise(self, layer, name):
        """DepthwiseConv2D <- grouped nn.Conv2d weight [C, 1, kh, kw]."""
        self._assign(layer.kernel, self._take(name).transpose(2, 3, 0, 1), name)

    def batch_norm(self, layer, prefix):
        if layer.affine:
            self._assign(layer.gamma, self._take(f"{prefix}.weight"), f"{prefix}.weight")
            self._assign(layer.beta, self._take(f"{prefix}.bias"), f"{prefix}.bias")
        for ours, theirs in (("moving_mean", "running_mean"), ("moving_variance", "running_var")):
            self._assign(getattr(layer, ours), self._take(f"{prefix}.{theirs}"), f"{prefix}.{theirs}")

    def dense(self, layer, prefix, spatial=None):
        """Dense <- nn.Linear. `spatial` = (H, W, C) when the Linear reads an NCHW
        map flattened by PyTorch and we read the same map flattened in NHWC."""
        weight = self._take(f"{prefix}.weight")
        if spatial is not None:
            height, width, channels = spatial
            weight = (weight.reshape(-1, channels, height, width).transpose(2, 3, 1, 0)
                      .reshape(height * width * channels, -1))
        else:
            weight = weight.T
        self._assign(layer.kernel, weight, f"{prefix}.weight")
        self._assign(layer.bias, self._take(f"{prefix}.bias"), f"{prefix}.bias")


def _map_op(mapper, op, prefix, ops_lib, keras):
    """One cell edge or preprocessing op; `prefix` is its PyTorch module path."""
    if op is None or isinstance(op, keras.layers.Identity) or isinstance(op, ops_lib.Pool):
        if isinstance(op, ops_lib.Pool) and op.bn is not None:
            raise MappingError(f"{prefix}: a final network's pools have no BatchNorm.")
        return
    if isinstance(op, ops_lib.ReLUConvBN):  # Sequential(ReLU, Conv2d, BatchNorm2d)
        mapper.conv(op.conv, f"{prefix}.op.1.weight")
        mapper.batch_norm(op.bn, f"{prefix}.op.2")
    elif isinstance(op, ops_lib.FactorizedReduce):  # conv_1 on x, conv_2 on x[:, :, 1:, 1:]
        mapper.conv(op.conv_even, f"{prefix}.conv_1.weight")
        mapper.conv(op.conv_odd, f"{prefix}.conv_2.weight")
        mapper.batch_norm(op.bn, f"{prefix}.bn")
    elif isinstance(op, ops_lib.SepConv):  # op: ReLU, dw, pw, BN, ReLU, dw, pw, BN
        mapper.depthwise(op.depthwise1, f"{prefix}.op.1.weight")
        mapper.conv(op.pointwise1, f"{prefix}.op.2.weight")
        mapper.batch_norm(op.bn1, f"{prefix}.op.3")
        mapper.depthwise(op.depthwise2, f"{prefix}.op.5.weight")
        mapper.conv(op.pointwise2, f"{prefix}.op.6.weight")
        mapper.batch_norm(op.bn2, f"{prefix}.op.7")
    elif isinstance(op, ops_lib.DilConv):  # op: ReLU, dw (dilated), pw, BN
        mapper.depthwise(op.depthwise, f"{prefix}.op.1.weight")
        mapper.conv(op.pointwise, f"{prefix}.op.2.weight")
        mapper.batch_norm(op.bn, f"{prefix}.op.3")
    elif isinstance(op, ops_lib.Conv7x1_1x7):  # Sequential(ReLU, 1x7, 7x1, BN), no `.op`
        mapper.conv(op.conv_1x7, f"{prefix}.1.weight")
        mapper.conv(op.conv_7x1, f"{prefix}.2.weight")
        mapper.batch_norm(op.bn, f"{prefix}.3")
    else:
        raise MappingError(f"{prefix}: no mapping for {type(op).__name__}.")


def _map_layers(mapper, layers, torch_indices, prefix):
    """Our stem layer list (convs and BNs, in order) onto an nn.Sequential."""
    import keras

    from stacnas_tf import ops as ops_lib

    weighted = [layer for layer in layers
                if isinstance(layer, (keras.layers.Conv2D, ops_lib.BatchNorm))]
    if len(weighted) != len(torch_indices):
        raise MappingError(f"{prefix}: {len(weighted)} weighted layers, {len(torch_indices)} modules.")
    for layer, index in zip(weighted, torch_indices):
        if isinstance(layer, ops_lib.BatchNorm):
            mapper.batch_norm(layer, f"{prefix}.{index}")
        else:
            mapper.conv(layer, f"{prefix}.{index}.weight")


def load_reference(net, tensors, stem, aux_input_shape):
    """Assigns every PyTorch tensor of `tensors` to `net`'s variables; returns
    the number of variables assigned. Raises MappingError unless the mapping is
    one to one (num_batches_tracked and '__' extras aside)."""
    import keras

    from stacnas_tf import ops as ops_lib

    mapper = _Mapper(tensors)
    if stem == "cifar":  # Sequential(Conv2d, BatchNorm2d)
        _map_layers(mapper, net.stem_layers, [0, 1], "stem")
    else:  # stem0: Conv, BN, ReLU, Conv, BN; stem1: ReLU, Conv, BN
        _map_layers(mapper, net.stem_layers, [0, 1, 3, 4], "stem0")
        _map_layers(mapper, net.stem1_layers, [1, 2], "stem1")
    for index, cell in enumerate(net.derived_cells):
        prefix = f"cells.{index}"
        _map_op(mapper, cell.preprocess0, f"{prefix}.preprocess0", ops_lib, keras)
        _map_op(mapper, cell.preprocess1, f"{prefix}.preprocess1", ops_lib, keras)
        if cell.deformable:
            raise MappingError("deformable cells have no DARTS counterpart.")
        for position, op in enumerate(cell.edge_ops):
            _map_op(mapper, op, f"{prefix}._ops.{position}", ops_lib, keras)
    head = net.auxiliary_head
    if head is not None:  # features: ReLU, AvgPool, Conv, BN, ReLU, Conv, [BN,] ReLU
        mapper.conv(head.conv1, "auxiliary_head.features.2.weight")
        mapper.batch_norm(head.bn1, "auxiliary_head.features.3")
        mapper.conv(head.conv2, "auxiliary_head.features.5.weight")
        if head.bn2 is not None:
            mapper.batch_norm(head.bn2, "auxiliary_head.features.6")
        _, height, width, _ = aux_input_shape
        stride = head.pool.strides[0]
        side = lambda s: (s - 5) // stride + 1 - 1  # noqa: E731  pool 5, then the 2x2 conv
        mapper.dense(head.classifier, "auxiliary_head.classifier",
                     spatial=(side(height), side(width), 768))
    mapper.dense(net.classifier, "classifier")

    # Ours, not the reference's: the drop-path schedule (a plain attribute,
    # drop_path_prob, in DARTS; inference reads 0.0), random-generator states,
    # and the input normalisation (DARTS normalises in its data loader; here the
    # identity, see run_case).
    normalisation = {id(v) for v in net.pixel_normalization.weights}
    expected_extra = [v for v in net.weights
                      if v is net.drop_path_rate or "seed_generator" in v.path
                      or id(v) in normalisation]
    unassigned = [v.path for v in net.weights
                  if id(v) not in mapper.assigned and all(v is not e for e in expected_extra)]
    unused = sorted(k for k in tensors
                    if k not in mapper.used and not k.startswith("__")
                    and not k.endswith(".num_batches_tracked"))
    if unassigned or unused:
        raise MappingError(
            f"mapping is not one to one: {len(unassigned)} of our variables unassigned "
            f"{unassigned[:20]}, {len(unused)} PyTorch tensors unused {unused[:20]}.")
    return len(mapper.assigned), len(mapper.used), [v.path for v in expected_extra]


def _stem_from_note(note):
    if "NetworkCIFAR" in note:
        return "cifar"
    if "NetworkImageNet" in note:
        return "imagenet"
    return None


def _differences(ours, reference):
    import numpy as np

    diff = np.abs(ours.astype(np.float64) - reference.astype(np.float64))
    return {
        "max_abs_diff": float(diff.max()),
        # Element-wise |ours - ref| / |ref|: large if a logit is near zero.
        "max_rel_diff": float((diff / np.maximum(np.abs(reference), 1e-30)).max()),
        "max_abs_diff_over_max_abs_ref": float(diff.max() / np.abs(reference).max()),
        "max_abs_ref": float(np.abs(reference).max()),
    }


def _features(net, images, training):
    """The stem and cells as FinalNetwork.call runs them; returns the last
    cell's output and the input of the auxiliary head (None without one)."""
    x = net.pixel_normalization(images)
    for layer in net.stem_layers:
        x = layer(x, training=training)
    s0 = x
    for layer in net.stem1_layers:
        x = layer(x, training=training)
    s1 = x
    aux_input = None
    for index, cell in enumerate(net.derived_cells):
        s0, s1 = s1, cell((s0, s1), drop_path_rate=0.0, training=training)
        if index == net.aux_position:
            aux_input = s1
    return s1, aux_input


def run_case(path, stem_flag):
    import keras
    import numpy as np
    import tensorflow as tf

    from stacnas_tf import genotype as genotype_lib
    from stacnas_tf import network

    with np.load(path) as dump:
        tensors = {k: dump[k] for k in dump.files}
    note = str(tensors.get("__note__", ""))
    stem = stem_flag or _stem_from_note(note)
    if stem is None:
        raise ValueError(f"{path}: pass --stem (the note names neither NetworkCIFAR nor NetworkImageNet).")
    if stem_flag and _stem_from_note(note) not in (None, stem_flag):
        raise ValueError(f"{path}: --stem={stem_flag}, but the note says {_stem_from_note(note)}.")
    auxiliary = any(k.startswith("auxiliary_head.") for k in tensors)
    num_classes = int(tensors["classifier.bias"].shape[0])
    images = np.ascontiguousarray(tensors["__input__"].transpose(0, 2, 3, 1))  # NCHW -> NHWC
    height, width = images.shape[1:3]

    keras.utils.clear_session()
    # DARTS's network takes normalised images; ours normalises raw pixels first.
    # mean 0 and std 1/255 make that first layer the identity (255 * (1/255)
    # is exactly 1 in float32), so both see the dumped input as it is.
    net = network.FinalNetwork(genotype_lib.PUBLISHED[_GENOTYPE.value], num_classes,
                               channels=_CHANNELS.value, num_cells=_NUM_CELLS.value, stem=stem,
                               auxiliary=auxiliary, mean=(0.0,) * 3, std=(1 / 255,) * 3)
    net(tf.zeros([1, height, width, 3]), training=False)
    if auxiliary and net.aux_position != 2 * _NUM_CELLS.value // 3:
        raise AssertionError("auxiliary head position differs from DARTS's 2 * layers // 3.")
    _, aux_input_shape = _features(net, tf.zeros([1, height, width, 3]), training=False)
    variables_mapped, tensors_used, ours_only = load_reference(
        net, tensors, stem, None if aux_input_shape is None else aux_input_shape.shape)

    inputs = tf.constant(images)
    logits = net(inputs, training=False).numpy()
    case = {
        "genotype": _GENOTYPE.value,
        "stem": stem,
        "channels": _CHANNELS.value,
        "num_cells": _NUM_CELLS.value,
        "num_classes": num_classes,
        "auxiliary": auxiliary,
        "input_shape_nhwc": list(images.shape),
        "variables_mapped": variables_mapped,
        "variables_total": len(net.weights),
        "variables_without_counterpart": ours_only,
        "pytorch_tensors_used": tensors_used,
        "pytorch_num_batches_tracked_ignored": sum(k.endswith(".num_batches_tracked") for k in tensors),
        "eval": _differences(logits, tensors["__logits_eval__"]),
    }
    if "__logits_eval_float64__" in tensors:
        reference64 = tensors["__logits_eval_float64__"]
        case["eval_vs_float64_reference"] = _differences(logits, reference64)
        # The float32 reference's own error: the floor any float32 port can reach.
        case["float32_reference_vs_float64_reference"] = _differences(
            tensors["__logits_eval__"], reference64)
    if auxiliary and "__aux_logits_eval__" in tensors:
        _, aux_input = _features(net, inputs, training=False)
        aux_logits = net.auxiliary_head(aux_input, training=False).numpy()
        case["aux_eval"] = _differences(aux_logits, tensors["__aux_logits_eval__"])
        case["aux_eval"]["input"] = f"output of cell {net.aux_position}"
    elif auxiliary:
        case["aux_eval"] = "not measured (the dump has no '__aux_logits_eval__')"
    else:
        case["aux_eval"] = "no auxiliary head (none in the dump)"
    if "__logits_train__" in tensors:
        # Batch statistics, no drop path; last, as it updates the moving statistics.
        outputs = net(inputs, training=True)
        train_logits = outputs[0] if isinstance(outputs, tuple) else outputs
        case["train"] = _differences(train_logits.numpy(), tensors["__logits_train__"])
    else:
        case["train"] = TRAIN_NOT_MEASURED
    torch_version = re.search(r"torch (\S+)", note)
    reference = ("the reference with global_pooling replaced by AdaptiveAvgPool2d(1)"
                 if "AdaptiveAvgPool2d(1)" in note else "the unmodified reference")
    case["how"] = (
        f"{os.path.basename(path)}: state_dict, input and eval-mode logits of quark0/darts cnn/model.py "
        f"{'NetworkCIFAR' if stem == 'cifar' else 'NetworkImageNet'} dumped by "
        f"/tmp/darts_ref/dump_weights.py in a scratch venv outside the project from {reference}"
        f"{' (torch ' + torch_version.group(1) + ')' if torch_version else ''}; "
        "see reference_note for the exact construction.")
    case["reference_note"] = note
    case["weights_file"] = os.path.abspath(path)
    return case


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    cases = []
    for path in _WEIGHTS.value:
        case = run_case(path, _STEM.value)
        cases.append(case)
        print(json.dumps({"weights": os.path.basename(path), "stem": case["stem"],
                          "input_shape_nhwc": case["input_shape_nhwc"],
                          "variables_mapped": case["variables_mapped"],
                          "eval": case["eval"], "aux_eval": case.get("aux_eval"),
                          "train": case["train"]}), flush=True)
    result = {
        "benchmark": "darts_parity",
        "date": datetime.date.today().isoformat(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "device": "cpu" if not tf.config.list_physical_devices("GPU") else "gpu",
        "machine": platform.machine(),
        "cases": cases,
    }
    if _OUTPUT.value:
        os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
        with open(_OUTPUT.value, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    worst = max(max(case["eval"]["max_abs_diff"],
                    case["aux_eval"]["max_abs_diff"] if isinstance(case.get("aux_eval"), dict) else 0.0)
                for case in cases)
    if worst > _TOLERANCE.value:
        raise SystemExit(f"logit parity failed: max abs difference {worst:.3g} > {_TOLERANCE.value:g}.")


if __name__ == "__main__":
    app.run(main)
