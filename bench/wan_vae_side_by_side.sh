#!/usr/bin/env bash
# ditgen's Wan2.1 VAE decode against stable-diffusion.cpp's (sd.cpp) on the same VAE file,
# latent size and threads (issue 19; goals: ditgen at least 2x less time, 4x less memory).
#
#   bench/wan_vae_side_by_side.sh SD_CLI DITGEN VAE WEIGHTS_DIR [ROUNDS]
#
# SD_CLI: sd.cpp's sd-cli; DITGEN: build/apps/ditgen; VAE: a Wan2.1 VAE .safetensors in the
# release's original tensor names (decoder.conv1.weight, encoder.*, conv1.*, conv2.*; the
# layout of Comfy-Org's wan_2.1_vae.safetensors too, which sd.cpp's docs/wan.md points to;
# sd.cpp reads it as is); WEIGHTS_DIR: the output of
#   python3 tools/wan/make_random_checkpoint.py --out DIR
# (diffusion_pytorch_model.safetensors and sdcpp/umt5_random_tiny.safetensors are used; the
# DiT must keep the release's 30 blocks: sd.cpp aborts with "invalid num_layers" otherwise).
# Each round runs sd.cpp, then ditgen. Both get FRAMES frames at HEIGHT x WIDTH (default 17
# at 256 x 448: latent [16, 5, 32, 56]) and THREADS threads (default 2). Environment
# overrides: FRAMES HEIGHT WIDTH THREADS SEED, PYTHON (default python3; only its standard
# library is used, to write the latents), SDCPP_EXTRA (more sd-cli flags), DITGEN_EXTRA, OUT
# (work folder, default a fresh mktemp -d; logs, outputs stay).
#
# sd.cpp has no decode-only mode (its -M modes: img_gen, adetailer, vid_gen, convert,
# upscale, metadata), so it runs its Wan text-to-video with the VAE: --eager-load (all weights,
# the VAE's included, are read and converted before sampling: it holds the float32 VAE's
# convolution weights as f16, 242 MB), its umT5 conditioner ("get_learned_condition
# completed, taking X s"), 1 euler step at --cfg-scale 1 ("sampling completed, taking X s"),
# then the VAE decode of the sampled latent [16, T, H/8, W/8] in one ggml graph whose compute
# buffer it logs ("wan_vae compute buffer size") ("decode_first_stage completed, taking X s";
# the figure used here), then it writes an MJPEG .avi. Its memory is polled from
# /proc/PID/status every 0.2 s: "start MB" is VmRSS when the log says "sampling completed"
# (resident as the decode starts: DiT 2.7 GB, umT5, VAE weights), "dec MB" the peak of the
# decode phase (VmHWM read when the log says "decode_first_stage completed", where it passed
# the peak before the decode, else the largest VmRSS polled during the decode), "net MB" =
# dec MB - start MB + its logged VAE weights (the decode's own cost without the DiT and umT5
# that sd.cpp keeps resident; comparable to ditgen's whole process), "RSS MB" the whole
# process's peak (/usr/bin/time -v); "CPU" is the process's CPU time over the decode phase
# (from /proc/PID/stat) / decode seconds: 2 threads on an idle machine give about 200%.
# ditgen runs `ditgen vae --decode` on N(0,1) latents of the same shape (tensor `latents`,
# float32, written by PYTHON; the values do not change the work): "decode s" is its JSON
# decode_seconds, "dec MB" and "net MB" its JSON peak_rss_mb (the whole process: weights and
# decode), "RSS MB" and "CPU" /usr/bin/time -v (whole process). The ratios are sd.cpp / ditgen
# from the last round. The load average is printed before and after: on a shared machine
# compare the CPU columns before trusting a time ratio.
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
# Without the webp/webm submodules the CLI writes MJPEG .avi. The copy built for the recorded
# figures came from a repository snapshot that lacked the large generated tokenizer headers
# src/tokenizers/vocab/{t5,umt5,gemma*,gpt_oss*,mistral*,qwen_merges}.hpp; they were replaced
# by stubs and the umT5 one by a 192-piece synthetic unigram vocabulary (the random umT5 has
# 256 embedding rows). Tokenization happens before sampling and does not touch the VAE.
# No sd.cpp source was changed otherwise and the VAE file was read without renaming.
# ---------------------------------------------------------------------------------------
set -euo pipefail

