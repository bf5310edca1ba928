#!/usr/bin/env bash
# The authors' stage 1 (benchmarks/authors_stage1.py) in every setting of
# benchmarks/results/side_by_side.md, as they were run: three seeds each, one
# process per seed, all at once (a GPU machine with PyTorch: 16 cores, one H200).
#
#   AUTHORS=/path/to/StacNAS DATA=/usr/share/datasets/fashion-mnist OUT=runs/authors \
#       DEVICE=cuda LIMIT=420 bash benchmarks/authors_runs.sh
#
# AUTHORS: a local copy of susan0199/StacNAS (its search_cnn.py, cells.py,
# operators.py, genotypes.py, augment_cnn.py, utils.py); nothing is fetched.
# Each run stops after LIMIT seconds (keeping the epochs it finished); the
# results are combined into OUT/authors_runs.json.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
: "${AUTHORS:?AUTHORS: a local copy of the StacNAS code}" "${OUT:?OUT: an output folder}"
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
DEVICE=${DEVICE:-cuda}
LIMIT=${LIMIT:-420}
PYTHON=${PYTHON:-python}
mkdir -p "$OUT"
job() {
  name=$1; shift
  for seed in 0 1 2; do
    timeout "$LIMIT" "$PYTHON" "$HERE/authors_stage1.py" --authors_dir="$AUTHORS" \
      --data_dir="$DATA" --device="$DEVICE" --threads=1 --seeds=$seed \
      --output="$OUT/${name}_seed$seed.json" "$@" > "$OUT/${name}_seed$seed.log" 2>&1 &
  done
}
# The project's settings (cosine per step, clip 5, no augmentation), the authors' init.
SAME="--lr_schedule=step --grad_clip=5 --augment=none --init=pytorch"
# The authors' own run script: cosine per epoch, clip 3, their Fashion-MNIST augmentation.
AUTH="--lr_schedule=epoch --grad_clip=3 --augment=authors --init=pytorch"
for lr in 3e-4 3e-3 1e-2 3e-2; do
  job "fresh_lr${lr}_w2" $SAME --regime=fresh --epochs=8 --warmup_epochs=2 --alpha_lr=$lr
done
job subset_same $SAME --regime=subset --epochs=30 --alpha_lr=3e-4
job subset_glorot $SAME --init=glorot --regime=subset --epochs=30 --alpha_lr=3e-4
job subset_authors $AUTH --regime=subset --epochs=30 --alpha_lr=3e-4
job long_authors $AUTH --num_examples=60000 --steps_per_epoch=300 --epochs=10 --alpha_lr=3e-4
wait
"$PYTHON" - "$OUT" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
combined = {}
for path in sorted(glob.glob(os.path.join(out, "*_seed*.json"))):
    with open(path) as f:
        combined[os.path.basename(path)[:-5]] = json.load(f)
with open(os.path.join(out, "authors_runs.json"), "w") as f:
    json.dump(combined, f)
print(f"{len(combined)} runs -> {out}/authors_runs.json")
PY
