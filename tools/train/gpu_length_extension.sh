#!/usr/bin/env bash
# The GPU side of the length extension (issue 21; docs/length-extension.md): the shipped model
# fine-tuned on 64-frame clips three ways for the same number of steps, then each scored at 64
# frames on the 50 cases of bench/digit_quality.py. Everything lives in runs/lx/ (git-ignored);
# each verb fits one call of the lent GPU (at most 10 minutes); `score` reads runs/lx as `train`
# left it (carried back when the machine is a fresh one).
#   bash tools/train/gpu_length_extension.sh train [TRAIN_SECONDS]   the three variants at once on
#        the GPU: their rates (train.py --bench), N = TRAIN_SECONDS at the slowest rate, N steps
#        each (stopped 60 s after TRAIN_SECONDS at the latest); $OUT/lx_train.tar.gz holds runs/lx
#        (logs, adapters), $OUT/full_sparse.h5 the fully fine-tuned model
#   bash tools/train/gpu_length_extension.sh all [TRAIN_SECONDS]     train, then score (with 240 s
#        of training the scoring runs past one 10-minute call: use train, then score)
#   bash tools/train/gpu_length_extension.sh quick [TRAIN_SECONDS]   the LoRA variant alone, then its
#        score and (unless QUICK_BASELINE=0) the untuned model's under the same mask
#   bash tools/train/gpu_length_extension.sh long VARIANT TOTAL_STEPS [TRAIN_SECONDS]   one variant for
#        TRAIN_SECONDS (default 480) of a TOTAL_STEPS run (its LR schedule), resumed from
#        runs/lx/VARIANT/ckpt.pt when there: call after call, each time carrying runs/ back
#        (`cat lx_long_VARIANT.tgz.part-* | tar -xz`); the adapter/final.h5 are as of the last call
#   bash tools/train/gpu_length_extension.sh round VARIANT TOTAL_STEPS [TRAIN_SECONDS]   `long` for
#        TRAIN_SECONDS (default 380), then the variant's 50 videos of 64 frames with and without the
#        mask, tagged VARIANT_sSTEP[_dense]: $OUT/lx_round_VARIANT_sSTEP.tar (frames and logs)
#   bash tools/train/gpu_length_extension.sh score   50 videos of 64 frames from the original
#        model (dense and masked) and each variant, the six sets at once (about 3.5 minutes on an
#        H100); $OUT/lx_frames.tar holds frames/TAG/TAG_cfg6_t64_p{0..4}.h5, scored on the CPU by
#        `python3 bench/digit_quality.py --h5 frames/TAG/TAG_cfg6_t64_p*.h5`. On a fresh machine
#        it needs runs/lx as train left it: `tar -xzf lx_train.tar.gz` and full_sparse.h5 copied to
#        runs/lx/full_sparse/final.h5, carried with the call (runs/ and data/ are git-ignored)
# Variants (all from models/digits-dit.h5, 64-frame clips, batch 4, AdamW, EMA 0.995):
#   lora_sparse  LoRA rank 16 on the attention and FFN projections, radial3d mask in the forward
#   full_sparse  every weight trained, radial3d mask in the forward
#   lora_dense   LoRA rank 16, dense attention
#   lora_self_sparse  LoRA rank 16 on the self-attention alone, learning rate 1e-4, the mask
#   lora_big_sparse   lora_sparse at 16 clips a step (--batch 64), EMA 0.999, learning rate 2e-4:
#                     the short runs' 4 clips and 200-step EMA horizon lowered the digit score
#   *_rx         the same with RIFLEx (temporal pair 3, docs/model.md §6) in the training forward and
#                in the sampling (lora_sparse_rx, lora_dense_rx, full_sparse_rx)
#   bash tools/train/gpu_length_extension.sh riflex   the untuned model's 50 videos of 64 frames with
#        RIFLEx, with and without the mask: $OUT/lx_riflex.tar (tags orig_rx_sparse, orig_rx_dense)
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
RUN=runs/lx
MASK_ATTN="radial3d:decay=0.5,dense_steps=1,dense_layers=0"  # the engine's spec of the mask below
SPARSE_SAMPLE="--bf16 --frames-only --mask radial3d --dense-steps 1"
DENSE_SAMPLE="--bf16 --frames-only"

