"""What the ``lava`` and ``lava-float`` backends lower a graph to: the folded chain, and its quantisation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from snnx.plugins.loihi.cuba import CubaChain
from snnx.plugins.loihi.quantise import LayerQuantisation


@dataclass
class LavaModel:
    """A chain lowered for Lava: the folded float chain, and for ``fixed_pt`` its quantisation."""

    chain: CubaChain
    tag: str
    quantisation: list[LayerQuantisation] = field(default_factory=list)
    #: Per layer, its :class:`snnx.plugins.loihi.populations.Population` list when some layer's decays
    #: differ between neurons (each population is its own Loihi layer); empty for a netx chain.
    populations: list[list[Any]] = field(default_factory=list)

    @property
    def latency(self) -> int:
        """Steps the output lags the input: Loihi delivers each layer's spikes one step later."""
        return len(self.chain.layers)

    def report(self) -> str:
        """The per-layer quantisation table (empty for floating point)."""
        if self.populations:
            return "\n".join(p.quantisation.row() for pops in self.populations for p in pops)
        return "\n".join(q.row() for q in self.quantisation)
