"""The StacNAS authors' stage 1 (susan0199/StacNAS), run beside this project's.

Not part of the project: it needs PyTorch (never a project dependency) and a
local copy of the authors' code, which it imports unchanged: `SearchCNN`,
its cells and operators, the stage-1 primitive list of `genotypes.OPS_DICT`,
and the one-level update of their `search.py` `train()` (zero both grads, one
forward/backward on a training batch, clip the weights' gradient norm, step
Adam on alpha and SGD on the weights). Only the data loading is ours: the
Debian Fashion-MNIST IDX files, resized to --image_size (antialiased
bilinear, as the project), normalised with the authors' mean/std, optionally
with the authors' augmentation (RandomAffine(15, translate 0.1, scale
0.9-1.1, shear 0.1) + RandomVerticalFlip, re-implemented without
torchvision, whose PyPI build does not import beside the CPU torch here).

Settings that differ between the two codes are flags, so each can be tried:
--init (the authors' PyTorch default, or `glorot` as Keras), --lr_schedule
(the authors' cosine per epoch, or per step as the project), --grad_clip
(authors' run script: 3; project: 5), --augment (none, as the project, or
authors), --warmup_epochs (alpha held still, as the project's
--arch_warmup_epochs). It fetches nothing.

  python benchmarks/authors_stage1.py --authors_dir=/path/to/StacNAS \\
      --data_dir=/usr/share/datasets/fashion-mnist --regime=subset --seeds=0,1,2 \\
      --output=results.json

Output: JSON with, per run and epoch, the softmax weights of every edge of
the normal and reduction cells, the edges won by pools, skips and
convolutions (as the project derives stage 1: strongest non-`none` op), the
weight ratio (largest weight x candidates, mean over edges) and train accuracy.
"""

import argparse
import gzip
import json
import math
import os
import sys
import time
import types

import numpy as np


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion_mnist(torch, data_dir, image_size):
    images = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
    if image_size and image_size != x.shape[-1]:
        x = torch.nn.functional.interpolate(x, size=(image_size, image_size), mode="bilinear",
                                            antialias=True, align_corners=False)
    # The authors' Fashion-MNIST statistics (their data_loader.py).
    x = (x - 0.28604063146254594) / 0.35302426207299326
    return x, torch.from_numpy(labels.astype(np.int64))


def authors_augment(torch, batch, generator):
    """RandomAffine(degrees=15, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=0.1)
    with nearest sampling and zero fill (of the normalised background), then
    RandomVerticalFlip(0.5), per image."""
    n = batch.shape[0]
    f = torch.nn.functional
    angle = (torch.rand(n, generator=generator) * 30 - 15) * math.pi / 180
    shear = (torch.rand(n, generator=generator) * 0.2 - 0.1) * math.pi / 180
    scale = torch.rand(n, generator=generator) * 0.2 + 0.9
    translate = (torch.rand(n, 2, generator=generator) * 0.2 - 0.1) * 2  # in [-1, 1] units
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos / scale
    theta[:, 0, 1] = (-sin + torch.tan(shear) * cos) / scale
    theta[:, 1, 0] = sin / scale
    theta[:, 1, 1] = cos / scale
    theta[:, :, 2] = translate
    background = (0.0 - 0.28604063146254594) / 0.35302426207299326
    grid = f.affine_grid(theta, list(batch.shape), align_corners=False)
    out = f.grid_sample(batch - background, grid, mode="nearest", padding_mode="zeros",
                        align_corners=False) + background
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(-2)
    return out


def import_authors(authors_dir):
    """The authors' modules, with their plotting-only imports stubbed where missing
    (feature_map needs sklearn/matplotlib, genotypes graphviz; stage 1 uses neither)."""
    sys.path.insert(0, authors_dir)
    try:
        import feature_map  # noqa: F401
    except ImportError:
        stub = types.ModuleType("feature_map")
        stub.save_features = lambda *args, **kwargs: None
        sys.modules["feature_map"] = stub
    try:
        import graphviz  # noqa: F401
    except ImportError:
        stub = types.ModuleType("graphviz")
        stub.Digraph = object
        sys.modules["graphviz"] = stub
    import genotypes
    import search_cnn
    return genotypes, search_cnn


POOLS = ("max_pool_3x3", "avg_pool_3x3")
CONVS = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")


def cell_numbers(alpha, ops):
    """(softmax weights per edge, counts of winners by kind, weight ratio)."""
    import torch

    weights = [[torch.softmax(edge.detach().float().cpu(), -1).tolist() for edge in node]
               for node in alpha]
    flat = [w for node in weights for w in node]
    counts = {"pool": 0, "skip": 0, "conv": 0}
    for w in flat:
        options = [(w[k], -k) for k, op in enumerate(ops) if op != "none"]
        winner = ops[-max(options)[1]]
        counts["pool" if winner in POOLS else "skip" if winner == "skip_connect" else "conv"] += 1
    ratio = float(np.mean([max(w) * len(w) for w in flat]))
    return flat, counts, ratio


def glorot_init(torch, model):
    """Keras's defaults: Glorot-uniform kernels, zero biases (the project's init)."""
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)


def write_json(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f)
    os.replace(tmp, path)


