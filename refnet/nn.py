"""Activations and losses, each written once as readable math.

Every function takes the array namespace ``xp`` first, so the same lines run on
any array-API library (see :mod:`refnet.backend`).
"""
from __future__ import annotations

from typing import Callable, NamedTuple


class Activation(NamedTuple):
    """phi and its derivative. ``df(xp, Z, A)`` gets both Z and A = phi(Z),
    so each derivative uses the cheaper form (e.g. tanh' = 1 - A^2)."""
    name: str
    f: Callable
    df: Callable


def _sigmoid(xp, Z):
    return xp.exp(-xp.logaddexp(xp.zeros_like(Z), -Z))  # 1 / (1 + e^-Z) without overflow


ACTIVATIONS = {
    "identity": Activation("identity", lambda xp, Z: Z,
                           lambda xp, Z, A: xp.ones_like(Z)),             # phi' = 1
    "sigmoid": Activation("sigmoid", _sigmoid,
                          lambda xp, Z, A: A * (1.0 - A)),                 # phi' = s (1 - s)
    "tanh": Activation("tanh", lambda xp, Z: xp.tanh(Z),
                       lambda xp, Z, A: 1.0 - A * A),                      # phi' = 1 - tanh^2
    "relu": Activation("relu", lambda xp, Z: xp.maximum(Z, xp.zeros_like(Z)),  # max(Z, 0)
                       lambda xp, Z, A: xp.astype(Z > 0.0, Z.dtype)),      # phi' = [Z > 0] (0 at Z = 0)
    "softplus": Activation("softplus", lambda xp, Z: xp.logaddexp(xp.zeros_like(Z), Z),  # log(1 + e^Z)
                           lambda xp, Z, A: _sigmoid(xp, Z)),              # phi' = sigmoid(Z)
}


def mse(xp, Y, T):
    """Mean squared error over all entries and its gradient.

    L = mean((Y - T)^2) (TensorFlow's ``reduce_mean(square(Y - T))``);
    dL/dY = 2 (Y - T) / (n * n_out). Y, T: (n, n_out). Returns (L 0-d, G (n, n_out)).
    """
    R = Y - T                                          # residual (n, n_out)
    N = R.shape[0] * R.shape[1]
    return xp.sum(R * R) / N, (2.0 / N) * R            # L = |R|^2 / N,  G = 2 R / N


def softmax_cross_entropy(xp, Y, T):
    """Softmax cross-entropy of logits Y against probability targets T, averaged over samples.

    L = -(1/n) sum_i sum_k T_ik log softmax(Y_i)_k, computed with a stable
    log-sum-exp; dL/dY = (softmax(Y) * rowsum(T) - T) / n, i.e. (P - T) / n for
    rows of T that sum to 1 (one-hot or probabilities). Y, T: (n, n_out).
    """
    n = Y.shape[0]
    Zs = Y - xp.max(Y, axis=1, keepdims=True)                         # shift: softmax(Y) = softmax(Zs)
    logP = Zs - xp.log(xp.sum(xp.exp(Zs), axis=1, keepdims=True))     # log softmax = Zs - logsumexp(Zs)
    L = -xp.sum(T * logP) / n                                         # L = -(1/n) sum T log P
    G = (xp.exp(logP) * xp.sum(T, axis=1, keepdims=True) - T) / n      # dL/dY = (P rowsum(T) - T) / n
    return L, G


LOSSES = {"mse": mse, "softmax_cross_entropy": softmax_cross_entropy}
