"""float32: results agree with float64 within the documented tolerance, and stay float32.

Tolerance (the site's errors page, tutorials/errors.md "Tolerances"; tests/backends.py ``F32``): elementwise
``|x32 - x64| <= atol + rtol |x64|`` with rtol 2e-4, atol 2e-5 on the test
networks (depth <= 4, width <= 8, |x| <= 2, fan-in scaled weights). The float64
side is an independent oracle: HIPS autograd on the forward pass written in
``autograd.numpy`` (tests/oracles.py), fed the original float64 numbers, so the
error measured is everything float32 costs (rounding the inputs and the
arithmetic). Measured over ~15 000 hypothesis examples: worst error
~1e-6 * max(1, max|x64|), i.e. the atol actually used is below 2e-6.
"""
import autograd
import pathlib

import numpy as np
import pytest
from hypothesis import given, strategies as st

import refnet
import oracles
from backends import ALL
from refnet.backend import namespace
from refnet.data import seed_regression
from refnet.strategies import problems

F32_BACKENDS = ["numpy-float32", "strict-float32"]


@pytest.fixture(scope="module", params=F32_BACKENDS)
def f32(request):
    """A float32 backend (numpy or array_api_strict); ``.rtol``/``.atol`` are the documented F32 tolerance."""
    return ALL[request.param][0]()


def assert_close(f32, got, oracle, what):
    got = f32.numpy(got)
    assert got.dtype == np.float32, f"{what}: dtype {got.dtype}"
    np.testing.assert_allclose(got, oracle, rtol=f32.rtol, atol=f32.atol, err_msg=what)


def targets(rng, n, n_out, loss):
    """mse: normal targets; softmax_cross_entropy: probability rows that are exact in float32 (multiples of 1/16)."""
    if loss == "mse":
        return rng.standard_normal((n, n_out))
    return rng.multinomial(16, np.full(n_out, 1.0 / n_out), size=n) / 16.0


@given(problems())
def test_forward_float32_matches_float64_oracle(f32, prob):
    net, params, X, _ = prob
    oracle = oracles.forward(net, np.asarray(refnet.flatten(params)), X)
    assert_close(f32, net.forward(f32.params(params), f32.asarray(X)), oracle, "forward")


@given(problems())
def test_vjp_float32_matches_float64_oracle(f32, prob):
    net, params, X, G = prob
    oracle = autograd.grad(lambda t: np.sum(oracles.forward(net, t, X) * G))(np.asarray(refnet.flatten(params)))
    got = refnet.flatten(net.vjp(f32.params(params), f32.asarray(X), f32.asarray(G)))
    assert_close(f32, got, oracle, "vjp")


@given(problems(), st.sampled_from(["mse", "softmax_cross_entropy"]), st.integers(0, 2**31))
def test_loss_and_grads_float32_match_float64_oracle(f32, prob, loss, seed):
    net, params, X, _ = prob
    T = targets(np.random.default_rng(seed), X.shape[0], net.sizes[-1], loss)
    f = lambda t: getattr(oracles, loss)(oracles.forward(net, t, X), T)
    flat = np.asarray(refnet.flatten(params))
    L, grads = net.loss_and_grads(f32.params(params), f32.asarray(X), f32.asarray(T), loss=loss)
    assert_close(f32, L, f(flat), "loss")
    assert_close(f32, refnet.flatten(grads), autograd.grad(f)(flat), "grads")


@given(problems())
def test_jacobian_float32_matches_float64_oracle(f32, prob):
    net, params, X, _ = prob
    flat = np.asarray(refnet.flatten(params))
    oracle = autograd.jacobian(lambda t: oracles.forward(net, t, X))(flat)      # (n, n_L, p)
    oracle = np.transpose(oracle, (1, 0, 2)).reshape(-1, flat.size)             # output-major rows
    assert_close(f32, net.jacobian(f32.params(params), f32.asarray(X)), oracle, "jacobian")


def test_tolerance_is_the_documented_one(f32):
    """The numbers used above are those the site's errors page states; changing one means changing both."""
    page = (pathlib.Path(__file__).parents[1] / "tutorials" / "errors.md").read_text()
    short = lambda x: f"{x:.0e}".replace("e-0", "e-")                       # 2e-4, as the page writes it
    assert f"rtol {short(f32.rtol)}, atol {short(f32.atol)}" in page, "tutorials/errors.md states other float32 tolerances"


# --------------------------------------------------------- no float64 creeping in
def arrays_in(tree):
    """Every array in a nested structure of lists/tuples/NamedTuples (floats and ints skipped)."""
    if isinstance(tree, (list, tuple)):
        return [a for x in tree for a in arrays_in(x)]
    return [tree] if hasattr(tree, "dtype") else []


