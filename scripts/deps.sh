#!/usr/bin/env bash
# Installs the Debian packages npystream needs.
#   scripts/deps.sh          everything: build, test, demo, bench, images
#   scripts/deps.sh build    only what `make build` needs (the image's build stage)
# A fast no-op when all of them are present (checked with dpkg-query, no network).
set -euo pipefail

BUILD_PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config ccache
  # cpack -G DEB (dpkg-shlibdeps needs file(1))
  file
  # gRPC / Protobuf (C++ and code generators)
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libabsl-dev
  # zlib: gzip .npy downloads on the admin port
  zlib1g-dev
  # LibTorch (CPU build) for models and tensors. Debian's LibTorch calls
  # whichever libblas.so.3 the alternatives pick, and without this it is the
  # reference BLAS: Linear layers ~2-10x slower (README "Inference"). Serial,
  # not the OpenMP build: parallelism comes from model instances, and the
  # OpenMP build collapses when instances x threads exceed the cores.
  libtorch-dev libopenblas0-serial
  # admin HTTP port, metrics, JSON, TLS
  libboost-dev libboost-system-dev prometheus-cpp-dev nlohmann-json3-dev libssl-dev
  # C++ tests (found by CMake even when only the daemon is built)
  libgtest-dev libgmock-dev
  # the Python client's stubs and native module; the demo model is trained at
  # build time by Debian's torch on sklearn's digits
  python3 python3-dev python3-grpcio python3-numpy python3-protobuf python3-torch python3-sklearn
  # the real-size model (torchvision's ResNet-18, random weights) build/models/resnet18
  python3-torchvision
)
TEST_PACKAGES=(
  clang openssl
  python3-pytest python3-matplotlib python3-websocket
  # the dashboard's browser test (driven by playwright-core from npm)
  chromium
  # benchmarks and HTTP checks
  iperf3 curl procps
  # the slow-link bench row (ip netns, tc tbf)
  iproute2
  # the test that runs the daemon on a threaded OpenBLAS, as a user's system
  # may pick one (the serial one stays selected: pin_serial_blas below)
  libopenblas0-pthread
  # the container image (make image, image-test): podman as root, base from mmdebstrap
  podman buildah runc uidmap mmdebstrap
  # typed and documented APIs: mypy --strict on the Python client, and
  # make docs (Sphinx autodoc, Doxygen for the C++ client header)
  mypy python3-sphinx doxygen
)

PACKAGES=("${BUILD_PACKAGES[@]}")
if [ "${1:-all}" != "build" ]; then PACKAGES+=("${TEST_PACKAGES[@]}"); fi

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$p")
done

# Node.js with npm: the machine's own when it has one (a nodesource build
# carries npm inside), Debian's otherwise.
if [ "${1:-all}" != "build" ]; then command -v npm > /dev/null || missing+=(nodejs npm); fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# apt may also bring in the pthreads OpenBLAS (the alternatives' favourite),
# so the serial one is chosen by name (the BLAS, LAPACK and libopenblas.so.0
# itself, which the other two load): idempotent, and kept across installs.
pin_serial_blas() {
  local arch dir
  arch=$(gcc -print-multiarch)
  dir="/usr/lib/$arch/openblas-serial"
  [ -e "$dir/libblas.so.3" ] || return 0
  for lib in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
    local name="$lib-$arch"
    if [ "$(readlink -f "/etc/alternatives/$name")" != "$(readlink -f "$dir/$lib")" ]; then
      $SUDO update-alternatives --quiet --set "$name" "$dir/$lib"
    fi
  done
}

if [ ${#missing[@]} -eq 0 ]; then
  pin_serial_blas
  exit 0
fi

echo "deps: installing ${#missing[@]} Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
pin_serial_blas
