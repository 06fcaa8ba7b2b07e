"""Activations and losses, each written once as readable math.

Every function takes the array namespace ``xp`` first, so the same lines run on
any array-API library (see :mod:`refnet.backend`).
"""
from __future__ import annotations

from typing import Callable, NamedTuple


class Activation(NamedTuple):
    """An activation ``phi`` and its derivative, applied elementwise.

    ``f(xp, Z)`` returns ``phi(Z)``; ``df(xp, Z, A)`` returns ``phi'(Z)`` and gets
    both ``Z`` and ``A = phi(Z)``, so each derivative uses the cheaper form
    (e.g. ``tanh' = 1 - A^2``).
    """
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
    """Mean squared error over all entries, and its gradient::

        L = sum_ik (Y_ik - T_ik)^2 / (n n_L)        G = dL/dY = 2 (Y - T) / (n n_L)

    TensorFlow's ``reduce_mean(square(Y - T))``.

    Parameters
    ----------
    xp : array namespace
    Y, T : arrays, shape (n, n_L)
        Outputs and targets.

    Returns
    -------
    L : 0-d array
    G : array, shape (n, n_L)
    """
    R = Y - T                                          # residual (n, n_out)
    N = R.shape[0] * R.shape[1]
    return xp.sum(R * R) / N, (2.0 / N) * R            # L = |R|^2 / N,  G = 2 R / N


def softmax_cross_entropy(xp, Y, T):
    """Softmax cross-entropy of logits ``Y`` against probability targets ``T``, averaged over samples::

        P_ik = exp(Y_ik) / sum_j exp(Y_ij)          (row-wise softmax)
        L    = -(1/n) sum_i sum_k T_ik log P_ik
        G    = dL/dY = (P * rowsum(T) - T) / n  =  (P - T) / n   when every row of T sums to 1

    ``log P`` is computed with a stable log-sum-exp (the row maximum is
    subtracted first).

    Parameters
    ----------
    xp : array namespace
    Y : array, shape (n, n_L)
        Logits.
    T : array, shape (n, n_L)
        One-hot or probability rows.

    Returns
    -------
    L : 0-d array
    G : array, shape (n, n_L)
    """
    n = Y.shape[0]
    Zs = Y - xp.max(Y, axis=1, keepdims=True)                         # shift: softmax(Y) = softmax(Zs)
    logP = Zs - xp.log(xp.sum(xp.exp(Zs), axis=1, keepdims=True))     # log softmax = Zs - logsumexp(Zs)
    L = -xp.sum(T * logP) / n                                         # L = -(1/n) sum T log P
    G = (xp.exp(logP) * xp.sum(T, axis=1, keepdims=True) - T) / n      # dL/dY = (P rowsum(T) - T) / n
    return L, G


LOSSES = {"mse": mse, "softmax_cross_entropy": softmax_cross_entropy}