def assert_float32(tree, what, expect=1):
    """All arrays in ``tree`` are float32 (and there are at least ``expect`` of them)."""
    arrays = arrays_in(tree)
    assert len(arrays) >= expect, f"{what}: expected arrays, found {len(arrays)}"
    for a in arrays:
        xp = namespace({"a": a})
        assert a.dtype == xp.float32, f"{what}: an array of dtype {a.dtype}"


@pytest.fixture(scope="module")
def seed_problem(f32):
    """The seed-1 network 3-4-2 in float32 on ``f32``: (net, params, X, T, G)."""
    X, T = seed_regression(n=8, seed=1)
    net = refnet.MLP([3, 4, 2], activation="sigmoid")
    params = f32.params(net.init(seed=0))
    G = f32.asarray(np.tile([0.0, -1.0], (8, 1)))
    return net, params, f32.asarray(X), f32.asarray(T), G


def test_mlp_outputs_are_float32(f32, seed_problem):
    net, params, X, T, G = seed_problem
    assert_float32(net.init(seed=0, dtype="float32"), "init(dtype='float32')", 4)
    assert_float32(net.init(seed=0, like=X), "init(like=X32)", 4)
    assert_float32(net.forward(params, X), "forward")
    assert_float32(net.vjp(params, X, G), "vjp", 4)
    assert_float32(net.jacobian(params, X, outputs=[1, 0]), "jacobian")
    for loss, TT in [("mse", T), ("softmax_cross_entropy", f32.asarray(np.full((8, 2), 0.5)))]:
        assert_float32(net.loss_and_grads(params, X, TT, loss=loss), f"loss_and_grads({loss})", 5)
    v = refnet.flatten(params)
    assert_float32(v, "flatten")
    assert_float32(refnet.unflatten(v, like=params), "unflatten", 4)


OPTIMIZERS = [
    refnet.SGD(np.float64(0.1)),                      # NumPy scalars would promote float32 arrays to float64
    refnet.Momentum(np.float64(0.1), np.float64(0.9)),
    refnet.Momentum(0.1, 0.9, nesterov=True),
    refnet.AveragedMomentum(0.1, 0.9),
    refnet.AveragedMomentum(0.1, 0.9, include_bias=True),
]


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=repr)
def test_optimizer_states_and_steps_are_float32(f32, seed_problem, opt):
    net, params, X, T, _ = seed_problem
    state = opt.init(params)
    assert_float32(state, "init state", 0)
    for _ in range(2):                                # the second step reads a non-zero buffer
        _, grads = net.loss_and_grads(params, X, T)
        U, _ = opt.update(grads, state, params)
        assert_float32(U, "update", 4)
        params, state = opt.step(params, grads, state)
        assert_float32(params, "step params", 4)
        assert_float32(state, "step state", 0 if isinstance(opt, refnet.SGD) else 4)


def test_averaging_helpers_are_float32(f32):
    A = f32.asarray(np.arange(12.0).reshape(4, 3))
    assert_float32(refnet.average_incoming(A, axis=0), "average_incoming")
    assert_float32(refnet.averaging_matrix(4, dtype="float32", like=A), "averaging_matrix")


@pytest.mark.parametrize("method", ["gram", "dense"])
def test_frozen_results_are_float32(f32, seed_problem, method):
    net, params, X, T, G = seed_problem
    grads = net.vjp(params, X, G)
    assert_float32(refnet.project_out(net, params, grads, X, outputs=[0], method=method), "project_out", 4)
    new, info = refnet.frozen_step(net, params, X, G, freeze=[0], lr=0.1, method=method)
    assert_float32(new, "frozen_step params", 4)
    assert info.converged and info.residual <= info.tol
    # the frozen output really stayed put, to the float32 default tolerance 1e-5 max(1, max|c0|)
    y0, y1 = f32.numpy(net.forward(params, X))[:, 0], f32.numpy(net.forward(new, X))[:, 0]
    assert np.max(np.abs(y1 - y0)) <= 1e-5 * max(1.0, np.max(np.abs(y0)))
    assert_float32(refnet.masked_grads(net, params, X, G, freeze=[0]), "masked_grads", 4)
    opt = refnet.Projected(refnet.Momentum(0.1, 0.9), net, X, freeze=[0], method=method)
    state = opt.init(params)
    assert_float32(state, "Projected.init state", 5)
    new, state = opt.step(params, grads, state)
    assert_float32(new, "Projected.step params", 4)
    assert_float32(state, "Projected.step state", 5)
