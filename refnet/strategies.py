"""Hypothesis strategies for refnet's property tests and for testing your own port (public).

Needs the optional ``hypothesis`` dependency (``pip install "refnet[test]"``);
``import refnet`` does not import this module.

Networks: depth 1-4 layers, widths 1-8, every activation. Parameters are
fan-in scaled (``MLP.init`` with a drawn seed). Inputs are bounded, and
bounded away from tiny magnitudes (|x| in [0.1, 2]) so relative comparisons
stay meaningful.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import refnet
from refnet.nn import ACTIVATIONS

ACTIVATION_NAMES = sorted(ACTIVATIONS)
SMOOTH = ["identity", "sigmoid", "softplus", "tanh"]     # C-infinity: finite differences, retraction

widths = st.integers(1, 8)


@st.composite
def architectures(draw, min_layers=1, max_layers=4, activations=ACTIVATION_NAMES, min_out=1, max_width=8):
    """An MLP: sizes [n_0, ..., n_L] with L in [min_layers, max_layers]."""
    L = draw(st.integers(min_layers, max_layers))
    sizes = [draw(st.integers(1, max_width)) for _ in range(L)] + [draw(st.integers(min_out, max_width))]
    return refnet.MLP(sizes, activation=draw(st.sampled_from(activations)),
                      output_activation=draw(st.sampled_from(["identity", "identity"] + list(activations))))


seeds = st.integers(0, 2**32 - 1)


def inputs(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """(n, d) inputs with |x| in [0.1, 2] and random signs."""
    return rng.uniform(0.1, 2.0, (n, d)) * rng.choice([-1.0, 1.0], (n, d))


@st.composite
def problems(draw, min_layers=1, max_layers=4, activations=ACTIVATION_NAMES, max_n=6, min_out=1):
    """(net, params, X, G) in float64 NumPy: G is a random output gradient."""
    net = draw(architectures(min_layers, max_layers, activations, min_out=min_out))
    rng = np.random.default_rng(draw(seeds))
    params = net.init(seed=rng)
    n = draw(st.integers(1, max_n))
    X = inputs(rng, n, net.sizes[0])
    G = rng.standard_normal((n, net.sizes[-1]))
    return net, params, X, G


@st.composite
def frozen_subsets(draw, n_out: int, min_size=1):
    """A sorted-or-not subset of output indices, of size in [min_size, n_out]."""
    k = draw(st.integers(min(min_size, n_out), n_out))
    return draw(st.permutations(range(n_out)))[:k]


learning_rates = st.floats(1e-3, 1.0)
momenta = st.floats(0.0, 0.99)


@st.composite
def grad_sequences(draw, max_steps=4, **problem_kw):
    """(params, [grads_1, ..., grads_k]) in float64 NumPy: k in [1, max_steps] random
    gradient lists shaped like params (an optimizer needs no network to step)."""
    _, params, _, _ = draw(problems(**problem_kw))
    rng = np.random.default_rng(draw(seeds))
    k = draw(st.integers(1, max_steps))
    return params, [[(rng.standard_normal(W.shape), rng.standard_normal(b.shape)) for W, b in params]
                    for _ in range(k)]
