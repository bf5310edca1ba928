"""DARTS's final CIFAR network trained one step at a time in PyTorch eager, for comparison.

  pip install torch==2.13.0   # not a project dependency; only this benchmark uses it
  python benchmarks/train_step_torch.py --channels=36 --num_cells=20 --batch_size=96 \
      --image_size=32 --steps=5 [--channels_last]

The network of DARTS's `model.py` (`NetworkCIFAR`), written plainly here: the
DARTS_V2 genotype, a 3x3 conv stem to 3C channels, reduction cells at 1/3 and
2/3 of the depth, affine BatchNorm, drop path on every edge that is not the
identity, and the auxiliary head on the output of the cell at 2/3 of the
depth. One step is DARTS's `train.py` step: cross-entropy plus 0.4 x the
auxiliary head's, SGD (momentum 0.9, weight decay 3e-4), gradient norm clipped
at 5. The counterpart of `benchmarks/train_step.py --genotype=DARTS_V2`.

Prints one JSON line: first step seconds, median seconds of the later steps,
images per second, peak RSS, the parameter count with and without the
auxiliary head (DARTS_V2 without it: 3,349,342, the reference's figure), and
the memory layout (`NCHW`, PyTorch's default, or `channels_last`: model and
input converted with `memory_format=torch.channels_last`).
"""

import argparse
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

# A sibling module: these scripts run with a PyTorch venv, outside the project's packages.
from timing import time_steps

# (op, input state) per edge, two edges per node; every state 2..5 is concatenated.
DARTS_V2 = {
    "normal": [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
               ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    "reduce": [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
               ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
    "concat": [2, 3, 4, 5],
}
DARTS_V2_PARAMETERS = 3_349_342  # without the auxiliary head


class ReluConvBn(nn.Sequential):
    def __init__(self, c_in, c_out):
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))


