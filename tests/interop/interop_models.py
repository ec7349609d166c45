"""Models built with each framework's own API, their own forward, and their own exporter.

Every builder returns ``(graph, forward)``: the graph the framework's exporter wrote, and a function
``forward(x) -> spikes`` running the framework's own model on time-major ``(T, batch, *shape)`` input.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

T, BATCH = 50, 4


def bernoulli(shape: tuple[int, ...], p: float = 0.3, seed: int = 0) -> np.ndarray:
    """Random binary input ``(T, BATCH, *shape)``."""
    return (np.random.default_rng(seed).random((T, BATCH, *shape)) < p).astype(np.float32)


def _run_steps(step: Callable, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.stack([step(torch.from_numpy(x[t])).numpy() for t in range(x.shape[0])])


# -- snnTorch -----------------------------------------------------------------------------------------
def snntorch_model(kind: str, seed: int = 0):
    import snntorch as snn
    import torch
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(seed)

    def leaky(shape, beta, **kw):
        return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.ones(shape), init_hidden=True, **kw)

    if kind == "mlp":
        net = torch.nn.Sequential(torch.nn.Linear(20, 40), leaky((40,), 0.9), torch.nn.Linear(40, 10),
                                  leaky((10,), 0.8, output=True))
        shape = (20,)
    elif kind == "mlp_zero":
        net = torch.nn.Sequential(torch.nn.Linear(20, 40), leaky((40,), 0.9, reset_mechanism="zero"),
                                  torch.nn.Linear(40, 10), leaky((10,), 0.8, output=True, reset_mechanism="zero"))
        shape = (20,)
    elif kind == "conv":
        net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), leaky((4, 6, 6), 0.9), torch.nn.Flatten(),
                                  torch.nn.Linear(144, 10), leaky((10,), 0.85, output=True))
        shape = (2, 8, 8)
    elif kind == "synaptic":
        net = torch.nn.Sequential(
            torch.nn.Linear(20, 30),
            snn.Synaptic(alpha=torch.full((30,), 0.7), beta=torch.full((30,), 0.9), threshold=torch.ones(30),
                         init_hidden=True),
            torch.nn.Linear(30, 10),
            snn.Synaptic(alpha=torch.full((10,), 0.6), beta=torch.full((10,), 0.85), threshold=torch.ones(10),
                         init_hidden=True, output=True),
        )
        shape = (20,)
    elif kind == "rleaky":
        net = torch.nn.Sequential(torch.nn.Linear(20, 30),
                                  snn.RLeaky(beta=torch.full((30,), 0.9), threshold=torch.ones(30), linear_features=30,
                                             init_hidden=True),
                                  torch.nn.Linear(30, 10), leaky((10,), 0.8, output=True))
        shape = (20,)
    elif kind == "rsynaptic":
        net = torch.nn.Sequential(
            torch.nn.Linear(20, 30),
            snn.RSynaptic(alpha=torch.full((30,), 0.7), beta=torch.full((30,), 0.9), threshold=torch.ones(30),
                          linear_features=30, init_hidden=True),
            torch.nn.Linear(30, 10), leaky((10,), 0.8, output=True))
        shape = (20,)
    else:
        raise ValueError(kind)
    gain = {"conv": 0.35, "synaptic": 0.3}.get(kind, 1.0)  # 10-50% firing: a comparison that can fail
    for p in net.parameters():
        if p.dim() > 1:
            torch.nn.init.uniform_(p, -0.25 * gain, 0.35 * gain)
    sample = torch.zeros(1, *shape)
    graph = export_to_nir(net, sample if kind == "conv" else sample[0], ignore_dims=[0] if kind == "conv" else [])

    def forward(x: np.ndarray) -> np.ndarray:
        from snntorch import utils

        utils.reset(net)

        def step(xt):
            out = net(xt)
            return (out[0] if isinstance(out, tuple) else out)

        return _run_steps(step, x)

    return graph, forward, shape


# -- Norse --------------------------------------------------------------------------------------------
def norse_model(kind: str, seed: int = 0):
    import norse.torch as norse
    import torch

    torch.manual_seed(seed)
    if kind == "lifbox_mlp":
        net = norse.SequentialState(torch.nn.Linear(20, 40), norse.LIFBoxCell(), torch.nn.Linear(40, 10),
                                    norse.LIFBoxCell())
        shape, gain = (20,), 12.0
    elif kind == "lifbox_conv":
        net = norse.SequentialState(torch.nn.Conv2d(2, 4, 3), norse.LIFBoxCell(), torch.nn.Conv2d(4, 3, 3),
                                    norse.LIFBoxCell())
        shape, gain = (2, 8, 8), 10.0
    elif kind == "lif_mlp":
        net = norse.SequentialState(torch.nn.Linear(20, 40), norse.LIFCell(), torch.nn.Linear(40, 10),
                                    norse.LIFCell())
        shape, gain = (20,), 1.5
    elif kind == "iaf_mlp":
        net = norse.SequentialState(torch.nn.Linear(20, 40), norse.IAFCell(), torch.nn.Linear(40, 10),
                                    norse.IAFCell())
        shape, gain = (20,), 1.0
    elif kind == "lifbox_li":  # a non-spiking LIBoxCell readout: the output is a voltage
        net = norse.SequentialState(torch.nn.Linear(20, 40), norse.LIFBoxCell(), torch.nn.Linear(40, 10),
                                    norse.LIBoxCell())
        shape, gain = (20,), 12.0
    else:
        raise ValueError(kind)
    for p in net.parameters():
        if p.dim() > 1:
            torch.nn.init.uniform_(p, -0.25 * gain, 0.35 * gain)
    graph = norse.to_nir(net, torch.zeros(1, *shape))

    def forward(x: np.ndarray) -> np.ndarray:
        state = [None]

        def step(xt):
            out, state[0] = net(xt, state[0])
            return out

        return _run_steps(step, x)

    return graph, forward, shape


# -- SpikingJelly -------------------------------------------------------------------------------------
def spikingjelly_model(kind: str, seed: int = 0):
    import torch
    from spikingjelly.activation_based import functional, layer, neuron
    from spikingjelly.activation_based.nir_exchange.to_nir import export_to_nir

    torch.manual_seed(seed)
    if kind == "lif_mlp":
        net = torch.nn.Sequential(layer.Linear(20, 40), neuron.LIFNode(tau=2.0), layer.Linear(40, 10),
                                  neuron.LIFNode(tau=3.0, decay_input=False))
        shape, gain = (20,), 2.0
    elif kind == "if_conv":
        net = torch.nn.Sequential(layer.Conv2d(2, 4, 3), neuron.IFNode(), layer.Flatten(),
                                  layer.Linear(144, 10), neuron.IFNode())
        shape, gain = (2, 8, 8), 0.5
    elif kind == "cuba_mlp":
        net = torch.nn.Sequential(layer.Linear(20, 40), neuron.CUBALIFNode(), layer.Linear(40, 10),
                                  neuron.CUBALIFNode(c_decay=0.3, v_decay=0.6))
        shape, gain = (20,), 0.35
    else:
        raise ValueError(kind)
    for p in net.parameters():
        if p.dim() > 1:
            torch.nn.init.uniform_(p, -0.25 * gain, 0.35 * gain)
    graph = export_to_nir(net, torch.zeros(BATCH, *shape))

    def forward(x: np.ndarray) -> np.ndarray:
        functional.reset_net(net)
        return _run_steps(net, x)

    return graph, forward, shape


# -- the frameworks' own importers, run step by step ----------------------------------------------------
def run_imported(framework: str, graph, x: np.ndarray) -> np.ndarray:
    """Load ``graph`` with ``framework``'s own NIR importer (default arguments) and run it on ``x``."""
    import torch

    if framework == "snntorch":
        from snntorch.import_nir import import_from_nir

        net = import_from_nir(graph)
    elif framework == "norse":
        from norse.torch import from_nir

        net = from_nir(graph)
    elif framework == "spikingjelly":
        from spikingjelly.activation_based.nir_exchange.from_nir import import_from_nir

        net = import_from_nir(graph)
    else:
        raise ValueError(framework)
    state = [None]

    def step(xt):
        out = net(xt.float(), state[0])  # nirtorch executors return (output, state): pass it back
        if isinstance(out, tuple):
            out, state[0] = out
        return out.float()

    with torch.no_grad():
        return _run_steps(step, x)


