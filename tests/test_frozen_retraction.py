"""The retraction (refnet/frozen.py ``_retract``): damped Gauss-Newton, its stopping rules and its advice;
``Projected``'s copies and its empty frozen set. Oracles: the autograd forward (tests/oracles.py)."""
import math

import numpy as np
import pytest

import oracles
import refnet
from refnet import frozen


def theta_of(tree):
    return np.concatenate([np.ravel(np.asarray(x, dtype=np.float64)) for W, b in tree for x in (W, b)])


def seed_net(n_anchors=8):
    """The seed net 3-4-2 sigmoid (21 parameters), output 0 frozen on ``n_anchors`` anchors = the batch."""
    net = refnet.MLP([3, 4, 2], "sigmoid")
    X = np.random.default_rng(1).uniform(0, 1, (n_anchors, 3))
    return net, net.init(seed=0), X, np.tile([0.0, -1.0], (n_anchors, 1))


def retraction_error(lr, **kw):
    net, params, X, G = seed_net()
    with pytest.raises(refnet.RetractionError) as e:
        refnet.frozen_step(net, params, X, G, [0], lr, **kw)
    return e.value


# ----------------------------------------------------------------------------- advice, one test per branch
def test_lr_1e300_blames_the_step_not_max_iter_nor_the_anchors():
    """8 anchors on 21 parameters: rank 8 = m at the step's start. The diverged point's rank must not
    turn into "more anchors than parameters", and max_iter cannot help."""
    e = retraction_error(1e300)
    msg = str(e)
    assert "smaller lr" in msg and "rank 8 at the step's start" in msg
    assert "max_iter" not in msg and "more anchors" not in msg


def test_a_residual_no_damped_correction_reduces_says_smaller_lr():
    e = retraction_error(1e6)
    assert "no correction reduced" in str(e) and "smaller lr" in str(e) and "max_iter" not in str(e)


def test_still_converging_says_raise_max_iter():
    e = retraction_error(30.0, max_iter=1)
    assert e.iterations == 1 and "raise max_iter (now 1)" in str(e)


def test_slow_convergence_says_smaller_lr():
    e = retraction_error(3.0, max_iter=1)
    assert "converges slowly" in str(e) and "smaller lr" in str(e) and "max_iter" not in str(e)


def test_ill_conditioned_floor_says_raise_tol():
    """Near-duplicate anchors (cond_r ~ 1e9): a tol (1e-20) below the floor the corrections reach."""
    net = refnet.MLP([3, 8, 8, 2], "tanh")
    rng = np.random.default_rng(0)
    base, u = rng.uniform(-1, 1, (4, 3)), rng.standard_normal((4, 3))
    A = np.concatenate([base, base + 1e-8 * u / np.linalg.norm(u, axis=1, keepdims=True)])
    with pytest.raises(refnet.RetractionError) as e:
        refnet.frozen_step(net, net.init(seed=3), A, rng.standard_normal((8, 2)), [0], 0.1, tol=1e-20)
    assert "ill-conditioned" in str(e.value) and "raise tol" in str(e.value) and "max_iter" not in str(e.value)


def test_rank_below_m_at_the_start_says_more_anchors():
    """Every anchor twice: rank 8 < m = 16 at the step's start."""
    net, params, X, G = seed_net()
    A = np.concatenate([X, X])
    with pytest.raises(refnet.RetractionError) as e:
        refnet.frozen_step(net, params, X, G, [0], 100.0, anchors=A)
    assert "rank 8 < m = 16" in str(e.value) and "at the step's start" in str(e.value)


def test_a_non_finite_residual_stops_at_once(monkeypatch):
    """lr 1e308 on an identity output: c(theta') overflows. No correction is tried (none can help):
    iterations 0 and no factorization after the step's start; the advice says why."""
    net = refnet.MLP([3, 4, 2], "tanh")
    params = net.init(seed=0)
    X = np.random.default_rng(1).uniform(0, 1, (4, 3))
    made = []
    real = frozen._Linearization
    monkeypatch.setattr(frozen, "_Linearization", lambda *a, **k: made.append(1) or real(*a, **k))
    with pytest.raises(refnet.RetractionError) as e, np.errstate(over="ignore", invalid="ignore"):
        refnet.frozen_step(net, params, X, np.full((4, 2), 1e10), [0], 1e308)   # (lr g overflows: NumPy warns)
    assert e.value.iterations == 0 and not math.isfinite(e.value.residual) and len(made) == 1
    assert "overflowed" in str(e.value) and "smaller lr" in str(e.value)


# ----------------------------------------------------------------------------- convergence
def test_corrections_converge_quadratically():
    """Residual after k corrections (tol unreachable: RetractionError.residual), one step at lr 0.5 on the seed
    net. Measured: 5.0e-3 (the step), 3.4e-3 (the first correction reuses J of the step's start), then
    4.3e-4, 7.6e-6, 1.2e-9: r_{k+1} ~ 40 r_k^2, order q = log(r_{k+1} / r_k) / log(r_k / r_{k-1}) ~ 2.0."""
    net, params, X, G = seed_net()
    r = []
    for k in (1, 2, 3, 4):
        with pytest.raises(refnet.RetractionError) as e:
            refnet.frozen_step(net, params, X, G, [0], 0.5, tol=1e-300, max_iter=k)
        r.append(e.value.residual)
    assert all(r[k + 1] <= 100 * r[k] ** 2 for k in (1, 2))
    assert math.log(r[3] / r[2]) / math.log(r[2] / r[1]) >= 1.8                  # q