RIFLEX=3

variant_args() {
  case "$1" in
  *_rx) echo "$(variant_args "${1%_rx}" | sed "s|$RUN/${1%_rx}/|$RUN/$1/|") --riflex $RIFLEX";;
  lora_sparse) echo "--lora 16 --lr 5e-4 --attn-mask radial3d --adapter $RUN/lora_sparse/adapter.safetensors --adapter-attn $MASK_ATTN";;
  full_sparse) echo "--lr 1e-4 --attn-mask radial3d";;
  lora_self_sparse) echo "--lora 16 --lr 1e-4 --lora-targets self --attn-mask radial3d --adapter $RUN/lora_self_sparse/adapter.safetensors --adapter-attn $MASK_ATTN";;
  lora_big_sparse) echo "--lora 16 --lr 2e-4 --batch 64 --ema 0.999 --attn-mask radial3d --adapter $RUN/lora_big_sparse/adapter.safetensors --adapter-attn $MASK_ATTN";;
  lora_dense) echo "--lora 16 --lr 5e-4 --adapter $RUN/lora_dense/adapter.safetensors";;
  esac
}

sample_extra() {  # the sampling options a variant was trained for
  if [[ "$1" == *_rx ]]; then echo "--riflex $RIFLEX"; fi
}

train() {  # variant, steps (0: --bench 25)
  local v=$1 n=$2 extra
  if (( n == 0 )); then extra="--bench 15"; else extra="--steps $n --deadline ${DEADLINE:-0}"; fi
  mkdir -p "$RUN/$v"
  # shellcheck disable=SC2046
  python3 tools/train/train.py --init models/digits-dit.h5 --t-cycle 64 --batch 16 --warmup 50 \
    --ema 0.995 --slot-order left-first --val-frames 64 --val-every 250 --log-every 50 --ckpt-every 1e9 \
    --run "$RUN/$v" --log "$RUN/$v/train_log.csv" --plot "$RUN/$v/loss.png" --export "$RUN/$v/final.h5" \
    $(variant_args "$v") $extra
}

pipeline() {  # train seconds; the three variants share the GPU
  local train_s=$1 v r n t0 pids=()
  for v in lora_sparse full_sparse lora_dense; do
    train "$v" 0 > "$RUN/bench_$v.txt" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  n=1000000
  for v in lora_sparse full_sparse lora_dense; do
    r=$(awk '/^BENCH/ {print $5}' "$RUN/bench_$v.txt")
    [[ -n "$r" ]] || { echo "FAILED: no rate for $v"; tail -n 20 "$RUN/bench_$v.txt"; return 1; }
    echo "bench $v (three at once): $r steps/s"
    n=$(python3 -c "print(min($n, int($train_s * $r)))")
  done
  echo "steps per variant: $n"
  t0=$(date +%s); pids=()
  for v in lora_sparse full_sparse lora_dense; do
    DEADLINE=$(( t0 + train_s + 60 )) train "$v" "$n" > "$RUN/$v/log.txt" 2>&1 &
    pids+=($!)
  done
  for i in 0 1 2; do wait "${pids[$i]}"; done
  for v in lora_sparse full_sparse lora_dense; do
    echo "trained $v: $(grep -E '^step=' "$RUN/$v/log.txt" | tail -n 1 | cut -d' ' -f1-2); $(grep 'final EMA' "$RUN/$v/log.txt")"
  done
  echo "training wall $(( $(date +%s) - t0 )) s"
}

