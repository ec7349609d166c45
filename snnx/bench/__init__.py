"""The framework benchmark: one NIR model trained on every installed backend, and ANN→SNN conversion sweeps.

``snnx bench`` (see :mod:`snnx.bench.plugin`) runs both tracks; :func:`snnx.bench.runner.run_bench` is the
Python entry point. Results are plain dataclasses (:mod:`snnx.bench.results`) written as JSON, a rich
table and PNG plots.
"""
