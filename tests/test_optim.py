"""Optimizers against independent oracles: TF1's hand-computed momentum values,
explicit NumPy matrix forms (P_in = 1 1^T / n_in written out here, not taken
from refnet), limit cases, and the seed answer's outgoing-average bug.
The PyTorch comparison lives in test_peers_torch.py."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import refnet
from refnet.conformance import Scenario, compare_trajectories, reference_trajectory
from refnet.strategies import grad_sequences, learning_rates, momenta, seeds


# ------------------------------------------------------------------ oracles
def P(n):
    """The explicit averaging projector 1 1^T / n, (n, n)."""
    return np.ones((n, n)) / n                                  # P = 1 1^T / n


def oracle_averaged(params, grad_seq, lr, mu, include_bias=False, incoming=True):
    """Averaged momentum in explicit matrix form, NumPy float64; returns the params after each step.

    incoming=True:  A <- G + mu P_in A      (column means, refnet's algorithm)
    incoming=False: A <- G + mu A P_out     (row means: the seed answer's reduce_mean(axis=1))
    include_bias: the recursion runs on the augmented [W; b] (n_in + 1, n_out).
    """
    acc = [(np.zeros_like(W), np.zeros_like(b)) for W, b in params]
    out = []
    for grads in grad_seq:
        new_acc, new_params = [], []
        for (W, b), (gW, gb), (aW, ab) in zip(params, grads, acc):
            if include_bias:
                A = np.vstack([aW, ab[None, :]])                 # [a_W; a_b]        (n_in + 1, n_out)
                G = np.vstack([gW, gb[None, :]])                 # [g_W; g_b]        (n_in + 1, n_out)
                A = G + mu * (P(A.shape[0]) @ A)                 # A <- G + mu P_in A
                aW, ab = A[:-1], A[-1]
            else:
                avg = P(aW.shape[0]) @ aW if incoming else aW @ P(aW.shape[1])   # P_in A  or  A P_out
                aW, ab = gW + mu * avg, gb + mu * ab             # a_W <- g + mu avg;  a_b standard
            new_acc.append((aW, ab))
            new_params.append((W - lr * aW, b - lr * ab))        # theta <- theta - lr a
        acc, params = new_acc, new_params
        out.append(params)
    return out


def oracle_momentum(params, grad_seq, lr, mu, nesterov=False):
    """TF1 MomentumOptimizer, one array at a time."""
    acc = [[np.zeros_like(x) for x in layer] for layer in params]
    out = []
    for grads in grad_seq:
        acc = [[g + mu * a for g, a in zip(gl, al)] for gl, al in zip(grads, acc)]                  # a <- g + mu a
        step = [[g + mu * a for g, a in zip(gl, al)] if nesterov else al for gl, al in zip(grads, acc)]
        params = [tuple(x - lr * u for x, u in zip(pl, ul)) for pl, ul in zip(params, step)]      # w -= lr u
        out.append(params)
    return out


def run(backend, opt, params, grad_seq):
    """Step ``opt`` through ``grad_seq`` on ``backend``; returns the NumPy params after each step."""
    p = backend.params(params)
    state = opt.init(p)
    out = []
    for grads in grad_seq:
        p, state = opt.step(p, backend.params(grads), state)
        out.append(backend.params_numpy(p))
    return out


def assert_trajectories_close(ours, oracle, rtol=1e-12):
    for s, (pa, pb) in enumerate(zip(ours, oracle), start=1):
        for l, (la, lb) in enumerate(zip(pa, pb), start=1):
            for name, x, y in zip("Wb", la, lb):
                np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * max(1.0, np.abs(y).max()),
                                           err_msg=f"step {s}, {name}_{l}")


def assert_trajectories_equal(ours, oracle):
    for s, (pa, pb) in enumerate(zip(ours, oracle), start=1):
        for la, lb in zip(pa, pb):
            for x, y in zip(la, lb):
                np.testing.assert_array_equal(x, y, err_msg=f"step {s}")


# ------------------------------------------------- TF1's hand-computed values
def _tf_var(backend):
    """TF's momentum test variable [1, 2], as W (1, 2) and b (2,); gradient 0.1 everywhere."""
    params = [(np.array([[1.0, 2.0]]), np.array([1.0, 2.0]))]
    grads = [(np.full((1, 2), 0.1), np.full(2, 0.1))]
    return backend.params(params), backend.params(grads)


@pytest.mark.parametrize("make", [lambda: refnet.Momentum(2.0, 0.9),
                                  lambda: refnet.AveragedMomentum(2.0, 0.9)],   # fan-in 1: the same numbers
                         ids=["momentum", "averaged-fan-in-1"])
def test_tf_momentum_hand_values(backend, make):
    opt = make()
    params, grads = _tf_var(backend)
    state = opt.init(params)
    expected = [([0.8, 1.8], 0.1), ([0.42, 1.42], 0.19)]     # var, accumulation after steps 1 and 2
    for var, acc in expected:
        params, state = opt.step(params, grads, state)
        for x in (params[0][0][0, :], params[0][1]):
            np.testing.assert_allclose(backend.numpy(x), var, rtol=1e-15)
        for a in state.accumulation[0]:
            np.testing.assert_allclose(backend.numpy(a), np.full(a.shape, acc), rtol=1e-15)


def test_tf_nesterov_hand_values(backend):
    # w -= lr (g + mu a): 1 - 2 (0.1 + 0.9 * 0.1) = 0.62;  0.62 - 2 (0.1 + 0.9 * 0.19) = 0.078
    opt = refnet.Momentum(2.0, 0.9, nesterov=True)
    params, grads = _tf_var(backend)
    state = opt.init(params)
    for var, acc in [([0.62, 1.62], 0.1), ([0.078, 1.078], 0.19)]:
        params, state = opt.step(params, grads, state)
        for x in (params[0][0][0, :], params[0][1]):
            np.testing.assert_allclose(backend.numpy(x), var, rtol=1e-14)
        np.testing.assert_allclose(backend.numpy(state.accumulation[0][1]), [acc, acc], rtol=1e-15)


def test_sgd_hand_values(backend):
    params, grads = _tf_var(backend)
    opt = refnet.SGD(2.0)
    params, _ = opt.step(params, grads, opt.init(params))
    np.testing.assert_allclose(backend.numpy(params[0][0]), [[0.8, 1.8]], rtol=1e-15)


# ------------------------------------------------------------- matrix forms
@given(grad_sequences(), learning_rates, momenta, st.booleans())
def test_momentum_equals_oracle(backend, prob, lr, mu, nesterov):
    assume(mu > 0 or not nesterov)
    params, grad_seq = prob
    ours = run(backend, refnet.Momentum(lr, mu, nesterov=nesterov), params, grad_seq)
    assert_trajectories_close(ours, oracle_momentum(params, grad_seq, lr, mu, nesterov))


@given(grad_sequences(), learning_rates, momenta, st.booleans())
def test_averaged_momentum_equals_explicit_matrix_form(backend, prob, lr, mu, include_bias):
    params, grad_seq = prob
    ours = run(backend, refnet.AveragedMomentum(lr, mu, include_bias=include_bias), params, grad_seq)
    assert_trajectories_close(ours, oracle_averaged(params, grad_seq, lr, mu, include_bias))


@given(st.integers(1, 8), st.integers(1, 8), seeds)
def test_averaging_matrix_is_symmetric_idempotent_and_matches_mean(backend, n, n_out, seed):
    A = np.random.default_rng(seed).standard_normal((n, n_out))
    Pn = refnet.averaging_matrix(n, like=backend.asarray(A))
    Pnp = backend.numpy(Pn)
    np.testing.assert_allclose(Pnp, P(n), rtol=1e-15)                        # 1 1^T / n
    np.testing.assert_array_equal(Pnp, Pnp.T)                                # P^T = P
    np.testing.assert_allclose(backend.numpy(Pn @ Pn), Pnp, rtol=1e-14)      # P P = P
    fast = backend.numpy(refnet.average_incoming(backend.asarray(A), axis=0))
    np.testing.assert_allclose(backend.numpy(Pn @ backend.asarray(A)), fast, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(fast, np.tile(A.mean(axis=0), (n, 1)), rtol=1e-13, atol=1e-15)


def test_averaging_matrix_default_is_numpy_float64():
    Pn = refnet.averaging_matrix(4)
    assert isinstance(Pn, np.ndarray) and Pn.dtype == np.float64 and Pn.shape == (4, 4)
    assert refnet.averaging_matrix(3, dtype="float32").dtype == np.float32


@given(st.integers(1, 6), st.integers(1, 6), seeds)
def test_average_incoming_torch_layout_axis_1(backend, n_out, n_in, seed):
    Wt = np.random.default_rng(seed).standard_normal((n_out, n_in))      # nn.Linear.weight (out, in)
    ours = backend.numpy(refnet.average_incoming(backend.asarray(Wt), axis=1))
    np.testing.assert_allclose(ours, Wt @ P(n_in), rtol=1e-13, atol=1e-15)   # row means: W_t P_in
    np.testing.assert_allclose(ours.T, P(n_in) @ Wt.T, rtol=1e-13, atol=1e-15)   # = (P_in W)^T, refnet layout


@given(st.tuples(*[st.integers(1, 3)] * 3), st.integers(1, 4), seeds)
def test_average_incoming_conv_hwio_kernel(backend, hwc, c_out, seed):
    K = np.random.default_rng(seed).standard_normal((*hwc, c_out))        # TF conv kernel (H, W, C_in, C_out)
    n_in = int(np.prod(hwc))                                              # fan-in H * W * C_in
    oracle = (P(n_in) @ K.reshape(n_in, c_out)).reshape(K.shape)          # P_in applied to the flattened kernel
    for axes in [(0, 1, 2), (-4, -3, -2)]:
        ours = backend.numpy(refnet.average_incoming(backend.asarray(K), axis=axes))
        np.testing.assert_allclose(ours, oracle, rtol=1e-13, atol=1e-15)


@given(st.integers(1, 8), st.integers(1, 8), momenta, seeds)
def test_column_sums_of_momentum_term_are_kept(backend, n_in, n_out, mu, seed):
    A = np.random.default_rng(seed).standard_normal((n_in, n_out))
    avg = backend.numpy(refnet.average_incoming(backend.asarray(A), axis=0))
    # 1^T (mu P_in A) = mu 1^T A: averaging moves momentum within a neuron's inputs, never loses it
    np.testing.assert_allclose((mu * avg).sum(axis=0), (mu * A).sum(axis=0), rtol=1e-12,
                               atol=1e-14 * np.abs(A).sum())


# -------------------------------------------------------------- limit cases
@given(grad_sequences(), learning_rates, st.booleans())
def test_momentum_zero_is_sgd(backend, prob, lr, include_bias):
    params, grad_seq = prob
    sgd = run(backend, refnet.SGD(lr), params, grad_seq)
    oracle = [[(W - lr * gW, b - lr * gb) for (W, b), (gW, gb) in zip(p, g)]          # w -= lr g
              for p, g in zip([params] + sgd[:-1], grad_seq)]
    assert_trajectories_close(sgd, oracle, rtol=1e-15)
    assert_trajectories_equal(run(backend, refnet.Momentum(lr, 0.0), params, grad_seq), sgd)
    assert_trajectories_equal(run(backend, refnet.AveragedMomentum(lr, 0.0, include_bias=include_bias),
                                  params, grad_seq), sgd)


@given(st.integers(1, 3), st.integers(1, 5), st.integers(1, 4), learning_rates, momenta, seeds)
def test_fan_in_one_is_standard_momentum(backend, n_layers, n_out, n_steps, lr, mu, seed):
    rng = np.random.default_rng(seed)
    sizes = [1] * n_layers + [n_out]                                     # every W_l has one row
    params = refnet.MLP(sizes).init(seed=rng)
    grad_seq = [[(rng.standard_normal(W.shape), rng.standard_normal(b.shape)) for W, b in params]
                for _ in range(n_steps)]
    assert_trajectories_equal(run(backend, refnet.AveragedMomentum(lr, mu), params, grad_seq),
                              run(backend, refnet.Momentum(lr, mu), params, grad_seq))


@given(grad_sequences(), learning_rates, momenta, st.booleans())
def test_equal_gradients_down_columns_give_standard_momentum(backend, prob, lr, mu, include_bias):
    params, grad_seq = prob
    # every entry of column j (and, with include_bias, b_j too) gets the same gradient g_j
    grad_seq = [[(np.ones_like(gW) * gb, gb) for gW, gb in grads] for grads in grad_seq]
    ours = run(backend, refnet.AveragedMomentum(lr, mu, include_bias=include_bias), params, grad_seq)
    assert_trajectories_close(ours, oracle_momentum(params, grad_seq, lr, mu), rtol=1e-13)


# ------------------------------------------- incoming, not outgoing (the seed's bug)
def seed_answer_outgoing(params, grads, acc, lr, mu):
    """The seed answer's step: reduce_mean(accumulation, axis=1) on an (in, out) kernel,
    i.e. the mean over each input unit's OUTGOING connections; biases standard."""
    acc = [(gW + mu * aW.mean(axis=1, keepdims=True), gb + mu * ab)         # a <- g + mu A P_out
           for (gW, gb), (aW, ab) in zip(grads, acc)]
    return [(W - lr * aW, b - lr * ab) for (W, b), (aW, ab) in zip(params, acc)], acc


def incoming_explicit(params, grads, acc, lr, mu):
    """The intended step in explicit matrix form: A <- G + mu P_in A (biases standard)."""
    acc = [(gW + mu * (P(gW.shape[0]) @ aW), gb + mu * ab)                  # a <- g + mu P_in A
           for (gW, gb), (aW, ab) in zip(grads, acc)]
    return [(W - lr * aW, b - lr * ab) for (W, b), (aW, ab) in zip(params, acc)], acc


def train_numpy(net, X, T, update, lr, mu, n_steps):
    """Full-batch training from net.init(seed=1) with ``update``; the params after each step."""
    params = net.init(seed=1)
    acc = [(np.zeros_like(W), np.zeros_like(b)) for W, b in params]
    out = []
    for _ in range(n_steps):
        _, grads = net.loss_and_grads(params, X, T)
        params, acc = update(params, grads, acc, lr, mu)
        out.append(params)
    return out


def test_non_square_layers_average_incoming_not_outgoing(backend):
    # 3-5-2: both layers non-square, so column means (incoming) and row means (outgoing) differ
    net = refnet.MLP([3, 5, 2], activation="tanh")
    rng = np.random.default_rng(7)
    X, T = rng.uniform(-1, 1, (10, 3)), rng.standard_normal((10, 2))
    lr, mu, n_steps = 0.2, 0.9, 6
    opt = refnet.AveragedMomentum(lr, mu)
    p, Xb, Tb = backend.params(net.init(seed=1)), backend.asarray(X), backend.asarray(T)
    state, ours = opt.init(p), []
    for _ in range(n_steps):
        p, state = opt.step(p, net.loss_and_grads(p, Xb, Tb)[1], state)
        ours.append(backend.params_numpy(p))
    assert_trajectories_close(ours, train_numpy(net, X, T, incoming_explicit, lr, mu, n_steps), rtol=1e-11)
    seed = train_numpy(net, X, T, seed_answer_outgoing, lr, mu, n_steps)
    for step, (a, b) in enumerate(zip(ours, seed), start=1):
        diff = max(np.abs(x - y).max() for la, lb in zip(a, b) for x, y in zip(la, lb))
        if step == 1:
            assert diff < 1e-15     # a = 0 at the start: both variants take the plain gradient step
        else:
            assert diff > 1e-4, f"step {step}: the seed's outgoing average gave the same trajectory"


@given(st.integers(1, 6), st.integers(1, 6), seeds)
def test_outgoing_average_differs_on_non_square(backend, n_in, n_out, seed):
    assume(n_in != n_out)
    rng = np.random.default_rng(seed)
    params = [(rng.standard_normal((n_in, n_out)), np.zeros(n_out))]
    grad_seq = [[(rng.standard_normal((n_in, n_out)), rng.standard_normal(n_out))] for _ in range(2)]
    ours = run(backend, refnet.AveragedMomentum(0.5, 0.9), params, grad_seq)
    incoming = oracle_averaged(params, grad_seq, 0.5, 0.9, incoming=True)
    outgoing = oracle_averaged(params, grad_seq, 0.5, 0.9, incoming=False)
    assert_trajectories_close(ours, incoming)
    assert np.abs(ours[1][0][0] - outgoing[1][0][0]).max() > 1e-8     # the seed's axis is another algorithm


# -------------------------------------------------------------------- purity
OPTIMIZERS = [lambda: refnet.SGD(0.1), lambda: refnet.Momentum(0.1, 0.9),
              lambda: refnet.Momentum(0.1, 0.9, nesterov=True), lambda: refnet.AveragedMomentum(0.1, 0.9),
              lambda: refnet.AveragedMomentum(0.1, 0.9, include_bias=True)]


@given(grad_sequences(max_steps=1), st.sampled_from(OPTIMIZERS))
def test_step_does_not_modify_inputs(backend, prob, make):
    params, (g1,) = prob
    opt = make()
    p, g = backend.params(params), backend.params(g1)
    _, state = opt.step(p, g, opt.init(p))                      # a non-zero state
    tree = lambda s: [] if isinstance(s, refnet.SGDState) else s.accumulation
    before = [backend.params_numpy(t) for t in (p, g, tree(state))]
    opt.step(p, g, state)
    for t, b in zip((p, g, tree(state)), before):
        assert_trajectories_equal([backend.params_numpy(t)], [b])


# --------------------------------------------------------------- validation
@pytest.mark.parametrize("lr", [0.0, -0.1, float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("make", [lambda lr: refnet.SGD(lr), lambda lr: refnet.Momentum(lr, 0.9),
                                  lambda lr: refnet.AveragedMomentum(lr, 0.9)], ids=["sgd", "momentum", "averaged"])
def test_bad_learning_rate(make, lr):
    with pytest.raises(ValueError, match=r"lr must be a finite number > 0"):
        make(lr)


@pytest.mark.parametrize("mu", [-0.1, 1.0, 1.5, float("nan"), float("inf")])
@pytest.mark.parametrize("cls", [refnet.Momentum, refnet.AveragedMomentum])
def test_bad_momentum(cls, mu):
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
        cls(0.1, mu)


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError, match=r"nesterov=True needs momentum > 0"):
        refnet.Momentum(0.1, 0.0, nesterov=True)


@pytest.mark.parametrize("bad", [1, "yes", None, np.bool_(True)])
def test_flags_must_be_bool(bad):
    with pytest.raises(TypeError, match=r"nesterov must be True or False"):
        refnet.Momentum(0.1, 0.9, nesterov=bad)
    with pytest.raises(TypeError, match=r"include_bias must be True or False"):
        refnet.AveragedMomentum(0.1, 0.9, include_bias=bad)


@pytest.mark.parametrize("bad", ["0.1", None, [0.1]])
def test_hyperparameters_must_be_numbers(bad):
    with pytest.raises(TypeError, match=r"lr must be a real number"):
        refnet.SGD(bad)
    with pytest.raises(TypeError, match=r"momentum must be a real number"):
        refnet.Momentum(0.1, bad)


# ----------------------------------------------------------- conformance kit
def test_conformance_report_names_first_divergence():
    sc = Scenario(sizes=(4, 3, 2), n_steps=5)
    ref = reference_trajectory(sc)
    assert len(ref) == 6 and all(W.dtype == np.float64 for step in ref for W, _ in step)
    same = compare_trajectories(ref, [[(W.copy(), b.copy()) for W, b in s] for s in ref])
    assert same.ok and same.max_abs_error == 0.0 and "agree over 5 steps" in str(same)
    torch_layout = [[x for W, b in s for x in (W.T, b)] for s in ref]
    assert compare_trajectories(ref, torch_layout, layout="torch").ok
    bad = [[x.copy() for x in s] for s in torch_layout]
    bad[3][2][1, 2] += 1e-6                                     # torch W_2[1, 2] = refnet W_2[2, 1], step 3
    bad[4][0][0, 0] += 1.0                                      # a later, larger error
    r = compare_trajectories(ref, bad, layout="torch")
    assert not r.ok and (r.step, r.parameter, r.index) == (3, "W_2", (1, 2))
    assert r.where == "step 3, W_2[1, 2]" and "diverge at step 3, W_2[1, 2]" in str(r)
    assert r.candidate_value - r.reference_value == pytest.approx(1e-6, rel=1e-6)
    assert r.max_abs_error == pytest.approx(1.0)
    short = compare_trajectories(ref, ref[:3])
    assert not short.ok and "compared 2" in str(short)
    with pytest.raises(ValueError, match="layout"):
        compare_trajectories(ref, ref, layout="jax")
    with pytest.raises(ValueError, match=r"W_1 has shape"):
        compare_trajectories(ref, ref, layout="torch")          # refnet-layout W given as torch: (4, 3) vs (3, 4)


# ------------------------------------------------------ the fused training step
def _training_problem(backend, sizes, activation, loss, n=6, seed=0):
    """(net, params, X, T) on ``backend``; T are probability rows for softmax_cross_entropy."""
    net = refnet.MLP(sizes, activation=activation)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0]))
    T = (rng.dirichlet(np.ones(sizes[-1]), size=n) if loss == "softmax_cross_entropy"
         else rng.standard_normal((n, sizes[-1])))
    return net, backend.params(net.init(seed=seed)), backend.asarray(X), backend.asarray(T)


def _state_tree(state):
    return [] if isinstance(state, refnet.SGDState) else state.accumulation


@pytest.mark.parametrize("loss", ["mse", "softmax_cross_entropy"])
@pytest.mark.parametrize("make", OPTIMIZERS, ids=["sgd", "momentum", "nesterov", "averaged", "averaged-bias"])
@pytest.mark.parametrize("sizes, activation", [([3, 5, 4], "tanh"), ([4, 6, 6, 3], "sigmoid"), ([2, 3], "relu")])
def test_train_step_equals_loss_and_grads_then_step(backend, sizes, activation, make, loss):
    """Bit for bit, over 3 steps: the loss, the new params and the new state."""
    net, params, X, T = _training_problem(backend, sizes, activation, loss)
    opt = make()
    p2, s2 = params, opt.init(params)                      # the two-call form
    p1, s1 = params, opt.init(params)                      # the fused step
    for _ in range(3):
        value2, grads = net.loss_and_grads(p2, X, T, loss=loss)
        p2, s2 = opt.step(p2, grads, s2)
        value1, p1, s1 = opt.train_step(net, p1, s1, X, T, loss=loss)
        np.testing.assert_array_equal(backend.numpy(value1), backend.numpy(value2))
        assert_trajectories_equal([backend.params_numpy(p1), backend.params_numpy(_state_tree(s1))],
                                  [backend.params_numpy(p2), backend.params_numpy(_state_tree(s2))])
        assert type(s1) is type(s2)


def _nan_at(backend, x, index):
    """A copy of ``x`` with NaN at ``index``."""
    a = backend.numpy(x)
    a[index] = np.nan
    return backend.asarray(a)


# name -> (net, params, state, X, T, opt, loss) -> (params, state, X, T, opt, loss), the bad variant
BAD_TRAINING_STEPS = {
    "nan params": lambda b, p, s, X, T, o, L: ([p[0], (p[1][0], _nan_at(b, p[1][1], 0))], s, X, T, o, L),
    "nan X": lambda b, p, s, X, T, o, L: (p, s, _nan_at(b, X, (1, 2)), T, o, L),
    "nan T": lambda b, p, s, X, T, o, L: (p, s, X, _nan_at(b, T, (0, 0)), o, L),
    "nan state": lambda b, p, s, X, T, o, L: (
        p, refnet.MomentumState([s.accumulation[0], (_nan_at(b, s.accumulation[1][0], (0, 1)),
                                                     s.accumulation[1][1])]), X, T, o, L),
    "state of another optimizer": lambda b, p, s, X, T, o, L: (p, refnet.SGDState(), X, T, o, L),
    "state of the wrong shape": lambda b, p, s, X, T, o, L: (p, refnet.MomentumState(s.accumulation[:1]), X, T, o, L),
    "nan X and a bad state": lambda b, p, s, X, T, o, L: (p, refnet.SGDState(), _nan_at(b, X, (0, 0)), T, o, L),
    "T rows not probabilities": lambda b, p, s, X, T, o, L: (p, s, X, T * 2.0, o, "softmax_cross_entropy"),
    "unknown loss": lambda b, p, s, X, T, o, L: (p, s, X, T, o, "l2"),
    "X of the wrong width": lambda b, p, s, X, T, o, L: (p, s, X[:, :2], T, o, L),
    "T of the wrong dtype": lambda b, p, s, X, T, o, L: (p, s, X, _float32(T), o, L),
    "params of another net": lambda b, p, s, X, T, o, L: (p[:1], s, X, T, o, L),
    "overflowing loss": lambda b, p, s, X, T, o, L: (p, s, X, T * 1e200, o, L),
    "overflowing step": lambda b, p, s, X, T, o, L: (p, s, X, T * 1e150, refnet.Momentum(1e300, 0.9), L),
}


def _float32(x):
    xp = x.__array_namespace__()
    return xp.astype(x, xp.float32)


@pytest.mark.parametrize("case", list(BAD_TRAINING_STEPS))
def test_train_step_raises_what_the_two_calls_raise(backend, case):
    """The same exception type and message as loss_and_grads + step, and nothing passed in changes."""
    net, params, X, T = _training_problem(backend, [3, 5, 4], "tanh", "mse")
    opt = refnet.Momentum(0.1, 0.9)
    _, grads = net.loss_and_grads(params, X, T)
    _, state = opt.step(params, grads, opt.init(params))            # a non-zero state
    params, state, X, T, opt, loss = BAD_TRAINING_STEPS[case](backend, params, state, X, T, opt, "mse")
    with pytest.raises((TypeError, ValueError, FloatingPointError)) as two_calls:
        _, grads = net.loss_and_grads(params, X, T, loss=loss)
        opt.step(params, grads, state)
    before = [backend.params_numpy(t) for t in (params, _state_tree(state))] + [backend.numpy(X), backend.numpy(T)]
    with pytest.raises(two_calls.type) as fused:
        opt.train_step(net, params, state, X, T, loss=loss)
    assert str(fused.value) == str(two_calls.value)
    after = [backend.params_numpy(t) for t in (params, _state_tree(state))] + [backend.numpy(X), backend.numpy(T)]
    for a, b in zip(after, before):
        assert_trajectories_equal([a], [b]) if isinstance(a, list) else np.testing.assert_array_equal(a, b)


def test_train_step_needs_an_mlp():
    with pytest.raises(TypeError, match="net must be a refnet.MLP"):
        refnet.SGD(0.1).train_step([3, 4], [(np.ones((3, 4)), np.ones(4))], refnet.SGDState(),
                                   np.ones((2, 3)), np.ones((2, 4)))


def test_train_step_finite_values_whose_squares_overflow(backend):
    """Inputs of 1e160 are finite but their fused sum of squares is not: the exact check then passes
    them, and the fused step still equals the two calls (saturated sigmoids keep the step finite)."""
    net, params, X, T = _training_problem(backend, [3, 4, 2], "sigmoid", "mse")
    X = X * 1e160
    opt = refnet.SGD(0.1)
    value2, grads = net.loss_and_grads(params, X, T)
    p2, _ = opt.step(params, grads, opt.init(params))
    value1, p1, _ = opt.train_step(net, params, opt.init(params), X, T)
    np.testing.assert_array_equal(backend.numpy(value1), backend.numpy(value2))
    assert_trajectories_equal([backend.params_numpy(p1)], [backend.params_numpy(p2)])
