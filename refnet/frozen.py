"""Frozen outputs by null-space projection (design.md section 2).

Constraints: the frozen outputs K on anchor inputs X_a, stacked output-major,

    c(theta) = (Y[i, k] for k in K for i in anchors)          (m,),  m = |K| n_a
    J = dc/dtheta                                             (m, p)

A step along ``g_perp = g - J^T lambda`` with ``(J J^T) lambda = J g`` leaves c
unchanged to first order; a Gauss-Newton *retraction* then removes the O(lr^2)
remainder:  repeat  r = c(theta) - c0;  theta <- theta - J^T (J J^T)^+ r.

Two routes compute the same projection:

* ``method="dense"``: J from per-sample backprop, a thin SVD ``J = U S V^T``,
  singular values at or below ``max(m, p) * eps * s_max`` dropped (the
  array-API ``pinv`` default), ``g_perp = g - V_r (V_r^T g)``. Memory O(m p).
* ``method="gram"`` (default): J is never formed. With Delta_l (m, n_l) the
  stacked backprop of the one-hot seeds and A_{l-1} repeated per frozen output,

      J J^T  = sum_l (A_{l-1} A_{l-1}^T + 1) * (Delta_l Delta_l^T)     (elementwise *)
      J v    = sum_l rowsum((A_{l-1} dW_l) * Delta_l) + Delta_l db_l
      J^T lam: dW_l = A_{l-1}^T (lam * Delta_l),  db_l = colsum(lam * Delta_l)

  and a symmetric eigendecomposition of the m x m Gram matrix. Memory
  O(m^2 + m sum_l n_l), so it projects with millions of parameters.

Precision. Both routes do their small linear algebra in float64, also for
float32 parameters (the per-layer factors are upcast; results are cast back).
The Gram matrix holds s^2, so the gram route drops eigenvalues at or below
``max(m * eps64, (max(m, p) * eps_J)^2) * lambda_max`` (eps_J: the epsilon of
the parameters' dtype): it cannot resolve directions with
``s < sqrt(m * eps64) * s_max`` (about 1.5e-8 sqrt(m) s_max), and in float32
no finer than the dense route's float32 cutoff. The dense route resolves down
to ``max(m, p) * eps_J * s_max``. The gram projection is applied twice
("twice is enough" re-orthogonalisation), which removes the error that the
squared condition number leaves after the first pass.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

from . import _checks as check
from .backend import device
from .mlp import _flat, _unflat
from .optim import apply_update

METHODS = ("gram", "dense")


class FrozenInfo(NamedTuple):
    """What a frozen step did.

    residual:   ``max |c(theta_new) - c0|`` over frozen outputs and anchors (measured)
    iterations: Gauss-Newton retraction corrections applied
    rank:       numerical rank of J at the starting parameters
    nullity:    p - rank, the dimension of the directions that keep c constant
    converged:  residual <= tol
    tol:        the tolerance it was held to
    """
    residual: float
    iterations: int
    rank: int
    nullity: int
    converged: bool
    tol: float


class RetractionError(ArithmeticError):
    """Retraction did not reach ``tol``; ``.residual`` and ``.iterations`` say how far it got."""

    def __init__(self, message, residual, iterations):
        super().__init__(message)
        self.residual, self.iterations = residual, iterations


def default_tol(xp, c0) -> float:
    """1e-12 max(1, max|c0|) in float64, 1e-5 max(1, max|c0|) in float32."""
    return (1e-12 if c0.dtype == xp.float64 else 1e-5) * max(1.0, float(xp.max(xp.abs(c0))))


def _c(xp, Y, outputs):
    """Constraint vector c (m,) from Y (n, n_L), output-major: c[k n + i] = Y[i, K_k]."""
    idx = xp.asarray(outputs, dtype=xp.int64, device=device(Y))
    return xp.reshape(xp.take(Y, idx, axis=1).T, (-1,))                       # vec((Y[:, K])^T)


def _as(xp, x, dtype):
    """x in ``dtype``; no copy when it already is (upcasts for the float64 linear algebra)."""
    return xp.astype(x, dtype, copy=False)


class _Linearization:
    """c and J at one parameter point, factored once; then ``project`` vectors
    onto the null space of J and compute minimum-norm ``correction``s.

    params: [(W_l, b_l)], anchors: (n_a, n_0), outputs: the K frozen indices.
    """

    def __init__(self, net, xp, params, anchors, outputs, method, trace=None):
        trace = net._forward(xp, params, anchors) if trace is None else trace
        self.xp, self.params, self.method = xp, params, method
        self.c = _c(xp, trace.As[-1], outputs)                                  # c(theta)          (m,)
        seeds = net._output_seeds(xp, anchors, outputs)                         # e_k               (K, 1, n_L)
        deltas = net._backward(xp, params, trace, seeds)                        # Delta_l           (K, n_a, n_l)
        m, p = self.c.shape[0], net.n_params
        eps_J = float(xp.finfo(params[0][0].dtype).eps)
        if method == "dense":
            J = _as(xp, net._jacobian_from(xp, trace, deltas), xp.float64)      # J                 (m, p)
            V, s, Ut = xp.linalg.svd(J.T, full_matrices=False)                  # J^T = V diag(s) U^T (tall: ~2x faster than J)
            U, Vt = Ut.T, V.T                                                   # J = U diag(s) V^T
            keep = s > max(m, p) * eps_J * xp.max(s)                            # relative cutoff
            self.U, self.Vt = U, Vt * xp.astype(keep, xp.float64)[:, None]      # V_r^T: dropped rows zeroed
            self.inv = xp.where(keep, 1.0 / xp.where(keep, s, 1.0), 0.0)        # s_r^-1, 0 elsewhere
        else:
            K = deltas[-1].shape[0]
            self.As = [_as(xp, A, xp.float64) for A in trace.As[:-1]]           # A_{l-1}           (n_a, n_{l-1})
            self.Ds = [_as(xp, D, xp.float64) for D in deltas]                  # Delta_l           (K, n_a, n_l)
            S = 0.0
            for A, D in zip(self.As, self.Ds):
                D2 = xp.reshape(D, (m, D.shape[-1]))                             # Delta_l stacked   (m, n_l)
                S = S + xp.tile(A @ A.T + 1.0, (K, K)) * (D2 @ D2.T)             # (A A^T + 1) * (Delta Delta^T)
            w, self.Q = xp.linalg.eigh(S)                                        # J J^T = Q diag(w) Q^T
            keep = w > max(m * 2.0 ** -52, (max(m, p) * eps_J) ** 2) * xp.max(w) # relative cutoff on s^2
            self.inv = xp.where(keep, 1.0 / xp.where(keep, w, 1.0), 0.0)        # w_r^-1, 0 elsewhere
        self.rank = int(xp.sum(xp.astype(keep, xp.int64)))
        self.nullity = p - self.rank

    # -- gram route: J v, J^T lam, (J J^T)^+ ------------------------------------------
    def _J(self, v):
        """J v (m,) for v = [(dW_l, db_l)], matrix-free."""
        xp, out = self.xp, 0.0
        for A, D, (dW, db) in zip(self.As, self.Ds, v):
            dW, db = _as(xp, dW, xp.float64), _as(xp, db, xp.float64)
            out = out + xp.sum((A @ dW) * D, axis=-1) + D @ db                   # rowsum((A dW) * Delta) + Delta db  (K, n)
        return xp.reshape(out, (-1,))

    def _JT(self, lam):
        """J^T lam as [(dW_l, db_l)] in the parameters' dtype, matrix-free."""
        xp, dtype, out = self.xp, self.params[0][0].dtype, []
        for A, D in zip(self.As, self.Ds):
            M = xp.sum(xp.reshape(lam, D.shape[:2] + (1,)) * D, axis=0)          # sum_k lam_ki Delta_l,ki  (n, n_l)
            out.append((_as(xp, A.T @ M, dtype),                                 # dW_l = A^T (lam * Delta_l)
                        _as(xp, xp.sum(M, axis=0), dtype)))                      # db_l = colsum(lam * Delta_l)
        return out

    def _solve(self, y):
        """(J J^T)^+ y = Q diag(w_r^-1) Q^T y  (m,)."""
        return self.Q @ (self.inv * (self.Q.T @ y))

    # -- public operations --------------------------------------------------------------
    def project(self, v):
        """The nearest vector to v with J v_perp = 0: v - J^T (J J^T)^+ J v. v: [(dW, db)]."""
        xp = self.xp
        if self.nullity == 0:                                                    # null space {0}: no step
            return [(xp.zeros_like(dW), xp.zeros_like(db)) for dW, db in v]
        if self.method == "dense":
            t = _as(xp, _flat(xp, v), xp.float64)
            t = t - self.Vt.T @ (self.Vt @ t)                                    # (I - V_r V_r^T) v
            return _unflat(xp, _as(xp, t, self.params[0][0].dtype), v)
        for _ in range(2):                                                       # twice is enough
            v = apply_update(xp, v, self._JT(self._solve(self._J(v))))           # v - J^T (J J^T)^+ J v
        return v

    def correction(self, r):
        """Minimum-norm d with J d = r in the least-squares sense: J^T (J J^T)^+ r. r: (m,)."""
        xp = self.xp
        r = _as(xp, r, xp.float64)
        if self.method == "dense":
            d = self.Vt.T @ (self.inv * (self.U.T @ r))                          # V_r S_r^-1 U_r^T r
            return _unflat(xp, _as(xp, d, self.params[0][0].dtype), self.params)
        return self._JT(self._solve(r))                                          # J^T (J J^T)^+ r


