"""Optimizers as pure functions: ``state = opt.init(params)``,
``params, state = opt.step(params, grads, state)`` (optax style).

Every optimizer first computes an *update* U with ``U, state = opt.update(grads, state)``
and then steps ``theta <- theta - U``. ``Projected`` (refnet.frozen) uses ``update``
to project U before it is applied. Nothing here modifies its arguments.

Accumulation rules (TF1 ``MomentumOptimizer``, ``torch.optim.SGD`` with dampening 0):

    SGD:               U = lr g
    Momentum:          a <- g + mu a;           U = lr a       (nesterov: U = lr (g + mu a))
    AveragedMomentum:  a <- g + mu mean_in(a);  U = lr a

``mean_in`` replaces each entry of a weight column (the incoming connections
of one neuron) by the column mean: ``mean_in(A) = P_in A`` with
``P_in = 1 1^T / n_in`` (see :func:`averaging_matrix`, :func:`average_incoming`).
"""
from __future__ import annotations

from typing import NamedTuple

from . import _checks as check
from .backend import device, host_namespace, namespace


# ------------------------------------------------------------------ averaging
def _mean_in(xp, A, axis=0):
    """Mean over the incoming axis/axes, kept for broadcasting (e.g. (1, n_out))."""
    return xp.mean(A, axis=axis, keepdims=True)                 # (1/n_in) 1^T A


def average_incoming(A, axis=0):
    """Replace every entry by the mean over the axes that index incoming connections.

    For refnet's (n_in, n_out) weights and TF/Keras dense kernels: ``axis=0``
    (each column is one neuron's incoming connections). For a PyTorch
    ``nn.Linear.weight`` (n_out, n_in): ``axis=1``. For a TF conv kernel
    (H, W, C_in, C_out): ``axis=(0, 1, 2)``. Returns a new array of A's shape:
    ``mean_in(A) = P_in @ A`` computed as a mean and a broadcast.
    """
    xp = namespace({"A": A})
    check.float_dtype(xp, A, "A")
    axes = check.axes(axis, A.ndim)
    if any(A.shape[a] == 0 for a in axes):
        raise ValueError(f"A has shape {tuple(A.shape)}: the incoming axes {axes} must be non-empty "
                         f"(a mean over no connections is undefined)")
    check.finite(xp, A, "A")
    M = _mean_in(xp, A, axis=axes)                               # column means      (1, n_out)
    return M + xp.zeros_like(A)                                  # broadcast to A     (n_in, n_out)


def averaging_matrix(n: int, dtype=None, like=None):
    """The explicit projector ``P_in = 1 1^T / n`` (n, n), for reading and tests.

    ``P_in @ A`` equals ``average_incoming(A, axis=0)``. P_in is symmetric and
    idempotent: the orthogonal projection onto constant vectors. ``like`` (an
    array) picks the namespace and device (NumPy when None); ``dtype`` is
    "float64" or "float32", by default like's dtype (float64 without like), so
    ``averaging_matrix(n, like=A) @ A`` stays in A's precision.
    """
    n = check.count(n, "n", 1)
    xp, dev = host_namespace() if like is None else (namespace({"like": like}), device(like))
    if dtype is None:
        dtype = "float64" if like is None else ("float32" if like.dtype == xp.float32 else "float64")
    dtype = check.choice(dtype, "dtype", ("float32", "float64"))
    ones = xp.ones((n, 1), dtype=getattr(xp, dtype), device=dev)
    return (ones @ ones.T) / n                                   # P_in = 1 1^T / n


# ----------------------------------------------------------------- optimizers
class SGDState(NamedTuple):
    """Plain SGD keeps no state."""


class MomentumState(NamedTuple):
    """accumulation: [(a_W, a_b), ...] shaped like params."""
    accumulation: list


def _hyper(lr, *momentum):
    lr = check.positive_finite(lr, "lr")
    if not momentum:                                   # SGD: no momentum argument at all
        return lr, None
    momentum, = momentum                               # None is an error, not "no momentum"
    mu = check.real(momentum, "momentum")
    if not 0.0 <= mu < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    return lr, mu


class _Optimizer:
    """Shared ``step``: validate, ``update``, apply, refuse non-finite results."""

    def init(self, params):
        xp, _ = check.params(params)
        return self._init(xp, params)

    def _init(self, xp, params):
        return SGDState()

    def _check_state(self, state, params, xp, dtype):
        if not isinstance(state, SGDState):
            raise TypeError(f"state must be an SGDState from {type(self).__name__}.init, got {type(state).__name__}")

    def _checked(self, params, grads, state):
        """Structure, library, device and dtype checks of a step's arguments; returns xp."""
        xp, dtype = check.params(params)
        check.like_params(grads, params, "grads", xp, dtype)
        self._check_state(state, params, xp, dtype)
        return xp

    def update(self, grads, state, params):
        """The update U (theta_new = theta - U) and the next state; nothing is modified."""
        xp = self._checked(params, grads, state)
        check.tree_finite(xp, grads, "grads")
        return self._update(xp, grads, state)

    def step(self, params, grads, state):
        """One step ``theta <- theta - U``. Returns (new params, new state).

        Raises ``FloatingPointError`` (and returns nothing) if the new params
        would hold NaN or Inf, e.g. after an exploding update.
        """
        xp = self._checked(params, grads, state)
        U, new_state = self._update(xp, grads, state)
        new = apply_update(xp, params, U)
        if not check.tree_all_finite(xp, new):
            # Only on failure (the happy path pays one reduction per array): a NaN/Inf
            # that came in with grads, params or state is a bad value (ValueError
            # naming it), not an overflow.
            check.tree_finite(xp, grads, "grads")
            check.tree_finite(xp, params, "params")
            self._state_finite(xp, state)
            raise FloatingPointError("the step overflowed: new params would hold NaN or Inf; "
                                     "lower lr or check the gradients' scale")
        return new, new_state

    def _state_finite(self, xp, state):
        """Raise ValueError naming the state entry that holds NaN or Inf (SGD: none)."""


