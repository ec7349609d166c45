"""What every backend built on :mod:`snnx.torch.graph` shares: running, saving, loading, raising and
describing a :class:`~snnx.torch.graph.GraphModule`. A backend only says which neurons to build and what
it refuses (snnTorch, Norse and SpikingJelly here; third-party plugins may subclass it too).

No torch import at module level: ``snnx --help`` and ``snnx plugins`` must work without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from snnx.errors import SnnxError
from snnx.ir.nodes import NEURON_KINDS
from snnx.registry import Backend

if TYPE_CHECKING:  # pragma: no cover
    import nir
    import numpy as np

    from snnx.ir.prepare import PreparedGraph

#: The node kinds the shared executor builds itself: the keys of :data:`snnx.torch.graph.LAYERS`
#: (``tests/test_torch_graph.py`` keeps the two equal). Kept here so that reading it needs no torch.
EXECUTOR_KINDS: frozenset[str] = frozenset(
    {
        "Input", "Output", "Affine", "Linear", "Scale", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d",
        "Flatten", "Threshold", "Delay",
    }
)

#: Every node type a backend built on :mod:`snnx.torch.graph` can run: the executor's own layers plus the
#: neuron kinds it hands to the backend's neuron factory. A kind added to :data:`snnx.ir.nodes.KINDS` is
#: therefore refused by the torch backends' capability check until the executor learns to build it.
TORCH_NODE_TYPES: frozenset[str] = EXECUTOR_KINDS | NEURON_KINDS


def torch_dtype(dtype: Any, backend: str) -> Any:
    """``"float32"``/``"float64"`` (or the torch dtype) as a torch dtype; anything else is an error."""
    import torch

    value = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if value not in (torch.float32, torch.float64):
        msg = f"Backend {backend!r}: dtype must be 'float32' or 'float64', got {dtype!r}"
        raise SnnxError(msg)
    return value


def read_torch_module(path: str, what: str) -> Any:
    """``torch.load`` a whole pickled module (trusted files only), with one-line errors for users."""
    import torch

    from snnx.errors import NirFileError

    try:
        return torch.load(path, weights_only=False, map_location="cpu")
    except FileNotFoundError as exc:
        msg = f"no such file: '{path}'"
        raise NirFileError(msg) from exc
    except Exception as exc:  # the unpickler raises whatever it meets in a foreign or broken file
        msg = f"cannot read '{path}' as {what}: {type(exc).__name__}: {exc}"
        raise NirFileError(msg) from exc


class TorchGraphBackend(Backend):
    """A backend whose lowered model is a :class:`snnx.torch.graph.GraphModule` of framework neurons."""

    # A GraphModule keeps every tensor in parameters or buffers, so ``.to(device)`` moves all of it,
    # and :meth:`run` sends the inputs to the model's device (tests/test_device.py checks both).
    devices = ("cpu", "cuda", "mps")

    def refusals(self, graph: PreparedGraph) -> list[str]:
        """The generic capability check plus :meth:`node_refusals` of every node of the prepared graph."""
        reasons = super().refusals(graph)
        if self.missing_requirements():
            return reasons
        for name, node in graph.nodes.items():
            reasons.extend(self.node_refusals(name, node, graph.dt))
        return reasons

    def node_refusals(self, name: str, node: nir.NIRNode, dt: float) -> list[str]:
        """Why this backend cannot reproduce node ``name`` exactly at time step ``dt``; none by default.

        ``dt`` is the prepared graph's, the same value :func:`snnx.torch.graph.build_graph_module` gives
        the neuron factory, so a refusal and the fold it predicts agree.

        Override for limits that :attr:`capabilities` cannot express (parameter ranges, weight shapes).
        """
        return []

    def _check_model(self, model: Any) -> None:
        from snnx.torch.graph import GraphModule

        if not isinstance(model, GraphModule):
            msg = (
                f"Backend {self.name!r} expected a model made by snnx.lower(..., to={self.name!r}), "
                f"got {type(model).__name__}"
            )
            raise SnnxError(msg)

    def run(self, model: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on time-major numpy inputs (in the model's dtype, no gradients); numpy outputs."""
        import torch

        from snnx.torch.graph import _float_tensor

        self._check_model(model)
        # Inputs follow the model: float32 as lowered, float64 after ``model.double()``.
        ref = _float_tensor(model)
        dtype = ref.dtype if ref is not None else torch.float32
        device = ref.device if ref is not None else torch.device("cpu")
        xs = {k: torch.as_tensor(v, dtype=dtype, device=device) for k, v in inputs.items()}
        with torch.no_grad():
            out = model(xs)
        if not isinstance(out, dict):
            out = {model.output_names[0]: out}
        return {k: v.detach().cpu().double().numpy() for k, v in out.items()}

    def raise_(self, model: Any) -> nir.NIRGraph:
        """The graph with the model's current (trained) parameters and the contract metadata."""
        self._check_model(model)
        return model.to_nir()

    def save(self, model: Any, path: str) -> None:
        """``torch.save`` the whole module atomically; ``torch.load(path, weights_only=False)`` reads it."""
        import torch

        from snnx.ir.io import write_atomic

        self._check_model(model)
        write_atomic(path, lambda tmp: torch.save(model, tmp))

    def load(self, path: str) -> Any:
        """Read a model written by :meth:`save` (a pickled module: only load files you trust)."""
        from snnx.torch.graph import GraphModule

        model = read_torch_module(path, "a torch model")
        made_by = getattr(model, "backend", None) if isinstance(model, GraphModule) else None
        if made_by != self.name:
            what = f"a model of backend {made_by!r}" if made_by else f"a {type(model).__name__}"
            msg = f"'{path}' holds {what}, not a model lowered with --to {self.name}"
            raise SnnxError(msg)
        return model

    def describe(self, model: Any) -> str:
        """:meth:`GraphModule.describe <snnx.torch.graph.GraphModule.describe>`: one line per layer."""
        self._check_model(model)
        return model.describe()
