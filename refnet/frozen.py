"""Frozen outputs by null-space projection (the design notes, section 2; docs page "Design and notation").

Constraints: the frozen outputs K on anchor inputs X_a, stacked output-major,

    c(theta) = (Y[i, k] for k in K for i in anchors)          (m,),  m = |K| n_a
    J = dc/dtheta                                             (m, p)

A step along ``g_perp = g - J^T lambda`` with ``(J J^T) lambda = J g`` leaves c
unchanged to first order; a Gauss-Newton *retraction* then removes the O(lr^2)
remainder:  repeat  r = c(theta) - c0;  theta <- theta - J^+ r.

One definition. Let ``J = U diag(s) V^T`` be the thin SVD, s_1 >= s_2 >= ...,
``tau = rtol * s_1`` and ``V_r`` the right singular vectors with s_i > tau.
refnet's projection is ``g_perp = (I - V_r V_r^T) g``, its rank ``r`` and nullity
``p - r``, and the retraction's correction is ``J^+ r`` with the same cutoff.
Every route computes this, to the error model below.

The cutoff (``rtol=``, default ``default_rtol(net, m, dtype)``) comes from J's own
rounding error, never from p. J is built by backprop: each entry is a forward
activation times a backward delta, the ends of chains of sums of lengths
n_{l-1} + 1 (forward, l = 1..L) and n_l (backward, l = 2..L), in all
``k = sum_l (n_{l-1} + 1) + sum_{l>=2} n_l`` (< 2 L n_max + L). Rounding errors
of mean zero give each entry a relative error ~ sqrt(k) eps_J, so
``|E|_2 <= |E|_F ~ sqrt(k) eps_J |J|_F <= sqrt(m k) eps_J s_1``: singular values
below that are not determined by J. refnet cuts at ten times it,

    rtol = 10 sqrt(m k) eps_J          (eps_J: float32's eps for float32 params)

so pure rounding (an exact rank deficiency) lies a factor 10 below the cutoff, and
a singular value within a factor 10 of tau (either side) makes the rank ambiguous:
``ProjectionAccuracyWarning`` "rank ambiguous", on every route, recorded in
``FrozenInfo.warning``. (The array-API ``pinv`` default ``max(m, p) eps`` grows with
p: in float32 it reaches s_1 at ~8 M parameters, and a 64-4096-4096-10 net froze
nothing. A port that uses ``pinv`` passes ``rtol=`` explicitly.)

Routes (``method=``):

* ``"dense"``: J from per-sample backprop (memory O(m p)), thin SVD, cutoff tau.
* ``"gram"`` (default, matrix-free: J is not formed, except by the two dense
  fallbacks below). With Delta_l (K, n_a, n_l)
  the backprop of the one-hot seeds and A_{l-1} repeated per frozen output,

      J J^T  = sum_l (A_{l-1} A_{l-1}^T + 1) * (Delta_l Delta_l^T)     (elementwise *)
      J v    = sum_l rowsum((A_{l-1} dW_l) * Delta_l) + Delta_l db_l
      J^T lam: dW_l = A_{l-1}^T (lam * Delta_l),  db_l = colsum(lam * Delta_l)

  Fast path: a Cholesky factor ``J J^T = L L^T`` whose ``trace(J J^T) |L^-1|_F^2``
  (>= cond(J)^2) is at most ``min(kappa_c^2 / 4, (10 rtol)^-2)`` certifies that every
  eigenvalue is clear (below) and that none is within a factor 10 of the cutoff; then
  ``(J J^T)^-1 = L^-T L^-1`` and there is no band. Otherwise
  the eigendecomposition ``J J^T = Q diag(w) Q^T``. The Gram matrix holds s^2, and
  rounding puts an absolute error of about ``m eps64 w_max`` on every w, so it
  resolves only the *clear* eigenvalues, ``w_i >= w_max / kappa_c^2`` with
  ``kappa_c = (max(m, p) / (m^2 eps64))^(1/3) / 4`` (about 1e4 .. 1e5 s_1 / s_i), at most
  ``s_1 / tau``: where tau is above s_1 / kappa_c (float32, large p) the clear eigenvalues
  are cut at tau directly and the rest, all below tau, are dropped (no band).
  Their projector ``P_c = J^T Q_c diag(w_c^-1) Q_c^T J`` is applied once, or twice
  when ``m * sqrt(w_max / w_c,min) > max(m, p)`` ("twice is enough").
  The other eigenvectors, Q_b (m, b), span the *band*: singular values the Gram
  matrix cannot tell from zero. If there is a band, ``B = J^T Q_b`` (p, b) is
  formed matrix-free, its clear part removed, ``B' = (I - P_c) B``, and the thin
  SVD ``B' = V_b diag(s_b) W_b^T`` with the cutoff tau gives the band's kept
  directions V_b: route ``"gram+band"``, memory O(b (p + m sum_l n_l)), at most
  ``BAND_MAX_ENTRIES``. Above that budget, J itself (m p entries) is formed and the
  dense route runs when it fits ``DENSE_MAX_ENTRIES`` (route ``"dense (band too
  large)"``; a wide band needs more than m p). When neither fits, the band is treated
  as the Gram matrix sees it (eigenvalues above ``max(m eps64, (tau / s_1)^2) w_max``
  kept), a ``ProjectionAccuracyWarning`` is raised and the route is
  ``"gram (band unresolved)"``; ``FrozenInfo.warning`` records it.
- More constraints than parameters (m > p): J J^T (m, m) has rank <= p < m, a band
  of at least m - p, and its eigendecomposition costs O(m^3), more than the SVD of
  J, O(m p^2): where J fits ``DENSE_MAX_ENTRIES`` the dense route runs (route
  ``"dense (m > p)"``). Either fallback keeps the retraction's corrections dense.

Why the band is exact: ``J^T Q = [C, B]`` with ``C = J^T Q_c`` and, exactly,
``B = B' + C X``, ``X = (C^T C)^-1 C^T B`` (|X| <= the Gram rounding / w_c,min).
So J's row space is range(C) (+) range(B') (orthogonal), the singular values of J
below ``s_1 / kappa_c`` are those of B' (Schur complement of the clear block), and
B' is known to the same absolute accuracy, ~ eps s_1, as a dense J.

Error model (tested against numpy.linalg.svd of the autograd Jacobian, on the
hard cases of refnet.strategies). With cond_r = s_1 / s_r (s_r the smallest kept
singular value) and no singular value within a factor 10 of tau (otherwise the
rank itself is ambiguous to any implementation):

    |g_perp - (I - V_r V_r^T) g| <= C max(m, p) eps_J cond_r |g|,    C = 8
    |J g_perp|                  <= C max(m, p) eps_J s_1 |g|

Derivation. dense: the SVD is backward stable, J + E with |E| ~ eps s_1, and by
Wedin the kept subspace turns by |E| / (s_r - s_{r+1}) <= 2 eps cond_r. gram,
clear part: |E_S| ~ m eps w_max, so one pass leaves a relative error
``delta = m eps kappa_c^2`` in the row-space part (<= max(m, p) eps kappa_c when
``m kappa_c <= max(m, p)``, hence one pass), the second pass ``delta^2``, which
``kappa_c`` keeps below ``max(m, p) eps kappa_c``; the rounding of J^T lambda adds
eps kappa_c |g|. band: the dense argument applied to B', whose error is the
rounding of J^T Q_b (~ eps s_1) plus what the clear passes leave (the same bound).
float32 parameters: all of this runs in float64 on the upcast factors (J exact
to float32 rounding of the forward/backward pass), cast back at the end, and
eps_J = eps32 in tau and in the bound.

Retraction. Gauss-Newton corrections ``d = J^+ (c(theta) - c0)``: the first one
reuses the factorization at the step's start, already made for the projection
(its error is O(|d| |theta' - theta_0|), third order in lr); every later one
re-factors J at the current point, so the residual converges quadratically
while J has full row rank. Measured on the benchmark's medium case, this is
faster than a chord method that keeps J_0 (two corrections instead of three
to five: a chord contracts only linearly, by ~ |J(theta) - J(theta_0)| cond_r).
Damping: a correction is taken whole when it reduces |r|_2 (so the quadratic
convergence is kept: measured r_{k+1} ~ 40 r_k^2, order q ~ 2.0 on the seed net),
otherwise halved, at most MAX_HALVINGS times (J^+ r is a descent direction of
|r|_2^2 / 2, so some t reduces it unless J^T r = 0); if none does, or the residual
is not finite (then at once), it stops with a RetractionError whose advice uses the
rank at the step's start. The default tolerance (``default_tol``) scales with the
magnitudes that cancel into c (``|phi_L'| (|A_{L-1}| |W_L| + |b_L|) + |c|`` on the
anchors, propagated through the layers in quadrature), not with |c| alone: weights ~180 cancelling to c ~ 0.04 round to ~7e-12,
which a tol of 1e-12 max(1, |c0|) could never reach (the long property run's failure).
"""
from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple, Optional

