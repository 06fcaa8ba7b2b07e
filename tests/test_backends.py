"""Every public function on every backend (issue 5, design.md section 3).

One small fixed scenario (3-5-4-2 tanh network, 6 samples, seed 0) is run on
each backend of the ``any_backend`` matrix (tests/backends.py: NumPy, both
``array_api_strict`` devices, float32 variants, PyTorch, JAX with x64, CuPy and
the CUDA builds when a GPU is present). Each case returns a nested structure of arrays; :func:`expect` (the
one place results are compared) checks that every returned array stayed on
the input's namespace, device and dtype, and agrees with the NumPy float64
reference (the same case run on the ``numpy`` backend) within the backend's
documented ``rtol``/``atol``.

Also here: bit-identical ``MLP.init(like=...)``, mixed namespaces/devices
raising ``TypeError`` that names the libraries, JAX tracers and JAX without x64
refused with a ``TypeError`` that says why, and the static rule that no array-code module names an
array library (see ``refnet/backend.py``).
"""
from __future__ import annotations

import ast
import functools
import importlib.util
import math
import pathlib

import array_api_compat
import numpy as np
import pytest

import refnet
from backends import ALL, GPU
from refnet.backend import to_numpy

SIZES, ACTIVATION, N, SEED, STEPS = [3, 5, 4, 2], "tanh", 6, 0, 3
NET = refnet.MLP(SIZES, activation=ACTIVATION)
REF = ALL["numpy"][0]()                         # NumPy float64: the reference backend


def _host_data():
    """X, regression targets T, probability targets P, output gradient G (float64, host)."""
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((N, SIZES[0]))
    T = rng.standard_normal((N, SIZES[-1]))
    P = rng.dirichlet(np.ones(SIZES[-1]), size=N)
    G = rng.standard_normal((N, SIZES[-1]))
    C = rng.standard_normal((2, 3, 4))          # a conv-like tensor for average_incoming
    return dict(X=X, T=T, P=P, G=G, C=C)


class Inputs:
    """The scenario's inputs on backend ``B``; params come from ``NET.init(like=X)``."""

    def __init__(self, B):
        host = _host_data()
        for k, v in host.items():
            setattr(self, k, B.asarray(v))
        self.anchors = B.asarray(host["X"][:4])  # 4 anchors: m = 4 per frozen output
        self.params = NET.init(seed=SEED, like=self.X)

    def grads(self, params):
        return NET.loss_and_grads(params, self.X, self.T)[1]


def _train(opt, inp):
    """init + STEPS steps on the mse loss; returns (params, state)."""
    params, state = inp.params, opt.init(inp.params)
    for _ in range(STEPS):
        params, state = opt.step(params, inp.grads(params), state)
    return params, state


def _projected(inner, method, retract=True):
    def case(inp):
        opt = refnet.Projected(inner, NET, inp.anchors, freeze=[0], method=method, retract=retract)
        return _train(opt, inp)
    return case


OPTIMIZERS = {
    "SGD": refnet.SGD(0.1),
    "Momentum": refnet.Momentum(0.1, 0.9),
    "Momentum[nesterov]": refnet.Momentum(0.1, 0.9, nesterov=True),
    "AveragedMomentum": refnet.AveragedMomentum(0.1, 0.9),
    "AveragedMomentum[include_bias]": refnet.AveragedMomentum(0.1, 0.9, include_bias=True),
}

