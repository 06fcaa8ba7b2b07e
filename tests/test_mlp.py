"""The MLP against independent oracles (HIPS autograd, finite differences), float64."""
import autograd
import numpy as np
import pytest
from hypothesis import given, strategies as st

import refnet
import oracles
from refnet.strategies import SMOOTH, problems


def rel_err(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


@given(problems())
def test_vjp_equals_autograd(backend, prob):
    net, params, X, G = prob
    flat = np.asarray(refnet.flatten(params))
    oracle = autograd.grad(lambda t: np.sum(oracles.forward(net, t, X) * G))(flat)
    ours = backend.numpy(refnet.flatten(net.vjp(backend.params(params), backend.asarray(X), backend.asarray(G))))
    np.testing.assert_allclose(ours, oracle, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(oracle).max()))


@given(problems(), st.sampled_from(["mse", "softmax_cross_entropy"]), st.integers(0, 2**31))
def test_loss_and_grads_equal_autograd(backend, prob, loss, seed):
    net, params, X, _ = prob
    rng = np.random.default_rng(seed)
    if loss == "mse":
        T = rng.standard_normal((X.shape[0], net.sizes[-1]))
    else:
        T = rng.dirichlet(np.ones(net.sizes[-1]), size=X.shape[0])
    f = lambda t: getattr(oracles, loss)(oracles.forward(net, t, X), T)
    flat = np.asarray(refnet.flatten(params))
    L, grads = net.loss_and_grads(backend.params(params), backend.asarray(X), backend.asarray(T), loss=loss)
    assert abs(float(L) - f(flat)) <= 1e-12 * max(1.0, abs(f(flat)))
    oracle = autograd.grad(f)(flat)
    np.testing.assert_allclose(backend.numpy(refnet.flatten(grads)), oracle, rtol=1e-10,
                               atol=1e-12 * max(1.0, np.abs(oracle).max()))


@given(problems())
def test_jacobian_equals_autograd(backend, prob):
    net, params, X, _ = prob
    flat = np.asarray(refnet.flatten(params))
    # autograd.jacobian of Y (n, n_L) wrt theta is (n, n_L, p); refnet rows are output-major (k, i)
    oracle = autograd.jacobian(lambda t: oracles.forward(net, t, X))(flat)
    oracle = np.transpose(oracle, (1, 0, 2)).reshape(-1, flat.size)
    ours = backend.numpy(net.jacobian(backend.params(params), backend.asarray(X)))
    np.testing.assert_allclose(ours, oracle, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(oracle).max()))


@given(problems(activations=SMOOTH), st.integers(0, 2**31))
def test_directional_central_differences(prob, seed):
    net, params, X, G = prob
    flat = np.asarray(refnet.flatten(params))
    v = np.random.default_rng(seed).standard_normal(flat.size)
    f = lambda t: float(np.sum(net.forward(refnet.unflatten(t, params), X) * G))
    fd = oracles.central_difference(f, flat, v)
    ours = float(np.dot(np.asarray(refnet.flatten(net.vjp(params, X, G))), v))
    assert abs(ours - fd) <= 1e-6 * max(1.0, abs(fd), np.abs(v).sum() * np.abs(G).sum())


@given(problems())
def test_flatten_round_trips(backend, prob):
    _, params, _, _ = prob
    p = backend.params(params)
    back = refnet.unflatten(refnet.flatten(p), p)
    for (W, b), (W2, b2) in zip(params, back):
        assert np.array_equal(backend.numpy(W2), W) and np.array_equal(backend.numpy(b2), b)


@pytest.mark.parametrize("activation,gain2", [("relu", 2.0), ("tanh", 1.0)])
def test_init_variances_are_fan_in_with_the_documented_gain(activation, gain2):
    """W_l ~ Normal(0, gain^2 / n_{l-1}): gain^2 = 2 for relu hidden layers (He), 1 otherwise (the
    identity output layer too); b_l = 0. A non-square net tells fan-in (n_{l-1}) from fan-out (n_l).
    Sample variance of N draws: relative standard error sqrt(2 / N) <= 1.6% here, the bound 10%."""
    net = refnet.MLP([40, 160, 30, 5], activation=activation)
    params = net.init(seed=0)
    for l, (W, b) in enumerate(params, start=1):
        n_in = net.sizes[l - 1]
        expected = (gain2 if l < len(params) else 1.0) / n_in                    # hidden: gain^2, output: 1
        assert abs(np.mean(W ** 2) / expected - 1.0) <= 0.1, (l, np.mean(W ** 2), expected)
        assert abs(np.mean(W)) <= 5 * np.sqrt(expected / W.size)
        assert not np.any(b)
