#!/usr/bin/env bash
# influence-bench beside Captum: runs this project's benchmark and Captum's reference timings
# (scripts/captum_reference.py, Captum's InternalInfluence on PyTorch, CPU) on the same
# workloads, alternating them round by round on this machine, and prints the ratio per
# workload and backend.
#
# usage: bash scripts/bench.sh [--features wgpu] ...   (cargo features for influence-bench)
# env:   ROUNDS (default 3), REPEATS (timed calls per run, default 5),
#        CAPTUM_VENV (default ~/.cache/burn-influence/captum-venv), BACKENDS (default: all compiled),
#        MEM_BACKEND (memory runs, default flex), CHUNK (their internal_batch_size, default 640),
#        RESNET (default 1; 0 skips resnet18_224, torchvision's ResNet-18 at 224×224, batch 2,
#        layer3, run without and with internal_batch_size 25: about 10 minutes for 3 rounds),
#        RESNET_REPEATS (its timed calls per run, default 3)
# Installs torch, torchvision (resnet18_224), captum and transformers from PyPI into CAPTUM_VENV when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
REPEATS=${REPEATS:-5}
VENV=${CAPTUM_VENV:-$HOME/.cache/burn-influence/captum-venv}
WORKLOADS=(digits_cnn mlp_784 cifar_cnn)
# The minilm workload runs when the model files are found (INFLUENCE_MINILM_DIR or the shared copy).
# A directory given in INFLUENCE_MINILM_DIR is used or refused, never replaced.
MINILM_DIR=${INFLUENCE_MINILM_DIR:-}
candidates=("$(pwd)/../shared/models/all-MiniLM-L6-v2" /work/shared/models/all-MiniLM-L6-v2)
[ -z "$MINILM_DIR" ] || candidates=("$MINILM_DIR")
for d in "${candidates[@]}"; do
  if [ -f "$d/model.safetensors" ]; then MINILM_DIR=$d; WORKLOADS+=(minilm); break; fi
done
[[ " ${WORKLOADS[*]} " == *" minilm "* ]] || echo "bench.sh: minilm workload skipped: no model files (${candidates[*]})"

if ! "$VENV/bin/python" -c "import torch, torchvision, captum, transformers" 2>/dev/null; then
  echo "bench.sh: installing torch, torchvision, captum and transformers into $VENV (CPU is enough; a few GB)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q torch torchvision captum transformers
fi
"$VENV/bin/python" -c "import torch, captum; print(f'bench.sh: torch {torch.__version__}, captum {captum.__version__}, {torch.get_num_threads()} threads')"

cargo build -q --release --bin influence-bench "$@"
BENCH=${CARGO_TARGET_DIR:-target}/release/influence-bench
backend_flags=()
for b in ${BACKENDS:-}; do backend_flags+=(--backend "$b"); done

out=$(mktemp -d)
for round in $(seq 1 "$ROUNDS"); do
  for w in "${WORKLOADS[@]}"; do
    echo "bench.sh: round $round/$ROUNDS, $w"
    if [ "$w" = minilm ]; then
      INFLUENCE_MINILM_DIR=$MINILM_DIR "$BENCH" --workload "$w" --repeats "$REPEATS" "${backend_flags[@]}" --json "$out/ours-$round-$w.json" >/dev/null
      "$VENV/bin/python" scripts/captum_minilm.py --model-dir "$MINILM_DIR" --repeats "$REPEATS" --json "$out/captum-$round-$w.json" >/dev/null
    else
      "$BENCH" --workload "$w" --repeats "$REPEATS" "${backend_flags[@]}" --json "$out/ours-$round-$w.json" >/dev/null
      "$VENV/bin/python" scripts/captum_reference.py --workload "$w" --repeats "$REPEATS" --json "$out/captum-$round-$w.json" >/dev/null
    fi
  done
done

python3 - "$out" <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
ours, captum = {}, {}
for f in glob.glob(f"{out}/ours-*.json"):
    for r in json.load(open(f)):
        ours.setdefault((r["workload"], r["backend"]), []).append(r)
for f in glob.glob(f"{out}/captum-*.json"):
    for w, r in json.load(open(f)).items():
        captum.setdefault(w, []).append(r["median_s"])
