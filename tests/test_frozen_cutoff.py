"""The singular-value cutoff (refnet.frozen.default_rtol; design notes section 2, "Cutoffs"): derived from
J's rounding error (the lengths of the sums that build it, never p), the ``rtol=`` keyword on every
entry point, and the "rank ambiguous" ProjectionAccuracyWarning on every route.

Oracle: numpy's SVD of the J that refnet's float32 backprop computes, in float64 (what the
definition is applied to), and of the autograd J where float64 is concerned.
"""
import math

import numpy as np
import pytest

import refnet
from refnet import frozen
from refnet.frozen import _Linearization

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)
ROUTES = ["gram", "dense"]


def theta_of(tree):
    return np.concatenate([np.ravel(np.asarray(x, dtype=np.float64)) for W, b in tree for x in (W, b)])


# ----------------------------------------------------------------------------- the formula
def test_default_rtol_is_10_sqrt_m_k_eps():
    """k: forward sums n_{l-1} + 1 (l = 1..L), backward sums n_l (l = 2..L), written out by hand."""
    net = refnet.MLP([64, 1024, 1024, 10])
    k = (64 + 1) + (1024 + 1) + (1024 + 1) + 1024 + 10                              # 3149
    assert frozen.default_rtol(net, 8, "float32") == pytest.approx(10 * math.sqrt(8 * k) * EPS32, rel=1e-12)
    assert frozen.default_rtol(net, 8, np.float64) == pytest.approx(10 * math.sqrt(8 * k) * EPS64, rel=1e-12)
    assert frozen.default_rtol(refnet.MLP([3, 2]), 1, np.dtype("float64")) == pytest.approx(10 * 2 * EPS64)


def test_default_rtol_does_not_grow_with_p():
    """Same sum lengths, 5x the parameters: same cutoff. The 17.1 M-parameter float32 net keeps s >= 4e-4 s_1
    (the former max(m, p) eps32 was 2.04, above s_1: rank 0)."""
    a, b = refnet.MLP([100, 10, 1]), refnet.MLP([10, 100, 1])                       # k = 113 both
    assert b.n_params > a.n_params and frozen.default_rtol(a, 4, "float64") == frozen.default_rtol(b, 4, "float64")
    big = refnet.MLP([64, 4096, 4096, 10])
    assert big.n_params > 17_000_000 and frozen.default_rtol(big, 8, "float32") < 4e-4


# ----------------------------------------------------------------------------- float32: a direction float32 resolves
def window_case(ratio):
    """MLP([64, 64, 1], tanh) in float32, two anchors whose gap puts s_2 / s_1 at ``ratio``
    (s_2 is linear in the gap). Returns net, params, anchors, J (float64 of refnet's float32 J), s, Vt."""
    net = refnet.MLP([64, 64, 1], "tanh")
    params = net.init(seed=0, dtype="float32")
    rng = np.random.default_rng(0)
    base, u = rng.uniform(-1, 1, (1, 64)), rng.standard_normal((1, 64))
    u /= np.linalg.norm(u)

    def spectrum(gap):
        A = np.concatenate([base, base + gap * u]).astype(np.float32)
        J = net.jacobian(params, A, [0]).astype(np.float64)
        _, s, Vt = np.linalg.svd(J, full_matrices=False)
        return A, J, s, Vt

    *_, s, _ = spectrum(1e-2)
    A, J, s, Vt = spectrum(1e-2 * ratio / (s[1] / s[0]))
    return net, params, A, J, s, Vt


@pytest.mark.parametrize("method", ROUTES)
def test_float32_keeps_a_direction_the_p_based_cutoff_dropped(method):
    """s_2 = 3.1e-4 s_1: below the former max(m, p) eps32 = 5.0e-4 (p = 4225: rank 1, the direction leaked),
    16x above rtol = 1.9e-5 (not ambiguous). Every route: rank 2, |J g_perp| at float32 accuracy
    (<= rtol s_1 |g|, rtol = 10x J's rounding) with g mostly along v_2, and frozen_step converges."""
    net, params, A, J, s, Vt = window_case(3.1e-4)
    m, p = J.shape
    rtol = frozen.default_rtol(net, m, "float32")
    assert 10 * rtol < s[1] / s[0] < max(m, p) * EPS32                           # the window: old drops, new keeps
    lin = _Linearization(net, np, params, A, [0], method)
    assert lin.rank == 2 and lin.warning is None, (lin.route, lin.rank)
    g = (Vt[1] + 0.1 * np.random.default_rng(1).standard_normal(p) / math.sqrt(p)).astype(np.float32)
    gp = theta_of(refnet.project_out(net, params, refnet.unflatten(g, params), A, [0], method=method))
    assert np.linalg.norm(J @ gp) <= rtol * s[0] * np.linalg.norm(g)             # the old leak: ~0.9 s_2 |g|
    X = np.random.default_rng(2).uniform(-1, 1, (4, 64)).astype(np.float32)
    G = np.ones((4, 1), np.float32)
    new, info = refnet.frozen_step(net, params, X, G, [0], 0.05, anchors=A, method=method)
    assert info.converged and info.rank == 2 and info.warning is None
    c0, c1 = (net.forward([(W.astype(np.float64), b.astype(np.float64)) for W, b in q], A.astype(np.float64))
              for q in (params, new))
    assert np.abs(c1 - c0).max() <= info.tol + 8 * EPS32 * np.abs(c0).max()