if [[ $# -lt 4 || $# -gt 5 ]]; then
  sed -n '2,41p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
SD_CLI=$1
DITGEN=$2
VAE=$3
W=$4
ROUNDS=${5:-1}
FRAMES=${FRAMES:-17}
HEIGHT=${HEIGHT:-256}
WIDTH=${WIDTH:-448}
THREADS=${THREADS:-2}
SEED=${SEED:-0}
PYTHON=${PYTHON:-python3}
SDCPP_EXTRA=${SDCPP_EXTRA:-}
DITGEN_EXTRA=${DITGEN_EXTRA:-}
OUT=${OUT:-$(mktemp -d /tmp/wan_vae_side_by_side.XXXXXX)}
mkdir -p "$OUT"

[[ -f $VAE ]] || { echo "missing VAE file $VAE" >&2; exit 1; }
for f in diffusion_pytorch_model.safetensors sdcpp/umt5_random_tiny.safetensors; do
  [[ -f $W/$f ]] || { echo "missing $W/$f (run tools/wan/make_random_checkpoint.py --out $W)" >&2; exit 1; }
done
for b in "$SD_CLI" "$DITGEN"; do
  [[ -x $b ]] || { echo "not an executable: $b" >&2; exit 1; }
done
[[ -x /usr/bin/time ]] || { echo "needs /usr/bin/time (GNU time, apt-get install time)" >&2; exit 1; }
(( (FRAMES - 1) % 4 == 0 && HEIGHT % 16 == 0 && WIDTH % 16 == 0 )) ||
  { echo "FRAMES must be 1 + 4k, HEIGHT and WIDTH multiples of 16" >&2; exit 1; }
LT=$(( (FRAMES - 1) / 4 + 1 )); LH=$(( HEIGHT / 8 )); LW=$(( WIDTH / 8 ))

# "Maximum resident set size (kbytes): N" -> MB
rss_mb() { awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$1"; }
wall_s() {  # "Elapsed (wall clock) time (h:mm:ss or m:ss): 1:02.34" -> seconds
  awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, a, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + a[i]; printf "%.1f", s}' "$1"
}
# the number X of the last "<phrase>X s" / "<phrase>Xs" in a log
logged_s() { grep -a -o "$2[0-9.]*" "$1" | tail -n 1 | sed "s/^$2//"; }
json_num() { sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\([-0-9.eE+]*\).*/\1/p" "$1" | head -n 1; }
json_str() { sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" "$1" | head -n 1; }
kb_mb() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }

# Latents for ditgen: safetensors with one float32 tensor `latents` [16, LT, LH, LW], N(0,1).
LAT="$OUT/latents_${LT}x${LH}x${LW}.safetensors"
"$PYTHON" - "$LAT" "$LT" "$LH" "$LW" "$SEED" <<'EOF'
import array, json, random, struct, sys
path, t, h, w, seed = sys.argv[1], *map(int, sys.argv[2:])
rng = random.Random(seed)
n = 16 * t * h * w
data = array.array("f", (rng.gauss(0.0, 1.0) for _ in range(n)))
if sys.byteorder != "little":
    data.byteswap()
hdr = json.dumps({"latents": {"dtype": "F32", "shape": [16, t, h, w], "data_offsets": [0, 4 * n]}}).encode()
hdr += b" " * (-len(hdr) % 8)
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(hdr)) + hdr + data.tobytes())
EOF

# Polls sd.cpp's process (the child of /usr/bin/time) every 0.2 s; prints
# "PRE_KB START_KB DEC_KB CPU_TICKS": VmHWM until the log says "sampling completed", VmRSS
# at that moment, the peak of the decode phase (see the header), and the process's CPU time
# (utime + stime, clock ticks) between "sampling completed" and "decode_first_stage completed".
poll_sdcpp() {  # TIME_PID LOG
  local tpid=$1 log=$2 pid="" phase=0 hwm rss cpu pre=0 start=0 decmax=0 dechwm=0 cpu0=0 cpu1=0
  while kill -0 "$tpid" 2>/dev/null; do
    [[ -n $pid ]] || pid=$(pgrep -P "$tpid" | head -n 1 || true)
    if [[ -n $pid ]]; then
      read -r hwm rss < <(awk '/^VmHWM:/ {h = $2} /^VmRSS:/ {r = $2} END {print h + 0, r + 0}' \
        "/proc/$pid/status" 2>/dev/null || echo "0 0")
      (( hwm > 0 )) || break
      # fields 14, 15 of /proc/PID/stat, counted after the ") " that ends the command name
      cpu=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0)
      if (( phase == 0 )); then
        if grep -a -q "sampling completed" "$log" 2>/dev/null; then
          phase=1; start=$rss; decmax=$rss; cpu0=$cpu
        else
          pre=$hwm
        fi
      fi
      if (( phase == 1 )); then
        (( rss > decmax )) && decmax=$rss
        dechwm=$hwm; cpu1=$cpu
        grep -a -q "decode_first_stage completed" "$log" 2>/dev/null && break
      fi
    fi
    sleep 0.2
  done
  local dec=$decmax
  (( dechwm > pre && dechwm > dec )) && dec=$dechwm
  echo "$pre $start $dec $(( cpu1 - cpu0 ))"
}
TICK=$(getconf CLK_TCK)

SD_S="" SD_MB="" SD_NET="" DG_S="" DG_MB=""
row() { printf "%-7s %5s %9s %6s %9s %9s %9s %9s %9s  %s\n" "$@"; }