print(f"{'workload':<11} {'backend':<8} {'ours_s':>8} {'captum_s':>9} {'ours/captum':>12} {'floor_s':>8} {'ours/floor':>10} {'peak_mib':>9}")
for (w, b), rs in sorted(ours.items()):
    o = statistics.median(r["median_s"] for r in rs)
    c = statistics.median(captum[w])
    floor = statistics.median(r["floor_s"] for r in rs)
    peak = max(r["peak_mib"] for r in rs)
    print(f"{w:<11} {b:<8} {o:>8.4f} {c:>9.4f} {o / c:>12.2f} {floor:>8.4f} {o / floor:>10.2f} {peak:>9.1f}")
PY
rm -rf "$out"

# torchvision's ResNet-18 at 224×224 (batch 2, layer3, n_steps 50; seeded weights on our
# side, torchvision's architecture with seeded weights on Captum's: the time does not depend on
# the values), without internal batching and with internal_batch_size 25, side by side.
if [ "${RESNET:-1}" != 0 ]; then
  RESNET_REPEATS=${RESNET_REPEATS:-3}
  out=$(mktemp -d)
  for round in $(seq 1 "$ROUNDS"); do
    for ibs in none 25; do
      echo "bench.sh: round $round/$ROUNDS, resnet18_224, internal_batch_size $ibs"
      flag=(); [ "$ibs" = none ] || flag=(--internal-batch-size "$ibs")
      "$BENCH" --workload resnet18_224 --repeats "$RESNET_REPEATS" "${flag[@]}" "${backend_flags[@]}" --json "$out/ours-$round-$ibs.json" >/dev/null
      "$VENV/bin/python" scripts/captum_reference.py --workload resnet18_224 --repeats "$RESNET_REPEATS" "${flag[@]}" --json "$out/captum-$round-$ibs.json" >/dev/null
    done
  done
  echo
  python3 - "$out" <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
ours, captum = {}, {}
for f in glob.glob(f"{out}/ours-*.json"):
    ibs = f.rsplit("-", 1)[1][:-5]
    for r in json.load(open(f)):
        ours.setdefault((ibs, r["backend"]), []).append(r)
for f in glob.glob(f"{out}/captum-*.json"):
    ibs = f.rsplit("-", 1)[1][:-5]
    for w, r in json.load(open(f)).items():
        captum.setdefault(ibs, []).append(r["median_s"])
print(f"{'resnet18_224':<12} {'ibs':<5} {'backend':<8} {'ours_s':>8} {'captum_s':>9} {'ours/captum':>12} {'floor_s':>8} {'ours/floor':>10} {'peak_mib':>9}")
for (ibs, b), rs in sorted(ours.items()):
    o = statistics.median(r["median_s"] for r in rs)
    c = statistics.median(captum[ibs])
    floor = statistics.median(r["floor_s"] for r in rs)
    peak = max(r["peak_mib"] for r in rs)
    print(f"{'':<12} {ibs:<5} {b:<8} {o:>8.3f} {c:>9.3f} {o / c:>12.2f} {floor:>8.3f} {o / floor:>10.2f} {peak:>9.1f}")
PY
  rm -rf "$out"
fi

# Memory: with internal_batch_size fixed, peak memory follows the chunk, not n_steps. Each
# run is its own process, so each peak is its own.
MEM_BACKEND=${MEM_BACKEND:-flex}
CHUNK=${CHUNK:-640}
echo
echo "memory: digits_cnn on $MEM_BACKEND, peak resident memory of the process (MiB)"
printf '%-8s %-20s %9s %9s\n' n_steps internal_batch_size median_s peak_mib
for run in "50 $CHUNK" "500 $CHUNK" "50 none" "500 none"; do
  set -- $run
  chunk_flag=(); [ "$2" = none ] || chunk_flag=(--internal-batch-size "$2")
  line=$("$BENCH" --workload digits_cnn --backend "$MEM_BACKEND" --repeats 2 --n-steps "$1" "${chunk_flag[@]}" | grep '^digits_cnn ')
  printf '%-8s %-20s %9s %9s\n' "$1" "$2" "$(echo "$line" | cut -d' ' -f3)" "$(echo "$line" | cut -d' ' -f6)"
done
