"""The multilayer perceptron, written out by hand.

Notation (the documentation's "Design and notation" page): row-major batches,
one row per sample::

    A_0 = X                       (n, n_0)
    Z_l = A_{l-1} @ W_l + b_l     (n, n_l)     W_l: (n_{l-1}, n_l),  b_l: (n_l,)
    A_l = phi_l(Z_l)              (n, n_l)
    Y   = A_L

``W_l[:, j]`` (a column) holds the incoming connections of neuron ``j`` of
layer ``l``. Parameters are plain data: ``params = [(W_1, b_1), ..., (W_L, b_L)]``.
Backpropagation of ``G = dL/dY`` (n, n_L), with ``Delta_l = dL/dZ_l`` (n, n_l)::

    Delta_L     = G * phi_L'(Z_L)
    dW_l        = A_{l-1}^T Delta_l                     (n_{l-1}, n_l)
    db_l        = 1^T Delta_l   (column sums)           (n_l,)
    Delta_{l-1} = (Delta_l W_l^T) * phi_{l-1}'(Z_{l-1})
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _checks as check
from .backend import asarray_like, device, quiet, values_only
from .nn import ACTIVATIONS, LOSSES


class Trace(NamedTuple):
    r"""What the backward pass needs from the forward pass.

    A NamedTuple of two lists, one entry per layer, for a batch of ``n`` samples.

    Attributes
    ----------
    As : list of array
        ``As[l]`` is :math:`A_l = \phi_l(Z_l)`, shape ``(n, n_l)``, for ``l = 0..L``
        (``As[0]`` is the input ``X``, ``As[L]`` the output ``Y``).
    Zs : list of array
        ``Zs[l]`` is :math:`Z_l = A_{l-1} W_l + b_l`, shape ``(n, n_l)``, for
        ``l = 1..L``; ``Zs[0]`` is None.

    Examples
    --------
    >>> import refnet
    >>> refnet.Trace._fields
    ('As', 'Zs')
    """
    As: list
    Zs: list


class MLP:
    r"""A fully connected network with layer widths ``sizes = [n_0, n_1, ..., n_L]``.

    The object holds only the architecture; parameters are plain data passed
    in and out: a list ``[(W_1, b_1), ..., (W_L, b_L)]`` with ``W_l`` of shape
    ``(n_{l-1}, n_l)`` and ``b_l`` of shape ``(n_l,)``. Batches are row-major,
    one row per sample:

    .. math::

        A_0 = X, \qquad Z_l = A_{l-1} W_l + b_l, \qquad A_l = \phi_l(Z_l), \qquad Y = A_L,

    so column ``W_l[:, j]`` holds the incoming connections of neuron ``j`` of
    layer ``l`` (PyTorch's ``nn.Linear.weight`` is the transpose).

    Parameters
    ----------
    sizes : list of int
        At least two widths, each at least 1: inputs ``n_0``, hidden layers, outputs ``n_L``.
    activation : str, default "sigmoid"
        :math:`\phi_l` of every hidden layer: "identity", "sigmoid", "tanh", "relu" or "softplus".
    output_activation : str, default "identity"
        :math:`\phi_L` of the output layer, from the same names.

    Attributes
    ----------
    sizes : list of int
        The layer widths ``[n_0, ..., n_L]``.
    activation, output_activation : str
        The activation names given.

    Raises
    ------
    TypeError
        If ``sizes`` is not a list or tuple.
    ValueError
        If ``sizes`` has fewer than two entries, a width below 1, or an
        activation name is unknown.

    Examples
    --------
    >>> import numpy as np, refnet
    >>> net = refnet.MLP([3, 4, 2], activation="sigmoid")
    >>> net
    MLP([3, 4, 2], activation='sigmoid', output_activation='identity')
    >>> params = net.init(seed=0)
    >>> [(W.shape, b.shape) for W, b in params]
    [((3, 4), (4,)), ((4, 2), (2,))]
    >>> net.forward(params, np.zeros((5, 3))).shape
    (5, 2)
    """

    def __init__(self, sizes, activation: str = "sigmoid", output_activation: str = "identity"):
        if not isinstance(sizes, (list, tuple)):
            raise TypeError(f"sizes must be a list of layer widths [n_0, ..., n_L], got {type(sizes).__name__}")
        if len(sizes) < 2:
            raise ValueError(f"sizes must list at least two layer widths [n_0, ..., n_L], got {sizes!r}")
        self.sizes = [check.count(n, f"sizes[{i}]", 1) for i, n in enumerate(sizes)]
        self.activation = check.choice(activation, "activation", ACTIVATIONS)
        self.output_activation = check.choice(output_activation, "output_activation", ACTIVATIONS)
        L = len(self.sizes) - 1
        self.phis = [ACTIVATIONS[activation]] * (L - 1) + [ACTIVATIONS[output_activation]]

    def __repr__(self):
        return (f"MLP({self.sizes}, activation={self.activation!r}, "
                f"output_activation={self.output_activation!r})")

    @property
    def n_params(self) -> int:
        r"""The number of parameters :math:`p = \sum_l (n_{l-1} + 1)\, n_l`, the length of ``flatten(params)``.

        Examples
        --------
        >>> import refnet
        >>> refnet.MLP([3, 4, 2]).n_params          # (3 + 1) 4 + (4 + 1) 2
        26
        """
        return sum((a + 1) * b for a, b in zip(self.sizes[:-1], self.sizes[1:]))

    # ------------------------------------------------------------------ init
    def init(self, seed=0, dtype=None, like=None):
        r"""Fan-in scaled random parameters, drawn on the host with NumPy.

        .. math::

            (W_l)_{ij} \sim \mathcal{N}\!\left(0, \frac{\text{gain}^2}{n_{l-1}}\right), \qquad b_l = 0,

        with :math:`\text{gain} = \sqrt{2}` for relu hidden layers (He) and 1
        otherwise (LeCun). Draws are float64 and rounded to ``dtype``, so
        float32 and float64 start from the same numbers, and ``like`` only moves
        them: every backend gets the same weights for the same seed.

        Parameters
        ----------
        seed : int or numpy.random.Generator, default 0
            Never the global RNG.
        dtype : {"float64", "float32"}, optional
            Default float64, or ``like``'s dtype when ``like`` is given.
        like : array, optional
            An array whose namespace and device receive the parameters.

        Returns
        -------
        list of (W, b)
            ``[(W_1 (n_0, n_1), b_1 (n_1,)), ..., (W_L (n_{L-1}, n_L), b_L (n_L,))]``.

        Raises
        ------
        ValueError
            If ``seed`` is negative or ``dtype`` is not "float32" or "float64".
        TypeError
            If ``seed`` is not an int or Generator, or ``like`` is not a
            floating-point array.

        Examples
        --------
        >>> import numpy as np, refnet
        >>> net = refnet.MLP([3, 4, 2])
        >>> W1, b1 = net.init(seed=0)[0]
        >>> W1.shape, b1.shape, W1.dtype
        ((3, 4), (4,), dtype('float64'))
        >>> W1_32 = net.init(seed=0, dtype="float32")[0][0]
        >>> bool(np.all(W1_32 == W1.astype("float32")))     # the same draws, rounded
        True
        """
        if isinstance(seed, np.random.Generator):
            rng = seed
        else:
            rng = np.random.default_rng(check.count(seed, "seed", 0))
        if like is not None:
            check.float_dtype(check.namespace({"like": like}), like, "like")
        if dtype is None:
            dtype = "float64" if like is None else str(like.dtype).split(".")[-1]
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        params = []
        for l, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:]), start=1):
            gain = 2.0 ** 0.5 if (self.phis[l - 1].name == "relu") else 1.0
            W = (rng.standard_normal((n_in, n_out)) * (gain / n_in ** 0.5)).astype(dtype)
            b = np.zeros(n_out, dtype=dtype)
            params.append((W, b) if like is None else (asarray_like(W, like), asarray_like(b, like)))
        return params

    # --------------------------------------------------------------- forward
    def _checked(self, params, X, *others):
        """Structure, library, device and dtype checks (no values) of params, X (n, n_0) and
        ``others``: ``(name, array, n_cols)`` batches of n rows. Returns (xp, dtype)."""
        xp, dtype = check.params(params, self.sizes)
        check.data(X, "X", params, self.sizes[0], check_finite=False)
        for name, x, n_cols in others:
            check.data(x, name, params, n_cols, n_rows=X.shape[0], check_finite=False)
        return xp, dtype

    @staticmethod
    def _diagnose(xp, params, X, *others):
        """Raise the ValueError naming the first input (in argument order) that holds NaN or Inf."""
        check.tree_finite(xp, params, "params")
        check.finite(xp, X, "X")
        for name, x, _ in others:
            check.finite(xp, x, name)

    def _validate(self, params, X, *others):
        """:meth:`_checked`, then every value finite: one fused reduction, one host transfer."""
        xp, dtype = self._checked(params, X, *others)
        if not check.all_finite(xp, *check.leaves(params), X, *[x for _, x, _ in others]):
            self._diagnose(xp, params, X, *others)
        return xp, dtype

    def _forward(self, xp, params, X) -> Trace:
        """Forward pass keeping A_l and Z_l for backprop (no validation)."""
        As, Zs = [X], [None]
        for (W, b), phi in zip(params, self.phis):
            Z = As[-1] @ W + b                      # Z_l = A_{l-1} W_l + b_l        (n, n_l)
            As.append(phi.f(xp, Z))                 # A_l = phi_l(Z_l)               (n, n_l)
            Zs.append(Z)
        return Trace(As, Zs)

    @values_only
    def forward(self, params, X):
        r"""The outputs :math:`Y = A_L` of a batch.

        .. math::

            Z_l = A_{l-1} W_l + b_l, \qquad A_l = \phi_l(Z_l), \qquad A_0 = X.

        Parameters
        ----------
        params : list of (W, b)
            As returned by :meth:`init`: ``W_l`` (n_{l-1}, n_l), ``b_l`` (n_l,).
        X : array, shape (n, n_0)
            One row per sample, same namespace, device and dtype as ``params``.

        Returns
        -------
        Y : array, shape (n, n_L)
            On ``X``'s namespace and device, in its dtype.

        Raises
        ------
        ValueError
            If a shape does not match ``sizes``, or ``params`` or ``X`` holds NaN or Inf.
        TypeError
            If an argument is not a floating-point array, dtypes are mixed, or
            arrays come from different libraries or devices.

        Examples
        --------
        >>> import numpy as np, refnet
        >>> net = refnet.MLP([3, 4, 2], activation="sigmoid")
        >>> params = net.init(seed=0)
        >>> X = np.linspace(-1, 1, 15).reshape(5, 3)
        >>> net.forward(params, X).round(4)
        array([[-1.1061, -0.1478],
               [-0.9964, -0.0957],
               [-0.8847, -0.0424],
               [-0.7745,  0.0104],
               [-0.6693,  0.0611]])
        """
        xp, _ = self._validate(params, X)
        return self._forward(xp, params, X).As[-1]

    # -------------------------------------------------------------- backward
    def _backward(self, xp, params, trace: Trace, G) -> list:
        """Deltas ``Delta_l = dL/dZ_l`` of every layer.

        Delta_L = G * phi_L'(Z_L);  Delta_{l-1} = (Delta_l W_l^T) * phi_{l-1}'(Z_{l-1}).
        G is an output gradient (n, n_L), or one-hot output seeds (K, 1, n_L) that
        broadcast against phi_L'(Z_L) (n, n_L), one leading entry per output.
        Returns [Delta_1, ..., Delta_L], Delta_l of shape (n, n_l) or (K, n, n_l).
        """
        L = len(params)
        dphi = lambda l: self.phis[l - 1].df(xp, trace.Zs[l], trace.As[l])  # phi_l'(Z_l)  (n, n_l)
        if self.phis[-1].name == "identity" and G.shape == trace.Zs[L].shape:
            Delta = G                                           # Delta_L = G * 1, the same values
        else:
            Delta = G * dphi(L)                                 # Delta_L = G * phi_L'(Z_L)
        deltas = [Delta]
        for l in range(L, 1, -1):
            Delta = (Delta @ params[l - 1][0].T) * dphi(l - 1)  # Delta_{l-1} = (Delta_l W_l^T) * phi'(Z_{l-1})
            deltas.append(Delta)
        return deltas[::-1]

    @staticmethod
    def _param_grads(xp, trace: Trace, deltas) -> list:
        """dW_l = A_{l-1}^T Delta_l (n_{l-1}, n_l), db_l = 1^T Delta_l, the column sums (n_l,)."""
        return [(A.T @ D, xp.sum(D, axis=0))                   # dW_l = A_{l-1}^T Delta_l,  db_l = 1^T Delta_l
                for A, D in zip(trace.As[:-1], deltas)]

    @values_only
    def vjp(self, params, X, G):
        r"""Backpropagate an output gradient :math:`G = \partial L / \partial Y` to the parameters.

        The vector-Jacobian product :math:`J^T \operatorname{vec}(G)`, with
        :math:`\Delta_l = \partial L / \partial Z_l` (n, n_l):

        .. math::

            \Delta_L = G \odot \phi_L'(Z_L), \qquad
            \Delta_{l-1} = (\Delta_l W_l^T) \odot \phi_{l-1}'(Z_{l-1}),

            dW_l = A_{l-1}^T \Delta_l, \qquad db_l = \mathbf{1}^T \Delta_l \ \text{(column sums)}.

        Parameters
        ----------
        params : list of (W, b)
            ``W_l`` (n_{l-1}, n_l), ``b_l`` (n_l,).
        X : array, shape (n, n_0)
        G : array, shape (n, n_L)
            Any output gradient, e.g. :math:`2 (Y - T) / (n\, n_L)` for the mse loss.

        Returns
        -------
        list of (dW, db)
            Shaped like ``params``: ``dW_l`` (n_{l-1}, n_l), ``db_l`` (n_l,).

        Raises
        ------
        ValueError
            If a shape does not match (``G`` must have ``X``'s rows and ``n_L``
            columns), or an argument holds NaN or Inf.
        TypeError
            As :meth:`forward`.

        Examples
        --------
        The mse loss's gradient is the backprop of :math:`G = 2 (Y - T) / (n\, n_L)`:

        >>> import numpy as np, refnet
        >>> net = refnet.MLP([3, 4, 2])
        >>> params = net.init(seed=0)
        >>> X, T = np.ones((5, 3)), np.zeros((5, 2))
        >>> G = 2 * (net.forward(params, X) - T) / T.size
        >>> [dW.shape for dW, db in net.vjp(params, X, G)]
        [(3, 4), (4, 2)]
        >>> loss, grads = net.loss_and_grads(params, X, T)
        >>> bool(np.allclose(net.vjp(params, X, G)[0][0], grads[0][0]))
        True
        """
        return self._vjp(params, X, G)[0]

    def _vjp(self, params, X, G):
        """``vjp`` that also returns the forward Trace (for callers that reuse it)."""
        xp, dtype = self._validate(params, X, ("G", G, self.sizes[-1]))
        trace = self._forward(xp, params, X)
        return self._param_grads(xp, trace, self._backward(xp, params, trace, G)), trace

    @values_only
    def loss_and_grads(self, params, X, T, loss: str = "mse"):
        r"""The loss and its gradient with respect to every parameter.

        .. math::

            L_\text{mse} = \frac{1}{n\, n_L} \sum_{i,k} (Y_{ik} - T_{ik})^2, \qquad
            L_\text{ce} = -\frac{1}{n} \sum_i \sum_k T_{ik} \log \operatorname{softmax}(Y_i)_k,

        and the gradients are the backprop (:meth:`vjp`) of :math:`G = \partial L / \partial Y`:
        :math:`2 (Y - T) / (n\, n_L)` or :math:`(\operatorname{softmax}(Y) - T) / n`.

        Parameters
        ----------
        params : list of (W, b)
        X : array, shape (n, n_0)
        T : array, shape (n, n_L)
            Targets. For "softmax_cross_entropy", rows of probabilities
            (one-hot or soft, each row summing to 1).
        loss : {"mse", "softmax_cross_entropy"}, default "mse"
            "mse": the mean over all ``n n_L`` entries of ``(Y - T)^2``.
            "softmax_cross_entropy": ``Y`` are logits, the mean over samples of
            ``-sum_k T_ik log softmax(Y_i)_k``.

        Returns
        -------
        loss : 0-d array
        grads : list of (dW, db)
            Shaped like ``params``.

        Raises
        ------
        FloatingPointError
            If the loss overflows although the inputs are finite.
        ValueError
            If ``loss`` is unknown, a shape does not match, an argument holds
            NaN or Inf, or (softmax_cross_entropy) a row of ``T`` is not a
            probability vector.
        TypeError
            As :meth:`forward`.

        Examples
        --------
        >>> import numpy as np, refnet
        >>> net = refnet.MLP([3, 4, 2])
        >>> params = net.init(seed=0)
        >>> X, T = np.ones((5, 3)), np.zeros((5, 2))
        >>> loss, grads = net.loss_and_grads(params, X, T)
        >>> bool(np.isclose(loss, np.mean(net.forward(params, X) ** 2)))
        True
        >>> T = np.eye(2)[[0, 1, 1, 0, 1]]                  # one-hot targets
        >>> loss, grads = net.loss_and_grads(params, X, T, loss="softmax_cross_entropy")
        >>> Y = net.forward(params, X)
        >>> log_softmax = Y - np.log(np.sum(np.exp(Y), axis=1, keepdims=True))
        >>> bool(np.isclose(loss, -np.mean(np.sum(T * log_softmax, axis=1))))
        True
        """
        with quiet():             # values not yet checked: they are below, with the loss, in one transfer
            xp, value, trace, G, finite_too = self._loss_unchecked(params, X, T, loss)
        if not check.all_finite(xp, *check.leaves(params), *finite_too):
            self._diagnose(xp, params, X, ("T", T, self.sizes[-1]))
            if loss == "softmax_cross_entropy":
                _check_probabilities(xp, T)
            raise FloatingPointError(f"the {loss} loss overflowed to {float(value)}; "
                                     f"inputs are finite, so scale X, T or params down")
        return value, self._param_grads(xp, trace, self._backward(xp, params, trace, G))

    def _loss_unchecked(self, params, X, T, loss):
        """:meth:`loss_and_grads` up to ``G = dL/dY``: every check but the values'.

        Checks ``loss``, then structure, library, device and dtype (raising as
        :meth:`loss_and_grads`), then runs the forward pass and the loss (call it
        inside :func:`~refnet.backend.quiet`). Returns ``(xp, value, trace, G,
        finite_too)``: the result stands only if the params and every array of
        ``finite_too`` are finite (X, T, the loss, and for softmax_cross_entropy
        a 0-d flag of T's rows), which the caller checks in its one fused
        reduction.
        """
        check.choice(loss, "loss", LOSSES)
        xp, _ = self._checked(params, X, ("T", T, self.sizes[-1]))
        trace = self._forward(xp, params, X)
        value, G = LOSSES[loss](xp, trace.As[-1], T)
        flags = [value] + ([_probabilities_flag(xp, T)] if loss == "softmax_cross_entropy" else [])
        return xp, value, trace, G, [X, T, *flags]

    # -------------------------------------------------------------- jacobian
    def _output_seeds(self, xp, like, outputs):
        """One-hot seeds E (K, 1, n_L): E[k, 0, :] = e_{outputs[k]}."""
        I = xp.eye(self.sizes[-1], dtype=like.dtype, device=device(like))
        idx = xp.asarray(outputs, dtype=xp.int64, device=device(like))
        return xp.take(I, idx, axis=0)[:, None, :]             # rows of the identity   (K, 1, n_L)

    @values_only
    def jacobian(self, params, X, outputs=None):
        r"""Dense Jacobian :math:`J = \partial c / \partial \theta` of the chosen outputs, stacked output-major.

        :math:`c` stacks the columns ``Y[:, k]`` for ``k`` in ``outputs``: row
        ``k * n + i`` is the gradient of ``Y[i, outputs[k]]``; columns follow
        :func:`flatten` order (``W_1`` row-major, ``b_1``, ``W_2``, ...). Each
        row is one sample's backprop of a one-hot seed :math:`e_k` (a row
        ``(1, n_L)``), done for all rows at once: with :math:`a_{l-1,i}` and
        :math:`\delta_{l,i}` sample ``i``'s rows of :math:`A_{l-1}` and
        :math:`\Delta_l`, the ``W_l`` block is the outer product
        :math:`a_{l-1,i}^T \delta_{l,i}` and the ``b_l`` block is :math:`\delta_{l,i}`.
        It costs memory ``m p`` (``m = len(outputs) n``): the frozen-output
        functions never build it unless asked to (``method="dense"``).

        Parameters
        ----------
        params : list of (W, b)
        X : array, shape (n, n_0)
        outputs : sequence of int, optional
            0-based output indices (a list, tuple, range or 1-D NumPy integer array); default
            all ``n_L`` outputs.

        Returns
        -------
        J : array, shape (len(outputs) * n, p)
            ``p = n_params``.

        Raises
        ------
        ValueError
            If an output index is out of range or repeated, or as :meth:`forward`.

        Examples
        --------
        ``J`` times a parameter direction is the directional derivative of the outputs:

        >>> import numpy as np, refnet
        >>> net = refnet.MLP([3, 4, 2], activation="tanh")
        >>> params = net.init(seed=0)
        >>> X = np.linspace(-1, 1, 15).reshape(5, 3)
        >>> J = net.jacobian(params, X, outputs=[1])
        >>> J.shape                                         # (1 * 5, 26)
        (5, 26)
        >>> v = np.random.default_rng(1).standard_normal(net.n_params)
        >>> h = 1e-6
        >>> moved = refnet.unflatten(refnet.flatten(params) + h * v, like=params)
        >>> fd = (net.forward(moved, X)[:, 1] - net.forward(params, X)[:, 1]) / h
        >>> bool(np.allclose(J @ v, fd, atol=1e-5))
        True
        """
        xp, _ = self._validate(params, X)
        outputs = list(range(self.sizes[-1])) if outputs is None else check.indices(outputs, "outputs", self.sizes[-1])
        trace = self._forward(xp, params, X)
        deltas = self._backward(xp, params, trace, self._output_seeds(xp, X, outputs))
        return self._jacobian_from(xp, trace, deltas)

    @staticmethod
    def _jacobian_from(xp, trace: Trace, deltas):
        """Assemble J (m, p), m = K n, from Deltas (K, n, n_l) and activations A_{l-1} (n, n_{l-1})."""
        blocks = []
        for A, D in zip(trace.As[:-1], deltas):
            K, n, n_out = D.shape
            outer = A[None, :, :, None] * D[:, :, None, :]     # a_{l-1,i} delta_{l,ki}^T  (K, n, n_{l-1}, n_l)
            blocks += [xp.reshape(outer, (K * n, A.shape[1] * n_out)), xp.reshape(D, (K * n, n_out))]
        return xp.concat(blocks, axis=1)                        # [W_1 | b_1 | W_2 | ...]   (m, p)


def _probabilities_flag(xp, T):
    """0 when the rows of T are probability vectors (as :func:`_check_probabilities` decides), inf
    when not: a 0-d value that joins the fused finiteness check, so the happy path needs no transfer."""
    tol = float(xp.finfo(T.dtype).eps) ** 0.5
    bad = xp.astype(xp.any(T < 0.0) | (xp.max(xp.abs(xp.sum(T, axis=1) - 1.0)) > tol), T.dtype)  # 0 or 1
    return bad / (1.0 - bad)                                     # 0 -> 0, 1 -> inf


def _check_probabilities(xp, T):
    """Rows of T must be probability vectors: T >= 0 and each row summing to 1."""
    if not bool(xp.all(T >= 0.0)):
        raise ValueError("T must hold probabilities (one-hot or soft targets) for "
                         "softmax_cross_entropy; found negative entries")
    tol = float(xp.finfo(T.dtype).eps) ** 0.5
    if float(xp.max(xp.abs(xp.sum(T, axis=1) - 1.0))) > tol:
        raise ValueError(f"T rows must sum to 1 for softmax_cross_entropy (within {tol:.1e})")


@values_only
def flatten(params):
    r"""Concatenate ``[(W_1, b_1), ...]`` into one vector :math:`\theta` of shape ``(p,)``.

    Order: ``W_1`` row-major, ``b_1``, ``W_2`` row-major, ``b_2``, ...; the
    column order of :meth:`MLP.jacobian`.

    Parameters
    ----------
    params : list of (W, b)
        ``W_l`` (n_{l-1}, n_l), ``b_l`` (n_l,).

    Returns
    -------
    theta : array, shape (p,)
        A new array, ``p = sum_l (n_{l-1} + 1) n_l``.

    Raises
    ------
    ValueError
        If the layers' shapes do not chain.
    TypeError
        If an entry is not a floating-point array or dtypes, libraries or devices are mixed.

    Examples
    --------
    >>> import numpy as np, refnet
    >>> params = [(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([5.0, 6.0]))]
    >>> refnet.flatten(params)
    array([1., 2., 3., 4., 5., 6.])
    """
    xp, _ = check.params(params)
    return _flat(xp, params)


@values_only
def unflatten(v, like):
    """Inverse of :func:`flatten`: cut a vector ``v`` of shape ``(p,)`` into the shapes of ``like``.

    Parameters
    ----------
    v : array, shape (p,)
        Same namespace and dtype as ``like``.
    like : list of (W, b)
        A params list giving the shapes.

    Returns
    -------
    list of (W, b)
        Views (slices) of ``v`` where the array library allows it.

    Raises
    ------
    ValueError
        If ``v`` does not have shape ``(p,)``.
    TypeError
        If ``v`` is not on ``like``'s library or not of its dtype.

    Examples
    --------
    >>> import numpy as np, refnet
    >>> net = refnet.MLP([3, 4, 2])
    >>> params = net.init(seed=0)
    >>> back = refnet.unflatten(refnet.flatten(params), like=params)
    >>> all(np.array_equal(W, W2) and np.array_equal(b, b2) for (W, b), (W2, b2) in zip(params, back))
    True
    """
    xp, dtype = check.params(like, name="like")
    check.namespace({"v": v, "like[0][0]": like[0][0]})
    check.shape(v, "v", (sum(W.shape[0] * W.shape[1] + b.shape[0] for W, b in like),))
    check.float_dtype(xp, v, "v", dtype)
    return _unflat(xp, v, like)


def _flat(xp, tree):
    """[(W, b), ...] -> (p,) in flatten order (no validation)."""
    return xp.concat([x for W, b in tree for x in (xp.reshape(W, (-1,)), b)])


def _unflat(xp, v, like):
    """(p,) -> [(W, b), ...] shaped like ``like`` (no validation; slices of v)."""
    out, start = [], 0
    for W, b in like:
        stop = start + W.shape[0] * W.shape[1]
        out.append((xp.reshape(v[start:stop], W.shape), v[stop:stop + b.shape[0]]))
        start = stop + b.shape[0]
    return out
