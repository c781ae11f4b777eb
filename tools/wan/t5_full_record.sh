#!/bin/sh
# The full-width umT5 record (docs/wan-t5-reference.md): on a machine with a GPU, PyTorch and a
# C++ compiler, builds tools/wan/t5_parity with g++ alone, makes the released-width encoder's
# goldens with the official t5.py (random bf16-valued weights, 20 tokens), and runs the C++
# encoder against them in float32 and bf16. Logs and the goldens (8 MB) go to OUT; the 11.4 GB
# weights stay in WORK.
#
#   tools/wan/t5_full_record.sh WAN_SRC INCLUDES OUT [WORK]
#
# WAN_SRC: the official wan/ folder (commit 9737cba); INCLUDES: a folder with eigen3/ and
# nlohmann/ (the headers t5_parity needs); WORK defaults to /tmp/t5_record.
set -eu
wan=$1 inc=$2 out=$3 work=${4:-/tmp/t5_record}
mkdir -p "$out" "$work"
EIGEN_INC="$inc/eigen3" JSON_INC="$inc" tools/wan/t5_parity_standalone.sh "$work/bt" > "$out/build.log" 2>&1 &
build=$!
python3 tools/wan/make_t5_goldens.py --wan-src "$wan" --out "$work/gold" --preset umt5-xxl \
    --weights-out "$work/umt5_xxl_random.safetensors" > "$out/goldens.log" 2>&1
wait $build
cp "$work/gold/umt5_xxl_goldens.safetensors" "$work/gold/umt5_xxl_config.json" "$out/"
lscpu | grep -E "Model name|Flags" | sed 's/Flags:.*avx512_bf16.*/Flags: ... avx512_bf16 .../' > "$out/cpu.txt"
for dt in float32 bf16; do
  "$work/bt/t5_parity" "$work/umt5_xxl_random.safetensors" "$out/umt5_xxl_goldens.safetensors" \
      --dtype "$dt" --repeat 2 > "$out/parity_$dt.log" 2>&1 || echo "t5_parity --dtype $dt failed: $?" >> "$out/parity_$dt.log"
done
ls -la "$out"
