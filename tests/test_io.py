"""Checkpoints (refnet.save / refnet.load): bit-exact round trips, damaged files, atomic writes."""
from __future__ import annotations

import io
import json
import os
import pickle
import zipfile

import array_api_strict as xs
import numpy as np
import pytest
from hypothesis import given, strategies as st

import refnet
import refnet.io as rio
from refnet.strategies import SMOOTH, architectures, inputs, seeds

# ---------------------------------------------------------------------- helpers
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10)
metas = st.none() | st.dictionaries(st.text(max_size=6), json_values, max_size=4)

OPTIMIZERS = {
    "sgd": lambda: refnet.SGD(0.05),
    "momentum": lambda: refnet.Momentum(0.05, 0.9),
    "nesterov": lambda: refnet.Momentum(0.05, 0.5, nesterov=True),
    "averaged": lambda: refnet.AveragedMomentum(0.05, 0.9),
    "averaged-bias": lambda: refnet.AveragedMomentum(0.05, 0.9, include_bias=True),
}


def assert_tree_identical(a, b, path="state"):
    """Same types all the way down (NamedTuple, list vs tuple, scalar kinds) and bit-identical arrays."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), path
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert a.tobytes() == b.tobytes(), f"{path} differs"
        return
    assert type(a) is type(b), f"{path}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_tree_identical(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert np.float64(a).tobytes() == np.float64(b).tobytes(), path
    else:
        assert a == b, path


def trained(net, params, X, G, opt, steps):
    state = opt.init(params)
    for _ in range(steps):
        params, state = opt.step(params, net.vjp(params, X, G), state)
    return params, state


def small_run(kind="momentum"):
    net = refnet.MLP([3, 4, 2], activation="tanh")
    rng = np.random.default_rng(5)
    X, G = inputs(rng, 6, 3), rng.standard_normal((6, 2))
    params, state = trained(net, net.init(seed=3), X, G, OPTIMIZERS[kind](), 2)
    return net, params, state, X, G


# ---------------------------------------------------------------------- round trips
# a float32 Projected step may warn that its rank is ambiguous (documented, recorded in FrozenInfo.warning,
# which the round trip must preserve); the checkpoint is what is tested here
@pytest.mark.filterwarnings("ignore::refnet.frozen.ProjectionAccuracyWarning")
@given(architectures(max_layers=3, activations=SMOOTH), seeds, st.sampled_from(["float64", "float32"]),
       st.sampled_from(sorted(OPTIMIZERS) + ["projected", "none"]), st.integers(0, 3), metas)
def test_round_trip_is_bit_exact(tmp_path_factory, net, seed, dtype, kind, steps, meta):
    rng = np.random.default_rng(seed)
    params = net.init(seed=rng, dtype=dtype)
    X = inputs(rng, 4, net.sizes[0]).astype(dtype)
    G = rng.standard_normal((4, net.sizes[-1])).astype(dtype)
    if kind == "none":
        state = None
    elif kind == "projected":      # nested state: inner MomentumState, c0, FrozenInfo (None before a step)
        opt = refnet.Projected(refnet.Momentum(0.01, 0.9), net, X, freeze=[0], retract=False)
        params, state = trained(net, params, X, G, opt, steps)
    else:
        params, state = trained(net, params, X, G, OPTIMIZERS[kind](), steps)
    path = tmp_path_factory.mktemp("ckpt") / "run.npz"
    refnet.save(path, params, state, meta)
    params2, state2, meta2 = refnet.load(path)
    assert_tree_identical([tuple(layer) for layer in params], params2, "params")
    assert_tree_identical(state, state2)
    assert meta2 == meta and json.dumps(meta2) == json.dumps(meta)     # same values and same JSON types
    header = json.loads(str(np.load(path, allow_pickle=False)["header"]))
    assert header["sizes"] == net.sizes and header["dtype"] == dtype
    assert header["optimizer"] == (None if state is None else type(state).__name__)


def test_loaded_state_resumes_identically(tmp_path):
    """Training continued from a checkpoint equals training without the interruption, bit for bit."""
    net, params, state, X, G = small_run("averaged")
    refnet.save(tmp_path / "c.npz", params, state)
    opt = OPTIMIZERS["averaged"]()
    p1, s1 = opt.step(params, net.vjp(params, X, G), state)
    params2, state2, _ = refnet.load(tmp_path / "c.npz")
    p2, s2 = opt.step(params2, net.vjp(params2, X, G), state2)
    assert_tree_identical([tuple(l) for l in p1], [tuple(l) for l in p2], "params")
    assert_tree_identical(s1, s2)


def test_projected_state_after_steps_round_trips(tmp_path):
    net, params, _, X, G = small_run()
    opt = refnet.Projected(refnet.AveragedMomentum(0.05, 0.9), net, X, freeze=[1])
    params, state = trained(net, params, X, G, opt, 2)
    assert isinstance(state.info, refnet.FrozenInfo) and state.info.converged
    refnet.save(tmp_path / "p.npz", params, state, {"step": 2})
    _, state2, meta = refnet.load(tmp_path / "p.npz")
    assert_tree_identical(state, state2)
    assert meta == {"step": 2}


def test_other_backend_loads_as_numpy(tmp_path):
    net, params, state, _, _ = small_run()
    strict = lambda t: [(xs.asarray(W), xs.asarray(b)) for W, b in t]
    refnet.save(tmp_path / "s.npz", strict(params), refnet.MomentumState(strict(state.accumulation)))
    params2, state2, meta = refnet.load(tmp_path / "s.npz")
    assert_tree_identical([tuple(l) for l in params], params2, "params")
    assert_tree_identical(state, state2)
    assert meta is None


def test_numpy_scalars_in_state_round_trip(tmp_path):
    _, params, _, _, _ = small_run()
    info = refnet.FrozenInfo(np.float32(1.5), np.int64(3), 2, 5, np.bool_(True), 1e-5)
    refnet.save(tmp_path / "n.npz", params, refnet.ProjectedState(refnet.SGDState(), np.zeros(3), info))
    _, state, _ = refnet.load(tmp_path / "n.npz")
    assert type(state.info.residual) is np.float32 and state.info.residual == np.float32(1.5)
    assert type(state.info.iterations) is np.int64 and type(state.info.converged) is np.bool_


def test_path_is_used_as_given(tmp_path):
    _, params, _, _, _ = small_run()
    refnet.save(str(tmp_path / "plain"), params)
    assert (tmp_path / "plain").exists() and not (tmp_path / "plain.npz").exists()
    assert len(refnet.load(tmp_path / "plain")[0]) == 2


# ---------------------------------------------------------------------- no pickle
def test_pickle_is_never_needed(tmp_path, monkeypatch):
    net, params, state, X, G = small_run()
    opt = refnet.Projected(refnet.Momentum(0.05, 0.9), net, X)
    params, pstate = trained(net, params, X, G, opt, 1)
    refnet.save(tmp_path / "c.npz", params, pstate, {"a": [1, 2]})
    with np.load(tmp_path / "c.npz", allow_pickle=False) as data:       # every entry readable without pickle
        assert all(data[k].dtype != object for k in data.files)
    calls = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, lambda *a, **k: pytest.fail("pickle used"))
    refnet.load(tmp_path / "c.npz")
    assert calls and all(k.get("allow_pickle") is False for k in calls)


def test_pickled_file_is_refused_not_unpickled(tmp_path, monkeypatch):
    path = tmp_path / "evil.npz"
    np.savez(path, header=np.array([{"format": "refnet-checkpoint"}], dtype=object))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    with pytest.raises(ValueError, match="evil.npz"):
        refnet.load(path)


# ---------------------------------------------------------------------- damaged files
def checkpoint_bytes(tmp_path):
    _, params, state, _, _ = small_run()
    refnet.save(tmp_path / "good.npz", params, state, {"k": 1})
    return (tmp_path / "good.npz").read_bytes(), params, state


@pytest.mark.parametrize("keep", [0, 1, 22, 0.25, 0.5, 0.9, -1])
def test_truncated_file(tmp_path, keep):
    data, _, _ = checkpoint_bytes(tmp_path)
    n = keep if isinstance(keep, int) and keep >= 0 else (len(data) - 1 if keep == -1 else int(keep * len(data)))
    path = tmp_path / "cut.npz"
    path.write_bytes(data[:n])
    with pytest.raises(ValueError, match=r"checkpoint '.*cut\.npz'"):
        refnet.load(path)


def test_corrupted_array_bytes(tmp_path):
    """A flipped byte inside a weight's data fails the zip CRC check: ValueError, not wrong weights."""
    data, params, _ = checkpoint_bytes(tmp_path)
    raw = params[1][0].tobytes()
    at = data.find(raw)
    assert at > 0 and data.find(raw, at + 1) == -1
    for offset in (0, len(raw) // 2, len(raw) - 1):
        bad = bytearray(data)
        bad[at + offset] ^= 0x40
        (tmp_path / "bad.npz").write_bytes(bytes(bad))
        with pytest.raises(ValueError, match=r"bad\.npz.*(CRC|corrupt)"):
            refnet.load(tmp_path / "bad.npz")


def test_any_flipped_byte_is_caught_or_harmless(tmp_path):
    """Bytes spread over the file flipped in turn (all bits, or the lowest: the zip flag bit that
    marks a member encrypted made zipfile raise RuntimeError before io caught it): load either
    raises ValueError or returns the original contents exactly (bytes the zip format does not
    check, e.g. timestamps). A sweep over every byte with both masks passed when this was written."""
    data, params, state = checkpoint_bytes(tmp_path)
    path = tmp_path / "flip.npz"
    raised = 0
    for i, mask in [(i, m) for i in range(0, len(data), 29) for m in (0xFF, 0x01)] + [(len(data) - 1, 0xFF)]:
        bad = bytearray(data)
        bad[i] ^= mask
        path.write_bytes(bytes(bad))
        try:
            params2, state2, meta = refnet.load(path)
        except ValueError as e:
            assert "flip.npz" in str(e)
            raised += 1
            continue
        assert_tree_identical([tuple(l) for l in params], params2, "params")
        assert_tree_identical(state, state2)
        assert meta == {"k": 1}
    assert raised > len(data) // 60


@pytest.mark.parametrize("content, fragment", [
    (b"", "truncated, corrupted or not a refnet checkpoint"),
    (b"step,loss\n0,1.0\n", "truncated, corrupted or not a refnet checkpoint"),
    (b"PK\x03\x04" + b"\x00" * 40, "truncated, corrupted or not a refnet checkpoint"),
])
def test_wrong_type_file(tmp_path, content, fragment):
    path = tmp_path / "other.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=fragment) as info:
        refnet.load(path)
    assert "other.npz" in str(info.value)


def test_npy_and_foreign_npz_files(tmp_path):
    np.save(tmp_path / "a.npy", np.ones(3))
    with pytest.raises(ValueError, match=r"a\.npy.*single \.npy array"):
        refnet.load(tmp_path / "a.npy")
    np.savez(tmp_path / "b.npz", weights=np.ones(3))
    with pytest.raises(ValueError, match=r"b\.npz.*missing entry 'header'"):
        refnet.load(tmp_path / "b.npz")
    with zipfile.ZipFile(tmp_path / "c.npz", "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match=r"c\.npz.*missing entry 'header'"):
        refnet.load(tmp_path / "c.npz")
    with pytest.raises(ValueError, match=r"d\.npz' does not exist"):
        refnet.load(tmp_path / "d.npz")


def rewrite(tmp_path, edit):
    """Save a good checkpoint, let ``edit(entries, header, treedef)`` change it, write it back."""
    _, params, state, _, _ = small_run()
    refnet.save(tmp_path / "m.npz", params, state)
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        entries = {k: f[k] for k in f.files}
    header, treedef = json.loads(str(entries["header"])), json.loads(str(entries["treedef"]))
    edit(entries, header, treedef)
    entries["header"], entries["treedef"] = np.asarray(json.dumps(header)), np.asarray(json.dumps(treedef))
    np.savez(tmp_path / "m.npz", **entries)
    return tmp_path / "m.npz"


def _set(d, key, value):
    d[key] = value


MISMATCHES = [
    ("version", lambda e, h, t: _set(h, "version", 2), "format version 2 is not supported"),
    ("format", lambda e, h, t: _set(h, "format", "keras"), "does not identify a 'refnet-checkpoint' file"),
    ("dtype", lambda e, h, t: _set(h, "dtype", "float32"), "entry 'params.0.W' is float64 (3, 4); the header says float32"),
    ("dtype-unknown", lambda e, h, t: _set(h, "dtype", "int8"), "header dtype 'int8'"),
    ("sizes", lambda e, h, t: _set(h, "sizes", [3, 5, 2]), "entry 'params.0.W' is float64 (3, 4)"),
    ("sizes-bad", lambda e, h, t: _set(h, "sizes", [3]), "header sizes [3]"),
    ("missing-param", lambda e, h, t: e.pop("params.1.b"), "missing entry 'params.1.b'"),
    ("missing-state-array", lambda e, h, t: e.pop("state.accumulation.0.1"),
     "missing entry 'state.accumulation.0.1' named by treedef"),
    ("extra-entry", lambda e, h, t: _set(e, "junk", np.ones(2)), "unexpected entries ['junk']"),
    ("unknown-state-type", lambda e, h, t: _set(t, "type", "os.system"), "unknown state type 'os.system'"),
    ("state-fields", lambda e, h, t: _set(t, "fields", {"velocity": t["fields"]["accumulation"]}),
     "do not match refnet.optim.MomentumState fields ['accumulation']"),
    ("node-kind", lambda e, h, t: _set(t["fields"]["accumulation"], "kind", "set"), "treedef node kind 'set' is unknown"),
    ("optimizer-kind", lambda e, h, t: _set(h, "optimizer", "SGDState"),
     "header optimizer 'SGDState' does not match the stored state ('MomentumState')"),
    ("meta-not-dict", lambda e, h, t: _set(h, "meta", [1]), "header meta is a list"),
    ("header-not-json", lambda e, h, t: _set(e, "header", np.asarray("{oops")), "JSONDecodeError"),
    ("header-not-string", lambda e, h, t: _set(e, "header", np.ones(3)), "entry 'header' must be a JSON string"),
]


def _pop_layer(treedef):
    treedef["fields"]["accumulation"]["items"].pop()


# the header and every params entry agree; the optimizer state does not fit them
SHAPE_MISMATCHES = [
    ("buffer-transposed", lambda e, h, t: _set(e, "state.accumulation.0.0", e["state.accumulation.0.0"].T.copy()),
     "state.accumulation[0][0] must have shape (3, 4) like params[0][0], got (4, 3)"),
    ("buffer-same-size", lambda e, h, t: _set(e, "state.accumulation.1.0", e["state.accumulation.1.0"].reshape(2, 4)),
     "state.accumulation[1][0] must have shape (4, 2) like params[1][0], got (2, 4)"),     # sizes agree, shapes do not
    ("buffer-bias-2d", lambda e, h, t: _set(e, "state.accumulation.0.1", e["state.accumulation.0.1"][None]),
     "state.accumulation[0][1] must have shape (4,) like params[0][1], got (1, 4)"),
    ("buffer-layer-missing", lambda e, h, t: (_pop_layer(t), e.pop("state.accumulation.1.0"), e.pop("state.accumulation.1.1")),
     "state.accumulation must be a list of 2 (W, b) pairs like params, got list of length 1"),
    ("buffer-dtype", lambda e, h, t: _set(e, "state.accumulation.0.1", e["state.accumulation.0.1"].astype(np.float32)),
     "state.accumulation[0][1] has dtype float32 but params have dtype float64"),
]


@pytest.mark.parametrize("name, edit, fragment", SHAPE_MISMATCHES, ids=[m[0] for m in SHAPE_MISMATCHES])
def test_state_shapes_are_checked_against_the_params(tmp_path, name, edit, fragment):
    path = rewrite(tmp_path, edit)
    with pytest.raises(ValueError) as info:
        refnet.load(path)
    assert str(info.value).startswith(f"checkpoint {str(path)!r} is not a valid refnet checkpoint: {fragment}")


@pytest.mark.parametrize("c0, got", [(np.zeros((6, 1)), "a float64 array of shape (6, 1)"),
                                     (np.zeros(6, np.float32), "a float32 array of shape (6,)"),
                                     (0.5, "float")])
def test_projected_state_c0_must_be_a_vector(tmp_path, c0, got):
    _, params, state, _, _ = small_run()
    refnet.save(tmp_path / "p.npz", params, refnet.ProjectedState(state, c0, None))
    with pytest.raises(ValueError, match=r"p\.npz.*state\.frozen \(c0\) must be a float64 vector \(m,\)") as info:
        refnet.load(tmp_path / "p.npz")
    assert str(info.value).endswith(f"got {got}")


def test_nested_inner_state_is_checked(tmp_path):
    _, params, state, _, _ = small_run()
    bad = refnet.MomentumState([state.accumulation[0], (state.accumulation[1][0][:3], state.accumulation[1][1])])
    refnet.save(tmp_path / "q.npz", params, refnet.ProjectedState(bad, np.zeros(6), None))
    with pytest.raises(ValueError, match=r"q\.npz.*state\.inner\.accumulation\[1\]\[0\] must have shape \(4, 2\)"):
        refnet.load(tmp_path / "q.npz")


@pytest.mark.parametrize("name, edit, fragment", MISMATCHES, ids=[m[0] for m in MISMATCHES])
def test_mismatched_file(tmp_path, name, edit, fragment):
    if name.startswith("header-not"):            # these replace the header after rewrite() encodes it
        path = rewrite(tmp_path, lambda e, h, t: None)
        with np.load(path, allow_pickle=False) as f:
            entries = {k: f[k] for k in f.files}
        edit(entries, None, None)
        np.savez(path, **entries)
    else:
        path = rewrite(tmp_path, edit)
    with pytest.raises(ValueError) as info:
        refnet.load(path)
    assert "m.npz" in str(info.value) and fragment in str(info.value)


# ---------------------------------------------------------------------- atomic writes
def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    net, params, state, X, G = small_run()
    path = tmp_path / "c.npz"
    refnet.save(path, params, state, {"version": "old"})
    before = path.read_bytes()
    newer, _ = trained(net, params, X, G, refnet.SGD(0.1), 1)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)                       # crash between write and rename
    with pytest.raises(OSError, match="disk full"):
        refnet.save(path, newer, state, {"version": "new"})
    monkeypatch.undo()

    real_savez = np.savez

    def half_write(f, **arrays):                                   # crash in the middle of writing
        buf = io.BytesIO()
        real_savez(buf, **arrays)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", half_write)
    with pytest.raises(KeyboardInterrupt):
        refnet.save(path, newer, state, {"version": "new"})
    monkeypatch.undo()

    assert path.read_bytes() == before
    params2, state2, meta = refnet.load(path)
    assert meta == {"version": "old"}
    assert_tree_identical([tuple(l) for l in params], params2, "params")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]  # no temporary files left behind


