"""Numerical edge cases of the frozen-output machinery (project_out, frozen_step, Projected),
both routes ("gram", "dense"), float64 unless stated; fixed small cases, fast.

Cases whose rank is known in closed form (duplicated anchors, a linear network,
all-dead ReLU layers, saturated units, m > p) check ``info.rank``/``info.nullity``
against that number and against ``numpy.linalg.matrix_rank`` of an independent
Jacobian (HIPS autograd, or refnet's explicit ``net.jacobian`` where autograd's
sigmoid overflows). Every case: no NaN/Inf anywhere, and retraction either
converges (residual <= tol, measured by an independent forward) or raises
``RetractionError`` carrying a finite ``.residual`` while the caller's params
stay untouched.
"""
from __future__ import annotations

import autograd
import numpy as np
import pytest

import oracles
import refnet

METHODS = ["gram", "dense"]
EPS = np.finfo(np.float64).eps


# ------------------------------------------------------------------------ helpers
def autograd_J(net, params, anchors, outputs):
    """Oracle J (m, p), output-major rows, from autograd on the independent forward."""
    theta = np.asarray(refnet.flatten(params))
    with np.errstate(over="ignore"):                    # autograd's tanh' = 1/cosh^2 overflows to the exact 0
        J = autograd.jacobian(lambda t: oracles.forward(net, t, anchors))(theta)  # (n, n_L, p)
    return np.transpose(J, (1, 0, 2))[list(outputs)].reshape(-1, theta.size)


def c_of(net, params, anchors, outputs):
    """Frozen values measured with the autograd-numpy forward (not refnet's)."""
    with np.errstate(over="ignore"):                    # sigmoid's exp(-z) overflows to the exact 0 / 1
        Y = oracles.forward(net, np.asarray(refnet.flatten(params)), anchors)
    return Y[:, list(outputs)].T.reshape(-1)


def finite(tree):
    return all(np.all(np.isfinite(x)) for layer in tree for x in layer)


def copy(params):
    return [(W.copy(), b.copy()) for W, b in params]


def assert_same(a, b):
    assert all(np.array_equal(x, y) for la, lb in zip(a, b) for x, y in zip(la, lb))


def step_or_raise(net, params, X, G, freeze, lr, anchors, method, **kw):
    """frozen_step; returns (new, info) or the RetractionError. Checks the failure contract."""
    before = copy(params)
    try:
        new, info = refnet.frozen_step(net, params, X, G, freeze=freeze, lr=lr, anchors=anchors, method=method, **kw)
    except refnet.RetractionError as err:
        assert np.isfinite(err.residual) and err.residual > 0 and err.iterations >= 0
        assert_same(params, before)
        return err
    assert_same(params, before)
    assert finite(new)
    assert np.all(np.isfinite([info.residual, info.tol]))
    change = np.abs(c_of(net, new, anchors, freeze) - c_of(net, params, anchors, freeze)).max()
    assert info.converged and info.residual <= info.tol and change <= 2 * info.tol + 1e-15
    return new, info


def data(seed, n, d, n_out, scale=1.0):
    rng = np.random.default_rng(seed)
    return scale * rng.uniform(-1.0, 1.0, (n, d)), rng.standard_normal((n, n_out))


# ------------------------------------------------------------------------ duplicated / rank-deficient anchors
@pytest.mark.parametrize("method", METHODS)
def test_duplicated_anchors_add_no_rank_and_project_the_same(method):
    net = refnet.MLP([3, 4, 2], activation="tanh")
    params = net.init(seed=1)
    X, G = data(2, 4, 3, 2)
    twice = np.concatenate([X, X[::-1], X])                                 # every anchor three times
    g = net.vjp(params, X, G)
    once_p = refnet.project_out(net, params, g, X, [0], method=method)
    many_p = refnet.project_out(net, params, g, twice, [0], method=method)
    a, b = np.asarray(refnet.flatten(once_p)), np.asarray(refnet.flatten(many_p))
    assert np.all(np.isfinite(b))
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-10 * np.abs(a).max())
    J = autograd_J(net, params, twice, [0])
    assert np.abs(J @ b).max() <= 1e-10 * np.abs(J).max() * np.abs(b).max() * J.shape[1]
    new, info = step_or_raise(net, params, X, G, [0], 0.05, twice, method)
    assert info.rank == np.linalg.matrix_rank(J) == 4 and info.nullity == net.n_params - 4


