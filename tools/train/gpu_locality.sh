#!/usr/bin/env bash
# The GPU calls of the locality fine-tune (issue 6; tools/train/locality.py). One lent H100,
# calls of at most 10 minutes; everything lives in runs/local/ (git-ignored).
#   bash tools/train/gpu_locality.sh train [MINUTES]   fine-tunes models/digits-dit.h5 with the
#        attention-mass penalty (MASK, default temporal; WEIGHT, default 1.0), then monitors
#   bash tools/train/gpu_locality.sh eval              masked-versus-dense PSNR of the shipped
#        model and of the fine-tune (tools/experiments/locality_eval.py), then the digit-score
#        probe of the fine-tune at its sampling guidance (tools/train/gpu_digit_probe.sh)
# Copies the export, the logs and the JSON to $OUT when $OUT is set.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
RUN="${RUN:-runs/local}"
mkdir -p "$RUN"
OUT="${OUT:-}"
t_call=$(date +%s)

copy_back() {
  [[ -n "$OUT" ]] || return 0
  for f in final.h5 train_log.csv loss.png log.txt locality.json locality.txt; do
    [[ -f "$RUN/$f" ]] && cp "$RUN/$f" "$OUT/$f"
  done
  return 0
}

case "${1:-}" in
train)
  minutes="${2:-8}"
  deadline=$(( t_call + minutes * 60 ))
  cp tools/train/train_log.csv "$RUN/train_log.csv"
  python3 tools/train/train.py --steps 0 --deadline "$deadline" --init models/digits-dit.h5 \
    --continue-log --lr "${LR:-2e-4}" --warmup 200 --slot-order left-first \
    --locality "${MASK:-temporal}" --locality-weight "${WEIGHT:-1.0}" --ckpt-every 120 \
    --run "$RUN" --log "$RUN/train_log.csv" --plot "$RUN/loss.png" --export "$RUN/final.h5" \
    > "$RUN/log.txt" 2>&1
  echo "training rc $?"
  grep -E 'outside_mass|val_loss=0|AUTO|final' "$RUN/log.txt" | tail -n 12
  copy_back
  ;;
eval)
  python3 tools/experiments/locality_eval.py --device cuda --models models/digits-dit.h5 "$RUN/final.h5" \
    --frames 16 64 --json "$RUN/locality.json" > "$RUN/locality.txt" 2>&1
  tail -n 12 "$RUN/locality.txt"
  copy_back
  [[ -n "$OUT" ]] && MODEL="$RUN/final.h5" bash tools/train/gpu_digit_probe.sh "${GUIDANCE:-6}"
  ;;
*)
  echo "usage: $0 train [MINUTES] | eval"; exit 2;;
esac
