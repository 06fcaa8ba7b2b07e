"""A network small enough to differentiate by hand, and the activation/loss tables.

The 2-2-1 network (sigmoid hidden layer, identity output), in design.md notation
with W_l of shape (n_{l-1}, n_l), so W_l[i, j] connects unit i of layer l-1 to
unit j of layer l:

    W_1 = [[w11, w12],  = [[0.5,  -1.0],     b_1 = [b1, b2] = [0.0, 0.5]
           [w21, w22]]     [0.25,  0.5]]
    W_2 = [[v1],        = [[ 1.0],           b_2 = [c]      = [0.5]
           [v2]]           [-2.0]]

Every number below is computed with Python floats and ``math``, one formula a
line, and only then compared with refnet. Nothing here calls refnet to make an
expected value.
"""
import math

import array_api_compat.numpy as xnp
import numpy as np
import pytest

import refnet
from refnet.nn import ACTIVATIONS, mse, softmax_cross_entropy

w11, w12, w21, w22 = 0.5, -1.0, 0.25, 0.5
b1, b2 = 0.0, 0.5
v1, v2 = 1.0, -2.0
c = 0.5


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))                         # a = 1 / (1 + e^-z)


def net_and_params(backend):
    """The 2-2-1 network and its parameters on ``backend``: [(W_1 (2, 2), b_1 (2,)), (W_2 (2, 1), b_2 (1,))]."""
    net = refnet.MLP([2, 2, 1], activation="sigmoid", output_activation="identity")
    params = [(np.array([[w11, w12], [w21, w22]]), np.array([b1, b2])),
              (np.array([[v1], [v2]]), np.array([c]))]
    return net, backend.params(params)


def by_hand(x1, x2):
    """Forward pass of one sample, scalar by scalar. Returns (h1, h2, a1, a2, y)."""
    h1 = x1 * w11 + x2 * w21 + b1                             # z_1 of hidden unit 1
    h2 = x1 * w12 + x2 * w22 + b2                             # z_1 of hidden unit 2
    a1 = sigmoid(h1)                                          # a = phi(z)
    a2 = sigmoid(h2)
    y = a1 * v1 + a2 * v2 + c                                 # identity output: y = z_2
    return h1, h2, a1, a2, y


def grads_by_hand(x1, x2, delta_2):
    """Backprop of one sample's output gradient delta_2 = dL/dy (identity output: phi' = 1).

    Returns the 9 gradient entries in flatten order:
    [w11, w12, w21, w22, b1, b2, v1, v2, c].
    """
    _, _, a1, a2, _ = by_hand(x1, x2)
    dv1 = a1 * delta_2                                        # dW_2 = A_1^T Delta_2
    dv2 = a2 * delta_2
    dc = delta_2                                              # db_2 = colsum Delta_2
    delta_11 = delta_2 * v1 * a1 * (1.0 - a1)                 # Delta_1 = (Delta_2 W_2^T) * a (1 - a)
    delta_12 = delta_2 * v2 * a2 * (1.0 - a2)
    dw11, dw12 = x1 * delta_11, x1 * delta_12                 # dW_1 = X^T Delta_1
    dw21, dw22 = x2 * delta_11, x2 * delta_12
    db1, db2 = delta_11, delta_12                             # db_1 = colsum Delta_1
    return [dw11, dw12, dw21, dw22, db1, db2, dv1, dv2, dc]


def test_forward_and_loss_one_sample_by_hand(backend):
    """x = (1, 2), target t = 1: every intermediate value written out."""
    x1, x2, t = 1.0, 2.0, 1.0
    h1 = x1 * w11 + x2 * w21 + b1                             # 1*0.5 + 2*0.25 + 0   = 1.0
    h2 = x1 * w12 + x2 * w22 + b2                             # 1*(-1) + 2*0.5 + 0.5 = 0.5
    assert (h1, h2) == (1.0, 0.5)
    a1 = 1.0 / (1.0 + math.exp(-h1))                          # sigmoid(1)   = 0.7310585786...
    a2 = 1.0 / (1.0 + math.exp(-h2))                          # sigmoid(0.5) = 0.6224593312...
    y = a1 * v1 + a2 * v2 + c                                 # 0.73106 - 1.24492 + 0.5 = -0.0138600838...
    N = 1 * 1                                                 # mse averages over n * n_out entries
    loss = (y - t) ** 2 / N                                   # (-1.01386)^2 = 1.0279122695...
    assert abs(y - (-0.01386008377370429)) < 1e-15

    net, params = net_and_params(backend)
    X, T = backend.asarray([[x1, x2]]), backend.asarray([[t]])
    assert abs(float(net.forward(params, X)[0, 0]) - y) <= 1e-15
    L, _ = net.loss_and_grads(params, X, T, loss="mse")
    assert abs(float(L) - loss) <= 1e-15


