# npystreamd in a container, built from Debian 12 packages only.
#   make image        (podman; the debian:12 base is made locally by mmdebstrap)
#   podman run --network=host --read-only npystream:dev
#
# GPU variant (documented, NOT built on these machines: no CUDA base image and
# no CUDA LibTorch here):
#   podman build --build-arg BASE=docker.io/nvidia/cuda:12.4.1-runtime-ubuntu22.04 \
#                --build-arg LIBTORCH_URL=<libtorch-cxx11-abi-shared-with-deps-...+cu124.zip> .
# The build stage then compiles against that LibTorch with the CUDA transfer
# path on (NPYSTREAM_CUDA=ON), and the runtime stage copies LibTorch's own
# libraries instead of Debian's CPU-only libtorch1.13.
ARG BASE=docker.io/library/debian:12
ARG BUILD_BASE=docker.io/library/debian:12
ARG LIBTORCH_URL=

# ---- build stage: the same `make build` as on a developer's machine --------
FROM ${BUILD_BASE} AS build
ARG LIBTORCH_URL
WORKDIR /src
COPY scripts/deps.sh scripts/deps.sh
RUN bash scripts/deps.sh build && rm -rf /var/lib/apt/lists/*
# GPU branch: a CUDA-enabled LibTorch unpacked to /opt/libtorch (and the CUDA
# toolkit, which the CUDA base image must carry) replaces Debian's libtorch.
RUN if [ -n "$LIBTORCH_URL" ]; then \
      apt-get update -qq && apt-get install -y -qq --no-install-recommends curl unzip ca-certificates \
      && curl -fsSL "$LIBTORCH_URL" -o /tmp/libtorch.zip && unzip -q /tmp/libtorch.zip -d /opt \
      && rm /tmp/libtorch.zip; \
    fi
# The demo model (trained by Debian's torch on sklearn's digits): its own
# layer, rebuilt only when its script changes.
COPY models/make_demo_model.py models/make_demo_model.py
RUN python3 models/make_demo_model.py /models-built
COPY . .
# ccache survives between image builds (a buildah cache mount), so a rebuild
# after a small change recompiles only what changed.
RUN --mount=type=cache,target=/root/.cache/ccache \
    if [ -n "$LIBTORCH_URL" ]; then \
      CUDA_ARGS="-DNPYSTREAM_CUDA=ON -DCMAKE_PREFIX_PATH=/opt/libtorch"; \
    else CUDA_ARGS="-DNPYSTREAM_CUDA=OFF"; fi; \
    make build DEPS=build BUILD=/build TARGETS="npystreamd npystream npystream_client" \
      CMAKE_ARGS="$CUDA_ARGS -DCMAKE_INSTALL_PREFIX=/usr" \
    && (cd /build && cpack -G DEB > /dev/null) \
    && bash scripts/runtime_packages.sh /build/bin/npystreamd /build/bin/npystream \
       > /build/runtime-packages.txt \
    && if [ -n "$LIBTORCH_URL" ]; then sed -i '/^libtorch/d' /build/runtime-packages.txt; fi \
    && mkdir -p /stage/opt && if [ -n "$LIBTORCH_URL" ]; then cp -a /opt/libtorch /stage/opt/; fi

# ---- runtime stage: only the shared libraries the binaries load ------------
FROM ${BASE} AS runtime
ARG BASE
# The package list is derived from `ldd` in the build stage (scripts/runtime_packages.sh).
COPY --from=build /build/runtime-packages.txt /usr/share/npystream/runtime-packages.txt
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive xargs -a /usr/share/npystream/runtime-packages.txt \
       apt-get install -y -qq --no-install-recommends \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/*
COPY --from=build /stage/opt/ /opt/
COPY --from=build /build/bin/npystreamd /build/bin/npystream /usr/local/bin/
COPY --from=build /models-built /models
ENV LD_LIBRARY_PATH=/opt/libtorch/lib \
    NPYSTREAM_LISTEN=0.0.0.0:50051 \
    NPYSTREAM_HTTP_LISTEN=0.0.0.0:8080 \
    NPYSTREAM_MODEL_REPOSITORY=/models \
    NPYSTREAM_LOG_FORMAT=json
# Non-root, numeric (Kubernetes runAsNonRoot can check it); nothing is written
# outside /tmp and /dev/shm, so --read-only works.
USER 65532:65532
EXPOSE 50051 8080
# No curl in the image: bash's /dev/tcp asks /healthz on the admin port the
# environment names (kept in Docker-format images; Kubernetes uses its probes).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${NPYSTREAM_HTTP_LISTEN##*:} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="npystream" \
      org.opencontainers.image.description="npystreamd: PyTorch tensors resident on the server, streamed as NumPy .npy bytes over gRPC" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${BASE}"
ENTRYPOINT ["npystreamd"]
