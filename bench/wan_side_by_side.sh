#!/usr/bin/env bash
# ditgen against stable-diffusion.cpp (sd.cpp, the other CPU engine that runs Wan2.1) on the
# same random-weight Wan2.1-T2V-1.3B checkpoint, size, steps and threads (issue 18).
#
#   bench/wan_side_by_side.sh SD_CLI DITGEN WEIGHTS_DIR [ROUNDS]
#
# SD_CLI: sd.cpp's sd-cli; DITGEN: build/apps/ditgen; WEIGHTS_DIR: the output of
#   /usr/bin/python3 tools/wan/make_random_checkpoint.py --out /tmp/wan-rand
# (config.json, diffusion_pytorch_model.safetensors, context.safetensors and, for sd.cpp,
# sdcpp/umt5_random_tiny.safetensors and sdcpp/taew2_1_random.safetensors). Each round runs
# sd.cpp, then ditgen (alternating, so drift on a shared machine hits both); ROUNDS defaults
# to 1. Both engines get 17 frames at 256 x 448 (latent [16, 5, 32, 56], 2,240 tokens),
# 2 steps, CFG 5, 2 threads. Environment overrides: FRAMES HEIGHT WIDTH STEPS CFG THREADS
# SEED, SDCPP_FA (1, the default: --diffusion-fa, flash attention in sd.cpp's DiT, as every
# Wan example of its docs/wan.md uses; 0: its plain attention), SDCPP_EXTRA (more sd-cli
# flags), DITGEN_EXTRA, OUT (work folder, default a fresh mktemp -d; logs, outputs stay).
#
# Printed per run: seconds per step of the sampling phase alone (sd.cpp: its logged
# "sampling completed, taking X s" / steps, which covers both CFG passes of every step;
# its progress bar's per-step times are listed too;
# ditgen: run.json "seconds_per_step"), the whole process's wall time, and peak RSS in MB
# (VmHWM; /usr/bin/time -v "Maximum resident set size" for both) and, as "samp MB", the
# peak up to the end of sampling: for sd.cpp the process's VmHWM polled until its log says
# "sampling completed" (its TAE decode, after sampling, allocates a 3.8 GB compute buffer
# at this size and sets the whole-process peak), for ditgen its run.json "peak_rss_mb".
# sd.cpp's process also encodes the prompt with its (tiny, random)
# umT5 and decodes the latents with a (tiny, random) TAEHV; those phases are logged and
# shown separately, and ditgen does neither (it takes the encoder states from
# context.safetensors and writes latents). sd.cpp runs with --eager-load so that the
# weights are read before sampling starts (its default loads them lazily inside the first
# step).
#
# ---------------------------------------------------------------------------------------
# Building sd.cpp (CPU only) from its public source at the commits this comparison used:
#
#   stable-diffusion.cpp  https://github.com/leejet/stable-diffusion.cpp
#                         97d2990807fe6d558e395f8764198d7c7e7b411c (2026-08-19, "chore: format code")
#   ggml submodule        8e800cef2948046cc47f9db6090491c6128ca42c (2026-08-12, "ggml : remove
#                         standalone regular Hadamard op"); .gitmodules names
#                         https://github.com/leejet/ggml.git, the commit is also in
#                         https://github.com/ggml-org/ggml
#
#   git clone https://github.com/leejet/stable-diffusion.cpp /tmp/sdcpp/src
#   git -C /tmp/sdcpp/src checkout 97d2990807fe6d558e395f8764198d7c7e7b411c
#   git -C /tmp/sdcpp/src submodule update --init ggml   # libwebp, libwebm, frontend: not needed
#   cmake -S /tmp/sdcpp/src -B /tmp/sdcpp/build -DCMAKE_BUILD_TYPE=Release \
#         -DSD_SERVER_BUILD_FRONTEND=OFF -DGGML_NATIVE=ON      # no SD_CUDA/SD_VULKAN/...: CPU backend
#   nice -n 10 cmake --build /tmp/sdcpp/build -j2 --target sd-cli
#   # -> /tmp/sdcpp/build/bin/sd-cli
#
# Without the webp/webm submodules the CLI writes MJPEG .avi (used below). The copy built
# for the recorded figures came from a repository snapshot that lacked the large generated
# tokenizer headers src/tokenizers/vocab/{t5,umt5,gemma*,gpt_oss*,mistral*,qwen_merges}.hpp;
# they were replaced by stubs and the umT5 one by a 193-piece synthetic unigram vocabulary
# (the random umT5 has 256 embedding rows). Tokenization happens before sampling and the
# prompt is padded to 512 tokens either way, so the sampling figures do not depend on it.
# With the real headers (a normal clone) regenerate the weights with --t5-vocab 256384.
# ---------------------------------------------------------------------------------------
set -euo pipefail