score_all() {  # the six sets at once (about 3.5 minutes on one H100), in files of 10 videos
  score orig_dense models/digits-dit.h5 "$DENSE_SAMPLE" &
  score orig_sparse models/digits-dit.h5 "$SPARSE_SAMPLE" &
  score lora_sparse models/digits-dit.h5 "$SPARSE_SAMPLE --adapter $RUN/lora_sparse/adapter.safetensors" &
  score full_sparse "$RUN/full_sparse/final.h5" "$SPARSE_SAMPLE" &
  score lora_dense models/digits-dit.h5 "$DENSE_SAMPLE --adapter $RUN/lora_dense/adapter.safetensors" &
  score lora_sparse_dense models/digits-dit.h5 "$DENSE_SAMPLE --adapter $RUN/lora_sparse/adapter.safetensors" &
  wait
  echo "DONE"
}

score() {  # tag, model, sample.py arguments: $RUN/frames/TAG/TAG_cfg6_t64_p{0..4}.h5 (+ real_t64.h5)
  local t0; t0=$(date +%s)
  OUT="$RUN/frames/$1" MODEL="$2" FRAMES=64 TAG="$1" CHUNK=10 SAMPLE_ARGS="$3" bash tools/train/gpu_digit_probe.sh 6 \
    > "$RUN/score_$1.txt" 2>&1
  echo "scored $1: rc $? in $(( $(date +%s) - t0 )) s"
}

case "${1:-}" in
train)
  rm -rf "$RUN"; mkdir -p "$RUN"
  pipeline "${2:-300}" 2>&1 | tee "$RUN/pipeline.txt"
  if [[ -n "${OUT:-}" ]]; then
    tar -czf "$OUT/lx_train.tar.gz" --exclude='ckpt.pt' --exclude='*.h5' "$RUN"
    cp "$RUN/full_sparse/final.h5" "$OUT/full_sparse.h5"
    ls -la "$OUT"
  fi
  ;;
quick)  # when little GPU time is left: the LoRA variant alone for TRAIN_SECONDS, scored sparse
  rm -rf "$RUN"; mkdir -p "$RUN/lora_sparse"
  # shellcheck disable=SC2046
  python3 tools/train/train.py --init models/digits-dit.h5 --t-cycle 64 --batch 16 --warmup 20 \
    --ema 0.995 --slot-order left-first --val-frames 64 --val-every 1000000 --log-every 25 --ckpt-every 1e9 \
    --run "$RUN/lora_sparse" --log "$RUN/lora_sparse/train_log.csv" --plot "$RUN/lora_sparse/loss.png" \
    --export "$RUN/lora_sparse/final.h5" $(variant_args lora_sparse) \
    --steps 0 --deadline $(( $(date +%s) + ${2:-120} )) 2>&1 | tee "$RUN/lora_sparse/log.txt" | grep -E "AUTO|final|LoRA|step=.*00 "
  [[ -n "${OUT:-}" ]] && cp "$RUN/lora_sparse/adapter.safetensors" "$RUN/lora_sparse/train_log.csv" "$OUT/"
  score lora_sparse models/digits-dit.h5 "$SPARSE_SAMPLE --adapter $RUN/lora_sparse/adapter.safetensors" &
  [[ "${QUICK_BASELINE:-1}" == 1 ]] && score orig_sparse models/digits-dit.h5 "$SPARSE_SAMPLE" &
  wait
  [[ -n "${OUT:-}" ]] && tar -cf "$OUT/lx_quick_frames.tar" -C "$RUN" frames && ls -la "$OUT"
  ;;
