"""Damaged .nir files never cause an internal error or a traceback in info, run, check, lower or stats.

Each file is a conformance case or a sample with one kind of damage (truncated, bit-flipped, HDF5
datasets or groups deleted, retyped, replaced by strings, NaN/inf/huge values, stray or missing edges,
bad contract metadata, wrong node types, zero/negative geometry; see tests/fuzz_files.py). Every command
must exit 0, 1 (check's disagreement) or 2 with one line on stderr, without Python warnings.
"""

import pytest

from fuzz_cli import COMMANDS, fuzz


def _run(tmp_path, count, seed):
    failures, codes = fuzz(count, tmp_path, seed=seed)
    assert not failures, f"{len(failures)} failures, e.g.:\n" + "\n".join(failures[:10])
    assert sum(codes.values()) == count * len(COMMANDS)
    assert codes.get(2, 0) > count  # most damage is detected and reported, not silently run


def test_fuzz_quick(tmp_path):
    _run(tmp_path, 60, seed=1)


@pytest.mark.slow
def test_fuzz_600_files(tmp_path):
    _run(tmp_path, 600, seed=13)