def test_backward_one_sample_by_hand(backend):
    """Delta's and all 9 gradient entries of the mse loss at x = (1, 2), t = 1."""
    x1, x2, t = 1.0, 2.0, 1.0
    _, _, a1, a2, y = by_hand(x1, x2)
    N = 1
    delta_2 = 2.0 * (y - t) / N                               # dL/dy = 2 (y - t) / N = -2.0277201675...
    dv1 = a1 * delta_2                                        # -1.4823822235...
    dv2 = a2 * delta_2                                        # -1.2621733394...
    dc = delta_2
    delta_11 = delta_2 * v1 * a1 * (1.0 - a1)                 # -2.02772 *  1 * 0.19661 = -0.3986739822...
    delta_12 = delta_2 * v2 * a2 * (1.0 - a2)                 # -2.02772 * -2 * 0.23500 =  0.9530435334...
    expected = [x1 * delta_11, x1 * delta_12,                 # dW_1[0, :] = x1 * (delta_11, delta_12)
                x2 * delta_11, x2 * delta_12,                 # dW_1[1, :] = x2 * (delta_11, delta_12)
                delta_11, delta_12,                           # db_1
                dv1, dv2, dc]                                 # dW_2[:, 0], db_2
    assert abs(delta_11 - (-0.39867398221423744)) < 1e-15 and abs(delta_12 - 0.9530435333593602) < 1e-15

    net, params = net_and_params(backend)
    X, T = backend.asarray([[x1, x2]]), backend.asarray([[t]])
    _, grads = net.loss_and_grads(params, X, T, loss="mse")
    np.testing.assert_allclose(backend.numpy(refnet.flatten(grads)), expected, rtol=1e-14, atol=1e-15)
    # the same backprop through vjp, seeded with G = dL/dY
    grads = net.vjp(params, X, backend.asarray([[delta_2]]))
    np.testing.assert_allclose(backend.numpy(refnet.flatten(grads)), expected, rtol=1e-14, atol=1e-15)


def test_batch_of_two_sums_rows_and_averages_loss(backend):
    """Two samples: mse divides by N = n * n_out = 2, and dW, db sum the per-sample terms."""
    x = [(1.0, 2.0), (-1.0, 0.5)]
    t = [1.0, -0.5]
    N = 2 * 1
    ys = [by_hand(*xi)[4] for xi in x]
    loss = ((ys[0] - t[0]) ** 2 + (ys[1] - t[1]) ** 2) / N    # L = sum (y_i - t_i)^2 / N
    deltas = [2.0 * (ys[i] - t[i]) / N for i in range(2)]     # dL/dy_i = 2 (y_i - t_i) / N
    per_sample = [grads_by_hand(*x[i], deltas[i]) for i in range(2)]
    expected = [g0 + g1 for g0, g1 in zip(*per_sample)]       # A^T Delta and colsum: a sum over samples

    net, params = net_and_params(backend)
    X, T = backend.asarray(x), backend.asarray([[ti] for ti in t])
    L, grads = net.loss_and_grads(params, X, T, loss="mse")
    assert abs(float(L) - loss) <= 1e-15 * max(1.0, loss)
    np.testing.assert_allclose(backend.numpy(refnet.flatten(grads)), expected, rtol=1e-14, atol=1e-15)
    # vjp with an arbitrary G: each row scales its own sample's backprop
    G = [3.0, -0.25]
    expected = [g0 + g1 for g0, g1 in zip(grads_by_hand(*x[0], G[0]), grads_by_hand(*x[1], G[1]))]
    got = net.vjp(params, X, backend.asarray([[g] for g in G]))
    np.testing.assert_allclose(backend.numpy(refnet.flatten(got)), expected, rtol=1e-14, atol=1e-15)