@pytest.mark.parametrize("method", METHODS)
def test_linear_network_has_rank_of_the_augmented_anchors(method):
    """Identity net [3, 2]: row (k, i) of J is [x_i in the W[:, k] slots, 1 in b_k], so
    rank J = rank [X_a, 1]: 2 for anchors on a line t -> t v, though m = 8."""
    net = refnet.MLP([3, 2], activation="identity")
    params = net.init(seed=0)
    t = np.linspace(-1.0, 2.0, 8)[:, None]
    line = t * np.array([[0.3, -1.2, 0.7]])                                # 8 collinear anchors
    G = np.random.default_rng(0).standard_normal((8, 2))
    expected = np.linalg.matrix_rank(np.hstack([line, np.ones((8, 1))]))
    assert expected == 2 == np.linalg.matrix_rank(autograd_J(net, params, line, [1]))
    new, info = step_or_raise(net, params, line, G, [1], 0.1, line, method)
    assert (info.rank, info.nullity) == (2, net.n_params - 2)
    assert info.iterations == 0                                            # c is linear: no O(lr^2) drift


# ------------------------------------------------------------------------ all outputs frozen / m > p
@pytest.mark.parametrize("method", METHODS)
def test_all_outputs_frozen(method):
    net = refnet.MLP([2, 6, 3], activation="sigmoid")
    params = net.init(seed=4)
    X, G = data(5, 6, 2, 3)
    anchors = X[:3] + 0.5                     # not the training inputs: g is then not in the row space of J
    new, info = step_or_raise(net, params, X, G, [2, 0, 1], 0.1, anchors, method)
    J = autograd_J(net, params, anchors, [2, 0, 1])
    assert info.rank == np.linalg.matrix_rank(J) == 9 and info.nullity == net.n_params - 9
    assert np.abs(np.asarray(refnet.flatten(new)) - np.asarray(refnet.flatten(params))).max() > 1e-3  # it moved
    Y0, Y1 = net.forward(params, anchors), net.forward(new, anchors)
    assert np.abs(Y1 - Y0).max() <= 2 * info.tol                             # every output kept


@pytest.mark.parametrize("method", METHODS)
def test_more_constraints_than_parameters_gives_an_exact_zero_step(method):
    net = refnet.MLP([2, 2, 1], activation="tanh")                          # p = 9
    params = net.init(seed=6)
    X, G = data(7, 12, 2, 1)                                               # m = 12 > p
    J = autograd_J(net, params, X, [0])
    assert np.linalg.matrix_rank(J) == net.n_params
    g_perp = refnet.project_out(net, params, net.vjp(params, X, G), X, [0], method=method)
    assert all(not np.any(x) for layer in g_perp for x in layer)              # exactly zero
    new, info = step_or_raise(net, params, X, G, [0], 0.5, X, method)
    assert (info.rank, info.nullity, info.iterations) == (net.n_params, 0, 0) and info.residual <= info.tol
    assert_same(new, params)


# ------------------------------------------------------------------------ dead ReLU units
@pytest.mark.parametrize("method", METHODS)
def test_all_hidden_relu_units_dead(method):
    """No hidden unit fires on any anchor: A_1 = 0 and phi'(Z_1) = 0, so only b_2[k] moves
    output k: rank 1 per frozen output whatever the number of anchors; the other
    output still trains (through b_2)."""
    net = refnet.MLP([3, 5, 2], activation="relu")
    W1, b1 = net.init(seed=8)[0]
    params = [(W1, np.full(5, -50.0)), net.init(seed=8)[1]]
    X, G = data(9, 6, 3, 2)
    J = autograd_J(net, params, X, [0])
    assert np.linalg.matrix_rank(J) == 1
    new, info = step_or_raise(net, params, X, G, [0], 0.1, X, method)
    assert (info.rank, info.nullity) == (1, net.n_params - 1)
    assert_same(new[:1], params[:1])                                        # dead layer: zero gradient
    assert abs(new[1][1][0] - params[1][1][0]) <= 1e-15 < abs(new[1][1][1] - params[1][1][1])   # b_2[0] frozen