from . import _checks as check
from .backend import device, values_only
from .mlp import _flat, _unflat
from .optim import apply_update

METHODS = ("gram", "dense")
EPS64 = 2.0 ** -52
EPS32 = 2.0 ** -23
BAND_MAX_ENTRIES = 2 ** 25       # float64 entries the band resolution may hold: b (p + m sum_l n_l) (256 MiB)
DENSE_MAX_ENTRIES = 2 ** 25      # entries of J (m p) the gram route may form instead, as the dense route (256 MiB)


class ProjectionAccuracyWarning(RuntimeWarning):
    """The projection's rank is not well determined: a singular value of J lies within a factor 10
    of the cutoff ("rank ambiguous", any route: another implementation or dtype may count it on the
    other side), or the gram route could not resolve J's small singular values (the band did not fit
    ``BAND_MAX_ENTRIES``: projection and rank are the Gram matrix's). ``FrozenInfo.warning`` records it."""


class FrozenInfo(NamedTuple):
    r"""What a frozen step did (``frozen_step``'s second result, ``ProjectedState.info``).

    Attributes
    ----------
    residual : float
        :math:`\max_i |c_i(\theta_{new}) - c_{0,i}|` over frozen outputs and anchors, measured.
    iterations : int
        Retraction corrections applied.
    rank : int
        Rank r of J at the starting parameters: singular values :math:`s > \mathrm{rtol}\, s_1`
        (``default_rtol``).
    nullity : int
        :math:`p - r`, the dimension of the directions that keep c constant to first order.
    converged : bool
        ``residual <= tol``.
    tol : float
        The tolerance it was held to (``tol=`` or ``default_tol``).
    route : str
        Which computation ran: "gram", "gram+band", "gram (band unresolved)", "dense",
        "dense (m > p)" or "dense (band too large)" (the gram route's fallbacks to the
        dense one, where J fits ``DENSE_MAX_ENTRIES``), or "none" (nothing frozen).
    warning : str or None
        The ProjectionAccuracyWarning message(s) ("rank ambiguous", "band unresolved"), or None.

    Examples
    --------
    >>> import numpy as np, refnet
    >>> net = refnet.MLP([3, 4, 2], "tanh")
    >>> X = np.random.default_rng(0).uniform(-1, 1, (5, 3))
    >>> _, info = refnet.frozen_step(net, net.init(seed=0), X, np.ones((5, 2)), [0], 0.1)
    >>> info.converged, info.rank, info.nullity, info.route
    (True, 5, 21, 'gram')
    """
    residual: float
    iterations: int
    rank: int
    nullity: int
    converged: bool
    tol: float
    route: str = "none"
    warning: Optional[str] = None


class RetractionError(ArithmeticError):
    """Retraction did not reach ``tol``; ``.residual`` and ``.iterations`` say how far it got,
    the message what was detected and what would help."""

    def __init__(self, message, residual, iterations):
        super().__init__(message)
        self.residual, self.iterations = residual, iterations


def default_tol(xp, c_scale, dtype) -> float:
    r"""The retraction's default tolerance on :math:`\max_i |c_i(\theta) - c_{0,i}|`.

    Each frozen value :math:`c_{ik} = \phi_L(z_{ik})`, :math:`z_{ik} = A_{L-1,i} W_L[:, k] + b_L[k]`,
    is a sum whose rounding is about :math:`\epsilon` times the magnitudes that cancel in it, not
    :math:`\epsilon |c|`: weights of ~180 that cancel to c ~ 0.04 round to ~7e-12. The same holds
    upstream (a hidden unit that cancels to ~0 carries the rounding of its large terms into
    :math:`A_{L-1}`), so the magnitudes are propagated through the layers, rowwise on the anchors,
    as root-sum-squares (rounding errors of mean zero add in quadrature, as in ``default_rtol``):

    .. math:: S_0 = 0, \quad S_l^2 = \phi_l'(Z_l)^2 \odot \big((S_{l-1}^2 + A_{l-1}^2)\, W_l^2 + b_l^2\big)
              + A_l^2

    (squares elementwise; for the last layer alone this is the 2-norm form of
    :math:`|\phi_L'| (|A_{L-1}| |W_L| + |b_L|) + |c|`; ``c_scale`` = the largest entry of
    :math:`S_L` on the frozen columns), and

    .. math:: \mathrm{tol} = \rho \max(1, \max_{ik} S_{L,ik}), \quad \rho = 10^{-12}
              \text{ (float64)}, \ 10^{-5} \text{ (float32)}

    (about 4500 and 84 epsilons: room for the sums' lengths and the corrections' own rounding).
    """
    return (1e-12 if "float64" in str(dtype) else 1e-5) * max(1.0, c_scale)