@pytest.mark.parametrize("method", ROUTES)
def test_rtol_keyword_sets_the_cutoff(method):
    """rtol = 5e-3 (16x above s_2) puts s_2 = 3.1e-4 s_1 below the cutoff on every entry point: rank 1, and the projection
    keeps v_2's component."""
    net, params, A, J, s, Vt = window_case(3.1e-4)
    assert _Linearization(net, np, params, A, [0], method, rtol=5e-3).rank == 1
    g = Vt[1].astype(np.float32)
    gp = theta_of(refnet.project_out(net, params, refnet.unflatten(g, params), A, [0], method=method, rtol=5e-3))
    assert abs(gp @ Vt[1]) > 0.99                                                # v_2 is not projected out
    _, info = refnet.frozen_step(net, params, A, np.ones((2, 1), np.float32), [0], 1e-3, method=method,
                                 rtol=5e-3, retract=False)
    assert info.rank == 1
    opt = refnet.Projected(refnet.SGD(1e-3), net, A, freeze=[0], method=method, rtol=5e-3, retract=False)
    _, state = opt.step(params, net.vjp(params, A, np.ones((2, 1), np.float32)), opt.init(params))
    assert state.info.rank == 1


@pytest.mark.parametrize("rtol", [0.0, -1e-3, 1.0, 2.0, math.inf, math.nan])
def test_rtol_outside_0_1_is_refused(rtol):
    net = refnet.MLP([3, 2])
    params, X = net.init(seed=0), np.ones((2, 3))
    with pytest.raises(ValueError, match="rtol"):
        refnet.project_out(net, params, params, X, rtol=rtol)
    with pytest.raises(ValueError, match="rtol"):
        refnet.frozen_step(net, params, X, np.ones((2, 2)), [0], 0.1, rtol=rtol)
    with pytest.raises(ValueError, match="rtol"):
        refnet.Projected(refnet.SGD(0.1), net, X, rtol=rtol)


# ----------------------------------------------------------------------------- rank ambiguous
@pytest.mark.parametrize("method", ROUTES)
def test_a_singular_value_near_the_cutoff_warns_on_every_route(method):
    """s_2 = 2 rtol s_1 (within a factor 10 of the cutoff): ProjectionAccuracyWarning "rank ambiguous" from
    project_out, frozen_step and Projected, recorded in FrozenInfo.warning; the rank is still the
    definition's (2: s_2 is above the cutoff)."""
    net = refnet.MLP([64, 64, 1], "tanh")
    rtol = frozen.default_rtol(net, 2, "float32")
    net, params, A, J, s, Vt = window_case(2 * rtol)
    assert rtol < s[1] / s[0] < 10 * rtol
    g = net.vjp(params, A, np.ones((2, 1), np.float32))
    with pytest.warns(refnet.ProjectionAccuracyWarning, match="rank ambiguous"):
        refnet.project_out(net, params, g, A, [0], method=method)
    with pytest.warns(refnet.ProjectionAccuracyWarning, match="rank ambiguous"):
        _, info = refnet.frozen_step(net, params, A, np.ones((2, 1), np.float32), [0], 1e-3, method=method)
    assert info.rank == 2 and "rank ambiguous" in info.warning
    opt = refnet.Projected(refnet.SGD(1e-3), net, A, freeze=[0], method=method)
    with pytest.warns(refnet.ProjectionAccuracyWarning, match="rank ambiguous"):
        _, state = opt.step(params, g, opt.init(params))
    assert "rank ambiguous" in state.info.warning


@pytest.mark.parametrize("method", ROUTES)
def test_a_singular_value_just_below_the_cutoff_warns(method):
    """s_2 = rtol s_1 / 3: dropped (rank 1), and still ambiguous."""
    net = refnet.MLP([64, 64, 1], "tanh")
    rtol = frozen.default_rtol(net, 2, "float32")
    net, params, A, J, s, Vt = window_case(rtol / 3)
    assert rtol / 10 < s[1] / s[0] < rtol
    with pytest.warns(refnet.ProjectionAccuracyWarning, match="rank ambiguous"):
        lin = _Linearization(net, np, params, A, [0], method)
    assert lin.rank == 1 and "rank ambiguous" in lin.warning


# ----------------------------------------------------------------------------- the gram route's decisions
def certificate(J):
    """trace(S) |L^-1|_F^2 = trace(S) trace(S^-1) for S = J J^T (>= cond(J)^2), from the oracle's eigenvalues."""
    w = np.linalg.eigvalsh(J @ J.T)
    return float(np.sum(w) * np.sum(1.0 / w))


