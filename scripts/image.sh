#!/usr/bin/env bash
# make image: builds the npystream container image with podman (as root; no
# Docker engine needed). The debian:12 base is made here when missing
# (mmdebstrap --variant=minbase bookworm + podman import): no registry needed.
#   scripts/image.sh [TAG]        default npystream:dev
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-npystream:dev}
BASE=docker.io/library/debian:12
source scripts/podman_env.sh

if ! $PODMAN image exists "$BASE"; then
  echo "image: making $BASE with mmdebstrap (minbase bookworm)"
  tar=$(mktemp /tmp/npystream-bookworm.XXXXXX.tar)
  mmdebstrap --quiet --variant=minbase bookworm "$tar"
  $PODMAN import --quiet "$tar" "$BASE" > /dev/null
  rm -f "$tar"
fi
start=$(date +%s)
# The context: a snapshot of the sources git knows (tracked and untracked,
# not ignored), so build trees never travel and edits during a build do not
# leak into it.
context=$(mktemp -d /tmp/npystream-image-context.XXXXXX)
trap 'rm -rf "$context"' EXIT
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$context"
# --layers: each step is cached; only what changed is rebuilt (deps layer,
# then the ccache mount makes recompiling cheap).
# Docker format: OCI images drop HEALTHCHECK.
$PODMAN build --layers --format docker --network=host -f "$context/Dockerfile" -t "$TAG" \
  --build-arg VERSION="$(git describe --always --dirty 2>/dev/null || echo dev)" \
  --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  --build-arg LIBTORCH_URL= "$context"
# The build stage as its own image, only to report its size beside the runtime's.
$PODMAN build --layers --format docker --network=host -f "$context/Dockerfile" --target build \
  --build-arg LIBTORCH_URL= -t "${TAG%%:*}-build:${TAG##*:}" "$context" > /dev/null
size() { $PODMAN image inspect --format '{{.Size}}' "$1"; }
rt=$(size "$TAG")
bs=$(size "${TAG%%:*}-build:${TAG##*:}")
echo "image: $TAG built in $(( $(date +%s) - start )) s; runtime $((rt / 1048576)) MiB," \
     "build stage $((bs / 1048576)) MiB ($(( 100 * rt / bs ))% of it)"