class FactorizedReduce(nn.Module):
    """Halves the map: two stride-2 1x1 convs, the second shifted by one pixel."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.even = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.odd = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        x = F.relu(x)
        return self.bn(torch.cat([self.even(x), self.odd(x[:, :, 1:, 1:])], 1))


def relu_dw_pw_bn(c, k, stride, dilation):
    pad = dilation * (k - 1) // 2
    return [nn.ReLU(), nn.Conv2d(c, c, k, stride, pad, dilation=dilation, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c)]


def make_op(name, c, stride):
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride, 1, count_include_pad=False)
    k = int(name[-1])
    if name.startswith("sep_conv"):
        return nn.Sequential(*relu_dw_pw_bn(c, k, stride, 1), *relu_dw_pw_bn(c, k, 1, 1))
    if name.startswith("dil_conv"):
        return nn.Sequential(*relu_dw_pw_bn(c, k, stride, 2))
    raise ValueError(f"unknown op {name!r}")


def drop_path(x, drop_prob):
    """Zeroes whole samples with probability drop_prob and rescales the rest."""
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class Cell(nn.Module):
    def __init__(self, edges, concat, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__()
        self.pre0 = FactorizedReduce(c_pp, c) if reduction_prev else ReluConvBn(c_pp, c)
        self.pre1 = ReluConvBn(c_p, c)
        self.inputs = [index for _, index in edges]
        self.ops = nn.ModuleList(make_op(name, c, 2 if reduction and index < 2 else 1)
                                 for name, index in edges)
        self.concat = concat
        self.multiplier = len(concat)

    def forward(self, s0, s1, drop_prob):
        states = [self.pre0(s0), self.pre1(s1)]
        for node in range(len(self.ops) // 2):
            total = 0
            for position in (2 * node, 2 * node + 1):
                op = self.ops[position]
                h = op(states[self.inputs[position]])
                if self.training and drop_prob > 0 and not isinstance(op, nn.Identity):
                    h = drop_path(h, drop_prob)
                total = total + h
            states.append(total)
        return torch.cat([states[i] for i in self.concat], 1)


class AuxiliaryHead(nn.Module):
    """On the 8x8 map of the cell at 2/3 of the depth."""

    def __init__(self, c, num_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(), nn.AvgPool2d(5, stride=3, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU())
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class NetworkCIFAR(nn.Module):
    def __init__(self, genotype, channels, num_cells, num_classes=10, auxiliary=True):
        super().__init__()
        c = channels
        self.stem = nn.Sequential(nn.Conv2d(3, 3 * c, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(3 * c))
        c_pp, c_p = 3 * c, 3 * c
        self.aux_position = 2 * num_cells // 3
        self.cells = nn.ModuleList()
        reduction_prev, c_aux = False, None
        for index in range(num_cells):
            reduction = index in (num_cells // 3, 2 * num_cells // 3)
            if reduction:
                c *= 2
            edges = genotype["reduce" if reduction else "normal"]
            cell = Cell(edges, genotype["concat"], c_pp, c_p, c, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev, c_pp, c_p = reduction, c_p, cell.multiplier * c
            if index == self.aux_position:
                c_aux = c_p
        self.auxiliary_head = AuxiliaryHead(c_aux, num_classes) if auxiliary else None
        self.classifier = nn.Linear(c_p, num_classes)
        self.drop_path_prob = 0.0

    def forward(self, x):
        aux_logits = None
        s0 = s1 = self.stem(x)
        for index, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if index == self.aux_position and self.auxiliary_head is not None and self.training:
                aux_logits = self.auxiliary_head(s1)
        logits = self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))
        return logits, aux_logits


def parameter_count(net, include_auxiliary):
    return sum(p.numel() for name, p in net.named_parameters()
               if include_auxiliary or not name.startswith("auxiliary_head."))


def measure(args):
    torch.manual_seed(0)
    net = NetworkCIFAR(DARTS_V2, args.channels, args.num_cells, auxiliary=True)
    net.drop_path_prob = args.drop_path_prob
    net.train()
    optimizer = torch.optim.SGD(net.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    y = torch.randint(0, 10, (args.batch_size,))
    if args.channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)

    def step():
        optimizer.zero_grad()
        logits, aux_logits = net(x)
        loss = F.cross_entropy(logits, y) + args.aux_weight * F.cross_entropy(aux_logits, y)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        optimizer.step()

    timing = time_steps(step, args.steps, args.batch_size)
    return {
        "benchmark": "train_step", "framework": "pytorch-eager", "genotype": "DARTS_V2",
        "network": "cifar", "channels_last": args.channels_last,
        "layout": "channels_last" if args.channels_last else "NCHW",
        "channels": args.channels, "num_cells": args.num_cells, "batch_size": args.batch_size,
        "image_size": args.image_size, "aux_weight": args.aux_weight,
        "drop_path_prob": args.drop_path_prob, "steps": args.steps,
        **timing,
        "parameters": parameter_count(net, include_auxiliary=True),
        "parameters_without_auxiliary": parameter_count(net, include_auxiliary=False),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=36)
    parser.add_argument("--num_cells", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=96)
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5, help="Timed steps after the first.")
    parser.add_argument("--aux_weight", type=float, default=0.4)
    parser.add_argument("--drop_path_prob", type=float, default=0.2,
                        help="DARTS ramps it from 0 to 0.2 over training and skips drop path at 0; "
                             "above 0 every step pays for the masks.")
    parser.add_argument("--channels_last", action="store_true",
                        help="Model and input in torch.channels_last (NHWC) memory format.")
    parser.add_argument("--check_parameters", action="store_true",
                        help="Only build the network and check its size against the reference's.")
    parser.add_argument("--output", default=None, help="Also append the JSON line to this file.")
    args = parser.parse_args()
    if args.check_parameters:
        net = NetworkCIFAR(DARTS_V2, args.channels, args.num_cells, auxiliary=True)
        count = parameter_count(net, include_auxiliary=False)
        print(json.dumps({"parameters_without_auxiliary": count,
                          "parameters": parameter_count(net, include_auxiliary=True),
                          "reference": DARTS_V2_PARAMETERS}))
        if (args.channels, args.num_cells) == (36, 20) and count != DARTS_V2_PARAMETERS:
            raise SystemExit(f"DARTS_V2 has {count} parameters without the auxiliary head; "
                             f"the reference has {DARTS_V2_PARAMETERS}.")
        return
    line = json.dumps(measure(args))
    print(line, flush=True)
    if args.output:
        with open(args.output, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