# name -> case(inputs) -> a nested structure of arrays (and FrozenInfo)
CASES = {
    "init": lambda i: i.params,
    "forward": lambda i: NET.forward(i.params, i.X),
    "vjp": lambda i: NET.vjp(i.params, i.X, i.G),
    "loss_and_grads[mse]": lambda i: NET.loss_and_grads(i.params, i.X, i.T, loss="mse"),
    "loss_and_grads[softmax_cross_entropy]":
        lambda i: NET.loss_and_grads(i.params, i.X, i.P, loss="softmax_cross_entropy"),
    "jacobian": lambda i: NET.jacobian(i.params, i.X),
    "jacobian[outputs=[1, 0]]": lambda i: NET.jacobian(i.params, i.X, outputs=[1, 0]),
    "flatten/unflatten": lambda i: (refnet.flatten(i.params),
                                    refnet.unflatten(2.0 * refnet.flatten(i.params), like=i.params)),
    **{f"{name}.step": functools.partial(_train, opt) for name, opt in OPTIMIZERS.items()},
    "average_incoming": lambda i: (refnet.average_incoming(i.params[1][0]),
                                   refnet.average_incoming(i.params[1][0], axis=1),
                                   refnet.average_incoming(i.C, axis=(0, 1))),
    # P_in @ W_2 is the explicit form of average_incoming(W_2): dtype and device follow like
    "averaging_matrix": lambda i: (refnet.averaging_matrix(5, like=i.X),
                                   refnet.averaging_matrix(5, like=i.X) @ i.params[1][0]),
    **{f"project_out[{m}]": functools.partial(
        lambda m, i: refnet.project_out(NET, i.params, i.grads(i.params), i.anchors, outputs=[0], method=m), m)
       for m in ("gram", "dense")},
    **{f"frozen_step[{m}, retract={r}]": functools.partial(
        lambda m, r, i: refnet.frozen_step(NET, i.params, i.X, i.G, freeze=[0], lr=0.1, anchors=i.anchors,
                                           method=m, retract=r), m, r)
       for m in ("gram", "dense") for r in (True, False)},
    "Projected[gram, Momentum].step": _projected(refnet.Momentum(0.1, 0.9), "gram"),
    "Projected[dense, AveragedMomentum].step": _projected(refnet.AveragedMomentum(0.1, 0.9), "dense"),
    "Projected[gram, SGD, retract=False].step": _projected(refnet.SGD(0.1), "gram", retract=False),
    "masked_grads": lambda i: (refnet.masked_grads(NET, i.params, i.X, i.G, freeze=[0]),
                               refnet.masked_grads(NET, i.params, i.X, i.G, freeze=[0], head_only=True)),
}


@functools.lru_cache(maxsize=None)
def reference(case):
    """The case on NumPy float64, brought to host NumPy arrays (computed once)."""
    return _to_host(CASES[case](Inputs(REF)))


def _to_host(tree):
    if array_api_compat.is_array_api_obj(tree) and type(tree) not in (bool, int, float):
        return to_numpy(tree)                    # NumPy scalars (np.float64, a float subclass) too
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(_to_host(x) for x in tree))
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_host(x) for x in tree)
    return tree


def _where(B):
    """(namespace, device, dtype) that every result on backend B must keep."""
    x = B.asarray(np.zeros(1))
    return array_api_compat.array_namespace(x), array_api_compat.device(x), x.dtype