long)  # VARIANT TOTAL_STEPS [TRAIN_SECONDS]: a run longer than one call, resumed call after call
  v=${2:?variant}; n=${3:?total steps}
  [[ -n "$(variant_args "${v%_rx}")" ]] || { echo "unknown variant '$v'"; exit 2; }
  mkdir -p "$RUN/$v"
  [[ -f "$RUN/$v/ckpt.pt" ]] && echo "resuming $v from $RUN/$v/ckpt.pt"
  DEADLINE=$(( $(date +%s) + ${4:-480} )) train "$v" "$n" 2>&1 | tee -a "$RUN/$v/log.txt" |
    grep -E "resumed|deadline|final|LoRA|val_loss=[0-9]"
  if [[ -n "${OUT:-}" ]]; then
    # the LoRA variants' checkpoints hold the adapters alone (a few MB); full_sparse's, the whole model
    # and its EMA: in parts of 15 MB (at most 8 files of 16 MiB come back)
    tar -czf - --exclude='*.h5' "$RUN/$v" | split -b 15m - "$OUT/lx_long_$v.tgz.part-"
    [[ "$v" == full_sparse* ]] && cp "$RUN/$v/final.h5" "$OUT/full_sparse.h5"
    ls -la "$OUT"
  fi
  ;;
round)  # VARIANT TOTAL_STEPS [TRAIN_SECONDS]: `long`, then the variant's digit score with and without
  # the mask (LoRA variants; full_sparse under the mask alone), tagged with the step reached:
  # a point of the score's learning curve per call (TRAIN_SECONDS 380 leaves room for the scoring)
  v=${2:?variant}; n=${3:?total steps}
  bash "$0" long "$v" "$n" "${4:-380}" || exit 1
  step=$(grep -oE 'saved step [0-9]+' "$RUN/$v/log.txt" | tail -n 1 | grep -oE '[0-9]+$')
  [[ -n "$step" ]] || { echo "no checkpoint step in $RUN/$v/log.txt"; exit 1; }
  tags=()
  x=$(sample_extra "$v")
  if [[ "$v" == full_sparse* ]]; then
    score "${v}_s$step" "$RUN/$v/final.h5" "$SPARSE_SAMPLE $x" & tags+=("${v}_s$step")
  else
    score "${v}_s$step" models/digits-dit.h5 "$SPARSE_SAMPLE $x --adapter $RUN/$v/adapter.safetensors" &
    score "${v}_s${step}_dense" models/digits-dit.h5 "$DENSE_SAMPLE $x --adapter $RUN/$v/adapter.safetensors" &
    tags+=("${v}_s$step" "${v}_s${step}_dense")
  fi
  wait
  if [[ -n "${OUT:-}" ]]; then
    files=()
    for t in "${tags[@]}"; do files+=("frames/$t" "score_$t.txt"); done
    tar -cf "$OUT/lx_round_${v}_s$step.tar" -C "$RUN" "${files[@]}"
    ls -la "$OUT"
  fi
  ;;
riflex)  # the untuned model with RIFLEx, masked and dense
  mkdir -p "$RUN"
  score orig_rx_sparse models/digits-dit.h5 "$SPARSE_SAMPLE --riflex $RIFLEX" &
  score orig_rx_dense models/digits-dit.h5 "$DENSE_SAMPLE --riflex $RIFLEX" &
  wait
  [[ -n "${OUT:-}" ]] && tar -cf "$OUT/lx_riflex.tar" -C "$RUN" frames/orig_rx_sparse frames/orig_rx_dense \
    score_orig_rx_sparse.txt score_orig_rx_dense.txt && ls -la "$OUT"
  ;;
all)
  bash "$0" train "${2:-240}"
  ;&
score)
  score_all 2>&1 | tee "$RUN/score.txt"
  if [[ -n "${OUT:-}" ]] && grep -q DONE "$RUN/score.txt"; then
    tar -czf "$OUT/lx_score_logs.tar.gz" "$RUN"/score*.txt
    tar -cf "$OUT/lx_frames.tar" -C "$RUN" frames
    ls -la "$OUT"
  fi
  ;;
*) echo "usage: $0 train [TRAIN_SECONDS] | score | all [TRAIN_SECONDS] | quick [TRAIN_SECONDS] | long VARIANT TOTAL_STEPS [TRAIN_SECONDS] | round VARIANT TOTAL_STEPS [TRAIN_SECONDS] | riflex"; exit 2;;
esac
