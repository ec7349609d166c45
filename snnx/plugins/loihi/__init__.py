"""Loihi: the lava-dl (SLAYER), lava-float and lava (Loihi 2 fixed point) backends, one module per job.

==============  ======================================================================================
``cuba``        the fold: the contract as Loihi's CUBA neuron (layers, gains, refusals); numpy only
``compat``      makes lava-nc 0.10 / lava-dl 0.6 import on this Python; ``snnx install lava``
                (``python -m snnx.plugins.loihi.compat``)
``quantise``    Loihi 2 fixed point per layer, with its errors
``model``       what ``lava`` / ``lava-float`` lower to (folded chain + quantisation)
``netx``        the netx HDF5 writer (the file Lava loads for Loihi 2)
``processes``   the ``lava-float`` Lava process graph and snnx's ``ContractCuba`` Lava process
``runner``      running a model in Lava (batches as windows, latency removed, graded input, probes)
``populations`` per-neuron decays as one Loihi population per decay, recurrent layers (fixed_pt)
``precision``   ``weight_bits``: each connection as two 8-bit synapses, convs unrolled to Dense
``slayer``      lava-dl's SLAYER network classes (the ``lava-dl`` model)
``export``      a folded chain back to NIR (``raise_``)
``backends``    the three ``Backend`` classes
``plugin``      the pluggy hooks
==============  ======================================================================================

Importing any of these modules never imports Lava or torch; their functions do, when called.
"""