def _retract(net, xp, params, anchors, outputs, c0, tol, max_iter, method):
    """Gauss-Newton: while max|c(theta) - c0| > tol: theta <- theta - J^T (J J^T)^+ (c(theta) - c0),
    with J at the current theta (quadratic convergence at full row rank).

    Returns (params, corrections applied, residual); raises RetractionError when
    max_iter corrections do not reach tol or the residual becomes non-finite.
    """
    for it in range(max_iter + 1):
        trace = net._forward(xp, params, anchors)
        r = _c(xp, trace.As[-1], outputs) - c0                                   # r = c(theta) - c0   (m,)
        res = float(xp.max(xp.abs(r)))
        if res <= tol:
            return params, it, res
        if not math.isfinite(res) or it == max_iter:
            break
        lin = _Linearization(net, xp, params, anchors, outputs, method, trace=trace)
        params = apply_update(xp, params, lin.correction(r))                     # theta <- theta - J^T (J J^T)^+ r
    raise RetractionError(f"retraction did not converge: max |c - c0| = {res:.3e} > tol = {tol:.3e} "
                          f"after {it} Gauss-Newton corrections (lower lr or raise max_iter/tol)", res, it)


def _frozen_args(net, params, anchors, outputs, outputs_name, method, tol, max_iter):
    """Shared validation of the frozen-output arguments; returns (xp, outputs, tol or None, max_iter)."""
    check.network(net)
    xp, _ = check.params(params, net.sizes)
    check.tree_finite(xp, params, "params")
    check.data(anchors, "anchors", params, net.sizes[0], what="anchors")
    outputs = check.indices(outputs, outputs_name, net.sizes[-1])
    check.choice(method, "method", METHODS)
    tol = None if tol is None else check.positive_finite(tol, "tol")
    return xp, outputs, tol, check.count(max_iter, "max_iter", 1)