def _c_scale(xp, net, params, trace, outputs):
    """max_ik S_L[i, K_k], the magnitude whose rounding reaches c (``default_tol``), root-sum-square:
    S_0 = 0, S_l^2 = phi_l'(Z_l)^2 ((S_{l-1}^2 + A_{l-1}^2) W_l^2 + b_l^2) + A_l^2 (last layer: K only)."""
    idx = xp.asarray(outputs, dtype=xp.int64, device=device(trace.As[-1]))
    S2, L = 0.0, len(params)
    f64 = lambda x: _as(xp, x, xp.float64)                                        # squares in float64
    for l, ((W, b), phi) in enumerate(zip(params, net.phis), start=1):
        Z, A = trace.Zs[l], trace.As[l]
        if l == L:                                                                # the frozen columns
            W, b, Z, A = (xp.take(W, idx, axis=1), xp.take(b, idx, axis=0),
                          xp.take(Z, idx, axis=1), xp.take(A, idx, axis=1))
        W, b, A_in, A, dphi = f64(W), f64(b), f64(trace.As[l - 1]), f64(A), f64(phi.df(xp, Z, A))
        S2 = dphi * dphi * ((S2 + A_in * A_in) @ (W * W) + b * b) + A * A        # S_l^2   (n_a, n_l)
    scale = math.sqrt(float(xp.max(S2)))
    if not math.isfinite(scale):
        raise FloatingPointError("the magnitudes on the anchors overflow when squared (|values| > 1e154), so "
                                 "the default retraction tolerance is undefined: pass tol= or scale params down")
    return scale


def default_rtol(net, m, dtype) -> float:
    r"""The default singular-value cutoff of J relative to :math:`s_1`, from J's own rounding error.

    J is computed by backprop, not from p numbers at once: every entry
    :math:`J_{(k,i),j} = a_{l-1,i,u}\,\delta^{(k)}_{l,i,v}` is a product of one forward and one
    backward quantity, each the end of a chain of sums, the forward ones
    :math:`Z_l = A_{l-1} W_l + b_l` of length :math:`n_{l-1} + 1` (l = 1 .. L), the backward ones
    :math:`\Delta_{l-1} = (\Delta_l W_l^T) \odot \phi'` of length :math:`n_l` (l = 2 .. L). With
    rounding errors that are independent and of mean zero (Higham and Mary's probabilistic model),
    an entry carries a relative error of about :math:`\sqrt{k}\,\epsilon`, where

    .. math:: k = \sum_{l=1}^{L} (n_{l-1} + 1) + \sum_{l=2}^{L} n_l

    is the total length of those sums (below :math:`2 L n_{max} + L`: the widest layer and the depth,
    never p). So :math:`\|E\|_2 \le \|E\|_F \approx \sqrt{k}\,\epsilon \|J\|_F \le \sqrt{m k}\,\epsilon\, s_1`,
    and singular values below :math:`U = \sqrt{m k}\,\epsilon\, s_1` are not determined by J. The
    cutoff is ten times that:

    .. math:: \mathrm{rtol} = 10 \sqrt{m k}\, \epsilon_J

    so that a singular value that is pure rounding (an exact rank deficiency, at most U) lies a
    factor 10 below the cutoff, outside the band :math:`(\mathrm{rtol}/10, 10\,\mathrm{rtol}]\, s_1`
    where the rank is ambiguous (ProjectionAccuracyWarning). The float64 SVD of the (upcast) J adds
    only about :math:`\epsilon_{64} s_1`.

    Parameters
    ----------
    net : refnet.MLP
        The network (its ``sizes`` give k).
    m : int
        The number of constraint rows, ``len(freeze) * n_anchors``.
    dtype : dtype
        The parameters' dtype (a NumPy dtype, a name, or an array library's dtype object);
        :math:`\epsilon_J` is float32's epsilon for float32, float64's otherwise.

    Returns
    -------
    float
        rtol: singular values :math:`s \le \mathrm{rtol}\, s_1` are treated as zero.

    Notes
    -----
    A port that uses the array API's ``pinv`` (default cutoff ``max(m, p) eps``, which grows with p
    and in float32 reaches :math:`s_1` at about 8 M parameters) passes ``rtol=default_rtol(...)``
    explicitly to get refnet's projection.

    Examples
    --------
    >>> import refnet
    >>> from refnet.frozen import default_rtol
    >>> net = refnet.MLP([64, 1024, 1024, 10])
    >>> round(default_rtol(net, 8, "float32"), 6)          # k = 3149, 10 sqrt(8 * 3149) eps32
    0.000189
    """
    eps = EPS32 if "float32" in str(dtype) else EPS64
    sizes = list(net.sizes)
    k = sum(sizes[:-1]) + (len(sizes) - 1) + sum(sizes[2:])                      # forward n_{l-1}+1, backward n_l
    return 10.0 * eps * math.sqrt(max(int(m), 1) * k)                           # 10 sqrt(m k) eps_J


def _c(xp, Y, outputs):
    """Constraint vector c (m,) from Y (n, n_L), output-major: c[k n + i] = Y[i, K_k]."""
    idx = xp.asarray(outputs, dtype=xp.int64, device=device(Y))
    return xp.reshape(xp.take(Y, idx, axis=1).T, (-1,))                       # vec((Y[:, K])^T)


def _as(xp, x, dtype):
    """x in ``dtype``; x itself when it already is (upcasts for the float64 linear algebra)."""
    return x if x.dtype == dtype else xp.astype(x, dtype, copy=False)


def _count(xp, mask) -> int:
    return int(xp.sum(xp.astype(mask, xp.int64)))


def _Linearization(net, xp, params, anchors, outputs, method, trace=None, rtol=None):
    """c and J at one parameter point, factored once by route ``method`` ("dense": ``_Dense``, the
    definition; "gram": ``_Gram``, matrix-free, or ``_Dense`` where J fits DENSE_MAX_ENTRIES and
    m > p or the band does not fit; ``method`` is then "dense", for the corrections). Both then
    ``project`` vectors onto the null space of J and compute minimum-norm ``correction`` s J^+ r,
    with the same attributes: c (m,), m, p, rank, nullity, cond (s_1 / s_r), route, warning, tau
    (the cutoff rtol), method.
    params: [(W_l, b_l)], anchors: (n_a, n_0), outputs: the K frozen indices."""
    trace = net._forward(xp, params, anchors) if trace is None else trace
    c = _c(xp, trace.As[-1], outputs)                                           # c(theta)          (m,)
    if not check.all_finite(xp, c):
        raise FloatingPointError("the frozen outputs overflowed to NaN or Inf on the anchors (params and "
                                 "anchors are finite): scale params or anchors down")
    seeds = net._output_seeds(xp, anchors, outputs)                             # e_k               (K, 1, n_L)
    deltas = net._backward(xp, params, trace, seeds)                            # Delta_l           (K, n_a, n_l)
    tau = default_rtol(net, c.shape[0], params[0][0].dtype) if rtol is None else rtol
    m, p = c.shape[0], net.n_params
    lin = None
    # gram, unless J fits and m > p: J J^T (m, m) then has rank <= p < m (a band of at least m - p),
    # and its eigendecomposition, O(m^3), costs more than the SVD of J, O(m p^2)
    if method == "gram" and not (m > p and _dense_fits(m, p)):
        try:
            lin = _Gram(xp, params, c, trace.As[:-1], deltas, tau, p)
        except _DenseFits:                                                      # the band does not fit; J does
            pass
    if lin is None:
        lin = _Dense(xp, params, c, net._jacobian_from(xp, trace, deltas), tau)
        if method == "gram":                                                    # corrections then go dense directly
            lin.route, method = "dense (m > p)" if m > p else "dense (band too large)", "dense"
    lin.method, lin.trace, lin.net, lin.outputs = method, trace, net, outputs
    return lin


class _DenseFits(Exception):
    """The gram route's band exceeds BAND_MAX_ENTRIES but J itself fits DENSE_MAX_ENTRIES."""


