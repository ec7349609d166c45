"""Where the .nir files written by other tools live: tests/data/nir-samples (see its README for sources)."""

from pathlib import Path

SAMPLES = Path(__file__).resolve().parent / "data" / "nir-samples"
GOOD_SAMPLES = ["nirtorch_braille.nir", "nirtorch_lif_norse.nir"]
#: Written by rockpool with a subgraph Input declaring 12 inputs where 38 arrive: malformed on purpose.
MALFORMED_SAMPLE = "rockpool_braille.nir"
