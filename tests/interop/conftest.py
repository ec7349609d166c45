"""Interop tests build models with each framework's own API; a framework that is not installed skips."""

import sys
from pathlib import Path

# The helper module next to these tests (tests/ has no __init__.py: pytest's rootdir import mode).
sys.path.insert(0, str(Path(__file__).parent))