def _finite_params(xp, params):
    if not check.tree_all_finite(xp, params):
        raise FloatingPointError("the step overflowed: new params would hold NaN or Inf; lower lr")
    return params


def project_out(net, params, grads, anchors, outputs=(0,), method="gram"):
    """Project ``grads`` onto the null space of J, the Jacobian of outputs K on anchors.

    Returns g_perp = g - J^T (J J^T)^+ J g as [(dW_l, db_l)]: the nearest vector
    to g with J g_perp = 0, so a small step along it leaves the frozen outputs
    unchanged to first order. anchors: (n_a, n_0); outputs: frozen indices K;
    method: "gram" (matrix-free, default) or "dense" (explicit J and SVD).
    """
    xp, outputs, _, _ = _frozen_args(net, params, anchors, outputs, "outputs", method, None, 1)
    check.like_params(grads, params, "grads", xp, params[0][0].dtype)
    check.tree_finite(xp, grads, "grads")
    if not outputs:
        return [(gW + 0.0, gb + 0.0) for gW, gb in grads]                         # nothing frozen: g (a copy)
    return _Linearization(net, xp, params, anchors, outputs, method).project(grads)


def frozen_step(net, params, X, G, freeze, lr, anchors=None, method="gram", retract=True,
                tol=None, max_iter=20):
    """One gradient step on output gradient G that keeps outputs ``freeze`` constant on ``anchors``.

    g = backprop of G (n, n_L) at X (n, n_0); theta' = theta - lr g_perp
    (``project_out``); then, with ``retract=True``, Gauss-Newton corrections
    until ``max |c(theta') - c(theta)| <= tol`` on the anchors (default: X).
    tol defaults to 1e-12 max(1, max|c0|) in float64 and 1e-5 max(1, max|c0|)
    in float32. Returns (new params, FrozenInfo). Raises RetractionError (with
    ``.residual``) when the retraction does not converge in ``max_iter``
    corrections. An empty ``freeze`` is a plain gradient step; a trivial null
    space (rank J = p) gives a zero step with ``info.nullity == 0``.
    """
    check.network(net)
    check.flag(retract, "retract")
    grads, trace = net._vjp(params, X, G)
    lr = check.positive_finite(lr, "lr")
    anchors = X if anchors is None else anchors
    xp, freeze, tol, max_iter = _frozen_args(net, params, anchors, freeze, "freeze", method, tol, max_iter)
    if not freeze:
        new = apply_update(xp, params, [(lr * gW, lr * gb) for gW, gb in grads])   # theta - lr g
        return _finite_params(xp, new), FrozenInfo(0.0, 0, 0, net.n_params, True, tol or 0.0)
    lin = _Linearization(net, xp, params, anchors, freeze, method,
                         trace=trace if anchors is X else None)                  # reuse the forward pass on X
    c0 = lin.c                                                                    # frozen values   (m,)
    tol = default_tol(xp, c0) if tol is None else tol
    d = lin.project(grads)                                                        # g_perp
    new = apply_update(xp, params, [(lr * dW, lr * db) for dW, db in d])          # theta - lr g_perp
    new, its, res = _settle(net, xp, new, anchors, freeze, c0, tol, max_iter, method, retract)
    return _finite_params(xp, new), FrozenInfo(res, its, lin.rank, lin.nullity, res <= tol, tol)