def _dense_fits(m, p) -> bool:
    """J (m, p) may be formed for the dense route: m p <= DENSE_MAX_ENTRIES."""
    return m * p <= DENSE_MAX_ENTRIES


class _Linearized:
    """What both routes share: c, the cutoff, trees <-> flat float64 columns (p, k), the
    ambiguity warning. A route sets rank, cond, route and implements _project, _correct."""

    def __init__(self, xp, params, c, p, tau):
        self.xp, self.params, self.c, self.tau = xp, params, c, tau
        self.m, self.p, self.warning = c.shape[0], p, None

    @property
    def nullity(self):
        return self.p - self.rank

    @property
    def c_scale(self):
        """default_tol's max S_L on the anchors at this point (computed on demand: only the step's start)."""
        return _c_scale(self.xp, self.net, self.params, self.trace, self.outputs)

    def _warn(self, message):
        self.warning = message if self.warning is None else f"{self.warning}; {message}"
        warnings.warn(message, ProjectionAccuracyWarning, stacklevel=5)

    def _check_ambiguity(self, xp, s, s_1):
        """Warn when a singular value s (any order) lies within a factor 10 of the cutoff tau s_1."""
        cut = self.tau * s_1
        n = _count(xp, (s > cut / 10) & (s <= cut * 10)) if s.shape[0] and cut > 0 else 0
        if n:
            self._warn(f"rank ambiguous: {n} singular value(s) of J lie within a factor 10 of the cutoff "
                       f"rtol s_1 = {cut:.2e} (rtol = {self.tau:.2e}); rank {self.rank} and the projection can "
                       f"differ in another implementation or dtype: pass rtol= to choose the cutoff")

    def project(self, v):
        """The nearest vector to v with J v_perp = 0 (module docstring), as [(dW, db)]. v: [(dW, db)]."""
        xp = self.xp
        if self.nullity == 0:                                                    # null space {0}: no step
            return [(xp.zeros_like(dW), xp.zeros_like(db)) for dW, db in v]
        t = xp.reshape(_as(xp, _flat(xp, v), xp.float64), (-1, 1))              # v               (p, 1)
        return _unflat(xp, _as(xp, self._project(t)[:, 0], self.params[0][0].dtype), v)

    def correction(self, r):
        """Minimum-norm d with J d = r in the least-squares sense, J^+ r, as [(dW, db)]. r: (m,)."""
        xp = self.xp
        d = self._correct(xp.reshape(_as(xp, r, xp.float64), (-1, 1)))
        return _unflat(xp, _as(xp, d[:, 0], self.params[0][0].dtype), self.params)


class _Dense(_Linearized):
    """The definition: J (m, p), its thin SVD J = U diag(s) V^T, the cutoff s > tau s_1, and
    V_r (p, r): g_perp = (I - V_r V_r^T) g, J^+ r = V_r diag(s_r)^-1 U_r^T r. Memory O(m p)."""
    route = "dense"

    def __init__(self, xp, params, c, J, tau):
        super().__init__(xp, params, c, J.shape[1], tau)
        J = _as(xp, J, xp.float64)                                              # J                 (m, p)
        V, s, Ut = xp.linalg.svd(J.T, full_matrices=False)                      # J^T = V diag(s) U^T (tall: ~2x faster)
        s_1 = float(s[0]) if s.shape[0] else 0.0
        if not math.isfinite(s_1):
            raise FloatingPointError("|J| overflows (its largest singular value is not a finite float): "
                                     "scale the anchors or params down")
        self.rank = r = _count(xp, s > tau * s_1)                               # s sorted descending: a prefix
        self.V, self.Ut, self.s = V[:, :r], Ut[:r, :], s[:r]                    # V_r (p, r), U_r^T (r, m), s_r
        self.cond = s_1 / float(s[r - 1]) if r else 1.0
        self._check_ambiguity(xp, s, s_1)

    def _project(self, t):
        return t - self.V @ (self.V.T @ t)                                      # (I - V_r V_r^T) t

    def _correct(self, r):
        return self.V @ ((self.Ut @ r) / self.s[:, None])                       # V_r S_r^-1 U_r^T r