def test_damping_brings_back_a_step_that_plain_gauss_newton_loses(monkeypatch):
    """lr 15 on the seed net: full Gauss-Newton corrections stop reducing |r| (left the basin); halving them
    converges (measured: 15 corrections), and every frozen value is back within 1e-10."""
    net, params, X, G = seed_net()
    new, info = refnet.frozen_step(net, params, X, G, [0], 15.0)
    c0, c1 = (oracles.forward(net, theta_of(p), X)[:, 0] for p in (params, new))
    assert info.converged and np.abs(c1 - c0).max() <= 1e-10
    monkeypatch.setattr(frozen, "MAX_HALVINGS", 0)                                 # undamped: it stalls
    with pytest.raises(refnet.RetractionError, match="no correction reduced"):
        refnet.frozen_step(net, params, X, G, [0], 15.0)


def test_default_tol_follows_the_magnitudes_that_cancel_into_c():
    """Identity 3-4-2 net, last layer x 200: the tolerance is 1e-12 times the magnitudes whose rounding
    reaches c, in quadrature: S_2^2 = (S_1^2 + A_1^2) W_2^2 + b_2^2 + c^2, S_1^2 = X^2 W_1^2 + b_1^2 + A_1^2
    (written out here), not 1e-12 max(1, |c0|), and the step converges."""
    net = refnet.MLP([3, 4, 2], "identity")
    (W1, b1), (W2, b2) = net.init(seed=0)
    W2 = W2 * 200.0
    params = [(W1, b1), (W2, b2)]
    X = np.random.default_rng(1).uniform(0, 1, (6, 3))
    _, info = refnet.frozen_step(net, params, X, np.ones((6, 2)), [0], 1e-3)
    A1 = X @ W1 + b1
    S1sq = X ** 2 @ W1 ** 2 + b1 ** 2 + A1 ** 2
    c = A1 @ W2[:, 0] + b2[0]
    S2 = np.sqrt((S1sq + A1 ** 2) @ W2[:, 0] ** 2 + b2[0] ** 2 + c ** 2)
    assert info.converged and info.tol == pytest.approx(1e-12 * max(1.0, S2.max()), rel=1e-12)
    assert info.tol > 1.5 * 1e-12 * max(1.0, np.abs(c).max())


def test_default_tol_sees_cancellation_upstream():
    """The deep property run's case: a width-1 bottleneck whose weights grew to ~250 (Momentum, 81 steps)
    cancels in the hidden unit; the last layer alone (|A_1| |W_2| + |b_2|) gives tol ~1e-11, below the
    floor 1.7e-11 the corrections reach. S propagates the first layer's magnitudes: it converges."""
    net = refnet.MLP([5, 1, 4], activation="identity", output_activation="softplus")
    params = [(np.array([[-0.659], [0.649], [0.510], [0.240], [-0.163]]), np.array([0.0])),
              (np.array([[-0.249, 1.061, -1.927, -0.747]]), np.zeros(4))]
    X = np.array([[-0.346, 0.580, 1.267, 1.250, -1.606]])
    A = np.array([[1.310, 0.613, 0.178, 0.131, 1.645]])
    G = np.array([[0.908, 0.211, 1.852, -1.250]])
    opt = refnet.Projected(refnet.Momentum(0.2, 0.9), net, A, freeze=[0, 1, 2, 3])
    state = opt.init(params)
    scale = 0.05 / max(1.0, np.linalg.norm(theta_of(net.vjp(params, X, G))))
    for _ in range(90):
        params, state = opt.step(params, [(scale * gW, scale * gb) for gW, gb in net.vjp(params, X, G)], state)
    assert state.info.converged and np.abs(params[0][0]).max() > 100                # the weights did grow
    c0 = oracles.forward(net, theta_of(params), A)
    assert np.abs(c0.ravel() - state.frozen).max() <= 2 * state.info.tol


# ----------------------------------------------------------------------------- Projected
def test_empty_freeze_is_exactly_the_inner_optimizer():
    net, params, X, G = seed_net()
    inner = refnet.AveragedMomentum(0.2, 0.9)
    opt = refnet.Projected(inner, net, X, freeze=[])
    s_opt, s_in, p_opt, p_in = opt.init(params), inner.init(params), params, params
    for _ in range(5):
        g = net.vjp(p_opt, X, G)
        p_opt, s_opt = opt.step(p_opt, g, s_opt)
        p_in, s_in = inner.step(p_in, g, s_in)
        assert np.array_equal(theta_of(p_opt), theta_of(p_in))
        assert np.array_equal(theta_of(s_opt.inner.accumulation), theta_of(s_in.accumulation))
        assert s_opt.info.rank == 0 and s_opt.info.route == "none"


def test_projected_copies_the_anchors_and_the_frozen_indices():
    """Overwriting the caller's anchors buffer (and freeze list) after construction changes nothing."""
    net, params, X, G = seed_net()
    buf, K = X.copy(), [0]
    opt, ref = refnet.Projected(refnet.SGD(0.5), net, buf, freeze=K), refnet.Projected(refnet.SGD(0.5), net, X.copy())
    buf[:] = 7.0
    K.append(1)
    s, s_ref, p, p_ref = opt.init(params), ref.init(params), params, params
    for _ in range(3):
        p, s = opt.step(p, net.vjp(p, X, G), s)
        p_ref, s_ref = ref.step(p_ref, net.vjp(p_ref, X, G), s_ref)
    assert np.array_equal(theta_of(p), theta_of(p_ref)) and s.info.rank == 8
    c0 = oracles.forward(net, theta_of(params), X)[:, 0]
    assert np.abs(oracles.forward(net, theta_of(p), X)[:, 0] - c0).max() <= 1e-10
