#!/usr/bin/env bash
# The main job end to end: a trained ANN -> a spiking NIR graph -> every framework, checked spike for spike.
set -euo pipefail
OUT=${1:-demo-out}
run() { printf '\n$ %s\n' "$*"; "$@"; }

run python examples/train_digits_cnn.py "$OUT"
run snnx convert "$OUT/digits_cnn.onnx" -o "$OUT/digits_snn.nir" --calib "$OUT/calib.npz" \
    --evaluate "$OUT/test.npz" --timesteps 8,16,32,64 --limit 200
run snnx info "$OUT/digits_snn.nir"
run snnx lower "$OUT/digits_snn.nir" --to snntorch -o "$OUT/digits_snn.pt"
run snnx check "$OUT/digits_snn.nir" --backends all --random 32 --batch 4
run snnx raise "$OUT/digits_snn.pt" -o "$OUT/digits_snn_raised.nir"
run snnx check "$OUT/digits_snn_raised.nir"