class _Gram(_Linearized):
    """The matrix-free route (module docstring): the same projection and J^+ as ``_Dense`` to the
    error model, from J J^T (m, m), J T and J^T L, never forming J. Memory O(m^2 + m sum_l n_l).
    It works with J / scale (Delta_l / scale, scale a power of 2), which has the same projection
    and J^+ = (J / scale)^+ / scale."""

    def __init__(self, xp, params, c, As, deltas, tau, p):
        super().__init__(xp, params, c, p, tau)
        self.Vb = None
        self.As = [_as(xp, A, xp.float64) for A in As]                          # A_{l-1}           (n_a, n_{l-1})
        self.Ds = [_as(xp, D, xp.float64) for D in deltas]                      # Delta_l           (K, n_a, n_l)
        big = float(xp.max(xp.stack([xp.max(xp.abs(D)) for D in self.Ds])))     # max |Delta|: one transfer
        self.scale = math.ldexp(0.5, math.frexp(big)[1]) if 0 < big < math.inf else 1.0
        self.Ds = [D / self.scale for D in self.Ds]                              # J / scale (a power of 2: exact, <= 2),
        self._factor(xp)                                                         # so w = s^2 cannot under/overflow

    def _factor(self, xp):
        m, p = self.m, self.p
        S = 0.0
        for A, D in zip(self.As, self.Ds):
            K = D.shape[0]
            D2 = xp.reshape(D, (m, D.shape[-1]))                                 # Delta_l stacked   (m, n_l)
            S = S + xp.tile(A @ A.T + 1.0, (K, K)) * (D2 @ D2.T)                 # (A A^T + 1) * (Delta Delta^T)
        kappa_c = (max(m, p) / (m * m * EPS64)) ** (1 / 3) / 4                   # clear: w >= w_max / kappa_c^2
        no_band = self.tau * kappa_c >= 1                                        # tau s_1 is clear (float32, large p):
        kappa_c = min(kappa_c, 1 / self.tau)                                     # keep s >= tau s_1, drop the rest
        self.Linv = None
        if self._all_clear(xp, S, kappa_c):
            return
        if not check.all_finite(xp, S):                                          # (never certified by the fast path)
            raise FloatingPointError("J J^T overflowed in the gram route (anchors or hidden activations too large "
                                     "to square): scale the anchors down, or use method='dense'")
        w, Q = xp.linalg.eigh(S)                                                 # J J^T = Q diag(w) Q^T, w ascending
        w_max = max(float(w[-1]), 0.0)
        n_c = _count(xp, w >= w_max / kappa_c ** 2) if w_max > 0 else 0          # clear: a suffix of w
        b = m - n_c                                                              # band: the rest (all if J = 0)
        self.route = "gram"
        unresolved = n_c and b and not no_band and b * (p + m * sum(D.shape[-1] for D in self.Ds)) > BAND_MAX_ENTRIES
        if unresolved and _dense_fits(m, p):
            raise _DenseFits                                                     # the definition, in memory
        if unresolved:
            n_c = _count(xp, w > max(m * EPS64, self.tau ** 2) * w_max)          # the Gram matrix's own cutoff
            b, kappa_c = m - n_c, math.inf                                       # (and always two passes)
        self.Qc, self.inv_c = Q[:, b:], 1.0 / w[b:]                              # Q_c (m, n_c), w_c^-1
        cond_c = math.sqrt(w_max / float(w[b])) if n_c else 1.0                  # s_1 / smallest clear s
        self.passes = 1 if m * cond_c <= max(m, p) and kappa_c < math.inf else 2
        self.rank, self.cond = n_c, cond_c
        s = xp.sqrt(xp.clip(w, 0.0, None))                                       # s = sqrt(w) as the Gram matrix sees it
        if unresolved:
            self.route = "gram (band unresolved)"
            self._warn(f"the gram route cannot resolve {b} small singular value(s) of J (m = {m}, "
                       f"p = {p}) within BAND_MAX_ENTRIES = {BAND_MAX_ENTRIES}, and J exceeds DENSE_MAX_ENTRIES "
                       f"= {DENSE_MAX_ENTRIES}: rank and projection are the Gram matrix's (accurate to ~ "
                       f"sqrt(m eps) s_1 only); use fewer or less similar anchors, or method='dense' if J "
                       f"({m * p * 8 / 2 ** 30:.1f} GiB in float64, its SVD about as much again) fits in memory")
            self._check_ambiguity(xp, s[b:], math.sqrt(w_max))                   # only the clear ones are known
        elif n_c and b and not no_band:
            Qb = Q[:, :b]                                                         # Q_b               (m, b)
            Bp = self._clear(self._JT(Qb))                                        # B' = (I - P_c) J^T Q_b  (p, b)
            Vb, sb, Wbt = xp.linalg.svd(Bp, full_matrices=False)                  # B' = V_b diag(s_b) W_b^T
            s_1 = max(math.sqrt(w_max), float(sb[0]))
            r_b = _count(xp, sb > self.tau * s_1)                                 # the cutoff on the band
            self.Qb, self.Vb, self.sb, self.Wbt = Qb, Vb[:, :r_b], sb[:r_b], Wbt[:r_b, :]
            self.rank, self.route = n_c + r_b, "gram+band"
            self.cond = s_1 / float(sb[r_b - 1]) if r_b else cond_c
            self._check_ambiguity(xp, xp.concat([s[b:], sb]), s_1)
        else:
            self._check_ambiguity(xp, s, math.sqrt(w_max))                       # no band: every w is resolved

    def _all_clear(self, xp, S, kappa_c):
        """Fast path (no eigendecomposition) where a Cholesky factor S = L L^T certifies that every
        eigenvalue is clear and unambiguous: lambda_max / lambda_min <= trace(S) |L^-1|_F^2 <= bound,
        bound = min(kappa_c^2 / 4, (10 tau)^-2). Then rank = m, no band, no singular value within a
        factor 10 of the cutoff, and S^-1 = L^-T L^-1 (explicit: L is well-conditioned here)."""
        bound = min(kappa_c ** 2 / 4, (10 * self.tau) ** -2)
        try:
            Linv = xp.linalg.inv(xp.linalg.cholesky(S))                           # L^-1              (m, m)
        except (ValueError, RuntimeError):                                        # not positive definite
            return False
        trace, big = float(xp.linalg.trace(S)), float(xp.max(xp.abs(Linv)))
        if not trace * big * big <= bound:                                        # a lower bound of cond2; tiny pivots:
            return False                                                          # Linv^2 would overflow (NaN: failed)
        cond2 = trace * float(xp.sum(Linv * Linv))                               # >= (s_1 / s_m)^2
        if not cond2 <= bound:
            return False
        self.Linv, self.route, self.rank, self.cond = Linv, "gram", self.m, math.sqrt(cond2)
        self.passes = 1 if self.m * self.cond <= max(self.m, self.p) else 2
        return True

    def _solve(self, Y):
        """(J J^T)^+ Y on the clear part: L^-T L^-1 Y or Q_c diag(w_c^-1) Q_c^T Y.  Y: (m, k)."""
        if self.Linv is not None:
            return self.Linv.T @ (self.Linv @ Y)                                 # S^-1 Y = L^-T L^-1 Y
        return self.Qc @ (self.inv_c[:, None] * (self.Qc.T @ Y))                # Q_c diag(w_c^-1) Q_c^T Y

    # -- gram route: J T, J^T L, the clear projector ---------------------------------------
    def _J(self, T):
        """J T (m, k) for T (p, k), matrix-free."""
        xp, out, start = self.xp, 0.0, 0
        k = T.shape[1]
        for A, D in zip(self.As, self.Ds):
            n_in, n_out = A.shape[1], D.shape[-1]
            mid, stop = start + n_in * n_out, start + (n_in + 1) * n_out
            dW = xp.reshape(T[start:mid, :], (n_in, n_out * k))                  # W_l rows      (n_in, n_out k)
            AdW = xp.reshape(A @ dW, (A.shape[0], n_out, k))                     # A_{l-1} dW_l  (n_a, n_out, k)
            out = out + xp.sum(D[..., None] * AdW, axis=2) + D @ T[mid:stop, :]  # rowsum((A dW) * Delta) + Delta db  (K, n_a, k)
            start = stop
        return xp.reshape(out, (self.m, k))

    def _JT(self, L):
        """J^T L (p, k) for L (m, k), matrix-free."""
        xp, blocks = self.xp, []
        k = L.shape[1]
        for A, D in zip(self.As, self.Ds):
            K, n_a, n_out = D.shape
            M = xp.sum(D[..., None] * xp.reshape(L, (K, n_a, 1, k)), axis=0)     # sum_k lam_ki Delta_l,ki  (n_a, n_out, k)
            dW = A.T @ xp.reshape(M, (n_a, n_out * k))                            # dW_l = A^T (lam * Delta_l)
            blocks += [xp.reshape(dW, (A.shape[1] * n_out, k)), xp.sum(M, axis=0)]  # db_l = colsum(lam * Delta_l)
        return xp.concat(blocks, axis=0)

    def _clear(self, T):
        """(I - P_c) T, P_c = J^T Q_c diag(w_c^-1) Q_c^T J, applied ``passes`` times.  T: (p, k)."""
        for _ in range(self.passes):
            T = T - self._JT(self._solve(self._J(T)))                            # T - J^T (J J^T)_c^+ J T
        return T

    def _project(self, t):
        if self.Vb is not None:
            t = t - self.Vb @ (self.Vb.T @ t)                                    # (I - V_b V_b^T) t
        return self._clear(t)                                                    # (I - P_c) ...

    def _correct(self, r):
        r = r / self.scale                                                       # J^+ r = (J / scale)^+ (r / scale)
        d = self._JT(self._solve(r))                                             # d_c = J^T Q_c w_c^-1 Q_c^T r
        if self.Vb is not None:                                                  # + V_b S_b^-1 W_b^T Q_b^T (r - J d_c)
            d = d + self.Vb @ ((self.Wbt @ (self.Qb.T @ (r - self._J(d)))) / self.sb[:, None])
        return d


