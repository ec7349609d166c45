"""The built-in ``norse`` backend, shaped like a third-party plugin (``examples/snnx-sinabs``).

- :mod:`.plugin`: the hook and the :class:`~.plugin.NorseBackend` (no torch or Norse import);
- :mod:`.fold`: the numpy side of the folds (Norse's ``tau_inv``) and the accepted spike functions;
- :mod:`.neurons`: the Norse cell wrappers (imports torch and Norse).

Importing this package imports none of them.
"""
