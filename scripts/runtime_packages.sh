#!/usr/bin/env bash
# The Debian packages that hold the shared libraries BINARY... load (ldd),
# one per line: the runtime image installs exactly these.
set -euo pipefail
for bin in "$@"; do
  ldd "$bin" | awk '/=> \// {print $3}'
done | sort -u | while read -r lib; do
  real=$(readlink -f "$lib")
  # usrmerge: /lib is /usr/lib; dpkg knows one of the two spellings.
  dpkg -S "$lib" 2>/dev/null || dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null \
    || { echo "runtime_packages: no package owns $lib" >&2; exit 1; }
done | cut -d: -f1 | sort -u