def expect(B, got, ref, path="result"):
    """THE comparison with the reference: same structure; every array on B's
    namespace, device and dtype, and within B.rtol/B.atol of the float64 value."""
    if isinstance(ref, np.ndarray):
        xp, dev, dtype = _where(B)
        assert array_api_compat.is_array_api_obj(got), f"{path}: expected an array, got {type(got).__name__}"
        assert array_api_compat.array_namespace(got) is xp, \
            f"{path}: left the input namespace: {array_api_compat.array_namespace(got).__name__} != {xp.__name__}"
        assert array_api_compat.device(got) == dev, \
            f"{path}: left the input device: {array_api_compat.device(got)!r} != {dev!r}"
        assert got.dtype == dtype, f"{path}: dtype {got.dtype} but the inputs are {dtype}"
        assert tuple(got.shape) == ref.shape, f"{path}: shape {tuple(got.shape)} != {ref.shape}"
        np.testing.assert_allclose(B.numpy(got), ref, rtol=B.rtol, atol=B.atol,
                                   err_msg=f"{path} on {B} differs from the NumPy float64 reference")
    elif isinstance(ref, refnet.FrozenInfo):
        assert isinstance(got, refnet.FrozenInfo), f"{path}: expected FrozenInfo, got {type(got).__name__}"
        for f in ("residual", "tol"):
            assert type(getattr(got, f)) is float, f"{path}.{f} must be a Python float"
        assert (got.rank, got.nullity) == (ref.rank, ref.nullity), f"{path}: rank/nullity differ"
        assert got.converged == ref.converged == (got.residual <= got.tol), f"{path}: converged is wrong"
        assert type(got.iterations) is int and 0 <= got.iterations <= 20
        if ref.iterations == 0:                  # retract=False measures only; then residual ~ lr^2, compare it
            assert got.iterations == 0
            assert got.residual == pytest.approx(ref.residual, rel=B.rtol, abs=B.atol)
    elif isinstance(ref, (list, tuple)):
        assert type(got) is type(ref) and len(got) == len(ref), \
            f"{path}: expected {type(ref).__name__} of length {len(ref)}, got {type(got).__name__}"
        names = getattr(ref, "_fields", None) or [f"[{k}]" for k in range(len(ref))]
        for name, g, r in zip(names, got, ref):
            expect(B, g, r, f"{path}.{name}" if not name.startswith("[") else path + name)
    else:
        assert got == ref, f"{path}: {got!r} != {ref!r}"


@pytest.mark.parametrize("case", list(CASES))
def test_public_function_on_backend(any_backend, case):
    expect(any_backend, CASES[case](Inputs(any_backend)), reference(case), case)


def test_expect_catches_wrong_values_devices_and_dtypes():
    """The comparison helper must fail on what it claims to check."""
    strict, dev1, f32 = ALL["strict"][0](), ALL["strict-device1"][0](), ALL["strict-float32"][0]()
    ref = np.array([1.0, 2.0])
    expect(strict, strict.asarray(ref), ref)
    for B, got in [(strict, strict.asarray(ref + 1e-8)),         # wrong value
                   (strict, dev1.asarray(ref)),                  # wrong device
                   (strict, f32.asarray(ref)),                   # wrong dtype
                   (strict, ref),                                # wrong namespace
                   (strict, [strict.asarray(ref)])]:             # wrong structure
        with pytest.raises(AssertionError):
            expect(B, got, ref)


# ------------------------------------------------------------------ init(like=)
def test_init_like_is_bit_identical(any_backend):
    """Weights are drawn on the host and moved bit for bit: the same numbers everywhere."""
    B = any_backend
    X = B.asarray(_host_data()["X"])
    params = NET.init(seed=SEED, like=X)
    host = NET.init(seed=SEED, dtype=B.dtype)
    ref64 = NET.init(seed=SEED)
    for (W, b), (hW, hb), (rW, rb) in zip(params, host, ref64):
        for got, want, ref in [(W, hW, rW), (b, hb, rb)]:
            assert got.dtype == X.dtype and array_api_compat.device(got) == array_api_compat.device(X)
            assert np.array_equal(B.numpy(got), want)
            assert np.array_equal(B.numpy(got), ref.astype(B.dtype))


# ------------------------------------------------------------ mixed arrays
def _backend(name):
    make, skip = ALL[name]
    if skip:
        pytest.skip(f"{name}: {skip}")
    return make()


MIXES = [("numpy", "strict", "librar"), ("strict", "numpy", "librar"), ("strict", "strict-device1", "device"),
         ("strict-device1", "strict", "device"), ("torch", "numpy", "librar"), ("numpy", "torch", "librar"),
         ("cupy", "numpy", "librar"), ("torch-cuda", "torch", "device"), ("torch", "torch-cuda", "device"),
         ("jax", "numpy", "librar"), ("numpy", "jax", "librar"), ("jax", "torch", "librar"),
         ("torch", "jax", "librar"), ("jax-cuda", "jax", "device")]


