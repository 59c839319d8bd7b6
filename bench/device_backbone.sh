#!/usr/bin/env bash
# Issue 9, item 7: a stronger backbone. Pretrains the `pretrained-wide` backbone of lab.gcd.config.BACKBONES
# (SimCLR, 32/64/128 channels: 4x the parameters of the committed 16/32/64; labels never read) on a GPU, then
# runs FedLPA, FedAvg+SimGCD, FedAvg+GCD and the oracle prior on it AND on the committed backbone, on the
# evaluation seeds, on the same machine (`bench/run_gcd_tables.py --stage backbone`, one process per core).
#
#   bash bench/device_backbone.sh all        # both below in one call: pretraining on the GPU while the committed
#                                            # backbone's 24 runs use the cores, then the wide backbone's 24 runs
#   bash bench/device_backbone.sh pretrain   # -> data/backbone_simclr_wide.safetensors + .json (on a GPU)
#   bash bench/device_backbone.sh tables     # -> bench/results/gcd_backbones/*.json (resumable: done runs are kept)
#   python bench/run_gcd_tables.py --stage summary      # -> section "Item 7" of bench/results/gcd_summary.md
#
# Environment:
#   STEPS      pretraining steps (default auto: data/pretrain_backbone.py times steps on this GPU for 20 s, then
#              fixes the steps PRETRAIN_SECONDS allow, rounded down to a hundred, and records them, so
#              `--steps N` rebuilds the same weights). At equal time on the H200 the committed record's width
#              alternatives gained little (kNN-10 32/64/128: 83.1 % vs 16/32/64: 82.6 %, data/backbone_simclr.json),
#              so the wide backbone gets every second the call allows, not a fixed 2,000 steps.
#   PRETRAIN_SECONDS  the time the step budget is sized to (default 360: with the kNN evaluations and the
#              final prefix kNN it leaves the call, at most 600 s, a margin)
#   FMNIST_DIR folder holding train-images-idx3-ubyte.gz (default: the Debian package's; only images are read)
#   WORKERS    parallel runs for `tables` (default: every core; `all` leaves 2 to the pretraining meanwhile)
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
#   device run, carry [".fmnist", ".whl"] (26 + 22 MB, under the 64 MiB limit), timeout 600:
#       FMNIST_DIR=.fmnist WHEELS=.whl bash bench/device_backbone.sh all
#       then copy the returned data/backbone_simclr_wide.* into data/ and gcd_backbones/*.json into
#       bench/results/gcd_backbones/ (the call ends at its limit: what finished came back)
#   device run, carry [".whl"]: WHEELS=.whl bash bench/device_backbone.sh tables    (resumes the wide runs)
#   In the CPU smoke test of this script (2 cores, 2 runs at a time, a 5-step backbone) a FedLPA run took
#   120-164 s on the committed backbone and 385-522 s on the wide one: on 14 cores the committed runs take
#   about two waves (~5 min, beside the pretraining), the wide ones 24 x ~450 s / 16 cores, more than one more
#   call; or set LAB_DEVICE=cuda to train on the GPU (not yet measured).
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

pretrain() {
  python3 -c "import torch, sys; sys.exit(not torch.cuda.is_available())" \
    || echo "device_backbone.sh: no GPU found: the step budget is sized to this CPU, a small fraction of a GPU's" >&2
  python3 data/pretrain_backbone.py --widths 32,64,128 --steps "${STEPS:-auto}" --seconds "${PRETRAIN_SECONDS:-360}" \
    --batch 1024 --fmnist-dir "${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}" --out data/backbone_simclr_wide
  if [ -n "${OUT:-}" ]; then mkdir -p "$OUT/data" && cp data/backbone_simclr_wide.* "$OUT/data/"; fi
}

tables() {   # $1: backbones (comma-separated), $2: parallel runs; then run_gcd_tables.py's own options, if any
  local dir=bench/results/gcd_backbones
  if [ -n "${OUT:-}" ]; then          # run into $OUT (what finished comes back), starting from what is done
    mkdir -p "$OUT/gcd_backbones" "$dir" && cp -n "$dir"/*.json "$OUT/gcd_backbones/" 2>/dev/null || true
    dir="$OUT/gcd_backbones"
  fi
  LAB_DEVICE="${LAB_DEVICE:-cpu}" python3 bench/run_gcd_tables.py --stage backbone --backbones "$1" \
    --workers "$2" --out-dir "$dir" "${@:3}"
}

what="${1:-}"
shift || true      # what is left (e.g. --seeds 0 --methods simgcd, for a smoke test) goes to run_gcd_tables.py
case "$what" in
  pretrain) pretrain ;;
  tables) tables pretrained,pretrained-wide "${WORKERS:-$(nproc)}" "$@" ;;
  all)
    pretrain & pre=$!
    tables pretrained "${WORKERS:-$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))}" "$@"
    wait "$pre"
    tables pretrained-wide "${WORKERS:-$(nproc)}" "$@"
    ;;
  *)
    echo "usage: bash bench/device_backbone.sh {all|pretrain|tables}" >&2
    exit 2
    ;;
esac