def _advice(lin0, lin, history, tol, max_iter, stalled):
    """What the residual history (max|c - c0| before each correction) says, and what would help.
    lin0: the factorization at the step's start (its rank is the one that matters: a rank measured at
    a diverged point says nothing about the constraints); lin: the last one."""
    first, last = history[0], history[-1]
    hints = []
    if not math.isfinite(last):
        hints.append("the frozen outputs overflowed (a non-finite residual): use a smaller lr")
    elif stalled and last <= 1e-6 * max(1.0, lin0.c_scale):                       # c restored to a floor
        hints.append(f"it reached a floor at {last:.1e} (from {first:.1e}) that no correction lowers"
                     + (f": J is ill-conditioned (cond_r ~ {lin.cond:.1e}; near-duplicate anchors or saturated "
                        f"units), so" if lin.cond > 1e6 else ":") + f" raise tol above {last:.1e}")
    elif stalled:
        hints.append(f"no correction reduced |c - c0| any more ({first:.1e} -> {last:.1e}), not even "
                     f"damped to 2^-{MAX_HALVINGS} of a Gauss-Newton step: the step left Gauss-Newton's basin; "
                     f"use a smaller lr (the first residual is O(lr^2))")
    else:
        rate = (last / first) ** (1 / max(len(history) - 1, 1)) if first > 0 else 1.0
        if rate < 0.5:
            hints.append(f"it was still converging (~{rate:.1e} per correction): raise max_iter (now {max_iter})")
        else:
            hints.append(f"it converges slowly (~{rate:.2f} per correction)"
                         + (f": J is ill-conditioned (cond_r ~ {lin.cond:.1e}; near-duplicate anchors or "
                            f"saturated units), so raise tol above {last:.1e} or use a smaller lr"
                            if lin.cond > 1e6 else ": use a smaller lr"))
    if lin0.warning:
        hints.append(f"at the step's start: {lin0.warning} (method='dense', rtol=, or fewer / less similar anchors)")
    if lin0.rank < lin0.m:
        hints.append(f"J has rank {lin0.rank} < m = {lin0.m} constraints on p = {lin0.p} parameters at the step's "
                     f"start (nullity {lin0.nullity}): more anchors than the frozen outputs' own parameters (or "
                     f"duplicates), so a finite step can move c where no correction reaches; use a smaller lr or "
                     f"fewer anchors")
    return "; ".join(hints)


MAX_HALVINGS = 10               # a retraction correction is damped by at most 2^-10 before it stops


def _retract(net, xp, params, anchors, outputs, c0, tol, max_iter, lin):
    """Remove the drift: while max|c(theta) - c0| > tol: theta <- theta - t J^+ (c(theta) - c0).

    Gauss-Newton: the first correction uses ``lin``, the factorization at the step's start
    that the projection made; every later one re-factors J at the current parameters
    (quadratic convergence at full row rank). t = 1 whenever the full correction reduces
    |r|_2 (so the quadratic convergence is kept); otherwise t is halved (J^+ r is a descent
    direction of |r|_2^2 / 2, so a small enough t reduces it unless J^T r = 0), at most
    MAX_HALVINGS times, then it stops. A non-finite residual stops at once. Returns (params,
    corrections applied, residual); raises RetractionError, with advice, when max_iter
    corrections do not reach tol, the residual is not finite or no damped correction helps.
    """
    lin0, history, stalled = lin, [], False

    def residual(theta):
        trace = net._forward(xp, theta, anchors)
        r = _c(xp, trace.As[-1], outputs) - c0                                    # r = c(theta) - c0   (m,)
        res = float(xp.max(xp.abs(r)))                                            # max|r|, then |r|_2 without
        norm = res * float(xp.linalg.vector_norm(r / res)) if 0 < res < math.inf else res   # overflow
        return r, res, norm, trace

    def relinearize(theta, trace):                                                # J at theta
        with warnings.catch_warnings():                                           # (the step's start already warned)
            warnings.simplefilter("ignore", ProjectionAccuracyWarning)
            return _Linearization(net, xp, theta, anchors, outputs, lin.method, trace=trace, rtol=lin.tau)

    def damped(lin):
        """theta - t J^+ r with the largest t in 1, 1/2, ... 2^-MAX_HALVINGS that reduces |r|_2 (or makes it
        non-finite: then it stops at once), or None."""
        d, t = lin.correction(r), 1.0
        for _ in range(MAX_HALVINGS + 1):
            trial = apply_update(xp, params, [(t * dW, t * db) for dW, db in d])  # theta - t J^+ r
            out = residual(trial)
            if not (math.isfinite(out[2]) and out[2] >= norm):
                return (trial,) + out
            t /= 2
        return None

    r, res, norm, trace = residual(params)
    for it in range(max_iter + 1):
        history.append(res)
        if res <= tol:
            return params, it, res
        if not math.isfinite(norm) or it == max_iter:
            break
        if it:
            lin = relinearize(params, trace)
        step = damped(lin)
        if step is None and it == 0:                                              # J of the step's start is stale
            lin = relinearize(params, trace)                                      # (e.g. a relu output came alive)
            step = damped(lin)
        if step is None:
            stalled = True
            break
        params, r, res, norm, trace = step
    raise RetractionError(f"retraction did not converge: max |c - c0| = {res:.3e} > tol = {tol:.3e} after "
                          f"{it} correction(s), route {lin0.route!r}, rank {lin0.rank} at the step's start, "
                          f"nullity {lin0.nullity}. " + _advice(lin0, lin, history, tol, max_iter, stalled),
                          res, it)


def _frozen_args(net, params, anchors, outputs, outputs_name, method, tol, max_iter, rtol=None):
    """Shared validation of the frozen-output arguments; returns (xp, outputs, tol or None, max_iter)."""
    _rtol(rtol)
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


def _rtol(rtol):
    """rtol: None (the default, ``default_rtol``) or a float in (0, 1)."""
    if rtol is None:
        return None
    v = check.positive_finite(rtol, "rtol")
    if not v < 1:
        raise ValueError(f"rtol must be in (0, 1) (a cutoff relative to the largest singular value), got {rtol!r}")
    return v