def _mixed_calls(a, b):
    """(argument name, call) pairs: params and everything else on ``a``, one argument on ``b``."""
    A, Bi = Inputs(a), Inputs(b)
    p, g = A.params, A.grads(A.params)
    gb = [(b.asarray(a.numpy(W)), b.asarray(a.numpy(v))) for W, v in g]
    return [
        ("X", lambda: NET.forward(p, Bi.X)),
        ("G", lambda: NET.vjp(p, A.X, Bi.G)),
        ("T", lambda: NET.loss_and_grads(p, A.X, Bi.T)),
        ("X", lambda: NET.jacobian(p, Bi.X)),
        ("params[0][1]", lambda: refnet.flatten([(p[0][0], Bi.params[0][1])] + p[1:])),
        ("v", lambda: refnet.unflatten(refnet.flatten(Bi.params), like=p)),
        ("grads", lambda: refnet.SGD(0.1).step(p, gb, refnet.SGD(0.1).init(p))),
        ("state.accumulation", lambda: refnet.Momentum(0.1).step(p, g, refnet.Momentum(0.1).init(Bi.params))),
        ("anchors", lambda: refnet.project_out(NET, p, g, Bi.anchors)),
        ("grads", lambda: refnet.project_out(NET, p, gb, A.anchors)),
        ("anchors", lambda: refnet.frozen_step(NET, p, A.X, A.G, freeze=[0], lr=0.1, anchors=Bi.anchors)),
        ("anchors", lambda: refnet.Projected(refnet.SGD(0.1), NET, Bi.anchors).init(p)),
        ("grads", lambda: refnet.Projected(refnet.SGD(0.1), NET, A.anchors).step(
            p, gb, refnet.Projected(refnet.SGD(0.1), NET, A.anchors).init(p))),
    ]


@pytest.mark.parametrize("a,b,what", [pytest.param(*m, id=f"{m[0]}+{m[1]}", marks=[pytest.mark.gpu] * bool(
    set(m[:2]) & set(GPU))) for m in MIXES])
def test_mixed_namespaces_and_devices_raise_type_error(a, b, what):
    """Arrays of two libraries, or of one library on two devices, are refused with a
    TypeError that names the offending argument and says what differs."""
    A, B = _backend(a), _backend(b)
    for arg, call in _mixed_calls(A, B):
        with pytest.raises(TypeError) as err:
            call()
        msg = str(err.value)
        assert arg in msg and what in msg, f"unclear message for {arg} ({a} + {b}): {msg}"


# The library as error messages name it (not its module: "JAX", not "jaxlib")
LIBRARY = {"numpy": "a NumPy", "strict": "an array_api_strict", "torch": "a PyTorch", "jax": "a JAX",
           "cupy": "a CuPy"}


@pytest.mark.parametrize("a,b", [("numpy", "jax"), ("jax", "numpy"), ("torch", "jax"), ("jax", "torch"),
                                 ("numpy", "torch"), ("torch", "numpy"), ("strict", "numpy"),
                                 ("numpy", "strict"), ("jax", "strict"),
                                 pytest.param("cupy", "numpy", marks=pytest.mark.gpu)])
def test_mixed_library_message_names_the_libraries(a, b):
    A, B = _backend(a), _backend(b)
    with pytest.raises(TypeError) as err:
        NET.forward(Inputs(A).params, Inputs(B).X)
    assert str(err.value) == (f"X is {LIBRARY[b]} array but params[0][0] is {LIBRARY[a]} array; "
                              f"pass arrays of one library")


