#!/usr/bin/env bash
# Issue 9, item 7: a stronger backbone. Pretrains the `pretrained-wide` backbone of lab.gcd.config.BACKBONES
# (SimCLR, 32/64/128 channels: 4x the parameters of the committed 16/32/64; labels never read) on a GPU, then
# runs FedLPA, FedAvg+SimGCD, FedAvg+GCD and the oracle prior on it AND on the committed backbone, on the
# evaluation seeds, on the same machine (`bench/run_gcd_tables.py --stage backbone`, one process per core).
#
#   bash bench/device_backbone.sh pretrain   # -> data/backbone_simclr_wide.safetensors + .json (on a GPU)
#   bash bench/device_backbone.sh tables     # -> bench/results/gcd_backbones/*.json (resumable: done runs are kept)
#   python bench/run_gcd_tables.py --stage summary      # -> section "Item 7" of bench/results/gcd_summary.md
#
# Environment:
#   STEPS      pretraining steps (default 2000: most of the committed backbone's kNN-10 gain came in its first
#              2,000 steps; see the history in data/backbone_simclr.json)
#   FMNIST_DIR folder holding train-images-idx3-ubyte.gz (default: the Debian package's; only images are read)
#   WORKERS    parallel runs for `tables` (default: every core)
#   LAB_DEVICE where `tables` trains (default cpu: one thread per run, like the committed tables; `cuda` puts every
#              run on the GPU, which changes the numbers but not what is compared, as both backbones run there)
#   WHEELS     a folder of wheels to install first (infomap, where the machine lacks it)
#   OUT        when set (the device machine's output folder), results are written there too, so a run cut
#              short still returns what it finished
#
# On the lab's device machine (one GPU, 16 cores), from the repository root of a session that has it:
#   echo /.whl/ >> .git/info/exclude; echo /.fmnist/ >> .git/info/exclude
#   mkdir -p .fmnist && cp /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz .fmnist/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d .whl "infomap==$(python3 -c 'import infomap; print(infomap.__version__)')"
#   device run, carry [".fmnist"]: FMNIST_DIR=.fmnist bash bench/device_backbone.sh pretrain
#       then copy the returned data/backbone_simclr_wide.* into data/
#   device run, carry [".whl"]:    WHEELS=.whl bash bench/device_backbone.sh tables
#       then copy the returned gcd_backbones/*.json into bench/results/gcd_backbones/. 48 runs. In the CPU smoke
#       test of this script (2 cores, 2 runs at a time, a 5-step backbone) a FedLPA run took 120-164 s on the
#       committed backbone and 385-522 s on the wide one, so on 16 cores the 48 runs need about 10-12 min: more
#       than one call. A call cut short keeps what finished and the next call resumes; or set LAB_DEVICE=cuda to
#       train on the GPU (not yet measured).
#   python bench/run_gcd_tables.py --stage summary; commit the files (gcd_backbones/machine.json and
#       the backbone's record name the hardware)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -n "${WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$WHEELS"/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

case "${1:-}" in
  pretrain)
    python3 -c "import torch, sys; sys.exit(not torch.cuda.is_available())" \
      || echo "device_backbone.sh: no GPU found; on CPU this pretraining takes hours" >&2
    python3 data/pretrain_backbone.py --widths 32,64,128 --steps "${STEPS:-2000}" --batch 1024 \
      --fmnist-dir "${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}" --out data/backbone_simclr_wide
    if [ -n "${OUT:-}" ]; then mkdir -p "$OUT/data" && cp data/backbone_simclr_wide.* "$OUT/data/"; fi
    ;;
  tables)
    dir=bench/results/gcd_backbones
    if [ -n "${OUT:-}" ]; then          # run into $OUT (what finished comes back), starting from what is done
      mkdir -p "$OUT/gcd_backbones" "$dir" && cp "$dir"/*.json "$OUT/gcd_backbones/" 2>/dev/null || true
      dir="$OUT/gcd_backbones"
    fi
    LAB_DEVICE="${LAB_DEVICE:-cpu}" python3 bench/run_gcd_tables.py --stage backbone --backbones pretrained,pretrained-wide \
      --workers "${WORKERS:-$(nproc)}" --out-dir "$dir"
    ;;
  *)
    echo "usage: bash bench/device_backbone.sh {pretrain|tables}" >&2
    exit 2
    ;;
esac