def test_jacobian_rows_are_per_sample_backprop_by_hand(backend):
    """Row i of J = dy_i/dtheta: one sample's backprop of the seed dy/dy = 1, in flatten order."""
    x = [(1.0, 2.0), (-1.0, 0.5)]
    expected = np.array([grads_by_hand(*xi, 1.0) for xi in x])  # (n * 1, p) = (2, 9)
    net, params = net_and_params(backend)
    J = backend.numpy(net.jacobian(params, backend.asarray(x), outputs=[0]))
    assert J.shape == (2, 9)
    np.testing.assert_allclose(J, expected, rtol=1e-14, atol=1e-15)
    # spot check of one entry a reader can redo: dy_1/dw21 = x2 * v1 * a1 (1 - a1) = 2 * sigmoid'(1)
    s = sigmoid(1.0)
    assert abs(J[0, 2] - 2.0 * 1.0 * s * (1.0 - s)) < 1e-15


# ------------------------------------------------------------ activation table
EXPLICIT = {                                                  # phi(z) written with math, independently
    "identity": lambda z: z,
    "sigmoid": lambda z: 1.0 / (1.0 + math.exp(-z)),
    "tanh": math.tanh,
    "relu": lambda z: max(z, 0.0),
    "softplus": lambda z: math.log1p(math.exp(z)),
}
POINTS = [-2.5, -0.7, 0.3, 1.0, 2.2]                          # away from relu's kink at 0


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_and_derivative_table(backend, name):
    """phi(z) against the explicit formula; phi'(z) against (phi(z+h) - phi(z-h)) / 2h."""
    assert set(EXPLICIT) == set(ACTIVATIONS)
    phi, f, h = ACTIVATIONS[name], EXPLICIT[name], 1e-6
    Z = backend.asarray([POINTS])
    xp = refnet.backend.namespace({"Z": Z})
    A = phi.f(xp, Z)
    dA = backend.numpy(phi.df(xp, Z, A))[0]
    for j, z in enumerate(POINTS):
        assert abs(float(A[0, j]) - f(z)) <= 1e-15 * max(1.0, abs(f(z)))
        fd = (f(z + h) - f(z - h)) / (2 * h)                  # central difference, error O(h^2)
        assert abs(dA[j] - fd) <= 1e-9, (name, z, dA[j], fd)


def test_relu_derivative_at_zero_is_zero(backend):
    """The convention at the kink (documented in nn.py): relu'(0) = 0."""
    Z = backend.asarray([[0.0]])
    xp = refnet.backend.namespace({"Z": Z})
    relu = ACTIVATIONS["relu"]
    assert float(relu.df(xp, Z, relu.f(xp, Z))[0, 0]) == 0.0


def test_sigmoid_and_softplus_do_not_overflow(backend):
    """At |z| = 800, e^800 overflows float64; the stable forms give the limits without warnings
    (pytest turns RuntimeWarning into an error)."""
    Z = backend.asarray([[-800.0, 800.0]])
    xp = refnet.backend.namespace({"Z": Z})
    s = backend.numpy(ACTIVATIONS["sigmoid"].f(xp, Z))[0]
    sp = backend.numpy(ACTIVATIONS["softplus"].f(xp, Z))[0]
    assert s[0] == pytest.approx(0.0, abs=1e-300) and s[1] == 1.0     # sigmoid(-800) ~ e^-800, sigmoid(800) = 1
    assert sp[0] == pytest.approx(0.0, abs=1e-300) and sp[1] == 800.0  # softplus(800) = 800 + log(1 + e^-800)