# ------------------------------------------------------------------ JAX
def _jax_calls(jax, inp):
    """(what, the argument that is traced or None, call) running refnet inside a JAX transformation."""
    p, X, T, G, anchors = inp.params, inp.X, inp.T, inp.G, inp.anchors
    g = inp.grads(p)
    opt = refnet.Momentum(0.1, 0.9)
    return [
        ("vmap over rows", "X", lambda: jax.vmap(lambda x: NET.forward(p, x[None, :]))(X)),
        ("jit, traced X", "X", lambda: jax.jit(lambda X: NET.vjp(p, X, G))(X)),  # named before any sum
        ("jit, closed-over arrays", None, lambda: jax.jit(lambda: NET.forward(p, X))()),
        ("grad of the loss", "params[0][0]", lambda: jax.grad(lambda q: NET.loss_and_grads(q, X, T)[0])(p)),
        ("jit of jacobian", None, lambda: jax.jit(lambda: NET.jacobian(p, X))()),
        ("vmap of project_out", "anchors", lambda: jax.vmap(
            lambda a: refnet.project_out(NET, p, g, a[None, :]))(anchors)),
        ("jit of frozen_step", None, lambda: jax.jit(lambda: refnet.frozen_step(
            NET, p, X, G, freeze=[0], lr=0.1, anchors=anchors))()),
        ("jit of an optimizer step", "params[0][0]", lambda: jax.jit(lambda q: opt.step(q, g, opt.init(q)))(p)),
        ("vmap of average_incoming", "A", lambda: jax.vmap(refnet.average_incoming)(inp.C)),
    ]


def test_jax_transformations_raise_a_clear_type_error():
    """refnet decides on the host from concrete values, so jit/vmap/grad are refused up
    front, with a TypeError that says so (not JAX's ConcretizationTypeError, a TypeError
    subclass, nor "X is on device None") and names the traced argument when there is one."""
    B = _backend("jax")
    import jax
    for what, arg, call in _jax_calls(jax, Inputs(B)):
        with pytest.raises(TypeError) as err:
            call()
        msg = str(err.value)
        assert type(err.value) is TypeError, f"{what}: {type(err.value).__name__}: {msg}"
        assert "refnet cannot run inside jax.jit, jax.vmap, jax.grad" in msg and "concrete values" in msg, \
            f"{what}: {msg}"
        want = f"{arg} is a JAX tracer" if arg else "refnet was called inside a JAX transformation"
        assert msg.startswith(want), f"{what}: {msg}"


def test_jax_without_x64_is_refused():
    """Without jax_enable_x64 JAX silently makes float32 of float64 (params, the frozen-output
    linear algebra): refnet refuses JAX arrays then, naming the argument and the switch."""
    _backend("jax")
    import jax
    from backends import jax_x64
    host = _host_data()
    with jax_x64(False):
        X = jax.numpy.asarray(host["X"])                  # float32: the float64 data already lost
        G = jax.numpy.asarray(host["G"])
        assert X.dtype == jax.numpy.float32
        calls = [("like", lambda: NET.init(seed=SEED, like=X)),
                 ("like", lambda: NET.init(seed=SEED, dtype="float64", like=X)),
                 ("params[0][0]", lambda: NET.forward([(X[:3, :], X[0, :5]), (G[:5, :], G[0, :])], X)),
                 ("A", lambda: refnet.average_incoming(X)),
                 ("like", lambda: refnet.averaging_matrix(3, like=X))]
        for arg, call in calls:
            with pytest.raises(TypeError) as err:
                call()
            assert str(err.value).startswith(f"{arg} is a JAX array, and JAX has x64 disabled"), str(err.value)
            assert 'jax.config.update("jax_enable_x64", True)' in str(err.value)
        with pytest.raises(TypeError, match="X is a JAX array but params.0..0. is a NumPy array"):
            NET.forward(NET.init(seed=SEED), X)            # mixing libraries is the first problem
    assert jax.config.jax_enable_x64
    NET.init(seed=SEED, like=X)                            # the float32 array is accepted with x64 on


