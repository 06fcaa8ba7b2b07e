"""Optimizers as pure functions (optax style)::

    state = opt.init(params)
    params, state = opt.step(params, grads, state)

``step`` first computes an *update* ``U`` with
``U, state = opt.update(grads, state, params)`` and then applies
``theta <- theta - U``; ``refnet.Projected`` calls ``update`` itself to project
``U`` before it is applied. Nothing here modifies its arguments.

Update rules, per array, with ``g`` a parameter gradient (``dW_l`` or ``db_l``)
and ``M`` its momentum buffer (``state.accumulation``, zero at ``init``), as in
TF1's ``MomentumOptimizer`` and ``torch.optim.SGD`` with ``dampening=0``::

    SGD:               U = lr g
    Momentum:          M <- g + mu M;            U = lr M     (nesterov: U = lr (g + mu M))
    AveragedMomentum:  M <- g + mu mean_in(M);   U = lr M

``mean_in`` replaces each entry of a weight column (the incoming connections
of one neuron) by the column mean: ``mean_in(M) = P_in M`` with
``P_in = 1 1^T / n_in`` (see :func:`averaging_matrix` and :func:`average_incoming`).
"""
from __future__ import annotations

from typing import NamedTuple

from . import _checks as check
from .backend import device, host_namespace, namespace, quiet, values_only
from .mlp import MLP


# ------------------------------------------------------------------ averaging
def _mean_in(xp, A, axis=0):
    """Mean over the incoming axis/axes, kept for broadcasting (e.g. (1, n_out))."""
    return xp.mean(A, axis=axis, keepdims=True)                 # (1/n_in) 1^T A      (1, n_out)


@values_only
def average_incoming(A, axis=0):
    r"""Replace every entry by the mean over the axes that index incoming connections.

    The fast form of

    .. math::

        \operatorname{mean_{in}}(A) = P_\text{in} A, \qquad
        P_\text{in} = \tfrac{1}{n_\text{in}} \mathbf{1}\mathbf{1}^T,

    a mean and a broadcast, never the ``(n_in, n_in)`` matrix of :func:`averaging_matrix`.

    Parameters
    ----------
    A : array, float32 or float64, any shape
        Weights, gradients or momentum buffers of one layer.
    axis : int or tuple of int, default 0
        The axes that index a neuron's incoming connections: ``0`` for refnet's
        ``(n_in, n_out)`` weights and TF/Keras dense kernels (each column is one
        neuron's incoming connections); ``1`` for a PyTorch ``nn.Linear.weight``
        ``(n_out, n_in)``; ``(0, 1, 2)`` for a TF conv kernel
        ``(H, W, C_in, C_out)`` (fan-in ``H * W * C_in``).

    Returns
    -------
    array, shape of ``A``
        A new array: every entry replaced by the mean over ``axis`` of its slice.

    Raises
    ------
    ValueError
        If an averaged axis is empty or ``A`` holds NaN or Inf.
    TypeError
        If ``A`` is not a floating-point array.

    Examples
    --------
    Each column of an ``(n_in, n_out)`` weight is one neuron's incoming connections:

    >>> import numpy as np, refnet
    >>> A = np.arange(6.0).reshape(3, 2)
    >>> refnet.average_incoming(A)                      # column means 2 and 3
    array([[2., 3.],
           [2., 3.],
           [2., 3.]])
    >>> refnet.average_incoming(A.T, axis=1)            # the same, in PyTorch's (n_out, n_in) layout
    array([[2., 2., 2.],
           [3., 3., 3.]])
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
    r"""The explicit projector :math:`P_\text{in} = \mathbf{1}\mathbf{1}^T / n`, for reading and tests.

    ``P_in @ A`` equals ``average_incoming(A, axis=0)``. :math:`P_\text{in}` is
    symmetric and idempotent (:math:`\mathbf{1}^T \mathbf{1} = n`, so
    :math:`P_\text{in}^2 = P_\text{in}`): the orthogonal projection onto
    constant vectors.

    Parameters
    ----------
    n : int, at least 1
        The fan-in ``n_in``.
    dtype : {"float64", "float32"}, optional
        By default ``like``'s dtype, float64 without ``like``, so
        ``averaging_matrix(n, like=A) @ A`` stays in ``A``'s precision.
    like : array, optional
        Picks the array namespace and device (NumPy when omitted).

    Returns
    -------
    array, shape (n, n)
        Every entry equal to ``1 / n``.

    Raises
    ------
    ValueError
        If ``n`` is below 1 or ``dtype`` is not "float32" or "float64".
    TypeError
        If ``n`` is not an int.

    Examples
    --------
    >>> import numpy as np, refnet
    >>> P = refnet.averaging_matrix(3)
    >>> P * 3
    array([[1., 1., 1.],
           [1., 1., 1.],
           [1., 1., 1.]])
    >>> A = np.arange(6.0).reshape(3, 2)
    >>> bool(np.allclose(P @ A, refnet.average_incoming(A))), bool(np.allclose(P @ P, P))
    (True, True)
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
    """The state of :class:`SGD`: plain SGD keeps nothing.

    Examples
    --------
    >>> import numpy as np, refnet
    >>> refnet.SGD(0.1).init([(np.zeros((2, 3)), np.zeros(3))])
    SGDState()
    """