# -- Sinabs -------------------------------------------------------------------------------------------
def sinabs_model(kind: str, seed: int = 0):
    import sinabs.layers as sl
    import torch
    from sinabs.activation import SingleSpike
    from sinabs.nir import to_nir

    torch.manual_seed(seed)
    if kind == "iaf_mlp":
        net = torch.nn.Sequential(torch.nn.Linear(20, 40), sl.IAFSqueeze(batch_size=BATCH, spike_fn=SingleSpike),
                                  torch.nn.Linear(40, 10), sl.IAFSqueeze(batch_size=BATCH, spike_fn=SingleSpike))
        shape, gain = (20,), 0.6
    elif kind == "lif_mlp":
        net = torch.nn.Sequential(
            torch.nn.Linear(20, 40),
            sl.LIFSqueeze(tau_mem=torch.full((40,), 10.0), spike_threshold=torch.ones(40), batch_size=BATCH,
                          spike_fn=SingleSpike),
            torch.nn.Linear(40, 10),
            sl.LIFSqueeze(tau_mem=torch.full((10,), 20.0), spike_threshold=torch.ones(10), batch_size=BATCH,
                          spike_fn=SingleSpike),
        )
        shape, gain = (20,), 8.0
    elif kind == "iaf_conv":
        # No Flatten: to_nir leaves a Flatten's input_type None, and nir.write then cannot store the graph.
        net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), sl.IAFSqueeze(batch_size=BATCH, spike_fn=SingleSpike),
                                  sl.SumPool2d(2), torch.nn.Conv2d(4, 3, 3, padding=1),
                                  sl.IAFSqueeze(batch_size=BATCH, spike_fn=SingleSpike))
        shape, gain = (2, 8, 8), 0.4
    else:
        raise ValueError(kind)
    for p in net.parameters():
        if p.dim() > 1:
            torch.nn.init.uniform_(p, -0.25 * gain, 0.35 * gain)
    graph = to_nir(net, torch.zeros(BATCH, *shape))

    def forward(x: np.ndarray) -> np.ndarray:
        import torch

        for m in net.modules():
            if hasattr(m, "reset_states"):
                m.reset_states()
        # Squeeze layers take (batch*T, ...) batch-major: sample b's steps are rows b*T .. b*T+T-1.
        xt = torch.from_numpy(np.ascontiguousarray(np.swapaxes(x, 0, 1))).reshape(-1, *x.shape[2:])
        with torch.no_grad():
            y = net(xt).numpy()
        return np.swapaxes(y.reshape(x.shape[1], x.shape[0], *y.shape[1:]), 0, 1)

    return graph, forward, shape


