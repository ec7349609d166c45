"""The built-in ``snntorch`` backend, shaped like a third-party plugin (``examples/snnx-sinabs``).

- :mod:`.plugin`: the hook and the :class:`~.plugin.SnnTorchBackend` (no torch or snnTorch import);
- :mod:`.fold`: the parameter tables and the refusals (numpy only);
- :mod:`.neurons`: the snnTorch neuron wrappers (imports torch and snnTorch).

Importing this package imports none of them.
"""