# ------------------------------------------------------------------ loss table
def test_mse_value_and_gradient_by_formula(backend):
    """L = sum (y - t)^2 / N over all N = n * n_out entries; dL/dY = 2 (Y - T) / N."""
    Y = [[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]]
    T = [[0.0, -1.0, 0.5], [1.0, 1.0, 1.0]]
    N = 6
    L = sum((y - t) ** 2 for ry, rt in zip(Y, T) for y, t in zip(ry, rt)) / N   # (1 + 1 + 0 + 4 + 1 + 4) / 6
    assert L == 11.0 / 6.0
    G = [[2.0 * (y - t) / N for y, t in zip(ry, rt)] for ry, rt in zip(Y, T)]
    xp = refnet.backend.namespace({"Y": backend.asarray(Y)})
    value, grad = mse(xp, backend.asarray(Y), backend.asarray(T))
    assert abs(float(value) - L) <= 1e-15
    np.testing.assert_allclose(backend.numpy(grad), G, rtol=1e-15, atol=0)


def _cross_entropy_by_formula(Y, T):
    """L = -(1/n) sum_i sum_k T_ik log softmax(y_i)_k and G = (softmax(y_i) - t_i) / n, with math.

    log softmax(y)_k = y_k - m - log sum_j e^(y_j - m), m = max_j y_j (the shift only avoids overflow).
    """
    n, L, G = len(Y), 0.0, []
    for y, t in zip(Y, T):
        m = max(y)
        lse = math.log(sum(math.exp(yj - m) for yj in y))              # log sum_j e^{y_j - m}
        L -= sum(tk * ((yk - m) - lse) for yk, tk in zip(y, t)) / n    # log softmax = (y_k - m) - lse
        G.append([(math.exp((yk - m) - lse) - tk) / n for yk, tk in zip(y, t)])
    return L, G


@pytest.mark.parametrize("Y, T", [
    ([[0.0, 0.0]], [[1.0, 0.0]]),                                        # L = log 2
    ([[1.0, 2.0, 3.0], [0.5, -0.5, 0.0]], [[0.0, 0.0, 1.0], [0.25, 0.25, 0.5]]),   # one-hot and soft
    ([[1000.0, 1001.0, 999.0], [-1000.0, 0.0, 1000.0]], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),  # e^1000 overflows
])
def test_softmax_cross_entropy_by_formula(backend, Y, T):
    L, G = _cross_entropy_by_formula(Y, T)
    if Y[0] == [0.0, 0.0]:
        assert L == pytest.approx(math.log(2.0), rel=1e-15)
    if max(max(y) for y in Y) >= 1000.0:
        with np.errstate(over="ignore"):
            assert np.isinf(np.exp(np.float64(Y[0][0])))             # the naive formula would overflow
        # row 1: y = (1000, 1001, 999), t = e_0: L_1 = 1 + log(1 + e^-1 + e^-2) = 1.4076059644...
        assert abs(1.0 + math.log(1.0 + math.exp(-1.0) + math.exp(-2.0)) - 1.4076059644443804) < 1e-15
    xp = refnet.backend.namespace({"Y": backend.asarray(Y)})
    value, grad = softmax_cross_entropy(xp, backend.asarray(Y), backend.asarray(T))
    assert abs(float(value) - L) <= 1e-14 * max(1.0, abs(L))
    np.testing.assert_allclose(backend.numpy(grad), G, rtol=1e-13, atol=1e-16)


def test_loss_and_grads_with_huge_logits_stays_finite(backend):
    """Through the network: a 1-3 identity layer producing logits ~ 1e3 gives the formula's loss."""
    net = refnet.MLP([1, 3], activation="identity")
    params = backend.params([(np.array([[1000.0, 1001.0, 999.0]]), np.array([0.0, 0.0, 0.0]))])
    X, T = backend.asarray([[1.0]]), backend.asarray([[0.0, 0.0, 1.0]])
    L, grads = net.loss_and_grads(params, X, T, loss="softmax_cross_entropy")
    expected, G = _cross_entropy_by_formula([[1000.0, 1001.0, 999.0]], [[0.0, 0.0, 1.0]])
    assert abs(float(L) - expected) <= 1e-14 * expected                 # = 2 + log(1 + e^-1 + e^-2)
    # dL/dW = x^T G = 1 * G,  dL/db = G
    np.testing.assert_allclose(backend.numpy(refnet.flatten(grads)), G[0] + G[0], rtol=1e-13, atol=1e-16)
