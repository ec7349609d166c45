#!/bin/sh
# Install lava-nc/lava-dl into the Python that runs snnx (idempotent). Same as `snnx install lava`,
# usable before the snnx CLI exists on PATH: scripts/install-lava.sh [PYTHON] [--force]
set -eu
PYTHON="${1:-python}"
[ $# -gt 0 ] && shift
exec "$PYTHON" -m snnx.lava_compat "$@"