@values_only
def project_out(net, params, grads, anchors, outputs=(0,), method="gram", rtol=None):
    r"""Project ``grads`` onto the null space of J, the Jacobian of the outputs K on the anchors.

    .. math:: g_\perp = (I - V_r V_r^T)\, g = g - J^T \lambda, \qquad (J J^T) \lambda = J g

    with :math:`V_r` the right singular vectors of J (m, p) with :math:`s > \mathrm{rtol}\, s_1`
    (module docstring): the nearest vector to g with :math:`J g_\perp = 0`, so a small step along
    it leaves the frozen outputs unchanged to first order.

    Parameters
    ----------
    net : refnet.MLP
    params : list of (W_l (n_{l-1}, n_l), b_l (n_l,))
    grads : list of (dW_l, db_l)
        Shaped like ``params`` (e.g. ``net.vjp``'s result).
    anchors : array, shape (n_a, n_0)
        Inputs on which the outputs stay constant; m = len(outputs) * n_a constraints.
    outputs : sequence of int, default (0,)
        The frozen output indices K.
    method : {"gram", "dense"}
        "gram" (default): matrix-free, memory O(m^2 + m sum_l n_l), falling back to the dense
        route where that is cheaper or more accurate and J fits ``DENSE_MAX_ENTRIES`` (m > p,
        or a band the route cannot hold); "dense": explicit J and its SVD, memory O(m p).
        Both compute the same projection (to the error model).
    rtol : float in (0, 1), optional
        The singular-value cutoff relative to :math:`s_1`; default ``default_rtol(net, m, dtype)``
        (from J's rounding, :math:`10 \sqrt{m k}\, \epsilon`). A port that uses the array API's
        ``pinv`` passes it explicitly: ``pinv``'s default :math:`\max(m, p)\, \epsilon` grows with p.

    Returns
    -------
    list of (dW_l, db_l)
        :math:`g_\perp`, in the params' library, device and dtype (a new list; grads is untouched).

    Raises
    ------
    TypeError, ValueError
        Invalid arguments (the message names the argument).
    FloatingPointError
        The frozen outputs or J overflow on the anchors.

    Warns
    -----
    ProjectionAccuracyWarning
        A singular value within a factor 10 of the cutoff ("rank ambiguous"), or a gram band
        larger than ``BAND_MAX_ENTRIES``.

    Examples
    --------
    >>> import numpy as np, refnet
    >>> net = refnet.MLP([3, 4, 2], "tanh")
    >>> params = net.init(seed=0)
    >>> X = np.random.default_rng(0).uniform(-1, 1, (5, 3))
    >>> g = net.vjp(params, X, np.ones((5, 2)))
    >>> gp = refnet.project_out(net, params, g, X, [0])
    >>> J = net.jacobian(params, X, [0])                         # (5, 26)
    >>> bool(np.abs(J @ refnet.flatten(gp)).max() < 1e-14)
    True
    """
    xp, outputs, _, _ = _frozen_args(net, params, anchors, outputs, "outputs", method, None, 1, rtol)
    check.like_params(grads, params, "grads", xp, params[0][0].dtype)
    check.tree_finite(xp, grads, "grads")
    if not outputs:
        return [(gW + 0.0, gb + 0.0) for gW, gb in grads]                         # nothing frozen: g (a copy)
    return _Linearization(net, xp, params, anchors, outputs, method, rtol=rtol).project(grads)


@values_only
def frozen_step(net, params, X, G, freeze, lr, anchors=None, method="gram", retract=True,
                tol=None, max_iter=20, rtol=None):
    r"""One gradient step on the output gradient G that keeps the outputs ``freeze`` constant on ``anchors``.

    g is the backprop of G at X; the step is :math:`\theta' = \theta - \mathrm{lr}\, g_\perp`
    (``project_out``), then, with ``retract=True``, damped Gauss-Newton corrections
    :math:`\theta \leftarrow \theta - t J^+ r`, :math:`r = c(\theta) - c(\theta_0)`, until
    :math:`\max |r| \le \mathrm{tol}` (module docstring, "Retraction").

    Parameters
    ----------
    net : refnet.MLP
    params : list of (W_l, b_l)
    X : array, shape (n, n_0)
        The batch.
    G : array, shape (n, n_L)
        Output gradient dL/dY.
    freeze : sequence of int
        Frozen output indices K; empty: a plain gradient step.
    lr : float > 0
    anchors : array, shape (n_a, n_0), optional
        Where the frozen outputs are held; default X.
    method : {"gram", "dense"}
        As in ``project_out``.
    retract : bool, default True
        False: only the projected step (the drift is O(lr^2), reported in ``info.residual``).
    tol : float > 0, optional
        Default ``default_tol``: :math:`10^{-12}` (float64) or :math:`10^{-5}` (float32) times
        :math:`\max(1, \max_{ik} |\phi_L'| (|A_{L-1}| |W_L| + |b_L|) + |c|)` on the anchors.
    max_iter : int >= 1, default 20
        Most retraction corrections.
    rtol : float in (0, 1), optional
        The singular-value cutoff (``project_out``; a port using ``pinv`` passes it explicitly).

    Returns
    -------
    new_params : list of (W_l, b_l)
    info : FrozenInfo
        Residual, corrections, rank and nullity at the start, tolerance, route, warning. A trivial
        null space (rank J = p) gives a zero step with ``info.nullity == 0``.

    Raises
    ------
    RetractionError
        The retraction did not reach tol (``.residual``, ``.iterations``; the message says what
        was detected and what would help).
    FloatingPointError
        The step overflowed (the new params would not be finite).
    TypeError, ValueError
        Invalid arguments (the message names the argument).

    Examples
    --------
    >>> import numpy as np, refnet
    >>> net = refnet.MLP([3, 4, 2], "tanh")
    >>> params = net.init(seed=0)
    >>> X = np.random.default_rng(0).uniform(-1, 1, (5, 3))
    >>> new, info = refnet.frozen_step(net, params, X, np.ones((5, 2)), [0], 0.1)
    >>> bool(np.abs(net.forward(new, X)[:, 0] - net.forward(params, X)[:, 0]).max() <= info.tol)
    True
    """
    check.network(net)
    check.flag(retract, "retract")
    grads, trace = net._vjp(params, X, G)
    lr = check.positive_finite(lr, "lr")
    anchors = X if anchors is None else anchors
    xp, freeze, tol, max_iter = _frozen_args(net, params, anchors, freeze, "freeze", method, tol, max_iter, rtol)
    if not freeze:
        new = apply_update(xp, params, [(lr * gW, lr * gb) for gW, gb in grads])   # theta - lr g
        return _finite_params(xp, new), FrozenInfo(0.0, 0, 0, net.n_params, True, tol or 0.0)
    lin = _Linearization(net, xp, params, anchors, freeze, method,
                         trace=trace if anchors is X else None, rtol=rtol)       # reuse the forward pass on X
    c0 = lin.c                                                                    # frozen values   (m,)
    tol = default_tol(xp, lin.c_scale, params[0][0].dtype) if tol is None else tol
    d = lin.project(grads)                                                        # g_perp
    new = apply_update(xp, params, [(lr * dW, lr * db) for dW, db in d])          # theta - lr g_perp
    new, its, res = _settle(net, xp, new, anchors, freeze, c0, tol, max_iter, lin, retract)
    return _finite_params(xp, new), _info(lin, res, its, tol)


def _info(lin, res, its, tol):
    return FrozenInfo(res, its, lin.rank, lin.nullity, res <= tol, tol, lin.route, lin.warning)


def _settle(net, xp, params, anchors, outputs, c0, tol, max_iter, lin, retract):
    """Retract (retract=True) or only measure the residual max|c(theta) - c0|."""
    if retract:
        return _retract(net, xp, params, anchors, outputs, c0, tol, max_iter, lin)
    r = _c(xp, net._forward(xp, params, anchors).As[-1], outputs) - c0            # c(theta) - c0
    return params, 0, float(xp.max(xp.abs(r)))


class ProjectedState(NamedTuple):
    """inner: the wrapped optimizer's state; frozen: c0 (m,) at init; info: FrozenInfo of the last step."""
    inner: Any
    frozen: Any
    info: Any