# --------------------------------------------------------------- save/load
def test_save_load_round_trip(any_backend, tmp_path):
    """Arrays of any backend are saved from the host and load back bit for bit."""
    B = any_backend
    inp = Inputs(B)
    params, state = _train(refnet.Momentum(0.1, 0.9), inp)
    path = tmp_path / "ckpt.npz"
    refnet.save(path, params, state=state)
    loaded, loaded_state, _ = refnet.load(path)
    want = _pairs(params) + _pairs(state.accumulation)
    got = _pairs(loaded) + _pairs(loaded_state.accumulation)
    assert len(got) == len(want)
    for (wW, wb), (gW, gb) in zip(want, got):
        for w, g in [(wW, gW), (wb, gb)]:
            assert g.dtype == w.dtype and np.array_equal(g, w)


def _pairs(tree):
    """[(W, b), ...] of any backend -> host NumPy copies."""
    return [(to_numpy(W), to_numpy(b)) for W, b in tree]


# ----------------------------------------------------------- static rule
REFNET = pathlib.Path(refnet.__file__).parent
LIBRARIES = {"array_api_compat", "array_api_strict", "cupy", "cupyx", "torch", "jax", "jaxlib", "tensorflow",
             "dask", "ndonnx", "sparse", "mlx", "numba"}
# Host-side modules: data made on the host, files, benchmarks, demos, the conformance kit.
# They may use NumPy freely (and receive arrays through refnet.backend.to_numpy).
HOST_SIDE = ("data.py", "io.py", "conformance.py", "conformance/*", "strategies.py", "docs.py", "datasets/*", "__main__.py", "bench*.py", "bench/*", "demos/*")
# Peer tools measure refnet against other libraries (torch.func) and on GPUs (CuPy), so they
# must create those arrays: they may import a library, but only inside a function, so that
# importing them never requires it.
PEER_TOOLS = ("bench*.py", "bench/*")
# Adapters are other libraries' ports (PyTorch, optax, Keras, TensorFlow) checked by the kit: each is a
# standalone file of that library's code, run by path and never imported by refnet, so the rule does
# not apply to them (test_adapters_are_not_imported_by_refnet pins the "never imported").
ADAPTERS = "conformance/adapters/"
# Host-side code inside an array module: function qualname -> why
HOST_FUNCTIONS = {"mlp.py": {"MLP.init": "random draws on the host with numpy.random.Generator"}}
# Methods NumPy arrays have but array-API arrays do not (use xp.<function>(x) instead).
NUMPY_ONLY_METHODS = {"astype", "copy", "flatten", "ravel", "dot", "tolist", "item", "numpy", "cpu", "cuda",
                      "detach", "reshape", "transpose", "squeeze", "sum", "mean", "max", "min", "any", "all",
                      "clip", "round", "fill", "sort", "argmax", "argmin", "std", "var", "cumsum", "prod",
                      "nonzero", "repeat", "swapaxes", "view", "tobytes"}


def _is_host_side(rel):
    return any(pathlib.PurePath(rel).match(p) for p in HOST_SIDE)