def apply_update(xp, params, U):
    """theta_new = theta - U, layer by layer."""
    return [(W - dW, b - db) for (W, b), (dW, db) in zip(params, U)]   # theta <- theta - U


class SGD(_Optimizer):
    """Plain gradient descent: theta <- theta - lr g."""

    def __init__(self, lr):
        self.lr, _ = _hyper(lr)

    def __repr__(self):
        return f"SGD(lr={self.lr})"

    def _update(self, xp, grads, state):
        return [(self.lr * gW, self.lr * gb) for gW, gb in grads], state    # U = lr g


class _MomentumBase(_Optimizer):
    def _init(self, xp, params):
        return MomentumState([(xp.zeros_like(W), xp.zeros_like(b)) for W, b in params])  # a = 0

    def _check_state(self, state, params, xp, dtype):
        if not isinstance(state, MomentumState):
            raise TypeError(f"state must be a MomentumState from {type(self).__name__}.init, "
                            f"got {type(state).__name__}")
        check.like_params(state.accumulation, params, "state.accumulation", xp, dtype)

    def _state_finite(self, xp, state):
        check.tree_finite(xp, state.accumulation, "state.accumulation")


class Momentum(_MomentumBase):
    """SGD with momentum, TF1 ``MomentumOptimizer`` semantics.

    a <- g + mu a;  theta <- theta - lr a   (nesterov: theta <- theta - lr (g + mu a)).
    Equal to ``torch.optim.SGD(lr, momentum=mu, nesterov=...)`` with dampening 0.
    """

    def __init__(self, lr, momentum=0.9, nesterov=False):
        self.lr, self.momentum = _hyper(lr, momentum)
        if check.flag(nesterov, "nesterov") and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0 (got momentum=0.0)")
        self.nesterov = nesterov

    def __repr__(self):
        return f"Momentum(lr={self.lr}, momentum={self.momentum}, nesterov={self.nesterov})"

    def _update(self, xp, grads, state):
        lr, mu = self.lr, self.momentum
        acc = [(g + mu * a, gb + mu * ab)                                    # a <- g + mu a
               for (g, gb), (a, ab) in zip(grads, state.accumulation)]
        if self.nesterov:
            U = [(lr * (g + mu * a), lr * (gb + mu * ab))                    # U = lr (g + mu a)
                 for (g, gb), (a, ab) in zip(grads, acc)]
        else:
            U = [(lr * a, lr * ab) for a, ab in acc]                         # U = lr a
        return U, MomentumState(acc)


class AveragedMomentum(_MomentumBase):
    """Incoming-averaged momentum: a <- g + mu mean_in(a);  theta <- theta - lr a.

    The momentum of a connection i -> j is the mean accumulation over all
    connections entering neuron j: the column mean of a_W (axis 0, the incoming
    axis of an (n_in, n_out) weight). Not the row mean: averaging axis 1 (the
    seed answer's ``reduce_mean(axis=1)`` on a TF kernel) averages a unit's
    *outgoing* connections, a different algorithm.

    include_bias=False (default, matches the seed question): biases get standard
    momentum a_b <- g_b + mu a_b. include_bias=True treats b_j as the weight of
    a constant-1 input into neuron j and averages it with column j of W, over
    the augmented (n_in + 1) rows.
    """

    def __init__(self, lr, momentum=0.9, include_bias=False):
        self.lr, self.momentum = _hyper(lr, momentum)
        self.include_bias = check.flag(include_bias, "include_bias")

    def __repr__(self):
        return f"AveragedMomentum(lr={self.lr}, momentum={self.momentum}, include_bias={self.include_bias})"

    def _update(self, xp, grads, state):
        lr, mu = self.lr, self.momentum
        acc = []
        for (g, gb), (a, ab) in zip(grads, state.accumulation):
            if self.include_bias:
                n_in = a.shape[0]
                m = (xp.sum(a, axis=0) + ab) / (n_in + 1)                    # mean over [a_W; a_b]  (n_out,)
                acc.append((g + mu * m, gb + mu * m))                        # a <- g + mu mean_in([a_W; a_b])
            else:
                acc.append((g + mu * _mean_in(xp, a), gb + mu * ab))         # a_W <- g + mu P_in a_W; a_b standard
        U = [(lr * a, lr * ab) for a, ab in acc]                             # U = lr a
        return U, MomentumState(acc)
