#!/usr/bin/env bash
# The GPU session that trained the shipped model (one lent H100, calls of at most 10 min).
#   bash tools/train/gpu_session.sh start [TRAIN_MINUTES]   first call: checks, eager benchmark,
#        launches the training in the background (setsid), then monitors (~9 min)
#   RUN=runs/main2 bash tools/train/gpu_session.sh continue [TRAIN_MINUTES]   phase 2: goes on
#        from models/digits-dit.h5 (the phase-1 EMA export) with a fresh optimizer, appending
#        to a copy of tools/train/train_log.csv, then monitors
#   bash tools/train/gpu_session.sh wait [SECONDS]         later calls: monitor, copy back
# LR (default 3e-4) sets the peak learning rate of `continue`, SLOT_ORDER (default random) the
# meaning of the two condition slots (tools/train/data.py; phase 5 used left-first). Once training has finished,
# `wait` writes the parity files (tools/train/golden.py, float32 on the machine's CPUs) for
# the new export and copies them back too.
# Everything the run writes lives in runs/main/ (git-ignored). Copies the newest EMA export,
# the CSV log, the loss plot and the console log to $OUT when $OUT is set.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1
RUN="${RUN:-runs/main}"
mkdir -p "$RUN"
OUT="${OUT:-}"
t_call=$(date +%s)

copy_back() {
  [[ -n "$OUT" ]] || return 0
  for f in digits-dit.h5 final.h5 train_log.csv loss.png log.txt bench.txt \
           golden/golden_forward.h5 golden/golden_sample.h5 golden/golden.log; do
    local b; b=$(basename "$f")
    [[ -f "$RUN/$f" ]] && cp "$RUN/$f" "$OUT/$b.tmp" && mv "$OUT/$b.tmp" "$OUT/$b"
  done
  # only one of the two exports is needed back
  [[ -f "$OUT/final.h5" ]] && rm -f "$OUT/digits-dit.h5"
  return 0
}

monitor() {  # $1: seconds budget of this call
  local until=$(( t_call + $1 ))
  while (( $(date +%s) < until )); do
    if [[ -f "$RUN/DONE" ]]; then
      echo "training finished: rc $(cat $RUN/DONE)"
      left=$(( until - $(date +%s) - 20 ))
      if [[ -f "$RUN/final.h5" && ! -f "$RUN/golden/golden_sample.h5" ]] && (( left > 60 )); then
        mkdir -p "$RUN/golden"
        timeout $left python3 tools/train/golden.py --model "$RUN/final.h5" \
          --out "$RUN/golden" --threads 16 2>&1 | tee "$RUN/golden/golden.log"
      fi
      break
    fi
    sleep 15
  done
  tail -n 4 "$RUN/log.txt" 2>/dev/null
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
  copy_back
}

case "${1:-}" in
start)
  minutes="${2:-24}"
  boot=$(( t_call - $(cut -d. -f1 /proc/uptime) ))
  deadline=$(( t_call + minutes * 60 ))
  (( t_call - boot < 600 && boot + 1500 < deadline )) && deadline=$(( boot + 1500 ))
  echo "call start $t_call, machine booted $boot, training deadline $deadline ($(( deadline - t_call )) s from now)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, h5py, cv2, matplotlib, numpy; print('torch', torch.__version__, torch.cuda.get_device_name(0), 'sdpa', hasattr(torch.nn.functional, 'scaled_dot_product_attention'))"
  python3 tools/train/check_spec.py || exit 1
  timeout 150 python3 tools/train/train.py --bench 15 2>&1 | tee "$RUN/bench.txt" | tail -n 3
  cat > "$RUN/train.sh" <<EOT
python3 tools/train/train.py --steps 0 --deadline $deadline --compile --run $RUN \
  --log $RUN/train_log.csv --plot $RUN/loss.png --export $RUN/final.h5
rc=\$?
if [[ \$rc -ne 0 ]]; then
  echo "compiled run ended with \$rc: going on without torch.compile (resumes from the checkpoint)"
  python3 tools/train/train.py --steps 0 --deadline $deadline --run $RUN \
    --log $RUN/train_log.csv --plot $RUN/loss.png --export $RUN/final.h5
  rc=\$?
fi
echo \$rc > $RUN/DONE
EOT
  rm -f "$RUN/DONE"
  setsid nohup bash "$RUN/train.sh" > "$RUN/log.txt" 2>&1 < /dev/null &
  echo "launched training (pid $!)"
  monitor 560
  ;;
continue)
  minutes="${2:-20}"
  deadline=$(( t_call + minutes * 60 ))
  echo "call start $t_call, training deadline $deadline ($(( deadline - t_call )) s from now)"
  cp tools/train/train_log.csv "$RUN/train_log.csv"
  cat > "$RUN/train.sh" <<EOT
args="--steps 0 --deadline $deadline --init models/digits-dit.h5 --continue-log --lr ${LR:-3e-4} --warmup 200 \
  --slot-order ${SLOT_ORDER:-random} \
  --ckpt-every 150 --run $RUN --log $RUN/train_log.csv --plot $RUN/loss.png --export $RUN/final.h5"
python3 tools/train/train.py \$args --compile
rc=\$?
if [[ \$rc -ne 0 ]]; then
  echo "compiled run ended with \$rc: going on without torch.compile (resumes from the checkpoint)"
  python3 tools/train/train.py \$args
  rc=\$?
fi
echo \$rc > $RUN/DONE
EOT
  rm -f "$RUN/DONE"
  cat "$RUN/train.sh"
  setsid nohup bash "$RUN/train.sh" > "$RUN/log.txt" 2>&1 < /dev/null &
  echo "launched training (pid $!)"
  monitor 560
  ;;
wait)
  monitor "${2:-560}"
  ;;
*)
  echo "usage: $0 start [MINUTES] | continue [MINUTES] | wait [SECONDS]"; exit 2;;
esac