def _violations(rel, source):
    """The backend rule (refnet/backend.py docstring) applied to one module's source."""
    tree = ast.parse(source)
    out = []
    host_fns = HOST_FUNCTIONS.get(rel, {})
    array_module = not _is_host_side(rel)

    seen = set()

    peer_tool = any(pathlib.PurePath(rel).match(p) for p in PEER_TOOLS)

    def visit(node, qual, in_host_fn, in_fn=False):
        for child in ast.iter_child_nodes(node):
            q, host, fn = qual, in_host_fn, in_fn
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                q = f"{qual}.{child.name}" if qual else child.name
                host = in_host_fn or q in host_fns
                fn = in_fn or not isinstance(child, ast.ClassDef)
                seen.add(q)
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in child.names] if isinstance(child, ast.Import) else [child.module or ""]
                for mod in mods:
                    top = mod.split(".")[0]
                    if top in LIBRARIES and not (peer_tool and in_fn):
                        out.append(f"{rel}:{child.lineno} imports {mod}: only refnet/backend.py may "
                                   f"import an array library" + (" at module level" if peer_tool else ""))
                    elif top == "numpy" and array_module and rel not in HOST_FUNCTIONS:
                        out.append(f"{rel}:{child.lineno} imports numpy in array code: get xp from "
                                   f"refnet.backend.namespace and use array-API functions")
            elif isinstance(child, ast.Name) and array_module and child.id in numpy_names and not host:
                out.append(f"{rel}:{child.lineno} uses {child.id} (NumPy) outside the host-side functions "
                           f"{sorted(host_fns) or 'none'} of this array module")
            elif (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) and array_module
                  and not host and child.func.attr in NUMPY_ONLY_METHODS
                  and not (isinstance(child.func.value, ast.Name) and child.func.value.id == "xp")
                  and not (isinstance(child.func.value, ast.Attribute) and child.func.value.attr == "xp")):
                out.append(f"{rel}:{child.lineno} calls the method .{child.func.attr}(): array-API arrays have "
                           f"no such method; use xp.{child.func.attr}(x, ...) or an operator")
            visit(child, q, host, fn)

    numpy_names = {a.asname or a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                   for a in node.names if a.name.split(".")[0] == "numpy"}
    numpy_names |= {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    and (node.module or "").split(".")[0] == "numpy" for a in node.names}
    visit(tree, "", False)
    for fn in sorted(set(host_fns) - seen):      # an exemption for a function that no longer exists is stale
        out.append(f"{rel}: HOST_FUNCTIONS lists {fn}, which does not exist")
    return out


def test_only_backend_py_knows_array_libraries():
    """Only refnet/backend.py may import an array library; array modules use no
    NumPy (except named host-side functions) and no NumPy-only array methods."""
    problems = []
    for path in sorted(REFNET.rglob("*.py")):
        rel = path.relative_to(REFNET).as_posix()
        if rel != "backend.py" and not rel.startswith(ADAPTERS):
            problems += _violations(rel, path.read_text())
    assert not problems, "backend rule violated:\n" + "\n".join(problems)


def test_adapters_are_not_imported_by_refnet():
    """Importing refnet (and its kit) loads no adapter, so no peer library is needed to use it."""
    import subprocess
    import sys
    code = ("import sys, refnet, refnet.conformance, refnet.conformance.cli; "
            "print([m for m in sys.modules if m.startswith('refnet.conformance.adapters.') "
            "or m.split('.')[0] in ('optax', 'keras', 'tensorflow')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


@pytest.mark.parametrize("source,rel,bad", [
    ("import torch\n", "data.py", True),                          # no library import, even host-side
    ("import array_api_compat.numpy as n\n", "optim.py", True),
    ("import numpy as np\n", "optim.py", True),                   # NumPy in array code
    ("from numpy import zeros\n", "frozen.py", True),
    ("import numpy as np\ndef f(x):\n    return np.zeros(3)\n", "mlp.py", True),   # outside MLP.init
    ("import numpy as np\nclass MLP:\n    def init(self):\n        return np.zeros(3)\n", "mlp.py", False),
    ("def f(xp, A):\n    return A.sum(axis=0)\n", "nn.py", True),    # NumPy-only method
    ("def f(xp, A):\n    return xp.sum(A, axis=0) + A.T @ A\n", "nn.py", False),
    ("import numpy as np\nX = np.zeros(3).sum()\n", "data.py", False),  # host-side module
    ("import numpy as np\n", "demos/frozen.py", False),
    ("import cupy\n", "bench.py", True),                          # peer tool: not at module level
    ("def case():\n    import cupy\n", "bench.py", False),         # ... but inside a function
    ("def case():\n    import torch\n", "conformance.py", True),
])
def test_backend_rule_checker(source, rel, bad):
    """The static checker flags exactly what the rule forbids."""
    if rel == "mlp.py" and "class MLP" not in source:
        source += "class MLP:\n    def init(self):\n        pass\n"
    assert bool(_violations(rel, source)) == bad, _violations(rel, source)
