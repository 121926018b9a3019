#!/usr/bin/env bash
# Run HERE (Debian 12, network): downloads the Debian packages a GPU machine
# of the `device` tool lacks (it has CUDA, PyTorch, CMake and ninja, and no
# registry) into .gpu-debs/ (in .gitignore). Then, with the tool:
#   run(command="bash scripts/gpu_check.sh", carry=[".gpu-debs"])
set -euo pipefail
cd "$(dirname "$0")/.."
WANT=(libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libabsl-dev libboost-dev
      libboost-system-dev prometheus-cpp-dev nlohmann-json3-dev libgtest-dev libgmock-dev
      libssl-dev)
# What any such machine has (C runtime, compilers' own libraries): not carried.
SKIP='^(libc6|libc6-dev|libc-dev-bin|linux-libc-dev|libcrypt1|libcrypt-dev|libstdc\+\+6|libstdc\+\+-12-dev|libgcc-s1|libgcc-12-dev|gcc-12-base|libasan8|libtsan2|liblsan0|libubsan1|libgomp1|libitm1|libquadmath0|libatomic1|libcc1-0|libnsl2|libnsl-dev|libtirpc3|libtirpc-dev|libtirpc-common|debconf|perl-base|dpkg|tar|zlib1g)$'
mapfile -t PKGS < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances "${WANT[@]}" | grep '^[a-z]' | sort -u | grep -Ev "$SKIP")
mkdir -p .gpu-debs
(cd .gpu-debs && apt-get download "${PKGS[@]}" >/dev/null)
echo "gpu_bundle: ${#PKGS[@]} packages, $(du -sh .gpu-debs | cut -f1) in .gpu-debs/"
