"""A final Softmax is dropped (argmax unchanged, said in the summary); an inner one is refused."""

from __future__ import annotations

import numpy as np
import pytest
from convert_oracle import ann_output, export, snn_rates
from torch import nn

from snnx.convert import convert
from snnx.errors import ConversionError


@pytest.mark.parametrize("final", [nn.Softmax(dim=1), nn.LogSoftmax(dim=1)], ids=["softmax", "logsoftmax"])
def test_final_softmax_dropped_and_reported(final, rng):
    model = nn.Sequential(nn.Linear(4, 5), final)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    proto = export(model, x)
    result = convert(proto, x)
    logits = ann_output(export(model[:1], x), x)
    np.testing.assert_allclose(snn_rates(result.graph, x, 2), logits, rtol=1e-5, atol=1e-5)
    assert np.array_equal(ann_output(proto, x).argmax(1), logits.argmax(1))
    assert "dropped" in result.summary()
    assert type(final).__name__ in result.summary()


def test_inner_softmax_refused(rng):
    x = rng.normal(size=(2, 4)).astype(np.float32)
    proto = export(nn.Sequential(nn.Linear(4, 4), nn.Softmax(dim=1), nn.Linear(4, 2)), x)
    with pytest.raises(ConversionError, match="only a final"):
        convert(proto, x)
