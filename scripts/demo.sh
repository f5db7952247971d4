#!/usr/bin/env bash
# The main job, end to end on the built-in synthetic dataset (no download):
# simulate -> check-data -> parallax report -> mask cache -> train (with the NeRF head's LiDAR-ray
# geometry loss) -> predict (LiDAR only) -> evaluate -> render camera views through the NeRF head.
# Usage: scripts/demo.sh OUT_DIR   (called by `make demo`; takes ~10 min on a 2-core CPU)
set -euo pipefail
OUT=${1:-demo_out}
NERFSEG=${NERFSEG:-.venv/bin/nerfseg}
FRAMES=${DEMO_FRAMES:-16}
STEPS=${DEMO_STEPS:-200}
mkdir -p "$OUT"
step() { printf '\n=== %s\n' "$*"; }

step "1/8 simulate a small SemanticKITTI-layout dataset (train seq 00, val seq 08) -> $OUT/data"
"$NERFSEG" simulate "$OUT/data" --frames "$FRAMES" --sequences 00,08 --seed 0 --preview \
  --set frame_interval_s=0.5

step "2/8 validate it"
"$NERFSEG" check-data "$OUT/data" --dataset semantickitti --no-progress

step "3/8 parallax: share of camera-visible LiDAR points whose projected pixel shows another class"
"$NERFSEG" parallax "$OUT/data" --json "$OUT/parallax.json"

step "4/8 class-agnostic masks (built-in superpixels) for every training image, cached, with previews"
"$NERFSEG" masks --config configs/synthetic/supervised.yaml --set data.root="$OUT/data" --preview 2

step "5/8 train the segmentor with the NeRF head's LiDAR-ray geometry loss ($STEPS steps)"
"$NERFSEG" train configs/synthetic/supervised.yaml --out "$OUT/run" \
  --set data.root="$OUT/data" --set train.max_steps="$STEPS" --set train.checkpoint_every=50 \
  --set method=geometry

step "6/8 predict the val split from LiDAR alone (inference model has no NeRF weights)"
"$NERFSEG" predict "$OUT/run/model.pt" --data "$OUT/data" --split val --out "$OUT/pred"

step "7/8 evaluate with the official SemanticKITTI rule"
"$NERFSEG" evaluate --dataset semantickitti --data "$OUT/data" --predictions "$OUT/pred" \
  --split val --json "$OUT/eval.json"

step "8/8 render a val frame's camera view through the NeRF head"
"$NERFSEG" render "$OUT/run/checkpoints/last.pt" --data "$OUT/data" --frame 08/000008 --out "$OUT/render"

printf '\nDone. Look at: %s/data/previews/*.png, %s/render/*.png, %s/eval.json, %s/run/metrics.jsonl\n' \
  "$OUT" "$OUT" "$OUT" "$OUT"
