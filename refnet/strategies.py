"""Hypothesis strategies for refnet's property tests and for testing your own port (public).

Needs the optional ``hypothesis`` dependency (``pip install "refnet[test]"``);
``import refnet`` does not import this module.

Networks: depth 1-4 layers, widths 1-8, every activation. Parameters are
fan-in scaled (``MLP.init`` with a drawn seed). Inputs are bounded, and
bounded away from tiny magnitudes (abs(x) in [0.1, 2]) so relative comparisons
stay meaningful. The hard cases, where cutoff bugs live (near-duplicate anchors,
saturated units, tiny and huge scales, widely scaled weights, m close to p,
square layers, widths of 1), are drawn by ``hard_problems`` (end of the module).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from hypothesis import strategies as st

import refnet
from refnet.nn import ACTIVATIONS

ACTIVATION_NAMES = sorted(ACTIVATIONS)
SMOOTH = ["identity", "sigmoid", "softplus", "tanh"]     # C-infinity: finite differences, retraction

widths = st.integers(1, 8)


@st.composite
def architectures(draw, min_layers=1, max_layers=4, activations=ACTIVATION_NAMES, min_out=1, max_width=8):
    """Strategy for a ``refnet.MLP``: sizes ``[n_0, ..., n_L]`` with ``L`` in ``[min_layers, max_layers]``.

    Parameters
    ----------
    min_layers, max_layers : int, default 1 and 4
        The range of the number of layers ``L``.
    activations : list of str, default every activation
        Hidden activations to draw from; the output activation is "identity"
        half of the time, else one of these.
    min_out : int, default 1
        The smallest output width ``n_L``.
    max_width : int, default 8
        The largest width of any layer (the smallest is 1).

    Returns
    -------
    hypothesis strategy of refnet.MLP

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> from refnet.strategies import architectures
    >>> @settings(max_examples=10, deadline=None, database=None)
    ... @given(architectures(max_layers=2, max_width=3))
    ... def check(net):
    ...     assert 2 <= len(net.sizes) <= 3 and max(net.sizes) <= 3
    >>> check()
    """
    L = draw(st.integers(min_layers, max_layers))
    sizes = [draw(st.integers(1, max_width)) for _ in range(L)] + [draw(st.integers(min_out, max_width))]
    return refnet.MLP(sizes, activation=draw(st.sampled_from(activations)),
                      output_activation=draw(st.sampled_from(["identity", "identity"] + list(activations))))


seeds = st.integers(0, 2**32 - 1)


def inputs(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """Inputs with magnitudes in [0.1, 2] and random signs (bounded away from 0).

    Parameters
    ----------
    rng : numpy.random.Generator
    n, d : int
        The number of samples and of input features.

    Returns
    -------
    ndarray, shape (n, d), float64

    Examples
    --------
    >>> import numpy as np
    >>> from refnet.strategies import inputs
    >>> x = inputs(np.random.default_rng(0), 4, 3)
    >>> x.shape, bool(np.all((0.1 <= abs(x)) & (abs(x) <= 2)))
    ((4, 3), True)
    """
    return rng.uniform(0.1, 2.0, (n, d)) * rng.choice([-1.0, 1.0], (n, d))


@st.composite
def problems(draw, min_layers=1, max_layers=4, activations=ACTIVATION_NAMES, max_n=6, min_out=1):
    """Strategy for ``(net, params, X, G)`` in float64 NumPy.

    ``net`` from :func:`architectures`, ``params`` from ``net.init`` with a
    drawn seed, ``X`` (n, n_0) from :func:`inputs` with ``n`` in ``[1, max_n]``,
    and ``G`` (n, n_L) a standard normal output gradient.

    Parameters
    ----------
    min_layers, max_layers, activations, min_out
        As :func:`architectures`.
    max_n : int, default 6
        The largest batch size.

    Returns
    -------
    hypothesis strategy of tuple (MLP, list of (W, b), ndarray, ndarray)

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> from refnet.strategies import problems
    >>> @settings(max_examples=10, deadline=None, database=None)
    ... @given(problems(max_layers=2))
    ... def check(problem):
    ...     net, params, X, G = problem
    ...     assert net.forward(params, X).shape == G.shape
    >>> check()
    """
    net = draw(architectures(min_layers, max_layers, activations, min_out=min_out))
    rng = np.random.default_rng(draw(seeds))
    params = net.init(seed=rng)
    n = draw(st.integers(1, max_n))
    X = inputs(rng, n, net.sizes[0])
    G = rng.standard_normal((n, net.sizes[-1]))
    return net, params, X, G


@st.composite
def frozen_subsets(draw, n_out: int, min_size=1):
    """Strategy for a subset of the output indices ``0..n_out-1``, in any order.

    Parameters
    ----------
    n_out : int
        The number of outputs ``n_L``.
    min_size : int, default 1
        The smallest subset size (capped at ``n_out``); the largest is ``n_out``.

    Returns
    -------
    hypothesis strategy of list of int
        Distinct indices, not necessarily sorted.

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> from refnet.strategies import frozen_subsets
    >>> @settings(max_examples=10, deadline=None, database=None)
    ... @given(frozen_subsets(4))
    ... def check(K):
    ...     assert 1 <= len(K) <= 4 and len(set(K)) == len(K) and set(K) <= {0, 1, 2, 3}
    >>> check()
    """
    k = draw(st.integers(min(min_size, n_out), n_out))
    return draw(st.permutations(range(n_out)))[:k]


learning_rates = st.floats(1e-3, 1.0)
momenta = st.floats(0.0, 0.99)


@st.composite
def grad_sequences(draw, max_steps=4, **problem_kw):
    """Strategy for ``(params, [grads_1, ..., grads_k])`` in float64 NumPy, for optimizer tests.

    ``k`` in ``[1, max_steps]`` standard normal gradient lists shaped like
    ``params`` (an optimizer needs no network to step).

    Parameters
    ----------
    max_steps : int, default 4
    **problem_kw
        Passed to :func:`problems`.

    Returns
    -------
    hypothesis strategy of tuple (list of (W, b), list of list of (dW, db))

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> import refnet
    >>> from refnet.strategies import grad_sequences
    >>> @settings(max_examples=10, deadline=None, database=None)
    ... @given(grad_sequences(max_layers=2))
    ... def check(case):
    ...     params, grads_seq = case
    ...     opt = refnet.AveragedMomentum(lr=0.1, momentum=0.9)
    ...     state = opt.init(params)
    ...     for grads in grads_seq:
    ...         params, state = opt.step(params, grads, state)
    >>> check()
    """
    _, params, _, _ = draw(problems(**problem_kw))
    rng = np.random.default_rng(draw(seeds))
    k = draw(st.integers(1, max_steps))
    return params, [[(rng.standard_normal(W.shape), rng.standard_normal(b.shape)) for W, b in params]
                    for _ in range(k)]


# ----------------------------------------------------------------------------- Hard cases
# Where cutoff bugs live: the strategies above keep inputs bounded away from tiny
# magnitudes and never draw ill-conditioned frozen-output Jacobians. These do, on
# purpose. Each problem is small (p <= ~250, m <= ~60) so that an oracle J (autograd)
# and its SVD stay cheap.

HARD_KINDS = ("near_duplicate", "saturated", "small_inputs", "huge_inputs", "scaled_weights",
              "m_close_to_p", "square", "width_one")


class HardProblem(NamedTuple):
    """A frozen-output problem in float64 NumPy, drawn by :func:`hard_problems`.

    ``m = len(freeze) * n_a`` constraints on ``p = net.n_params`` parameters.

    Attributes
    ----------
    net : refnet.MLP
    params : list of (W, b)
    X : ndarray, shape (n, n_0)
        The batch.
    G : ndarray, shape (n, n_L)
        An output gradient.
    freeze : list of int
        The frozen output indices ``K``.
    anchors : ndarray, shape (n_a, n_0)
    kind : str
        Which of ``HARD_KINDS`` made it hard.

    Examples
    --------
    >>> from refnet.strategies import HardProblem
    >>> HardProblem._fields
    ('net', 'params', 'X', 'G', 'freeze', 'anchors', 'kind')
    """
    net: Any
    params: list
    X: np.ndarray
    G: np.ndarray
    freeze: list
    anchors: np.ndarray
    kind: str


def anchors_near_duplicate(rng: np.random.Generator, n_base: int, d: int, gap: float = 1e-8) -> np.ndarray:
    r"""Anchors in near-duplicate pairs: ``n_base`` points, then each one moved by ``gap``.

    The moves are random directions of norm ``gap``. J gets singular values
    :math:`\sim \text{gap}\, s_\max`: below what a Gram matrix :math:`J J^T`
    resolves (:math:`\sqrt{m \epsilon}\, s_\max \approx 1.5 \cdot 10^{-8} \sqrt{m}\, s_\max`)
    for gap :math:`\lesssim 10^{-7}`, but well above the pseudo-inverse cutoff
    :math:`\max(m, p)\, \epsilon\, s_\max`.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_base, d : int
        The number of distinct points and of input features.
    gap : float, default 1e-8

    Returns
    -------
    ndarray, shape (2 n_base, d)
        Rows ``i`` and ``n_base + i`` are ``gap`` apart.

    Examples
    --------
    >>> import numpy as np
    >>> from refnet.strategies import anchors_near_duplicate
    >>> a = anchors_near_duplicate(np.random.default_rng(0), 2, 3, gap=1e-8)
    >>> a.shape, bool(np.allclose(np.linalg.norm(a[2:] - a[:2], axis=1), 1e-8, rtol=1e-6))
    ((4, 3), True)
    """
    base = inputs(rng, n_base, d)
    u = rng.standard_normal((n_base, d))
    return np.concatenate([base, base + gap * u / np.linalg.norm(u, axis=1, keepdims=True)])


@st.composite
def hard_problems(draw, kinds=HARD_KINDS, activations=SMOOTH + ["relu"], max_layers=3):
    """A HardProblem whose frozen-output Jacobian J (m, p) is ill-conditioned, rank-deficient
    or nearly square, drawn from ``kinds`` (a subset of HARD_KINDS):

    - near_duplicate: anchors in pairs 1e-6 .. 1e-10 apart (``anchors_near_duplicate``)
    - saturated:      first-layer weights x 10 .. 100 (sigmoid/tanh units saturate, their
                      derivatives underflow to ~eps)
    - small_inputs:   anchors and batch with abs(x) ~ 1e-6
    - huge_inputs:    anchors and batch with abs(x) ~ 1e3
    - scaled_weights: each layer's W, b scaled by 10^u, u uniform in [-3, 3]
    - m_close_to_p:   every output frozen on n_a anchors with m = n_L n_a within 3 of p
    - square:         every layer as wide as the input (n_0 = n_1 = ... = n_L)
    - width_one:      a hidden layer of width 1 (a bottleneck: J has rank <= a few)

    Parameters
    ----------
    kinds : sequence of str, default HARD_KINDS
    activations : list of str, default the smooth activations and relu
    max_layers : int, default 3

    Returns
    -------
    hypothesis strategy of HardProblem

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> import refnet
    >>> from refnet.strategies import hard_problems
    >>> @settings(max_examples=10, deadline=None, database=None)
    ... @given(hard_problems(kinds=["near_duplicate", "width_one"]))
    ... def check(hp):
    ...     J = hp.net.jacobian(hp.params, hp.anchors, outputs=hp.freeze)
    ...     assert J.shape == (len(hp.freeze) * len(hp.anchors), hp.net.n_params)
    >>> check()
    """
    kind = draw(st.sampled_from(list(kinds)))
    act = draw(st.sampled_from(list(activations)))
    out_act = draw(st.sampled_from(["identity", "identity", act]))
    rng = np.random.default_rng(draw(seeds))
    L = draw(st.integers(1, max_layers))
    sizes = [draw(st.integers(1, 6)) for _ in range(L + 1)]
    if kind == "square":
        sizes = [sizes[0]] * (L + 1)
    elif kind == "width_one":
        L = max(L, 2)
        sizes = [draw(st.integers(1, 6)) for _ in range(L + 1)]
        sizes[draw(st.integers(1, L - 1))] = 1
    elif kind == "m_close_to_p":
        L = min(L, 2)
        sizes = [draw(st.integers(1, 3)) for _ in range(L + 1)]
    net = refnet.MLP(sizes, activation=act, output_activation=out_act)
    params = net.init(seed=rng)
    n = draw(st.integers(1, 5))
    X = inputs(rng, n, sizes[0])
    K = list(draw(frozen_subsets(sizes[-1])))
    anchors = inputs(rng, draw(st.integers(1, 4)), sizes[0])
    if kind == "near_duplicate":
        gap = 10.0 ** -draw(st.integers(6, 10))
        anchors = anchors_near_duplicate(rng, draw(st.integers(1, 4)), sizes[0], gap)
    elif kind == "saturated":
        W1, b1 = params[0]
        params = [(W1 * draw(st.floats(10.0, 100.0)), b1)] + list(params[1:])
    elif kind in ("small_inputs", "huge_inputs"):
        scale = 1e-6 if kind == "small_inputs" else 1e3
        X, anchors = X * scale, anchors * scale
    elif kind == "scaled_weights":
        params = [(W * 10.0 ** rng.uniform(-3, 3), b * 10.0 ** rng.uniform(-3, 3)) for W, b in params]
    elif kind == "m_close_to_p":
        K = list(range(sizes[-1]))
        n_a = max(1, -(-net.n_params // sizes[-1]) + draw(st.integers(-1, 1)))   # n_L n_a ~ p
        anchors = inputs(rng, n_a, sizes[0])
    if draw(st.booleans()) and kind not in ("near_duplicate", "m_close_to_p"):
        anchors = X                                                               # the batch as anchors
    G = rng.standard_normal((X.shape[0], sizes[-1]))
    return HardProblem(net, params, X, G, K, anchors, kind)


# --------------------------------------------------------------------------- Ports
# Cases for refnet.conformance (checking your own implementation against refnet).


@st.composite
def conformance_cases(draw, kinds=None, max_layers=3, max_width=5, max_n=5):
    """Strategy for a ``refnet.conformance.Case``, the verification kit's unit of work.

    A case is plain data (architecture, seed, hard-case kind, frozen set, loss,
    optimizer and hyperparameters) from which every input array is made
    deterministically.

    Parameters
    ----------
    kinds : sequence of str, optional
        Defaults to all of ``refnet.conformance.cases.KINDS`` ("plain" first,
        so failures shrink towards a plain case).
    max_layers, max_width, max_n : int, default 3, 5 and 5
        Bounds on the depth, the widths and the batch size.

    Returns
    -------
    hypothesis strategy of refnet.conformance.Case

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> from refnet.strategies import conformance_cases
    >>> @settings(max_examples=10, deadline=None, database=None)
    ... @given(conformance_cases(kinds=["plain"]))
    ... def check(case):
    ...     assert case.kind == "plain" and 2 <= len(case.sizes) <= 4
    >>> check()
    """
    from refnet.conformance.cases import KINDS, Case
    L = draw(st.integers(1, max_layers))
    sizes = [draw(st.integers(1, max_width)) for _ in range(L + 1)]
    optimizer = draw(st.sampled_from(["averaged_momentum", "momentum", "sgd"]))
    momentum = draw(st.sampled_from([0.9, 0.5, 0.99]))
    return Case(sizes=tuple(sizes),
                activation=draw(st.sampled_from(["tanh"] + [a for a in ACTIVATION_NAMES if a != "tanh"])),
                output_activation=draw(st.sampled_from(["identity"] + [a for a in ACTIVATION_NAMES if a != "identity"])),
                seed=draw(st.integers(0, 2**16)),
                n=draw(st.integers(1, max_n)),
                kind=draw(st.sampled_from(list(KINDS if kinds is None else kinds))),
                freeze=tuple(draw(frozen_subsets(sizes[-1]))),
                lr=draw(st.sampled_from([0.1, 0.01, 0.5])),
                loss=draw(st.sampled_from(["mse", "softmax_cross_entropy"])),
                optimizer=optimizer, momentum=momentum,
                nesterov=optimizer == "momentum" and draw(st.booleans()),
                include_bias=optimizer == "averaged_momentum" and draw(st.booleans()),
                n_steps=draw(st.integers(2, 5)))
