#!/usr/bin/env bash
# Installs the Debian packages npystream needs to build, test and demo.
# A fast no-op when all of them are present (checked with dpkg-query, no network).
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config ccache clang
  # gRPC / Protobuf (C++ and code generators)
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libabsl-dev
  # LibTorch (CPU build) for models and tensors
  libtorch-dev
  # admin HTTP port, metrics, JSON, TLS
  libboost-dev libboost-system-dev prometheus-cpp-dev nlohmann-json3-dev libssl-dev openssl
  # C++ tests
  libgtest-dev libgmock-dev
  # Python client, tests, demo and benchmarks (for /usr/bin/python3)
  python3 python3-dev python3-grpcio python3-numpy python3-protobuf python3-pytest python3-torch
  python3-matplotlib python3-sklearn python3-websocket
  # the dashboard's browser test (driven by playwright-core from npm)
  chromium
  # benchmarks and HTTP checks
  iperf3 curl procps
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$p")
done

# Node.js with npm: the machine's own when it has one (a nodesource build
# carries npm inside), Debian's otherwise.
command -v npm > /dev/null || missing+=(nodejs npm)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "deps: installing ${#missing[@]} Debian packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
