#!/usr/bin/env bash
# Run ON a GPU machine of the `device` tool (see scripts/gpu_bundle.sh):
# unpacks the carried Debian packages into a prefix, builds npystream against
# the machine's CUDA-enabled PyTorch, runs the GPU tests and the GPU bench
# cases, and leaves logs and results in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/npystream-gpu}
mkdir -p "$OUT"
P=${NPDEPS:-/opt/npdeps}
ARCH=x86_64-linux-gnu
for f in .gpu-debs/*.deb; do dpkg -x "$f" "$P"; done
export PATH="$P/usr/bin:$PATH"
export LD_LIBRARY_PATH="$P/usr/lib/$ARCH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
PY=$(command -v python3)
TORCH=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')
{ nvidia-smi -L; "$PY" -c 'import torch; print("torch", torch.__version__, torch.cuda.is_available())'; } \
  2>&1 | tee "$OUT/machine.txt"
cmake -S . -B build-gpu -G Ninja -DNPYSTREAM_CUDA=ON -DNPYSTREAM_WERROR=OFF -DNPYSTREAM_PYTHON="$PY" \
  -DCMAKE_PREFIX_PATH="$P/usr;$P/usr/lib/$ARCH/cmake;$TORCH" -DOPENSSL_ROOT_DIR="$P/usr" \
  -DProtobuf_PROTOC_EXECUTABLE="$P/usr/bin/protoc" -DProtobuf_INCLUDE_DIR="$P/usr/include" \
  -DProtobuf_LIBRARY="$P/usr/lib/$ARCH/libprotobuf.so" \
  -DProtobuf_PROTOC_LIBRARY="$P/usr/lib/$ARCH/libprotoc.so" > "$OUT/configure.log" 2>&1 \
  || { tail -40 "$OUT/configure.log"; exit 1; }
cmake --build build-gpu -j "$(nproc)" > "$OUT/build.log" 2>&1 || { grep -m20 -B2 -A8 'error' "$OUT/build.log"; exit 1; }
export PYTHONPATH="$PWD/client/python" NPYSTREAM_BUILD="$PWD/build-gpu" PYTHONUNBUFFERED=1
rc=0
for t in cuda_copy_device_test device_transfer_test tensors_service_test; do
  build-gpu/bin/$t 2>&1 | tail -3 | tee -a "$OUT/tests.log"; [ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
done
"$PY" -m pytest -q -rs -p no:cacheprovider tests/test_gpu.py 2>&1 | tee -a "$OUT/tests.log" | tail -15
[ "${PIPESTATUS[0]}" -eq 0 ] || rc=1
"$PY" bench/run.py --build build-gpu --only-gpu 2>&1 | tee "$OUT/bench.log"
cp bench/results/*-gpu*.json "$OUT/" 2>/dev/null
exit $rc
