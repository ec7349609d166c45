"""What the ``lava`` and ``lava-float`` backends lower a graph to: the folded chain, and its quantisation."""

from __future__ import annotations

from dataclasses import dataclass, field

from snnx.plugins.loihi.cuba import CubaChain
from snnx.plugins.loihi.quantise import LayerQuantisation

@dataclass
class LavaModel:
    """A chain lowered for Lava: the folded float chain, and for ``fixed_pt`` its quantisation."""

    chain: CubaChain
    tag: str
    quantisation: list[LayerQuantisation] = field(default_factory=list)

    @property
    def latency(self) -> int:
        """Steps the output lags the input: Loihi delivers each layer's spikes one step later."""
        return len(self.chain.layers)

    def report(self) -> str:
        """The per-layer quantisation table (empty for floating point)."""
        return "\n".join(q.row() for q in self.quantisation)