@pytest.mark.parametrize("method", METHODS)
def test_some_dead_relu_units_drop_their_rank(method):
    net = refnet.MLP([2, 6, 2], activation="relu")
    W1, b1 = net.init(seed=10)[0]
    b1 = b1.copy()
    b1[[1, 4]] = -50.0                                                      # two units never fire
    params = [(W1, b1), net.init(seed=10)[1]]
    X, G = data(11, 10, 2, 2)
    J = autograd_J(net, params, X, [0, 1])
    dead_cols = np.zeros(net.n_params, bool)
    for j in (1, 4):
        dead_cols[[j, 6 + j, 12 + j]] = True                               # W_1[:, j] and b_1[j] in flatten order
        dead_cols[18 + 2 * j: 18 + 2 * j + 2] = True                       # W_2[j, :]
    assert not np.any(J[:, dead_cols])
    new, info = step_or_raise(net, params, X, G, [0], 1e-3, X, method)
    assert info.rank == np.linalg.matrix_rank(autograd_J(net, params, X, [0]))
    assert info.nullity == net.n_params - info.rank
    assert np.array_equal(new[0][0][:, [1, 4]], W1[:, [1, 4]])              # dead units' weights keep still


# ------------------------------------------------------------------------ saturation and input scales
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_saturated_hidden_units(method, activation):
    """|Z_1| >= 100: hidden units saturate (phi'(Z_1) <= 1e-40), so J has only the last
    layer's block (layer-1 entries below 1e-40 s_max): rank = rank [A_1, 1], with A_1 a 0/1
    (or +-1) pattern; unit 3 mirrors unit 0, so the rank is below 4 + 1 (explicit J;
    autograd's sigmoid overflows here)."""
    net = refnet.MLP([3, 4, 2], activation=activation)
    W1 = 1e3 * np.array([[1.0, 0.0, 0.0, -1.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    params = [(W1, np.zeros(4)), net.init(seed=12)[1]]
    rng = np.random.default_rng(13)
    X = rng.uniform(0.1, 1.0, (7, 3)) * rng.choice([-1.0, 1.0], (7, 3))    # |Z_1| >= 100
    G = rng.standard_normal((7, 2))
    anchors = X[:5]
    A1 = np.asarray(net._forward(np, params, anchors).As[1])
    dphi = A1 * (1 - A1) if activation == "sigmoid" else 1 - A1 * A1
    assert np.abs(dphi).max() <= 1e-40                                      # saturated
    A1 = np.round(A1)
    expected = np.linalg.matrix_rank(np.hstack([A1, np.ones((5, 1))]))
    assert expected == 4                                                    # A_1[:, 3] = 1 - A_1[:, 0] (sigmoid)
    J = np.asarray(net.jacobian(params, anchors, outputs=[1]))             #   or -A_1[:, 0] (tanh)
    assert np.all(np.isfinite(J)) and np.abs(J[:, :16]).max() <= 1e-40 * np.abs(J).max()
    assert np.linalg.matrix_rank(J) == expected
    new, info = step_or_raise(net, params, X, G, [1], 0.1, anchors, method)
    assert (info.rank, info.nullity) == (expected, net.n_params - expected)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("scale", [1e3, 1e-6])
def test_huge_and_tiny_input_scales(method, scale):
    net = refnet.MLP([3, 5, 2], activation="tanh")
    params = net.init(seed=21)
    X, G = data(22, 3, 3, 2, scale=scale)   # seed with singular values >= 10x away from both cutoffs
    J = autograd_J(net, params, X, [0])
    s = np.linalg.svd(J, compute_uv=False)
    m, p = J.shape
    dense_cut = max(m, p) * EPS * s[0]
    gram_cut = np.sqrt(max(m * EPS, (max(m, p) * EPS) ** 2)) * s[0]       # refnet/frozen.py docstring
    cut = dense_cut if method == "dense" else gram_cut
    assert not np.any((s > cut / 10) & (s < cut * 10)), "rank ambiguous: pick another seed"
    result = step_or_raise(net, params, X, G, [0], 0.05, X, method)
    if isinstance(result, refnet.RetractionError):
        pytest.fail(f"retraction failed at scale {scale}: residual {result.residual}")
    new, info = result
    assert info.rank == int(np.sum(s > cut)) and info.nullity == p - info.rank
    if method == "dense":
        assert info.rank == np.linalg.matrix_rank(J)


def test_float32_with_duplicated_anchors_and_saturation():
    net = refnet.MLP([3, 4, 2], activation="sigmoid")
    (W1, b1), last = net.init(seed=16, dtype="float32")
    W1 = W1.copy()
    W1[:, 0] *= np.float32(1e3)                                             # one saturated unit
    params = [(W1, b1), last]
    X, G = data(17, 4, 3, 2)
    X, G = X.astype(np.float32), G.astype(np.float32)
    anchors = np.concatenate([X, X])
    p64 = [(W.astype(np.float64), b.astype(np.float64)) for W, b in params]
    J = np.asarray(net.jacobian(p64, anchors.astype(np.float64), [0]))     # explicit J of the same numbers
    s = np.linalg.svd(J, compute_uv=False)
    cut = max(J.shape) * float(np.finfo(np.float32).eps) * s[0]             # float32 cutoff, both routes
    assert not np.any((s > cut / 10) & (s < cut * 10))
    for method in METHODS:
        new, info = step_or_raise(net, params, X, G, [0], 0.05, anchors, method)
        assert new[0][0].dtype == np.float32
        assert info.rank == int(np.sum(s > cut)) == 4 and info.nullity == net.n_params - 4   # 4 distinct anchors


# ------------------------------------------------------------------------ retraction that cannot converge
@pytest.mark.parametrize("method", METHODS)
def test_retraction_failure_carries_its_residual(method):
    net = refnet.MLP([2, 3, 1], activation="tanh")
    params = net.init(seed=18)
    X, G = data(19, 4, 2, 1)
    err = step_or_raise(net, params, X, G, [0], 3.0, X[:2] + 0.3, method, max_iter=1, tol=1e-15)
    assert isinstance(err, refnet.RetractionError) and err.iterations == 1 and err.residual > 1e-15


# ------------------------------------------------------------------------ Projected over several steps
@pytest.mark.parametrize("method", METHODS)
def test_projected_momentum_on_duplicated_anchors_and_dead_units(method):
    net = refnet.MLP([3, 5, 2], activation="relu")
    W1, b1 = net.init(seed=20)[0]
    b1 = b1.copy()
    b1[2] = -50.0
    params = [(W1, b1), net.init(seed=20)[1]]
    X, T = data(21, 5, 3, 2)
    anchors = np.concatenate([X, X])
    opt = refnet.Projected(refnet.AveragedMomentum(0.01, 0.9), net, anchors, freeze=[0], method=method)
    state = opt.init(params)
    c0 = c_of(net, params, anchors, [0])
    rank = np.linalg.matrix_rank(autograd_J(net, params, X, [0]))
    for _ in range(4):
        _, grads = net.loss_and_grads(params, X, T)
        params, state = opt.step(params, grads, state)
        assert finite(params) and state.info.converged
        assert state.info.rank <= 5 and state.info.nullity == net.n_params - state.info.rank
    assert state.info.rank == rank
    assert np.abs(c_of(net, params, anchors, [0]) - c0).max() <= 2 * state.info.tol


@pytest.mark.parametrize("W", [[[1e308], [1e308]], [[1e308], [-1e308]], [[1.5e154], [1.5e154]]])
def test_finite_weights_whose_sum_overflows_are_finite(W):
    """The finiteness checks' fast path is one reduction, which finite entries can overflow; then the
    exact isfinite pass decides. forward must return the right finite value and no overflow warning
    may escape from refnet (also outside pytest's filterwarnings = error)."""
    import warnings
    net = refnet.MLP([2, 1], activation="identity")
    params = [(np.array(W), np.array([1.0]))]
    X = np.array([[1e-300, 2e-300], [0.5, -0.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Y = net.forward(params, X)
    w = np.array(W)[:, 0]
    expected = [1e-300 * w[0] + 2e-300 * w[1] + 1.0, 0.5 * w[0] - 0.5 * w[1] + 1.0]   # exact in float64 here
    np.testing.assert_allclose(Y[:, 0], expected, rtol=1e-15)
    with pytest.raises(ValueError, match=r"params\[0\]\[0\] contains NaN or Inf"):
        net.forward([(np.array(W) * np.array([[1.0], [np.nan]]), np.array([1.0]))], X)


def test_a_step_to_finite_params_whose_sum_overflows_succeeds():
    """The optimizers' and frozen_step's overflow check on the new params (tree_all_finite) must fall back
    to the exact check: finite weights [[1e308], [1e308]] are not an overflow."""
    net = refnet.MLP([2, 1], activation="identity")
    params = [(np.array([[1e308], [1e308]]), np.array([1.0]))]
    X, G = np.array([[0.5, -0.5]]), np.array([[1.0]])
    new, _ = refnet.SGD(0.1).step(params, net.vjp(params, X, G), refnet.SGD(0.1).init(params))
    np.testing.assert_array_equal(new[0][0], params[0][0] - 0.1 * np.array([[0.5], [-0.5]]))
    new, info = refnet.frozen_step(net, params, X, G, [], 0.1)
    np.testing.assert_array_equal(new[0][0], params[0][0] - 0.1 * np.array([[0.5], [-0.5]]))


def test_numpy_namespace_shortcuts_match_array_api_compat():
    """refnet's NumPy namespace replaces compat's ``sum`` (np.add.reduce) and ``reshape`` (the array
    method) to skip NumPy's Python layers; results, dtypes and copy semantics must be compat's."""
    import array_api_compat.numpy as compat
    from refnet.backend import _NUMPY as xp
    x = np.random.default_rng(0).standard_normal((5, 4, 3)).astype(np.float32)
    for kw in ({}, {"axis": 0}, {"axis": (0, 2)}, {"axis": 1, "keepdims": True}, {"dtype": np.float64}):
        got, want = xp.sum(x, **kw), compat.sum(x, **kw)
        assert got.dtype == want.dtype and np.array_equal(got, want), kw
    for copy in (None, True, False):
        got, want = xp.reshape(x, (4, 15), copy=copy), compat.reshape(x, (4, 15), copy=copy)
        assert got.shape == want.shape and np.array_equal(got, want)
        assert np.shares_memory(got, x) == np.shares_memory(want, x), copy
    assert np.array_equal(xp.reshape(x, (-1,)), x.ravel())


@pytest.mark.parametrize("rows", [3, 3000])              # 29 entries in all (joined) and 24029 (one call each)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_fused_finiteness_sees_a_bad_entry_in_any_array(rows, bad):
    """backend.total / _checks.all_finite on NumPy: small arrays are joined for one BLAS call, larger ones
    summed call by call. Either way one NaN or Inf anywhere (a 0-d value included) is seen, and finite
    arrays whose squares overflow are still finite by the exact fallback."""
    from refnet import _checks
    from refnet.backend import _JOIN, _NUMPY as xp, total
    arrays = [np.ones((rows, 8)), np.ones(5), np.array(0.5), np.ones((4, 4))]
    assert (sum(x.size for x in arrays) <= _JOIN) == (rows == 3)
    assert np.isfinite(total(xp, *arrays)) and _checks.all_finite(xp, *arrays)   # the fast path says so itself
    for i, x in enumerate(arrays):
        spoiled = [y.copy() for y in arrays]
        spoiled[i][(-1,) * x.ndim] = bad
        assert not np.isfinite(total(xp, *spoiled)), f"a {bad} in array {i} was missed"
        assert not _checks.all_finite(xp, *spoiled)
    assert _checks.all_finite(xp, *arrays, np.full(3, 1e200))  # |x|^2 overflows; the entries are finite


def test_saturated_softplus_rows_do_not_overflow_the_cholesky_certificate():
    """Saturated softplus units make one anchor's Jacobian row ~e^-350 times the others: Cholesky
    of J J^T succeeds with a tiny pivot and |L^-1| ~ 1e170, whose square overflows. The fast path
    must see that it certifies nothing (no RuntimeWarning; filterwarnings = error) and the route
    must still give the rank of numpy's SVD of refnet's explicit J."""
    net = refnet.MLP([3, 6, 5], activation="softplus", output_activation="softplus")
    rng = np.random.default_rng(0)
    W1 = np.array([[-18.25783438, 5.58130283, -4.01895693, 14.66354757, -8.70471725, 5.22658266],
                   [-1.16170759, -24.47121475, -20.69088208, -9.22202635, 34.32358526, -0.7765729],
                   [-2.74952612, 6.60276842, -11.51927204, -23.79280569, 0.25068016, 8.88243497]])
    W2 = np.array([[-3.672018, -0.16379362, 7.337414, 0.62698458, 2.29685677],
                   [-6.09938412, -2.06274899, -5.82875523, 0.09030192, -1.3181867],
                   [-0.75598475, -6.44698233, 0.85736498, -2.01056559, -2.04339358],
                   [1.51976792, 1.83523074, -2.46074609, -2.76733874, -1.34413188],
                   [-1.60640556, 4.06723077, -5.96080042, 4.12562109, -3.48908023],
                   [-6.2367491, -7.71048349, 7.22804248, 3.36880708, -3.216113]])     # (hypothesis' hard case)
    params = [(W1, np.zeros(6)), (W2, np.zeros(5))]
    A = np.array([[-0.67634569, -0.20768107, 1.54868704], [-1.57941307, -1.77404954, 0.64656961],
                  [-0.81119662, 1.66768005, 1.52790814], [0.14944927, 0.93234674, -1.62973217]])
    J = net.jacobian(params, A, [0])
    s = np.linalg.svd(J, compute_uv=False)
    rank = int(np.sum(s > max(J.shape) * EPS * s[0]))
    g = refnet.unflatten(rng.standard_normal(net.n_params), params)
    for method in METHODS:
        gp = refnet.project_out(net, params, g, A, [0], method=method)
        assert np.all(np.isfinite(refnet.flatten(gp)))
    assert refnet.frozen._Linearization(net, np, params, A, [0], "gram").rank == rank


@pytest.mark.parametrize("method", METHODS)
def test_backprop_near_the_largest_float_projects(method):
    """Delta_1 = W_2^T = 9e307 (finite, >= 2^1023) with finite outputs (W_1 = 1e-300) and s_1 ~ 1.4e308:
    the gram route's power-of-2 rescaling of J must not overflow (it raised OverflowError from math.ldexp)."""
    net = refnet.MLP([1, 1, 1], activation="identity")
    params = [(np.array([[1e-300]]), np.array([0.0])), (np.array([[9e307]]), np.array([0.0]))]
    A = np.array([[0.5], [1.0]])
    g = refnet.unflatten(np.array([1.0, 2.0, 3.0, 4.0]), params)
    J = net.jacobian(params, A, [0]) / 1e300                                      # (2, 4); SVD-safe scale
    U, s, Vt = np.linalg.svd(J, full_matrices=False)
    r = int(np.sum(s > 4 * EPS * s[0]))
    want = refnet.flatten(g) - Vt[:r].T @ (Vt[:r] @ refnet.flatten(g))
    got = refnet.flatten(refnet.project_out(net, params, g, A, [0], method=method))
    assert np.all(np.isfinite(got)) and np.abs(got - want).max() <= 1e-12 * np.abs(want).max()


def test_memory_mapped_arrays_are_plain_arrays_to_refnet(tmp_path):
    """np.memmap is the one ndarray subclass refnet takes (its arithmetic is an ndarray's; numpy.matrix
    and masked arrays are refused): a file-backed X, T and params give the in-memory results, as
    ndarrays, and the files are not written to."""
    net = refnet.MLP([3, 4, 2], activation="tanh")
    params = net.init(seed=0)
    rng = np.random.default_rng(0)
    X, T = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))

    def mapped(name, a):
        m = np.lib.format.open_memmap(tmp_path / f"{name}.npy", mode="w+", dtype=a.dtype, shape=a.shape)
        m[...] = a
        m.flush()
        return np.load(tmp_path / f"{name}.npy", mmap_mode="r")       # read-only, as a data loader maps it
    mX, mT = mapped("X", X), mapped("T", T)
    mP = [(mapped(f"W{l}", W), mapped(f"b{l}", b)) for l, (W, b) in enumerate(params)]
    opt = refnet.AveragedMomentum(lr=0.1)
    got = opt.train_step(net, mP, opt.init(mP), mX, mT)
    want = opt.train_step(net, params, opt.init(params), X, T)
    assert float(got[0]) == float(want[0])
    for (gW, gb), (wW, wb) in zip(got[1], want[1]):
        assert type(gW) is np.ndarray and np.array_equal(gW, wW) and np.array_equal(gb, wb)
    assert np.array_equal(np.load(tmp_path / "X.npy"), X) and np.array_equal(np.load(tmp_path / "W0.npy"), params[0][0])


def test_output_indices_as_numpy_integer_arrays_are_the_list():
    """freeze / outputs given as a 1-D NumPy integer array (np.arange(k), np.flatnonzero(mask)) or a
    range mean that list of ints: the results are bit for bit those of the list."""
    net = refnet.MLP([3, 5, 3], activation="tanh")
    params = net.init(seed=0)
    rng = np.random.default_rng(0)
    X, G = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    want_step, _ = refnet.frozen_step(net, params, X, G, [0, 2], 0.1)
    want_J = net.jacobian(params, X, [0, 2])
    for given in (np.array([0, 2]), np.flatnonzero([True, False, True]), range(0, 3, 2)):
        got_step, _ = refnet.frozen_step(net, params, X, G, given, 0.1)
        assert all(np.array_equal(a, b) for pa, pb in zip(got_step, want_step) for a, b in zip(pa, pb))
        assert np.array_equal(net.jacobian(params, X, given), want_J)
        assert refnet.Projected(refnet.SGD(0.1), net, X, freeze=given).freeze == [0, 2]
