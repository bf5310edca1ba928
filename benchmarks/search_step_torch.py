"""The same one-level supernet step written plainly in PyTorch eager, for comparison.

  pip install torch==2.13.0   # not a project dependency; only this benchmark uses it
  python benchmarks/search_step_torch.py --channels=16 --num_cells=8 --batch_size=32 --image_size=32 \
      [--channels_last]

Same network shape as stacnas_tf's SearchNetwork (DARTS ops, affine-free
BatchNorm, mixed ops weighted by softmax(alpha)), SGD for the weights and Adam
for alpha from one backward pass. Prints one JSON line per supernet, with the
memory layout it ran in (`layout`: NCHW, PyTorch's default, or channels_last:
model and input converted with `memory_format=torch.channels_last`, the
layout PyTorch recommends for convolutional networks on CPU).
"""

import argparse
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

# A sibling module: these scripts run with a PyTorch venv, outside the project's packages.
from timing import time_steps

GROUP_REPRESENTATIVES = ["skip_connect", "max_pool_3x3", "sep_conv_3x3", "dil_conv_3x3"]
ALL_OPS = ["max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
           "dil_conv_3x3", "dil_conv_5x5"]


def bn(channels):
    return nn.BatchNorm2d(channels, affine=False)


class ReluConvBn(nn.Sequential):
    def __init__(self, c_in, c_out):
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), bn(c_out))


class Reduce(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.even = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.odd = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = bn(c_out)

    def forward(self, x):
        x = F.relu(x)
        return self.bn(torch.cat([self.even(x), self.odd(x[:, :, 1:, 1:])], 1))


def dw_block(c, k, stride, dilation, c_out):
    pad = dilation * (k - 1) // 2
    return [nn.ReLU(), nn.Conv2d(c, c, k, stride, pad, dilation=dilation, groups=c, bias=False),
            nn.Conv2d(c, c_out, 1, bias=False), bn(c_out)]


def make_op(name, c, stride):
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else Reduce(c, c)
    if name == "max_pool_3x3":
        return nn.Sequential(nn.MaxPool2d(3, stride, 1), bn(c))
    if name == "avg_pool_3x3":
        return nn.Sequential(nn.AvgPool2d(3, stride, 1, count_include_pad=False), bn(c))
    k = int(name[-1])
    if name.startswith("sep"):
        return nn.Sequential(*dw_block(c, k, stride, 1, c), *dw_block(c, k, 1, 1, c))
    return nn.Sequential(*dw_block(c, k, stride, 2, c))


class Cell(nn.Module):
    def __init__(self, ops, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__()
        self.pre0 = Reduce(c_pp, c) if reduction_prev else ReluConvBn(c_pp, c)
        self.pre1 = ReluConvBn(c_p, c)
        self.edges = nn.ModuleList()
        for node in range(4):
            for source in range(2 + node):
                stride = 2 if reduction and source < 2 else 1
                self.edges.append(nn.ModuleList([make_op(op, c, stride) for op in ops]))

    def forward(self, s0, s1, weights):
        states = [self.pre0(s0), self.pre1(s1)]
        index = 0
        for node in range(4):
            total = 0
            for source in range(2 + node):
                # weights[:, 0] belongs to `none`, whose output is zero.
                total = total + sum(w * op(states[source]) for w, op in
                                    zip(weights[index, 1:], self.edges[index]))
                index += 1
            states.append(total)
        return torch.cat(states[2:], 1)


class Supernet(nn.Module):
    def __init__(self, ops, channels, num_cells, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 3 * channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(3 * channels))
        c_pp, c_p, c = 3 * channels, 3 * channels, channels
        reductions = {num_cells // 3, 2 * num_cells // 3}
        self.cells, reduction_prev = nn.ModuleList(), False
        self.reduction = []
        for k in range(num_cells):
            reduction = k in reductions
            c = c * 2 if reduction else c
            self.cells.append(Cell(ops, c_pp, c_p, c, reduction, reduction_prev))
            self.reduction.append(reduction)
            reduction_prev, c_pp, c_p = reduction, c_p, 4 * c
        self.classifier = nn.Linear(c_p, num_classes)
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(14, len(ops) + 1))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(14, len(ops) + 1))

    def forward(self, x):
        normal, reduce = F.softmax(self.alpha_normal, -1), F.softmax(self.alpha_reduce, -1)
        s0 = s1 = self.stem(x)
        for cell, reduction in zip(self.cells, self.reduction):
            s0, s1 = s1, cell(s0, s1, reduce if reduction else normal)
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))


def measure(space, args, channels_last):
    torch.manual_seed(0)
    net = Supernet(GROUP_REPRESENTATIVES if space == "stage1" else ALL_OPS, args.channels, args.num_cells)
    alphas = [net.alpha_normal, net.alpha_reduce]
    weights = [p for p in net.parameters() if all(p is not a for a in alphas)]
    w_opt = torch.optim.SGD(weights, 0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(alphas, 3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    y = torch.randint(0, 10, (args.batch_size,))
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)

    def step():
        w_opt.zero_grad()
        a_opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        nn.utils.clip_grad_norm_(weights, 5.0)
        w_opt.step()
        a_opt.step()

    timing = time_steps(step, args.steps, args.batch_size)
    return {
        "benchmark": "search_step", "framework": "pytorch-eager", "space": space,
        "channels_last": channels_last, "layout": "channels_last" if channels_last else "NCHW",
        "channels": args.channels, "num_cells": args.num_cells,
        "batch_size": args.batch_size, "image_size": args.image_size, "steps": args.steps,
        **timing,
        "parameters": sum(p.numel() for p in net.parameters()), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--num_cells", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--spaces", default="stage1,full")
    parser.add_argument("--channels_last", action="store_true",
                        help="Model and input in torch.channels_last (NHWC) memory format.")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    for space in args.spaces.split(","):
        line = json.dumps(measure(space, args, args.channels_last))
        print(line, flush=True)
        if args.output:
            with open(args.output, "a") as f:
                f.write(line + "\n")


if __name__ == "__main__":
    main()
