#!/usr/bin/env bash
# The third-party plugin story, end to end, in a fresh virtual environment:
#   install snnx -> install the example plugin packages -> `snnx plugins` lists them, `snnx lower --to
#   sinabs` works, their own tests and the snnx conformance kit pass -> uninstall them -> snnx still
#   works and shows no trace of them.
#
# Usage: examples/check-example-plugins.sh [--isolated]
#
# By default the fresh venv sees the packages of a base environment beneath its own (like
# --system-site-packages, through a .pth file), so torch & co. are not downloaded again; snnx and the
# plugins are installed into the fresh venv itself, from this checkout, as a user would install them.
# The base is $PYTHON (default: .venv/bin/python of this checkout). --isolated skips the base and
# installs everything from the package index (several GB with torch: slow).
# SNNX_EDITABLE=1 installs snnx in editable mode instead of as a regular package.
set -euo pipefail
export COLUMNS="${COLUMNS:-120}"  # rich tables, readable in CI logs

REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
ISOLATED=0
[[ "${1:-}" == "--isolated" ]] && ISOLATED=1
WORK="$(mktemp -d "${TMPDIR:-/tmp}/snnx-plugin-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
# Run from outside the checkout, or `python -c` would import ./snnx instead of the installed package.
cd "$WORK"

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'check-example-plugins: FAILED: %s\n' "$*" >&2; exit 1; }
# pip names every base package it leaves alone ("outside environment"); that is expected noise here.
pipq() { "$V/python" -m pip --disable-pip-version-check "$@" 2>&1 | grep -v -e "outside environment" -e "^WARNING: Location 'file:" -e "No files were found to uninstall" -e "^Can't uninstall" || true; }

step "fresh virtual environment in $WORK/venv"
BASE_EXE="$("$PYTHON" -c 'import sys; print(getattr(sys, "_base_executable", sys.executable))')"
"$BASE_EXE" -m venv "$WORK/venv"
V="$WORK/venv/bin"
if [[ $ISOLATED == 0 ]]; then
    BASE_SITE="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    for dist in snnx-sinabs snnx-onnx-extra; do
        if "$PYTHON" -m pip show -q "$dist" >/dev/null 2>&1; then
            fail "the base environment ($PYTHON) has $dist installed, so its absence after uninstalling could not be checked; uninstall it there or use --isolated"
        fi
    done
    echo "$BASE_SITE" > "$("$V/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zz-snnx-check-base.pth"
    echo "base packages from $BASE_SITE"
fi

step "install snnx from $REPO"
if [[ "${SNNX_EDITABLE:-0}" == 1 ]]; then pipq install -q -e "$REPO"; else pipq install -q "$REPO"; fi
[[ "$("$V/python" -c 'import snnx, os; print(os.path.dirname(snnx.__file__))')" == "$WORK"/* || "${SNNX_EDITABLE:-0}" == 1 ]] \
    || fail "python in the fresh venv does not import the freshly installed snnx"
"$V/python" -c 'from snnx.conformance import case_names; assert case_names(), "no cases"' \
    || fail "the installed snnx ships no conformance cases: add \"conformance/cases/*\" to [tool.setuptools.package-data] in pyproject.toml"
"$V/snnx" plugins --json > "$WORK/before.json"
MODEL="$("$V/python" -c 'from snnx.conformance import CASES_DIR; print(CASES_DIR / "affine_lif.nir")')"

step "install the example plugins (sinabs itself with --no-deps: it pins nir<=1.0.4, see examples/snnx-sinabs/README.md)"
"$V/python" -c 'import sinabs' 2>/dev/null || pipq install -q --no-deps 'sinabs>=3.1'
pipq install -q "$REPO/examples/snnx-sinabs" "$REPO/examples/snnx-onnx-extra"

step "snnx plugins lists them"
"$V/snnx" plugins
"$V/snnx" plugins --json | "$V/python" -c '
import json, sys
plugins = {p["name"]: p for p in json.load(sys.stdin)}
for name, key, want in (("sinabs", "backends", ["sinabs"]), ("onnx-extra", "onnx_ops", ["LeakyRelu", "LeakyRelu"])):
    p = plugins.get(name)
    assert p is not None, f"plugin {name!r} not listed"
    assert p["error"] is None, p["error"]
    assert p[key] == want, (name, p[key])
    assert p["source"].startswith("entry point"), p["source"]
broken = [p["name"] for p in plugins.values() if p["error"]]
assert not broken, f"plugins with errors: {broken}"
'
SNNX_DISABLE_PLUGINS='*' "$V/snnx" plugins --json | grep -q '"sinabs"' && fail "SNNX_DISABLE_PLUGINS='*' did not disable the sinabs plugin"

step "snnx lower / check with the sinabs backend"
"$V/snnx" lower "$MODEL" --to sinabs -o "$WORK/model.pt"
"$V/snnx" check "$MODEL" --backends sinabs

step "the plugins' own tests"
(cd "$REPO/examples/snnx-sinabs" && "$V/python" -m pytest -q -p no:cacheprovider tests)
(cd "$REPO/examples/snnx-onnx-extra" && "$V/python" -m pytest -q -p no:cacheprovider tests)

step "the snnx conformance kit on the sinabs backend"
# -p snnx.testing: outside a project that loads the kit, pytest parses --snnx-backend before it would find
# the kit's own conftest, so the option would be unknown.
"$V/python" -m pytest -q -p no:cacheprovider -p snnx.testing --pyargs snnx.testing --snnx-backend sinabs

step "uninstall the plugins"
pipq uninstall -y snnx-sinabs snnx-onnx-extra

step "snnx still works, with no trace of them"
"$V/snnx" plugins --json > "$WORK/after.json"
cmp -s "$WORK/before.json" "$WORK/after.json" || { diff "$WORK/before.json" "$WORK/after.json" || true; fail "snnx plugins --json differs from before the install"; }
"$V/python" -c 'import snnx_sinabs' 2>/dev/null && fail "snnx_sinabs is still importable"
"$V/python" -c 'import snnx_onnx_extra' 2>/dev/null && fail "snnx_onnx_extra is still importable"
set +e
"$V/snnx" lower "$MODEL" --to sinabs -o "$WORK/gone.pt" 2> "$WORK/gone.err"; rc=$?
set -e
[[ $rc == 2 ]] && grep -q "no backend named 'sinabs'" "$WORK/gone.err" \
    || fail "snnx lower --to sinabs after uninstalling: exit $rc, $(cat "$WORK/gone.err")"
"$V/snnx" run "$MODEL" --random 10
"$V/snnx" check "$MODEL" --backends reference

printf '\ncheck-example-plugins: OK (installed, listed, lowered, tested, conformance kit passed, uninstalled cleanly)\n'
