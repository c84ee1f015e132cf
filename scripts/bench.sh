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
#        RESNET_REPEATS (its timed calls per run, default 3),
#        ONNX (default 1; 0 skips the ONNX models: the same ResNet-18 exported by both PyTorch
#        exporters unless RESNET=0, and MiniLM's similarity when its files are found, timed beside the
#        hand-written Burn models and Captum; exported once into INFLUENCE_ONNX_BENCH_DIR,
#        default /var/tmp/onnx-bench, by scripts/onnx/export_bench.py)
# Installs torch, torchvision (resnet18_224), captum, transformers, onnx and onnxscript (the
# ONNX exports) from PyPI into CAPTUM_VENV when they are missing.
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
if [[ " ${WORKLOADS[*]} " != *" minilm "* ]]; then
  echo "bench.sh: minilm workload skipped: no model files (${candidates[*]})"
  MINILM_DIR=
fi

if ! "$VENV/bin/python" -c "import torch, torchvision, captum, transformers, onnx, onnxscript" 2>/dev/null; then
  echo "bench.sh: installing torch, torchvision, captum, transformers, onnx and onnxscript into $VENV (CPU is enough; a few GB)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q torch torchvision captum transformers onnx onnxscript
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

# ONNX models (influence-onnx) beside the hand-written Burn models of the same computation and
# Captum on the PyTorch original: ResNet-18 at 224×224 (batch 2, layer3) from both exporters,
# and MiniLM's similarity (word embeddings) when its files are found.
if [ "${ONNX:-1}" != 0 ]; then
  ONNX_DIR=${INFLUENCE_ONNX_BENCH_DIR:-/var/tmp/onnx-bench}
  minilm_onnx=(); [ -z "$MINILM_DIR" ] || minilm_onnx=(--minilm-dir "$MINILM_DIR")
  if [ ! -f "$ONNX_DIR/resnet18_224.torchscript.onnx" ] || [ ! -f "$ONNX_DIR/resnet18_224.onnx.data" ] ||
     { [ -n "$MINILM_DIR" ] && [ ! -f "$ONNX_DIR/minilm_similarity.onnx" ]; }; then
    echo "bench.sh: exporting the ONNX models into $ONNX_DIR"
    "$VENV/bin/python" scripts/onnx/export_bench.py --out "$ONNX_DIR" "${minilm_onnx[@]}" >/dev/null
  fi
  pairs=()
  [ "${RESNET:-1}" = 0 ] || pairs+=("resnet18_224 onnx_resnet18_224" "resnet18_224 onnx_ts_resnet18_224")
  [ -z "$MINILM_DIR" ] || pairs+=("minilm onnx_minilm")
  RESNET_REPEATS=${RESNET_REPEATS:-3}
  out=$(mktemp -d)
  for round in $(seq 1 "$ROUNDS"); do
    for pair in "${pairs[@]}"; do
      set -- $pair
      echo "bench.sh: round $round/$ROUNDS, $2 beside $1"
      reps=$RESNET_REPEATS; [ "$1" = minilm ] && reps=$REPEATS
      for w in "$1" "$2"; do
        INFLUENCE_MINILM_DIR=$MINILM_DIR INFLUENCE_ONNX_BENCH_DIR=$ONNX_DIR \
          "$BENCH" --workload "$w" --repeats "$reps" "${backend_flags[@]}" --json "$out/ours-$round-$2-$w.json" >/dev/null
      done
      # Captum's side once per round for both ResNet pairs (the same PyTorch model).
      if [ -f "$out/captum-$round-$1.json" ]; then
        :
      elif [ "$1" = minilm ]; then
        "$VENV/bin/python" scripts/captum_minilm.py --model-dir "$MINILM_DIR" --repeats "$reps" --json "$out/captum-$round-$1.json" >/dev/null
      else
        "$VENV/bin/python" scripts/captum_reference.py --workload "$1" --repeats "$reps" --json "$out/captum-$round-$1.json" >/dev/null
      fi
    done
  done
  echo
  python3 - "$out" "${pairs[@]}" <<'PY'
import glob, json, statistics, sys
out, pairs = sys.argv[1], [p.split() for p in sys.argv[2:]]
# ours-ROUND-PAIR-WORKLOAD.json: each pair's own runs of the hand-written model.
ours, captum = {}, {}
for f in glob.glob(f"{out}/ours-*.json"):
    pair = f.split("/")[-1].split("-")[2]
    for r in json.load(open(f)):
        ours.setdefault((pair, r["workload"], r["backend"]), []).append(r["median_s"])
for f in glob.glob(f"{out}/captum-*.json"):
    w = f.rsplit("-", 1)[1][:-5]
    for r in json.load(open(f)).values():
        captum.setdefault(w, []).append(r["median_s"])
print(f"{'onnx workload':<22} {'backend':<8} {'onnx_s':>8} {'burn_s':>8} {'onnx/burn':>10} {'captum_s':>9} {'onnx/captum':>12}")
for hand, onnx in pairs:
    for (p, w, b), ts in sorted(ours.items()):
        if p != onnx or w != onnx or (onnx, hand, b) not in ours:
            continue
        o, h = statistics.median(ts), statistics.median(ours[(onnx, hand, b)])
        c = statistics.median(captum[hand])
        print(f"{onnx:<22} {b:<8} {o:>8.3f} {h:>8.3f} {o / h:>10.2f} {c:>9.3f} {o / c:>12.2f}")
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
