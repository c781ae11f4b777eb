#!/usr/bin/env bash
# Installs the Debian 12 packages ditgen needs to build, test and benchmark (run as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config git ca-certificates \
  libeigen3-dev libopenblas-dev libhdf5-dev hdf5-tools \
  libopencv-dev libpng-dev ffmpeg \
  libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev \
  clang libclang-rt-14-dev libomp-14-dev \
  sentencepiece python3-sentencepiece python3-regex libdnnl-dev \
  python3-numpy python3-h5py python3-matplotlib python3-opencv >/dev/null