run_sdcpp() {
  local r=$1 log="$OUT/sdcpp.$1.log" tv="$OUT/sdcpp.$1.time"
  : >"$log"
  # shellcheck disable=SC2086
  /usr/bin/time -v -o "$tv" "$SD_CLI" -M vid_gen \
    --diffusion-model "$W/diffusion_pytorch_model.safetensors" \
    --t5xxl "$W/sdcpp/umt5_random_tiny.safetensors" \
    --vae "$VAE" \
    -p "a lovely cat walking on the grass" \
    --video-frames "$FRAMES" -H "$HEIGHT" -W "$WIDTH" --steps 1 --cfg-scale 1 \
    --sampling-method euler --flow-shift 5 --seed "$SEED" -t "$THREADS" --eager-load \
    -o "$OUT/sdcpp.$r.avi" -v $SDCPP_EXTRA >"$log" 2>&1 &
  local tpid=$! mem
  mem=$(poll_sdcpp "$tpid" "$log")
  wait "$tpid" || { echo "sd.cpp failed, see $log" >&2; tail -n 20 "$log" >&2; exit 1; }
  local pre start dec ticks dsec samp cond vaemb net cpu
  read -r pre start dec ticks <<<"$mem"
  dsec=$(logged_s "$log" "decode_first_stage completed, taking ")
  # "total params memory size = ... vae 242.10MB(RAM)": its VAE weights as held in memory
  vaemb=$(grep -a -o "vae [0-9.]*MB" "$log" | tail -n 1 | sed 's/vae //; s/MB//')
  samp=$(logged_s "$log" "sampling completed, taking ")
  cond=$(logged_s "$log" "get_learned_condition completed, taking ")
  [[ -n $dsec ]] || { echo "sd.cpp logged no decode_first_stage time, see $log" >&2; exit 1; }
  net=$(awk -v d="$dec" -v s="$start" -v v="${vaemb:-0}" 'BEGIN {printf "%.0f", (d - s) / 1024 + v}')
  cpu=$(awk -v t="$ticks" -v k="$TICK" -v s="$dsec" 'BEGIN {printf "%.0f%%", 100 * t / k / s}')
  SD_S=$dsec SD_MB=$(kb_mb "$dec") SD_NET=$net
  row sd.cpp "$r" "$dsec" "$cpu" "$(kb_mb "$dec")" "$net" "$(kb_mb "$start")" \
    "$(rss_mb "$tv")" "$(wall_s "$tv")" "pre-decode peak $(kb_mb "$pre") MB; VAE weights ${vaemb:-?} MB; cond ${cond:-?}s, sampling ${samp:-?}s"
}

run_ditgen() {
  local r=$1 log="$OUT/ditgen.$1.log" tv="$OUT/ditgen.$1.time" js="$OUT/ditgen.$1.json"
  rm -f "$OUT/ditgen.$r.mkv" "$js"
  # shellcheck disable=SC2086
  /usr/bin/time -v -o "$tv" "$DITGEN" vae --model "$VAE" --decode "$LAT" \
    --out "$OUT/ditgen.$r.mkv" --json "$js" --threads "$THREADS" $DITGEN_EXTRA \
    >"$log" 2>&1 || { echo "ditgen failed, see $log" >&2; tail -n 20 "$log" >&2; exit 1; }
  local dsec mb
  dsec=$(json_num "$js" decode_seconds)
  mb=$(awk -v m="$(json_num "$js" peak_rss_mb)" 'BEGIN {printf "%.0f", m}')
  DG_S=$dsec DG_MB=$mb
  row ditgen "$r" "$(awk -v s="$dsec" 'BEGIN {printf "%.2f", s}')" \
    "$(awk -F': ' '/Percent of CPU/ {print $2}' "$tv")" "$mb" "$mb" "" \
    "$(rss_mb "$tv")" "$(wall_s "$tv")" "weights $(awk -v m="$(json_num "$js" weights_mb)" 'BEGIN {printf "%.0f", m}') MB, $(json_str "$js" dtype)"
}

echo "Wan2.1 VAE decode ($VAE): ${FRAMES} frames ${HEIGHT}x${WIDTH} (latent [16, $LT, $LH, $LW]), $THREADS threads"
echo "sd.cpp: $SD_CLI (DiT, umT5 from $W) $SDCPP_EXTRA"
echo "ditgen: $DITGEN $DITGEN_EXTRA"
echo "logs:   $OUT"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) before the first run"
row engine round "decode s" "CPU" "dec MB" "net MB" "start MB" "RSS MB" "wall s" "notes"
for ((r = 1; r <= ROUNDS; r++)); do
  run_sdcpp "$r"
  run_ditgen "$r"
done
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) after the last run"
awk -v a="$SD_S" -v b="$DG_S" -v c="$SD_MB" -v d="$DG_MB" -v n="$SD_NET" \
  'BEGIN {printf "sd.cpp / ditgen: decode time %.2fx; decode-phase peak RSS %.2fx (net of sd.cpp'"'"'s DiT and umT5: %.2fx)\n", a / b, c / d, n / d}'