def run(args, seed, torch, genotypes, search_cnn, images, labels, on_epoch=lambda history: None):
    device = torch.device(args.device)
    np.random.seed(seed)
    torch.manual_seed(seed)
    ops = [ops_tuple[0] for ops_tuple in genotypes.OPS_DICT]  # stage 1, as their search.py
    primitives = [genotypes.build_primitive_from_init(4, ops) for _ in range(2)]
    model = search_cnn.SearchCNN(input_size=images.shape[-1], channels_in=images.shape[1],
                                 channels_init=args.channels, num_cells=args.cells, num_nodes=4,
                                 num_classes=10, stem_multiplier=3, auxiliary=False,
                                 primitives=primitives, alpha_share=True)
    if args.init == "glorot":
        glorot_init(torch, model)
    model = model.to(device)
    criterion = torch.nn.CrossEntropyLoss().to(device)
    alpha_optim = torch.optim.Adam(model.alphas(), lr=args.alpha_lr, betas=(0.5, 0.999),
                                   weight_decay=1e-3)
    weight_optim = torch.optim.SGD(model.weights(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    count = args.num_examples or len(images)
    steps = args.steps_per_epoch or count // args.batch_size
    total = steps * args.epochs
    generator = torch.Generator().manual_seed(seed)
    order, cursor = torch.randperm(count, generator=generator), 0
    history = []
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        correct = seen = 0
        for step in range(steps):
            if args.lr_schedule == "epoch":  # the authors' CosineAnnealingLR(T_max=epochs)
                progress = epoch / args.epochs
            else:
                progress = (epoch * steps + step) / total
            for group in weight_optim.param_groups:
                group["lr"] = 0.001 + (0.025 - 0.001) * (1 + math.cos(math.pi * progress)) / 2
            if cursor + args.batch_size > count:  # reshuffle each pass, as a sampler epoch
                order, cursor = torch.randperm(count, generator=generator), 0
            index = order[cursor: cursor + args.batch_size]
            cursor += args.batch_size
            x, y = images[index], labels[index]
            if args.augment == "authors":
                x = authors_augment(torch, x, generator)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            # Their train(): one batch, one backward, both optimizers.
            alpha_optim.zero_grad()
            weight_optim.zero_grad()
            logits, _ = model(x)
            loss = criterion(logits, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.weights(), args.grad_clip)
            if epoch >= args.warmup_epochs:
                alpha_optim.step()
            weight_optim.step()
            correct += int((logits.argmax(-1) == y).sum())
            seen += len(y)
        entry = {"epoch": epoch + 1, "accuracy": correct / seen, "seconds": time.time() - start}
        for name, alpha in zip(("normal", "reduce"), model.return_alphas()):
            weights, counts, ratio = cell_numbers(alpha, ops)
            entry[name] = {"weights": weights, "counts": counts, "ratio": ratio}
        history.append(entry)
        on_epoch(history)
        print(f"seed {seed} epoch {epoch + 1}: acc {entry['accuracy']:.3f} normal "
              f"{entry['normal']['counts']} ratio {entry['normal']['ratio']:.3f} "
              f"reduce {entry['reduce']['counts']} ({entry['seconds']:.0f} s)", flush=True)
    return {"seed": seed, "ops": ops, "history": history}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--authors_dir", required=True)
    parser.add_argument("--data_dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--regime", choices=("subset", "fresh", "custom"), default="custom",
                        help="subset: 1024 images, 30 epochs (the collapse study); fresh: all "
                             "60,000 in epochs of 100 steps, 8 epochs (the default preset).")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--image_size", type=int, default=16)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--num_examples", type=int, default=None)
    parser.add_argument("--steps_per_epoch", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--alpha_lr", type=float, default=3e-4)
    parser.add_argument("--warmup_epochs", type=int, default=0)
    parser.add_argument("--grad_clip", type=float, default=5.0)
    parser.add_argument("--init", choices=("pytorch", "glorot"), default="pytorch")
    parser.add_argument("--lr_schedule", choices=("epoch", "step"), default="epoch")
    parser.add_argument("--augment", choices=("none", "authors"), default="none")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    if args.regime == "subset":
        args.num_examples, args.steps_per_epoch, args.epochs = 1024, None, args.epochs or 30
    elif args.regime == "fresh":
        args.num_examples, args.steps_per_epoch = None, 100
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    genotypes, search_cnn = import_authors(args.authors_dir)
    images, labels = load_fashion_mnist(torch, args.data_dir, args.image_size)
    result = {"settings": vars(args), "torch": torch.__version__, "runs": [],
              "device_name": (torch.cuda.get_device_name() if args.device.startswith("cuda")
                              else "cpu")}
    for seed in args.seeds.split(","):
        # Written after every epoch, so a run stopped early keeps what it measured.
        partial = {"seed": int(seed), "ops": [t[0] for t in genotypes.OPS_DICT], "history": []}
        result["runs"].append(partial)

        def save(history, partial=partial):
            partial["history"] = history
            write_json(args.output, result)

        partial.update(run(args, int(seed), torch, genotypes, search_cnn, images, labels,
                           on_epoch=save))
        write_json(args.output, result)


if __name__ == "__main__":
    main()