def _settle(net, xp, params, anchors, outputs, c0, tol, max_iter, method, retract):
    """Retract (retract=True) or only measure the residual max|c(theta) - c0|."""
    if retract:
        return _retract(net, xp, params, anchors, outputs, c0, tol, max_iter, method)
    r = _c(xp, net._forward(xp, params, anchors).As[-1], outputs) - c0            # c(theta) - c0
    return params, 0, float(xp.max(xp.abs(r)))


class ProjectedState(NamedTuple):
    """inner: the wrapped optimizer's state; frozen: c0 (m,) at init; info: FrozenInfo of the last step."""
    inner: Any
    frozen: Any
    info: Any


class Projected:
    """Wrap any optimizer so that outputs ``freeze`` stay constant on ``anchors``.

    Each step, at the current parameters: project the gradient before it enters
    the inner optimizer (no pressure against the constraint builds up in its
    buffer), project the inner optimizer's final update again (stale momentum
    directions, computed at older parameters, cannot leak into the frozen
    outputs), apply it, then retract to the values frozen at ``init``
    (kept in the state, so drift cannot accumulate step by step).
    """

    def __init__(self, inner, net, anchors, freeze=(0,), retract=True, method="gram", tol=None, max_iter=20):
        if not (hasattr(inner, "update") and hasattr(inner, "init")):
            raise TypeError(f"inner must be a refnet optimizer (SGD, Momentum, AveragedMomentum), got {inner!r}")
        self.inner, self.net = inner, check.network(net)
        self.anchors = check.batch(anchors, "anchors", net.sizes[0], what="anchors")
        self.freeze = check.indices(freeze, "freeze", net.sizes[-1])
        self.method = check.choice(method, "method", METHODS)
        self.tol = None if tol is None else check.positive_finite(tol, "tol")
        self.max_iter = check.count(max_iter, "max_iter", 1)
        self.retract = check.flag(retract, "retract")

    def __repr__(self):
        return f"Projected({self.inner!r}, freeze={self.freeze}, method={self.method!r}, retract={self.retract})"

    def _args(self, params):
        return _frozen_args(self.net, params, self.anchors, self.freeze, "freeze", self.method, self.tol, self.max_iter)

    def init(self, params):
        """State holding the inner state and the frozen values c0 = c(params) on the anchors."""
        xp, *_ = self._args(params)
        c0 = _c(xp, self.net._forward(xp, params, self.anchors).As[-1], self.freeze)
        return ProjectedState(self.inner.init(params), c0, None)

    def step(self, params, grads, state):
        """Projected, retracted step. Returns (new params, ProjectedState with .info)."""
        xp, freeze, tol, max_iter = self._args(params)
        if not isinstance(state, ProjectedState):
            raise TypeError(f"state must be a ProjectedState from Projected.init, got {type(state).__name__}")
        check.like_params(grads, params, "grads", xp, params[0][0].dtype)
        check.tree_finite(xp, grads, "grads")
        check.namespace({"params[0][0]": params[0][0], "state.frozen": state.frozen})
        check.shape(state.frozen, "state.frozen", (len(freeze) * self.anchors.shape[0],))
        check.float_dtype(xp, state.frozen, "state.frozen", params[0][0].dtype)
        check.finite(xp, state.frozen, "state.frozen")                            # O(m): c0 of init
        tol = default_tol(xp, state.frozen) if tol is None else tol
        if not freeze:
            new, inner = self.inner.step(params, grads, state.inner)
            return new, ProjectedState(inner, state.frozen, FrozenInfo(0.0, 0, 0, self.net.n_params, True, tol))
        lin = _Linearization(self.net, xp, params, self.anchors, freeze, self.method)
        U, inner = self.inner.update(lin.project(grads), state.inner, params)     # inner update of g_perp
        new = apply_update(xp, params, lin.project(U))                            # theta - U_perp
        new, its, res = _settle(self.net, xp, new, self.anchors, freeze, state.frozen, tol, max_iter,
                                self.method, self.retract)
        info = FrozenInfo(res, its, lin.rank, lin.nullity, res <= tol, tol)
        return _finite_params(xp, new), ProjectedState(inner, state.frozen, info)


def masked_grads(net, params, X, G, freeze, head_only=False):
    """The seed answer's baselines, for comparison (they do not keep outputs constant in general).

    Masking: zero the columns ``freeze`` of G = dL/dY (the frozen outputs drop out
    of the loss) and backprop to every layer. With ``head_only=True`` only the
    last layer is trained: since its frozen columns get zero gradient, only the
    other outputs' columns W_L[:, k], b_L[k] move, which keeps frozen outputs
    exactly constant but lets a single layer learn. Returns [(dW_l, db_l)].
    """
    xp, _ = check.params(params, net.sizes)
    freeze = check.indices(freeze, "freeze", net.sizes[-1])
    check.data(G, "G", params, net.sizes[-1], n_rows=X.shape[0] if hasattr(X, "shape") else None)
    keep = [0.0 if k in freeze else 1.0 for k in range(net.sizes[-1])]
    mask = xp.asarray(keep, dtype=G.dtype, device=device(G))
    grads = net.vjp(params, X, G * mask)                                          # backprop of G with frozen columns zeroed
    if head_only:
        grads = [(xp.zeros_like(dW), xp.zeros_like(db)) for dW, db in grads[:-1]] + grads[-1:]
    return grads
