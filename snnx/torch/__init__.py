"""Shared torch machinery for the torch-based backends (snnTorch, Norse, SpikingJelly, ...).

:mod:`snnx.torch.graph` executes a flat NIR graph with torch layers and backend-supplied neurons.
Importing this package needs torch; the plugins import it lazily, inside their methods.
"""
