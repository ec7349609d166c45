#!/bin/sh
# Install lava-nc/lava-dl into the Python that runs snnx (idempotent). Same as `snnx install lava`,
# usable before the snnx CLI exists on PATH: scripts/install-lava.sh [PYTHON] [--force]
set -eu
PYTHON=python
# An option first (`install-lava.sh --force`) is an argument for the installer, not the interpreter.
case "${1:-}" in
    "" | -*) ;;
    *) PYTHON=$1; shift ;;
esac
exec "$PYTHON" -m snnx.plugins.loihi.compat "$@"
