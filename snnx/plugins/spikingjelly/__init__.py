"""The built-in ``spikingjelly`` backend, shaped like a third-party plugin (``examples/snnx-sinabs``).

- :mod:`.plugin`: the hook and the :class:`~.plugin.SpikingJellyBackend` (no torch or SpikingJelly import);
- :mod:`.fold`: the refusals (``LIFNode``'s ``tau/dt > 1``) and the accepted surrogates (numpy only);
- :mod:`.neurons`: the SpikingJelly neuron wrappers (imports torch and SpikingJelly).

Importing this package imports none of them.
"""