class MomentumState(NamedTuple):
    """The state of :class:`Momentum` and :class:`AveragedMomentum`.

    Attributes
    ----------
    accumulation : list of (M_W, M_b)
        The momentum buffer ``M``, shaped like the params (``M_W`` (n_{l-1}, n_l),
        ``M_b`` (n_l,)), zero at ``init``, on the params' namespace, device and dtype.

    Examples
    --------
    >>> import numpy as np, refnet
    >>> state = refnet.Momentum(0.1, 0.9).init([(np.ones((2, 3)), np.ones(3))])
    >>> [(M_W.shape, float(M_W.sum())) for M_W, M_b in state.accumulation]
    [((2, 3), 0.0)]
    """
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

    @values_only
    def init(self, params):
        """The initial optimizer state for ``params``.

        Parameters
        ----------
        params : list of (W, b)
            ``W_l`` (n_{l-1}, n_l), ``b_l`` (n_l,).

        Returns
        -------
        SGDState or MomentumState
            ``SGDState()`` for :class:`SGD`; a ``MomentumState`` of zero buffers
            shaped like ``params``, on their namespace, device and dtype, for
            :class:`Momentum` and :class:`AveragedMomentum`.

        Raises
        ------
        ValueError, TypeError
            If ``params`` is not a valid list of ``(W, b)`` pairs.

        Examples
        --------
        >>> import numpy as np, refnet
        >>> params = [(np.ones((2, 3)), np.ones(3))]
        >>> refnet.SGD(0.1).init(params)
        SGDState()
        >>> M_W, M_b = refnet.AveragedMomentum(0.1, 0.9).init(params).accumulation[0]
        >>> M_W
        array([[0., 0., 0.],
               [0., 0., 0.]])
        """
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

    @values_only
    def update(self, grads, state, params):
        """The update ``U`` (``theta_new = theta - U``) and the next state.

        Parameters
        ----------
        grads : list of (dW, db)
            Gradients shaped like ``params``.
        state
            The state from ``init`` or the previous ``update``/``step``.
        params : list of (W, b)
            The current parameters (used to check ``grads`` and ``state``).

        Returns
        -------
        U : list of (U_W, U_b)
            Shaped like ``params``.
        state
            The next state. Nothing passed in is modified.

        Raises
        ------
        ValueError
            If ``grads`` holds NaN or Inf, or a shape does not match ``params``.
        TypeError
            If ``state`` is not this optimizer's state type, or dtypes,
            libraries or devices are mixed.

        Examples
        --------
        ``step`` is ``theta - U``; :class:`refnet.Projected` projects ``U`` in between:

        >>> import numpy as np, refnet
        >>> params = [(np.zeros((2, 2)), np.zeros(2))]
        >>> grads = [(np.ones((2, 2)), np.ones(2))]
        >>> opt = refnet.SGD(lr=0.1)
        >>> U, state = opt.update(grads, opt.init(params), params)
        >>> U[0][0]
        array([[0.1, 0.1],
               [0.1, 0.1]])
        """
        xp = self._checked(params, grads, state)
        check.tree_finite(xp, grads, "grads")
        return self._update(xp, grads, state)

    @values_only
    def step(self, params, grads, state):
        """One step ``theta <- theta - U``.

        Parameters
        ----------
        params : list of (W, b)
            ``W_l`` of shape ``(n_{l-1}, n_l)``, ``b_l`` of shape ``(n_l,)``.
        grads : list of (dW, db)
            Gradients shaped like ``params``.
        state
            The state from ``init`` or the previous ``step``.

        Returns
        -------
        params : list of (W, b)
            New arrays; the ones passed in are not modified.
        state
            The next state.

        Raises
        ------
        FloatingPointError
            If the new params would hold NaN or Inf (e.g. after an exploding
            update); nothing is returned.
        ValueError
            If ``grads``, ``params`` or the state hold NaN or Inf, or a shape
            does not match ``params``.
        TypeError
            If ``state`` is not this optimizer's state type, or dtypes,
            libraries or devices are mixed.

        Examples
        --------
        >>> import numpy as np, refnet
        >>> params = [(np.zeros((2, 2)), np.zeros(2))]
        >>> grads = [(np.array([[1.0, 2.0], [3.0, 4.0]]), np.ones(2))]
        >>> opt = refnet.SGD(lr=0.1)
        >>> new, state = opt.step(params, grads, opt.init(params))
        >>> new[0][0]                                       # theta - lr g
        array([[-0.1, -0.2],
               [-0.3, -0.4]])
        >>> params[0][0]                                    # the input is untouched
        array([[0., 0.],
               [0., 0.]])
        """
        xp = self._checked(params, grads, state)
        with quiet():                  # values not yet checked: the new params are, in one transfer
            U, new_state = self._update(xp, grads, state)
            new = apply_update(xp, params, U)
        if not check.tree_all_finite(xp, new):
            # Only on failure (the happy path pays one fused reduction): a NaN/Inf
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

    @values_only
    def train_step(self, net, params, state, X, T, loss="mse"):
        r"""One training step in one call: ``net.loss_and_grads`` then :meth:`step`, fused.

        The same arithmetic, results and errors as::

            value, grads = net.loss_and_grads(params, X, T, loss=loss)
            params, state = opt.step(params, grads, state)

        with every check of the two calls, validated once: structure, library,
        device and dtype of each argument, then one fused finiteness check of
        everything that must be finite: ``X``, ``T``, the loss, for
        "softmax_cross_entropy" the rows of ``T``, and the new params, which
        also covers the params, the gradients and the state (as in :meth:`step`:
        a NaN or Inf in any of them always reaches :math:`\theta - U`). On a GPU
        that is one value brought back to the host per step where the two calls
        bring back two. Only when a check fails does the two-call form run, to
        raise the error it raises (naming the argument); nothing is returned and
        nothing passed in is modified.

        Parameters
        ----------
        net : refnet.MLP
            The architecture ``params`` belong to.
        params : list of (W, b)
            ``W_l`` (n_{l-1}, n_l), ``b_l`` (n_l,).
        state
            The state from :meth:`init` or the previous step.
        X : array, shape (n, n_0)
            Inputs, one row per sample, on ``params``' namespace, device and dtype.
        T : array, shape (n, n_L)
            Targets (probability rows for "softmax_cross_entropy").
        loss : {"mse", "softmax_cross_entropy"}, default "mse"
            As :meth:`refnet.MLP.loss_and_grads`.

        Returns
        -------
        loss : 0-d array
            The loss at the params passed in (before the step).
        params : list of (W, b)
            New arrays.
        state
            The next state.

        Raises
        ------
        TypeError
            If ``net`` is not a ``refnet.MLP``, ``state`` is not this optimizer's
            state type, or as :meth:`refnet.MLP.loss_and_grads` and :meth:`step`.
        ValueError
            As :meth:`refnet.MLP.loss_and_grads` and :meth:`step` (NaN or Inf
            in an argument, a shape that does not match, rows of ``T`` that are
            not probabilities).
        FloatingPointError
            If the loss or the step overflows although the inputs are finite.

        Examples
        --------
        >>> import numpy as np, refnet
        >>> net = refnet.MLP([3, 4, 2], activation="tanh")
        >>> X = np.linspace(-1, 1, 15).reshape(5, 3)
        >>> T = np.zeros((5, 2))
        >>> opt = refnet.Momentum(lr=0.1, momentum=0.9)
        >>> params = net.init(seed=0)
        >>> state = opt.init(params)
        >>> for _ in range(3):
        ...     loss, params, state = opt.train_step(net, params, state, X, T)
        ...     print(f"{float(loss):.4f}")
        0.2234
        0.1468
        0.0527

        The two-call form gives the same numbers, bit for bit:

        >>> p0 = net.init(seed=0)
        >>> value, grads = net.loss_and_grads(p0, X, T)
        >>> p1, _ = opt.step(p0, grads, opt.init(p0))
        >>> fused_value, p1_fused, _ = opt.train_step(net, p0, opt.init(p0), X, T)
        >>> bool(fused_value == value), bool(np.all(refnet.flatten(p1_fused) == refnet.flatten(p1)))
        (True, True)
        """
        if not isinstance(net, MLP):
            check.network(net)         # raises the TypeError that names it (without its import on the fast path)
        with quiet():                  # values not yet checked: they are below, in one transfer
            xp, value, trace, G, finite_too = net._loss_unchecked(params, X, T, loss)
            if self._state_ok(state, params, xp):
                grads = net._param_grads(xp, trace, net._backward(xp, params, trace, G))
                U, new_state = self._update(xp, grads, state)
                new = apply_update(xp, params, U)
                # A NaN or Inf in params, grads or the state always reaches new = params - U (as in step)
                if check.all_finite(xp, *finite_too, *check.leaves(new)):
                    return value, new, new_state
        return self._train_step_slow(net, params, state, X, T, loss)     # something is wrong: it raises

    def _state_ok(self, state, params, xp) -> bool:
        """True when the state passes :meth:`_check_state` (which raises the named error)."""
        try:
            self._check_state(state, params, xp, params[0][0].dtype)
        except (TypeError, ValueError):
            return False
        return True

    def _train_step_slow(self, net, params, state, X, T, loss):
        """The two-call form of :meth:`train_step`, run only when a fused check failed: the two
        calls then raise their own error, naming the argument (and if they find nothing wrong,
        their result is the step's)."""
        value, grads = net.loss_and_grads(params, X, T, loss=loss)
        new, new_state = self.step(params, grads, state)
        return value, new, new_state