# -- Rockpool -----------------------------------------------------------------------------------------
def rockpool_model(kind: str, seed: int = 0):
    import torch
    from rockpool.nn.combinators import Sequential
    from rockpool.nn.modules import LIFNeuronTorch, LIFTorch, LinearTorch
    from rockpool.nn.modules.torch.nir import to_nir

    torch.manual_seed(seed)
    if kind == "lif_mlp":
        net = Sequential(LinearTorch((20, 40)), LIFTorch(40), LinearTorch((40, 10)),
                         LIFTorch(10, tau_mem=0.05, tau_syn=0.01))
        gain = 0.06  # isyn and v each integrate ~20 steps: small weights keep v below 2x threshold
    elif kind == "lifneuron_mlp":
        net = Sequential(LinearTorch((20, 40)), LIFNeuronTorch(40, tau_mem=0.03), LinearTorch((40, 10)),
                         LIFNeuronTorch(10, tau_mem=0.05))
        gain = 0.5
    else:
        raise ValueError(kind)
    with torch.no_grad():
        for pname, p in torch.nn.Module.named_parameters(net):  # Rockpool's own parameters() is a dict
            if pname.endswith("weight"):  # tau_syn is 2-D too
                torch.nn.init.uniform_(p, -0.25 * gain, 0.35 * gain)
    graph = to_nir(net)

    def forward(x: np.ndarray) -> np.ndarray:
        net.reset_state()
        with torch.no_grad():
            y, _, _ = net(torch.from_numpy(np.ascontiguousarray(np.swapaxes(x, 0, 1))))
        return np.swapaxes(y.numpy(), 0, 1)

    return graph, forward, (20,)
