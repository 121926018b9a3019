# Sourced by the image scripts and tests: podman as root on these machines
# (no Docker engine): no default ulimits, runc, cgroupfs.
CONTAINERS_CONF=${CONTAINERS_CONF:-$(mktemp /tmp/npystream-containers.XXXXXX.conf)}
[ -s "$CONTAINERS_CONF" ] || printf '[containers]\ndefault_ulimits = []\n' > "$CONTAINERS_CONF"
export CONTAINERS_CONF
PODMAN="podman --runtime runc --cgroup-manager=cgroupfs"