class Projected:
    r"""Wrap any optimizer so that outputs ``freeze`` (indices K) stay constant on ``anchors``.

    Each step, at the current parameters :math:`\theta`: project the gradient before it enters
    the inner optimizer (no pressure against the constraint builds up in its buffer), project
    the inner optimizer's final update U again (stale momentum directions, computed at older
    parameters, cannot leak into the frozen outputs), apply it, then retract to the values
    :math:`c_0` frozen at ``init`` (kept in the state, so drift cannot accumulate step by step):

    .. math:: U = \mathrm{inner}(P g), \qquad \theta' = \mathrm{retract}(\theta - P U),
              \qquad P = I - V_r V_r^T \text{ at } \theta

    Parameters
    ----------
    inner : SGD, Momentum or AveragedMomentum
        The wrapped optimizer (its own state lives in ``ProjectedState.inner``).
    net : refnet.MLP
    anchors : array, shape (n_a, n_0)
        Copied at construction: reusing the caller's buffer later changes nothing.
    freeze : sequence of int, default (0,)
        Frozen output indices K (copied). Empty: every step is exactly ``inner.step``.
    retract, method, tol, max_iter, rtol
        As in ``frozen_step``.

    Raises
    ------
    TypeError, ValueError
        Invalid arguments (the message names the argument).

    Examples
    --------
    >>> import numpy as np, refnet
    >>> net = refnet.MLP([3, 4, 2], "tanh")
    >>> params = net.init(seed=0)
    >>> X = np.random.default_rng(0).uniform(-1, 1, (5, 3))
    >>> opt = refnet.Projected(refnet.Momentum(0.1, 0.9), net, X, freeze=[0])
    >>> state = opt.init(params)
    >>> for _ in range(3):
    ...     params, state = opt.step(params, net.vjp(params, X, np.ones((5, 2))), state)
    >>> bool(np.abs(net.forward(params, X)[:, 0] - state.frozen).max() <= state.info.tol)
    True
    """

    @values_only
    def __init__(self, inner, net, anchors, freeze=(0,), retract=True, method="gram", tol=None, max_iter=20,
                 rtol=None):
        if not (hasattr(inner, "update") and hasattr(inner, "init")):
            raise TypeError(f"inner must be a refnet optimizer (SGD, Momentum, AveragedMomentum), got {inner!r}")
        self.inner, self.net = inner, check.network(net)
        check.batch(anchors, "anchors", net.sizes[0], what="anchors")
        self.anchors = anchors + 0.0                                              # a copy (no history): the
        self.freeze = check.indices(freeze, "freeze", net.sizes[-1])             # caller's buffer may be reused
        self.rtol = _rtol(rtol)
        self.method = check.choice(method, "method", METHODS)
        self.tol = None if tol is None else check.positive_finite(tol, "tol")
        self.max_iter = check.count(max_iter, "max_iter", 1)
        self.retract = check.flag(retract, "retract")

    def __repr__(self):
        return f"Projected({self.inner!r}, freeze={self.freeze}, method={self.method!r}, retract={self.retract})"

    def _args(self, params):
        return _frozen_args(self.net, params, self.anchors, self.freeze, "freeze", self.method, self.tol,
                            self.max_iter, self.rtol)

    @values_only
    def init(self, params):
        """The initial state.

        Parameters
        ----------
        params : list of (W_l, b_l)

        Returns
        -------
        ProjectedState
            ``inner``: the inner optimizer's state; ``frozen``: c0 (m,), the frozen outputs on the
            anchors at these params (output-major); ``info``: None until the first step.
        """
        xp, *_ = self._args(params)
        c0 = _c(xp, self.net._forward(xp, params, self.anchors).As[-1], self.freeze)
        return ProjectedState(self.inner.init(params), c0, None)

    @values_only
    def step(self, params, grads, state):
        """One projected, retracted step.

        Parameters
        ----------
        params : list of (W_l, b_l)
        grads : list of (dW_l, db_l)
            Shaped like params.
        state : ProjectedState
            From ``init`` or the previous step.

        Returns
        -------
        new_params : list of (W_l, b_l)
        state : ProjectedState
            With ``.info`` the step's FrozenInfo.

        Raises
        ------
        RetractionError
            As in ``frozen_step`` (params and state are the caller's, untouched).
        TypeError, ValueError
            Invalid arguments (the message names the argument).
        """
        xp, freeze, tol, max_iter = self._args(params)
        if not isinstance(state, ProjectedState):
            raise TypeError(f"state must be a ProjectedState from Projected.init, got {type(state).__name__}")
        check.like_params(grads, params, "grads", xp, params[0][0].dtype)
        check.tree_finite(xp, grads, "grads")
        check.namespace({"params[0][0]": params[0][0], "state.frozen": state.frozen})
        check.shape(state.frozen, "state.frozen", (len(freeze) * self.anchors.shape[0],))
        check.float_dtype(xp, state.frozen, "state.frozen", params[0][0].dtype)
        check.finite(xp, state.frozen, "state.frozen")                            # O(m): c0 of init
        if not freeze:                                                            # nothing frozen: the inner step
            new, inner = self.inner.step(params, grads, state.inner)
            return new, ProjectedState(inner, state.frozen, FrozenInfo(0.0, 0, 0, self.net.n_params, True,
                                                                       tol or 0.0))
        lin = _Linearization(self.net, xp, params, self.anchors, freeze, self.method, rtol=self.rtol)
        tol = default_tol(xp, lin.c_scale, params[0][0].dtype) if tol is None else tol
        U, inner = self.inner.update(lin.project(grads), state.inner, params)     # inner update of g_perp
        new = apply_update(xp, params, lin.project(U))                            # theta - U_perp
        new, its, res = _settle(self.net, xp, new, self.anchors, freeze, state.frozen, tol, max_iter,
                                lin, self.retract)                                # back to c0 of init
        return _finite_params(xp, new), ProjectedState(inner, state.frozen, _info(lin, res, its, tol))


@values_only
def masked_grads(net, params, X, G, freeze, head_only=False):
    """The original answer's baselines (masking the loss), for comparison (they do not keep outputs constant in general).

    Masking: zero the columns ``freeze`` of G = dL/dY (the frozen outputs drop out of the loss)
    and backprop to every layer. With ``head_only=True`` only the last layer is trained: its
    frozen columns get zero gradient, so only the other outputs' columns W_L[:, k], b_L[k] move,
    which keeps the frozen outputs exactly constant but lets a single layer learn.

    Parameters
    ----------
    net : refnet.MLP
    params : list of (W_l, b_l)
    X : array, shape (n, n_0)
    G : array, shape (n, n_L)
        Output gradient dL/dY.
    freeze : sequence of int
        Output indices whose columns of G are zeroed.
    head_only : bool, default False
        Zero every layer's gradient but the last.

    Returns
    -------
    list of (dW_l (n_{l-1}, n_l), db_l (n_l,))

    Raises
    ------
    TypeError, ValueError
        Invalid arguments (the message names the argument).

    Examples
    --------
    >>> import numpy as np, refnet
    >>> net = refnet.MLP([3, 4, 2], "tanh")
    >>> params = net.init(seed=0)
    >>> X = np.random.default_rng(0).uniform(-1, 1, (5, 3))
    >>> g = refnet.masked_grads(net, params, X, np.ones((5, 2)), [0], head_only=True)
    >>> float(np.abs(g[0][0]).max()), float(np.abs(g[1][0][:, 0]).max())
    (0.0, 0.0)
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