def test_write_goes_through_fsync_and_replace(tmp_path, monkeypatch):
    """The new file is complete and synced before it replaces the old one, in the same directory."""
    _, params, state, _, _ = small_run()
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))

    def replace(src, dst):
        events.append("replace")
        assert os.path.dirname(os.path.abspath(src)) == os.path.dirname(os.path.abspath(dst))
        refnet.io.np.load(src, allow_pickle=False).close()          # a complete archive already
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    refnet.save(tmp_path / "c.npz", params, state)
    assert events[:2] == ["fsync", "replace"]


def test_saved_file_permissions_follow_umask(tmp_path):
    _, params, _, _, _ = small_run()
    refnet.save(tmp_path / "c.npz", params)
    (tmp_path / "plain").write_bytes(b"")
    assert (tmp_path / "c.npz").stat().st_mode == (tmp_path / "plain").stat().st_mode


def test_save_rejects_bad_state_before_writing(tmp_path):
    _, params, _, _, _ = small_run()
    refnet.save(tmp_path / "c.npz", params)
    before = (tmp_path / "c.npz").read_bytes()
    with pytest.raises(TypeError, match=r"state\.accumulation\[0\]\[0\] is a set"):
        refnet.save(tmp_path / "c.npz", params, refnet.MomentumState([({1}, None)]))
    assert (tmp_path / "c.npz").read_bytes() == before
    assert rio.STATE_TYPES["refnet.frozen.ProjectedState"] is refnet.ProjectedState


def test_encrypted_flag_is_a_value_error(tmp_path):
    """Setting the 'encrypted' bit of a central-directory entry made zipfile raise RuntimeError."""
    data, _, _ = checkpoint_bytes(tmp_path)
    at = data.find(b"PK\x01\x02") + 8                              # general purpose flag, bit 0
    bad = bytearray(data)
    bad[at] |= 0x01
    (tmp_path / "enc.npz").write_bytes(bytes(bad))
    with pytest.raises(ValueError, match=r"enc\.npz.*encrypted"):
        refnet.load(tmp_path / "enc.npz")