def documented_bound(m, p, rtol):
    """The fast path's condition (refnet/frozen.py ``_Gram._all_clear``): certificate <= min(kappa_c^2 / 4,
    (10 rtol)^-2), kappa_c = min((max(m, p) / (m^2 eps64))^(1/3) / 4, 1 / rtol)."""
    kappa_c = min((max(m, p) / (m * m * EPS64)) ** (1 / 3) / 4, 1 / rtol)
    return min(kappa_c ** 2 / 4, (10 * rtol) ** -2)


@pytest.mark.parametrize("side", [0.5, 2.0])
def test_fast_path_exactly_when_the_certificate_holds_kappa_bound(side):
    """float64, linear 2 -> 1 on anchors [1, 0], [1, delta] (J rows [x_i, 1]): kappa_c^2 / 4 is the binding
    term. delta puts the certificate at ``side`` x the bound: Cholesky fast path iff it is below."""
    net = refnet.MLP([2, 1], activation="identity")
    params = [(np.array([[0.3], [-0.2]]), np.array([0.1]))]
    rtol = frozen.default_rtol(net, 2, "float64")
    bound = documented_bound(2, 3, rtol)
    assert bound == pytest.approx(documented_bound(2, 3, 1e-100))                  # the kappa term binds
    delta = math.sqrt(8 / (side * bound))                                          # certificate ~ 8 / delta^2
    A = np.array([[1.0, 0.0], [1.0, delta]])
    J = np.array([[1.0, 0.0, 1.0], [1.0, delta, 1.0]])                             # [x_i, 1]
    cert = certificate(J)
    assert (cert <= bound) == (side < 1) and abs(math.log(cert / (side * bound))) < 0.1
    lin = _Linearization(net, np, params, A, [0], "gram")
    assert (lin.Linv is not None) == (side < 1) and lin.rank == 2


@pytest.mark.parametrize("side", [0.5, 2.0])
def test_fast_path_exactly_when_the_certificate_holds_ambiguity_bound(side):
    """float32, the 64-64-1 window case: (10 rtol)^-2 is the binding term (the certificate must also rule
    out a singular value within a factor 10 of the cutoff)."""
    net = refnet.MLP([64, 64, 1], "tanh")
    rtol = frozen.default_rtol(net, 2, "float32")
    bound = documented_bound(2, net.n_params, rtol)
    assert bound == pytest.approx((10 * rtol) ** -2) and bound < documented_bound(2, net.n_params, 1e-100)
    net, params, A, J, s, Vt = window_case(1 / math.sqrt(side * bound))           # certificate ~ (s_1 / s_2)^2
    cert = certificate(J)
    assert (cert <= bound) == (side < 1)
    if side < 1:                                                                    # s_2 >= 14 rtol s_1: clear
        lin = _Linearization(net, np, params, A, [0], "gram")
        assert lin.Linv is not None and lin.rank == 2 and lin.warning is None
    else:                                                                           # s_2 ~ 7 rtol s_1: ambiguous
        with pytest.warns(refnet.ProjectionAccuracyWarning, match="rank ambiguous"):
            lin = _Linearization(net, np, params, A, [0], "gram")
        assert lin.Linv is None and lin.rank == 2


def test_band_correction_solves_for_what_the_clear_part_left():
    """gram+band route: one anchor pair 1e-3 apart (a clear but ill-conditioned direction, s ~ 3e-4 s_1) and
    one 1e-8 apart (the band, s ~ 2e-9 s_1). J^+ r for consistent r equals the oracle's V_r S_r^-1 U_r^T r
    to ~1e-7 (measured 1e-8 .. 9e-8). The band term acts on r - J d_c, what the clear part left: on r
    instead, the clear part's Gram rounding (~ m eps w_max / w_c) reaches the band solve (measured 1e-5)."""
    net = refnet.MLP([3, 8, 8, 2], "tanh")
    rng = np.random.default_rng(0)
    base, u = rng.uniform(-1, 1, (2, 3)), rng.standard_normal((2, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    A = np.concatenate([base, base + np.array([[1e-3], [1e-8]]) * u])
    params = net.init(seed=3)
    lin = _Linearization(net, np, params, A, [0], "gram")
    J = net.jacobian(params, A, [0])
    U, s, Vt = np.linalg.svd(J, full_matrices=False)
    assert lin.route == "gram+band" and lin.rank == 4 and 1e-4 < s[2] / s[0] < 1e-3 and s[3] / s[0] < 1e-8
    for _ in range(3):
        r = J @ rng.standard_normal(net.n_params)                                  # consistent: r in range(J)
        d = theta_of(lin.correction(r))
        want = Vt.T @ ((U.T @ r) / s)                                              # J^+ r
        assert np.linalg.norm(d - want) <= 1e-6 * np.linalg.norm(want)


def test_the_docstring_examples_run():
    """project_out, frozen_step, Projected, masked_grads, FrozenInfo and default_rtol show runnable examples."""
    import doctest
    result = doctest.testmod(frozen, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted >= 6