def apply_update(xp, params, U):
    r"""Apply an update layer by layer, :math:`\theta_\text{new} = \theta - U` (no validation).

    The last step of every optimizer's ``step``; ``refnet.Projected`` and
    ``refnet.frozen_step`` use it after projecting ``U``.

    Parameters
    ----------
    xp : array namespace
        The params' namespace (unused by the formula; kept for a uniform signature).
    params : list of (W, b)
    U : list of (U_W, U_b)
        Shaped like ``params``.

    Returns
    -------
    list of (W, b)
        New arrays ``(W - U_W, b - U_b)``.

    Examples
    --------
    >>> import numpy as np
    >>> from refnet.optim import apply_update
    >>> apply_update(np, [(np.ones((1, 2)), np.ones(2))], [(np.full((1, 2), 0.5), np.zeros(2))])
    [(array([[0.5, 0.5]]), array([1., 1.]))]
    """
    return [(W - dW, b - db) for (W, b), (dW, db) in zip(params, U)]   # theta <- theta - U


class SGD(_Optimizer):
    r"""Plain gradient descent, :math:`\theta \leftarrow \theta - \eta\, g` (:math:`\eta` = ``lr``).

    Parameters
    ----------
    lr : float, > 0
        The learning rate.

    Raises
    ------
    ValueError
        If ``lr`` is not a finite number > 0.

    Examples
    --------
    >>> import numpy as np, refnet
    >>> opt = refnet.SGD(lr=0.1)
    >>> params = [(np.zeros((2, 2)), np.zeros(2))]
    >>> grads = [(np.ones((2, 2)), np.ones(2))]
    >>> state = opt.init(params)
    >>> params, state = opt.step(params, grads, state)
    >>> params, state = opt.step(params, grads, state)
    >>> params[0][1]                                    # two steps of -0.1
    array([-0.2, -0.2])
    """

    def __init__(self, lr):
        self.lr, _ = _hyper(lr)

    def __repr__(self):
        return f"SGD(lr={self.lr})"

    def _update(self, xp, grads, state):
        return [(self.lr * gW, self.lr * gb) for gW, gb in grads], state    # U = lr g


