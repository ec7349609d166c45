"""snnx-sinabs: a Sinabs backend for snnx, installed as an ordinary third-party plugin.

``pip install ./examples/snnx-sinabs`` registers it through the ``snnx`` entry-point group; then
``snnx lower model.nir --to sinabs`` gives a ``torch.nn.Module`` of ``sinabs.layers`` neurons that
matches the snnx reference simulator spike for spike.
"""

__version__ = "0.1.0"
