# npystreamd on Debian 12, built from source with Debian's packages only.
#   docker build -t npystream .
#   docker run -p 50051:50051 -p 8080:8080 npystream --listen 0.0.0.0:50051 --http-listen 0.0.0.0:8080
FROM debian:12 AS build
WORKDIR /src
COPY scripts/deps.sh scripts/deps.sh
RUN bash scripts/deps.sh
COPY . .
RUN make build BUILD=/build CMAKE_ARGS=-DNPYSTREAM_CUDA=OFF

FROM debian:12
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libtorch1.13 libprometheus-cpp-core1.0 libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/bin/npystreamd /build/bin/npystream /usr/local/bin/
COPY --from=build /build/models /models
EXPOSE 50051 8080
USER nobody
ENTRYPOINT ["/usr/local/bin/npystreamd", "--model-repository", "/models"]
