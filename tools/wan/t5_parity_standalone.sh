#!/bin/sh
# Builds tools/wan/t5_parity with g++ alone, without CMake or the project's other libraries
# (HDF5, OpenCV, ...): for the machine where the full-width goldens are made, which may have a
# compiler but not the project's dependencies (docs/wan-t5-reference.md). Needs the Eigen 3 and
# nlohmann/json headers: EIGEN_INC (default /usr/include/eigen3) and JSON_INC (default
# /usr/include, the folder holding nlohmann/).
#
#   tools/wan/t5_parity_standalone.sh [OUT_DIR]   # -> OUT_DIR/t5_parity (default build-t5)
set -eu
out=${1:-build-t5}
eigen=${EIGEN_INC:-/usr/include/eigen3}
json=${JSON_INC:-/usr/include}
mkdir -p "$out"
flags="-std=c++17 -O3 -march=native -fopenmp -DNDEBUG -I. -I$eigen -I$json -Wno-deprecated-declarations"
bf16="-mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512bf16 -mfma"
objs=""
for src in core/tensor.cpp dit/gemm.cpp dit/gemm_bf16.cpp dit/gemm_bf16_ref.cpp dit/ops.cpp io/safetensors.cpp \
           io/atomic_file.cpp cond/umt5.cpp cond/umt5_attention.cpp cond/umt5_bucket.cpp cond/umt5_linear.cpp \
           tools/wan/t5_parity.cpp; do
  obj="$out/$(echo "$src" | tr / _).o"
  extra=""
  [ "$src" = dit/gemm_bf16.cpp ] && extra="$bf16"
  g++ $flags $extra -c "$src" -o "$obj" &
  objs="$objs $obj"
done
wait
g++ -fopenmp $objs -o "$out/t5_parity" -ldl
echo "built $out/t5_parity"