if [[ $# -lt 3 || $# -gt 4 ]]; then
  sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
SD_CLI=$1
DITGEN=$2
W=$3
ROUNDS=${4:-1}
FRAMES=${FRAMES:-17}
HEIGHT=${HEIGHT:-256}
WIDTH=${WIDTH:-448}
STEPS=${STEPS:-2}
CFG=${CFG:-5}
THREADS=${THREADS:-2}
SEED=${SEED:-0}
SDCPP_EXTRA=${SDCPP_EXTRA:-}
[[ ${SDCPP_FA:-1} == 0 ]] || SDCPP_EXTRA="--diffusion-fa $SDCPP_EXTRA"
DITGEN_EXTRA=${DITGEN_EXTRA:-}
OUT=${OUT:-$(mktemp -d /tmp/wan_side_by_side.XXXXXX)}
mkdir -p "$OUT"

for f in config.json diffusion_pytorch_model.safetensors context.safetensors \
         sdcpp/umt5_random_tiny.safetensors sdcpp/taew2_1_random.safetensors; do
  [[ -f $W/$f ]] || { echo "missing $W/$f (run tools/wan/make_random_checkpoint.py --out $W)" >&2; exit 1; }
done
for b in "$SD_CLI" "$DITGEN"; do
  [[ -x $b ]] || { echo "not an executable: $b" >&2; exit 1; }
done
[[ -x /usr/bin/time ]] || { echo "needs /usr/bin/time (GNU time, apt-get install time)" >&2; exit 1; }

# "Maximum resident set size (kbytes): N" -> MB
rss_mb() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$1"; }
wall_s() {  # "Elapsed (wall clock) time (h:mm:ss or m:ss): 1:02.34" -> seconds
  awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, a, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + a[i]; printf "%.1f", s}' "$1"
}
# the number X of the last "<phrase>X s" / "<phrase>Xs" in a log
logged_s() { grep -a -o "$2[0-9.]*" "$1" | tail -n 1 | sed "s/^$2//"; }
json_num() { sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\([-0-9.eE+]*\).*/\1/p" "$1" | head -n 1; }

# Peak RSS of a process up to the moment its log says "sampling completed": the last VmHWM
# read (every 0.5 s) while the log still lacks that line. sd.cpp's TAE/VAE decode allocates
# a compute buffer larger than the DiT's after sampling, so the whole-process peak is not
# the sampler's.
hwm_until_sampled() {  # TIME_PID LOG -> prints MB
  local tpid=$1 log=$2 pid="" kb=0 v
  while kill -0 "$tpid" 2>/dev/null; do
    [[ -n $pid ]] || pid=$(pgrep -P "$tpid" | head -n 1 || true)
    if [[ -n $pid ]]; then
      v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
      grep -a -q "sampling completed" "$log" 2>/dev/null && break
      [[ -n $v ]] && kb=$v
    fi
    sleep 0.5
  done
  awk -v k="$kb" 'BEGIN {printf "%.0f", k / 1024}'
}

run_sdcpp() {
  local r=$1 log="$OUT/sdcpp.$1.log" tv="$OUT/sdcpp.$1.time"
  : >"$log"
  # shellcheck disable=SC2086
  /usr/bin/time -v -o "$tv" "$SD_CLI" -M vid_gen \
    --diffusion-model "$W/diffusion_pytorch_model.safetensors" \
    --t5xxl "$W/sdcpp/umt5_random_tiny.safetensors" \
    --tae "$W/sdcpp/taew2_1_random.safetensors" \
    -p "a lovely cat walking on the grass" -n "blurry, static" \
    --video-frames "$FRAMES" -H "$HEIGHT" -W "$WIDTH" --steps "$STEPS" --cfg-scale "$CFG" \
    --sampling-method euler --flow-shift 5 --seed "$SEED" -t "$THREADS" --eager-load \
    -o "$OUT/sdcpp.$r.avi" -v $SDCPP_EXTRA >"$log" 2>&1 &
  local tpid=$! hwm
  hwm=$(hwm_until_sampled "$tpid" "$log")
  wait "$tpid" || { echo "sd.cpp failed, see $log" >&2; tail -n 20 "$log" >&2; exit 1; }
  local samp total cond dec steps
  samp=$(logged_s "$log" "sampling completed, taking ")
  # the progress bar's per-step times ("1/2 - 117.22s/it"), comma-separated
  steps=$(tr '\r' '\n' <"$log" | grep -a -o "[0-9]*/$STEPS - [0-9.]*s/it" | sed 's/.* - //; s/s\/it//' | paste -sd, -)
  total=$(logged_s "$log" "generate_video completed in ")
  cond=$(logged_s "$log" "get_learned_condition completed, taking ")
  dec=$(logged_s "$log" "decode_first_stage completed, taking ")
  printf "%-7s %5s %10s %10s %10s %10s %8s %10s\n" sd.cpp "$r" \
    "$(awk -v s="$samp" -v n="$STEPS" 'BEGIN {printf "%.2f", s / n}')" "${samp:-?}" \
    "$(wall_s "$tv")" "$(rss_mb "$tv")" "$hwm" "steps ${steps:-?} s; cond ${cond:-?}s, decode ${dec:-?}s, generate_video ${total:-?}s"
}

run_ditgen() {
  local r=$1 log="$OUT/ditgen.$1.log" tv="$OUT/ditgen.$1.time" js="$OUT/ditgen.$1.json"
  rm -f "$OUT/ditgen.$r.safetensors" "$js"
  # shellcheck disable=SC2086
  /usr/bin/time -v -o "$tv" "$DITGEN" generate --model "$W" --context "$W/context.safetensors" \
    --frames "$FRAMES" --height "$HEIGHT" --width "$WIDTH" --steps "$STEPS" --cfg "$CFG" --seed "$SEED" \
    --threads "$THREADS" --latents-out "$OUT/ditgen.$r.safetensors" --json "$js" $DITGEN_EXTRA \
    >"$log" 2>&1 || { echo "ditgen failed, see $log" >&2; tail -n 20 "$log" >&2; exit 1; }
  local sps secs
  sps=$(json_num "$js" seconds_per_step)
  secs=$(json_num "$js" seconds)
  printf "%-7s %5s %10s %10s %10s %10s %8s %10s\n" ditgen "$r" \
    "$(awk -v s="$sps" 'BEGIN {printf "%.2f", s}')" "${secs:-?}" "$(wall_s "$tv")" "$(rss_mb "$tv")" \
    "$(awk -v m="$(json_num "$js" peak_rss_mb)" 'BEGIN {printf "%.0f", m}')" ""
}

echo "Wan2.1-T2V-1.3B (random bf16 weights, $W): ${FRAMES} frames ${HEIGHT}x${WIDTH}, $STEPS steps, cfg $CFG, $THREADS threads"
echo "sd.cpp: $SD_CLI $SDCPP_EXTRA"
echo "ditgen: $DITGEN $DITGEN_EXTRA"
echo "logs:   $OUT"
printf "%-7s %5s %10s %10s %10s %10s %8s %10s\n" engine round "s/step" "sampling" "wall s" "RSS MB" "samp MB" "other phases"
for ((r = 1; r <= ROUNDS; r++)); do
  run_sdcpp "$r"
  run_ditgen "$r"
done
