"""Shared torch machinery for the torch-based backends (snnTorch, Norse, SpikingJelly, third-party ones).

- :mod:`snnx.torch.graph`: the executor; runs a prepared NIR graph with torch layers (its
  :data:`~snnx.torch.graph.LAYERS` table, keyed by node kind) and backend-supplied neurons.
- :mod:`snnx.torch.neuron`: the public neuron side: :class:`~snnx.torch.neuron.TorchNeuron` (the
  interface) and :class:`~snnx.torch.neuron.ContractNeuron` (the base of wrappers of a framework's neuron).
- :mod:`snnx.torch.backend`: :class:`~snnx.torch.backend.TorchGraphBackend` and ``TORCH_NODE_TYPES``;
  no torch import.
- :mod:`snnx.torch.params`: reading NIR parameters as float64; numpy only, for backends' ``fold.py``.
- :mod:`snnx.torch.signed`: the signed spike rule (contract version 2) on a framework neuron's membrane,
  with the framework's own surrogate on both branches.

Importing this package imports none of them; ``graph`` and ``neuron`` need torch, and the plugins import
them lazily, inside their methods.
"""
