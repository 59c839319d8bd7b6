#!/usr/bin/env bash
# Issue 9, item 7: a stronger backbone. Pretrains the `pretrained-wide` backbone of lab.gcd.config.BACKBONES
# (SimCLR, 32/64/128 channels: 4x the parameters of the committed 16/32/64; labels never read) on a GPU, then
# runs FedLPA, FedAvg+SimGCD, FedAvg+GCD and the oracle prior on it AND on the committed backbone, on the
# evaluation seeds, on the same machine (`bench/run_gcd_tables.py --stage backbone`, one process per core).
#
#   bash bench/device_backbone.sh all        # both below in one call: pretraining on the GPU (the committed
#                                            # backbone's 24 runs on the idle cores meanwhile), then the tables
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
#   PRETRAIN_SECONDS  the time the step budget is sized to (default 300: with the probe and the kNN evaluations
#              it leaves a 600-s call about 3 minutes for the tables on the GPU)
#   FMNIST_DIR folder holding train-images-idx3-ubyte.gz (default: the Debian package's; only images are read)
#   LAB_DEVICE where the tables train (default: cuda when there is a GPU, else cpu). On cuda every run of both
#              backbones trains on the GPU, GPU_WORKERS at a time (default 24: a run is mostly Python launching
#              small kernels, so the 16 cores, not the GPU, bound it), and `all` spends the cores left idle
#              while the GPU pretrains on the committed backbone's runs on CPU, as its tables were made, into
#              gcd_backbones_cpu/: how much the device moves the numbers of one backbone. On cpu: one thread per
#              run, WORKERS at a time (default: every core; `all` leaves 2 to the pretraining meanwhile).
#   WHEELS     a folder of wheels to install first (infomap, where the machine lacks it)
#   OUT        when set (the device machine's output folder): the weights, and every 20 s the result folders
#              as one archive (results.tgz: the device returns at most 8 files), are written there, so a call
#              cut short still returns what it finished
#
# On the lab's device machine (one GPU, 16 cores), from the repository root of a session that has it:
#   mkdir -p .git/info; echo /.whl/ >> .git/info/exclude; echo /.fmnist/ >> .git/info/exclude
#   mkdir -p .fmnist && cp /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz .fmnist/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d .whl "infomap==$(python3 -c 'import infomap; print(infomap.__version__)')"
#   device run, carry [".fmnist", ".whl"] (26 + 22 MB, under the 64 MiB limit), timeout 580:
#       FMNIST_DIR=.fmnist WHEELS=.whl bash bench/device_backbone.sh all 2>&1 | tee $OUT/log.txt
#   then: copy the returned data/backbone_simclr_wide.* into data/, unpack results.tgz into bench/results/,
#   python bench/run_gcd_tables.py --stage summary; commit the files (gcd_backbones/machine.json and the
#   backbone's record name the hardware). `tables` resumes what a call left (done runs are kept):
#   device run, carry [".whl"], timeout 580: WHEELS=.whl bash bench/device_backbone.sh tables 2>&1 | tee $OUT/log.txt
#   In the CPU smoke test of this script (2 cores, 2 runs at a time, a 5-step backbone) a FedLPA run took
#   120-164 s on the committed backbone and 385-522 s on the wide one: on CPU the wide backbone's runs alone
#   need more than one call, which is why the tables train on the GPU where there is one.
#   The first call on the H200 machine made the backbone, the 24 CPU runs and 24 of the 48 GPU runs: 24 GPU runs
#   at a time took about as long each as a CPU run (the run files' `seconds`), because Python on the 16 cores,
#   not the GPU, bounds a run; so the GPU runs take two calls: `all`, then `tables`. Since FedLPA on the wide
#   backbone runs at the discovery setting chosen on it (bench/results/discovery_study_pretrained-wide.md), and
#   FedLPA's default discovery has since changed (it merges new-class communities whose predictions agree, so its
#   runs on the committed backbone and the wide row at the library's discovery are re-made), that `tables` call
#   has the runs gcd_summary.md's H200 section counts as not made yet (two waves of 24 workers: minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -n "${WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$WHEELS"/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

gpu() { python3 -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; }
DEV="${LAB_DEVICE:-$(gpu && echo cuda || echo cpu)}"

pretrain() {
  gpu || echo "device_backbone.sh: no GPU found: the step budget is sized to this CPU, a small fraction of a GPU's" >&2
  python3 data/pretrain_backbone.py --widths 32,64,128 --steps "${STEPS:-auto}" --seconds "${PRETRAIN_SECONDS:-300}" \
    --batch 1024 --fmnist-dir "${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}" --out data/backbone_simclr_wide
  if [ -n "${OUT:-}" ]; then mkdir -p "$OUT/data" && cp data/backbone_simclr_wide.* "$OUT/data/"; fi
}

pack() {    # the result folders as one archive in $OUT (written aside, then renamed: never half-written)
  [ -n "${OUT:-}" ] || return 0
  local dirs; dirs=$(cd bench/results && ls -d gcd_backbones* 2>/dev/null) || return 0
  tar czf "$OUT/.results.tgz" -C bench/results $dirs && mv "$OUT/.results.tgz" "$OUT/results.tgz"
}

tables() {   # $1: device, $2: result folder, $3: backbones (comma-separated), $4: parallel runs; then options
  LAB_DEVICE="$1" python3 bench/run_gcd_tables.py --stage backbone --out-dir "bench/results/$2" \
    --backbones "$3" --workers "$4" "${@:5}"
}

if [ -n "${OUT:-}" ]; then
  (while sleep 20; do pack; done) & packer=$!
  trap 'kill $packer 2>/dev/null; pack' EXIT
fi
what="${1:-}"
shift || true      # what is left (e.g. --seeds 0 --methods simgcd, for a smoke test) goes to run_gcd_tables.py
case "$what" in
  pretrain) pretrain ;;
  tables)
    if [ "$DEV" = cpu ]; then tables cpu gcd_backbones pretrained,pretrained-wide "${WORKERS:-$(nproc)}" "$@"
    else tables "$DEV" gcd_backbones pretrained,pretrained-wide "${GPU_WORKERS:-24}" "$@"; fi
    ;;
  all)
    spare=$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))
    pretrain & pre=$!
    if [ "$DEV" = cpu ]; then
      tables cpu gcd_backbones pretrained "${WORKERS:-$spare}" "$@"
      wait "$pre"
      tables cpu gcd_backbones pretrained-wide "${WORKERS:-$(nproc)}" "$@"
    else
      tables cpu gcd_backbones_cpu pretrained "${WORKERS:-$spare}" "$@" & cpu=$!
      wait "$pre"
      tables "$DEV" gcd_backbones pretrained,pretrained-wide "${GPU_WORKERS:-24}" "$@"
      wait "$cpu"
    fi
    ;;
  *)
    echo "usage: bash bench/device_backbone.sh {all|pretrain|tables}" >&2
    exit 2
    ;;
esac
