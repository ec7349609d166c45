"""Reading and writing .nir files: samples from other tools, metadata round trips, bad files."""

import copy
import os

import nir
import numpy as np
import pytest

import snnx
from snnx.errors import NirFileError, ValidationError
from snnx.ir.semantics import dt_of, reset_of, set_node_contract, v_init_of

from nir_samples import GOOD_SAMPLES, MALFORMED_SAMPLE


@pytest.mark.parametrize("name", GOOD_SAMPLES)
def test_samples_from_other_tools_load(samples_dir, name):
    graph = snnx.load(samples_dir / name)
    assert any(isinstance(n, nir.Output) for n in graph.nodes.values())


def test_malformed_sample_names_the_node(samples_dir):
    with pytest.raises(ValidationError) as info:
        snnx.load(samples_dir / MALFORMED_SAMPLE)
    message = str(info.value)
    assert "hidden.input" in message and "(12,)" in message and "(38,)" in message
    assert "\n" not in message


def test_loading_does_not_add_or_change_nodes(samples_dir):
    # nir.read inserts Input nodes and rewrites types; snnx.load returns the file as written.
    graph = snnx.load(samples_dir / "nirtorch_braille.nir")
    assert sorted(graph.nodes) == ["fc1", "fc2", "input", "lif1.lif", "lif1.w_rec", "lif2", "output"]
    assert graph.metadata == {}


def test_contract_metadata_survives_save_and_load(tmp_path, small_graph):
    set_node_contract(small_graph.nodes["lif"], reset="subtract", v_init=np.array([0.1, 0.2]))
    before = copy.deepcopy(small_graph)
    snnx.save(small_graph, tmp_path / "g.nir")
    loaded = snnx.load(tmp_path / "g.nir")
    assert dt_of(loaded) == 1e-3
    assert loaded.metadata["snnx"]["version"] == 2
    assert reset_of(loaded.nodes["lif"]) == "subtract"
    assert np.array_equal(v_init_of(loaded.nodes["lif"]), [0.1, 0.2])
    # save must not have touched the caller's graph
    assert small_graph.nodes.keys() == before.nodes.keys()
    assert np.array_equal(small_graph.nodes["fc"].weight, before.nodes["fc"].weight)


def test_round_trip_simulates_identically(tmp_path, small_graph):
    x = np.random.default_rng(0).random((20, 2, 3))
    snnx.save(small_graph, tmp_path / "g.nir")
    a = snnx.simulate(small_graph, x)["output"]
    b = snnx.simulate(snnx.load(tmp_path / "g.nir"), x)["output"]
    assert np.array_equal(a, b)


def test_missing_file():
    with pytest.raises(NirFileError, match="no such file"):
        snnx.load("/nonexistent/model.nir")


def test_garbage_file(tmp_path):
    path = tmp_path / "garbage.nir"
    path.write_bytes(b"this is not hdf5 at all" * 10)
    with pytest.raises(NirFileError, match="not a valid .nir"):
        snnx.load(path)


def test_truncated_file(tmp_path, samples_dir):
    data = (samples_dir / "nirtorch_braille.nir").read_bytes()
    path = tmp_path / "truncated.nir"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(NirFileError):
        snnx.load(path)


def test_hdf5_that_is_not_nir(tmp_path):
    import h5py

    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(NirFileError, match="not a NIR graph"):
        snnx.load(path)


def test_unknown_node_type_names_the_node(tmp_path, small_graph):
    snnx.save(small_graph, tmp_path / "g.nir")
    import h5py

    with h5py.File(tmp_path / "g.nir", "r+") as f:
        del f["node/nodes/lif/type"]
        f["node/nodes/lif/type"] = "Banana"
    with pytest.raises(NirFileError, match="'lif'.*unknown node type 'Banana'"):
        snnx.load(tmp_path / "g.nir")


def test_failed_save_leaves_old_file_intact(tmp_path, small_graph):
    path = tmp_path / "g.nir"
    snnx.save(small_graph, path)
    before = path.read_bytes()
    bad = copy.deepcopy(small_graph)
    bad.nodes["fc"].weight = object()  # h5py cannot store it
    with pytest.raises(Exception):
        snnx.save(bad, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["g.nir"]  # no temp file left behind


def test_unwritable_directory(tmp_path, small_graph):
    with pytest.raises(NirFileError, match="does not exist"):
        snnx.save(small_graph, tmp_path / "missing" / "g.nir")
    if os.geteuid() != 0:  # root ignores permissions
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        with pytest.raises(NirFileError):
            snnx.save(small_graph, locked / "g.nir")


def test_traces_round_trip(tmp_path):
    from snnx.ir.io import load_traces, save_traces

    traces = {"a": np.random.default_rng(1).random((7, 3, 2, 4)), "b": np.ones((7, 3, 5))}
    save_traces(tmp_path / "t.nird", traces, dt=1e-3)
    back, dt = load_traces(tmp_path / "t.nird", {"a": (2, 4), "b": (5,)})
    assert dt == 1e-3
    for k in traces:
        assert np.array_equal(back[k], traces[k])


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_written_files_get_the_umask_permissions(tmp_path, mask):
    import os

    from snnx.conformance import load_case

    old = os.umask(mask)
    try:
        snnx.save(load_case("lif_chain").graph, tmp_path / "g.nir")
    finally:
        os.umask(old)
    assert (tmp_path / "g.nir").stat().st_mode & 0o777 == 0o666 & ~mask


def test_overwriting_keeps_the_files_mode(tmp_path):
    from snnx.conformance import load_case

    target = tmp_path / "g.nir"
    target.write_bytes(b"old")
    target.chmod(0o640)
    snnx.save(load_case("lif_chain").graph, target)
    assert target.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("name", __import__("snnx.conformance", fromlist=["case_names"]).case_names())
def test_every_conformance_case_opens_with_nir_read_type_checked(tmp_path, name):
    import nir

    from snnx.conformance import CASES_DIR, load_case

    nir.read(str(CASES_DIR / f"{name}.nir"))  # as stored
    graph = load_case(name).graph
    snnx.save(graph, tmp_path / "again.nir")  # as snnx writes it now
    nir.read(str(tmp_path / "again.nir"))


def test_grouped_convs_are_stored_dense_for_nir_and_regrouped_on_load(tmp_path):
    import h5py

    from snnx.conformance import load_case

    graph = load_case("conv_groups_stride_dilation").graph
    snnx.save(graph, tmp_path / "g.nir")
    with h5py.File(tmp_path / "g.nir") as f:
        assert f["node/nodes/conv/weight"].shape == (4, 2, 3, 3) and int(f["node/nodes/conv/groups"][()]) == 1
    back = snnx.load(tmp_path / "g.nir")
    assert int(back.nodes["conv"].groups) == 2 and back.nodes["conv"].weight.shape == (4, 1, 3, 3)
    assert np.array_equal(back.nodes["conv"].weight, graph.nodes["conv"].weight)
    assert "snnx" not in (back.nodes["conv"].metadata or {})


def test_the_reference_backends_model_saves_and_validates_like_a_graph(tmp_path, small_graph):
    """``lower(g, to="reference")`` gives the prepared graph; the public save/validate still take it."""
    model = snnx.lower(small_graph, to="reference")
    assert not isinstance(model, nir.NIRGraph)
    snnx.validate(model)
    path = tmp_path / "ref.nir"
    snnx.save(model, path)
    back = nir.read(str(path))
    x = {"input": np.random.default_rng(0).random((6, 2, 3)) * 2}
    np.testing.assert_array_equal(snnx.run(back, x)["output"], snnx.run(small_graph, x)["output"])