class _MomentumBase(_Optimizer):
    def _init(self, xp, params):
        return MomentumState([(xp.zeros_like(W), xp.zeros_like(b)) for W, b in params])  # M = 0

    def _check_state(self, state, params, xp, dtype):
        if not isinstance(state, MomentumState):
            raise TypeError(f"state must be a MomentumState from {type(self).__name__}.init, "
                            f"got {type(state).__name__}")
        check.like_params(state.accumulation, params, "state.accumulation", xp, dtype)

    def _state_finite(self, xp, state):
        check.tree_finite(xp, state.accumulation, "state.accumulation")


class Momentum(_MomentumBase):
    r"""SGD with momentum, TF1 ``MomentumOptimizer`` semantics.

    Per array, with :math:`g` its gradient, :math:`M` its momentum buffer
    (zero at ``init``), :math:`\mu` = ``momentum`` and :math:`\eta` = ``lr``:

    .. math::

        M \leftarrow g + \mu M, \qquad \theta \leftarrow \theta - \eta M
        \qquad (\text{nesterov: } \theta \leftarrow \theta - \eta (g + \mu M)).

    Equal to ``torch.optim.SGD(lr, momentum=mu, nesterov=...)`` with ``dampening=0``.

    Parameters
    ----------
    lr : float, > 0
        The learning rate.
    momentum : float in [0, 1), default 0.9
        ``mu``; 0 gives plain SGD.
    nesterov : bool, default False
        Nesterov's variant (needs ``momentum > 0``).

    Raises
    ------
    ValueError
        If ``lr`` is not finite and > 0, ``momentum`` is outside [0, 1), or
        ``nesterov=True`` with ``momentum=0``.
    TypeError
        If ``momentum`` is not a real number or ``nesterov`` not a bool.

    Examples
    --------
    >>> import numpy as np, refnet
    >>> opt = refnet.Momentum(lr=0.1, momentum=0.9)
    >>> params = [(np.zeros((2, 2)), np.zeros(2))]
    >>> grads = [(np.array([[1.0, 2.0], [3.0, 4.0]]), np.ones(2))]
    >>> state = opt.init(params)
    >>> params, state = opt.step(params, grads, state)   # M = g
    >>> params, state = opt.step(params, grads, state)   # M = g + 0.9 g = 1.9 g
    >>> state.accumulation[0][0]
    array([[1.9, 3.8],
           [5.7, 7.6]])
    >>> params[0][0]                                    # -0.1 (g + 1.9 g)
    array([[-0.29, -0.58],
           [-0.87, -1.16]])
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
        M = [(g + mu * m, gb + mu * mb)                                      # M <- g + mu M
             for (g, gb), (m, mb) in zip(grads, state.accumulation)]
        if self.nesterov:
            U = [(lr * (g + mu * m), lr * (gb + mu * mb))                    # U = lr (g + mu M)
                 for (g, gb), (m, mb) in zip(grads, M)]
        else:
            U = [(lr * m, lr * mb) for m, mb in M]                           # U = lr M
        return U, MomentumState(M)


class AveragedMomentum(_MomentumBase):
    r"""Incoming-averaged momentum.

    Per weight array, with :math:`g` its gradient, :math:`M` its momentum
    buffer (zero at ``init``), :math:`\mu` = ``momentum`` and :math:`\eta` = ``lr``:

    .. math::

        M \leftarrow g + \mu\, P_\text{in} M, \qquad \theta \leftarrow \theta - \eta M,
        \qquad P_\text{in} = \tfrac{1}{n_\text{in}} \mathbf{1}\mathbf{1}^T.

    The momentum of a connection ``i -> j`` is the mean momentum of all
    connections entering neuron ``j``: the column mean of ``M_W`` (axis 0, the
    incoming axis of an ``(n_in, n_out)`` weight). Not the row mean: averaging
    axis 1 (``reduce_mean(axis=1)`` on a TF kernel, as a widely copied answer
    did) averages a unit's *outgoing* connections, a different algorithm.

    Parameters
    ----------
    lr : float, > 0
        The learning rate.
    momentum : float in [0, 1), default 0.9
        ``mu``; 0 gives plain SGD, and a layer with fan-in 1 gets standard momentum.
    include_bias : bool, default False
        False: biases get standard momentum ``M_b <- g_b + mu M_b`` (the original
        question averaged weights only). True: ``b_j`` is the weight of a
        constant-1 input into neuron ``j`` and is averaged with column ``j`` of
        ``W``, over the augmented ``n_in + 1`` rows of ``[W; b^T]``.

    Raises
    ------
    ValueError
        If ``lr`` is not finite and > 0 or ``momentum`` is outside [0, 1).
    TypeError
        If ``momentum`` is not a real number or ``include_bias`` not a bool.

    See Also
    --------
    average_incoming, averaging_matrix

    Examples
    --------
    Step 1 of any momentum variant is plain SGD; step 2 averages each column of ``M``:

    >>> import numpy as np, refnet
    >>> opt = refnet.AveragedMomentum(lr=0.1, momentum=0.9)
    >>> params = [(np.zeros((2, 2)), np.zeros(2))]
    >>> grads = [(np.array([[1.0, 2.0], [3.0, 4.0]]), np.ones(2))]
    >>> state = opt.init(params)
    >>> params, state = opt.step(params, grads, state)   # M = g
    >>> params, state = opt.step(params, grads, state)   # M = g + 0.9 (column means 2, 3)
    >>> state.accumulation[0][0]
    array([[2.8, 4.7],
           [4.8, 6.7]])
    >>> state.accumulation[0][1]                        # biases: standard momentum, 1 + 0.9
    array([1.9, 1.9])
    """

    def __init__(self, lr, momentum=0.9, include_bias=False):
        self.lr, self.momentum = _hyper(lr, momentum)
        self.include_bias = check.flag(include_bias, "include_bias")

    def __repr__(self):
        return f"AveragedMomentum(lr={self.lr}, momentum={self.momentum}, include_bias={self.include_bias})"

    def _update(self, xp, grads, state):
        lr, mu = self.lr, self.momentum
        M = []
        for (g, gb), (m, mb) in zip(grads, state.accumulation):
            if self.include_bias:
                n_in = m.shape[0]
                col = (xp.sum(m, axis=0) + mb) / (n_in + 1)                  # mean over [M_W; M_b]  (n_out,)
                M.append((g + mu * col, gb + mu * col))                      # M <- g + mu mean_in([M_W; M_b])
            else:
                M.append((g + mu * _mean_in(xp, m), gb + mu * mb))           # M_W <- g + mu P_in M_W; M_b standard
        U = [(lr * m, lr * mb) for m, mb in M]                               # U = lr M
        return U, MomentumState(M)
