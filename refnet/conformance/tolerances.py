"""Tolerances, derived per quantity and dtype from running error bounds (not chosen by hand).

The bounds, per quantity (ASCII math; ``|x|`` is the entrywise absolute value)::

    Notation: eps is the unit roundoff of the port's dtype (2^-52 in float64,
    2^-23 in float32), gamma_k = k eps (the bound of a k-term sum: |fl(x.y) - x.y|
    <= gamma_k |x|.|y|), SAFETY = 4 (two implementations, each within the bound,
    times 2 for the second-order terms the bounds leave out).

    * forward: the first-order running bound, layer by layer,
          E_Z = gamma_{n_{l-1}+1} (|A_{l-1}| |W_l| + |b_l|) + E_A |W_l|,
          E_A = |phi'(Z)| E_Z + 2 eps (|A_l| + 1)   (0 for identity and relu, exact);
      the "+ 1": sigmoid, tanh and softplus are accurate to about eps absolutely,
      not relatively, in correct implementations ((1 + tanh(z/2)) / 2 for the
      sigmoid, log(1 + e^z) for softplus); an entry of Y may differ by SAFETY E_Y.  (Entrywise: relative to the
      magnitude of the terms that make up that entry, not to the entry.)
    * loss: SAFETY (|dL/dY| . E_Y + gamma_{terms} sum |terms| / n).
    * vjp / gradients: the same bound backwards, with phi'(Z) known to
      e' = eps (1 + |phi'|) + |d phi'/dA| 2 eps (|A| + 1) + |phi''| E_Z (1 - A^2
      and 1 / cosh^2 differ by eps absolutely; a phi' computed from A inherits A's
      own rounding, which the forward bound allows, e.g. XLA's tanh is off by up to
      6 ulps; an error in Z moves phi' by phi'' times it; identity and relu: e' = 0,
      their phi' is exactly 1 or 0 in any implementation):
          E_D_{l-1} = ((E_D_l + gamma_{n_l} |D_l|) |W_l|^T) (|phi'| + e') + (|D_l| |W_l|^T) e',
          E_dW = |A|^T E_D + E_A^T |D| + gamma_n |A|^T |D|,   E_db = 1^T E_D + gamma_n 1^T |D|;
      with loss_and_grads the error of the seed G = dL/dY (from E_Y) enters E_D_L.
    * jacobian: the same per row (one sample, one one-hot seed), without the sums over samples.
    * project_out: the projector of the thin SVD of J with singular values at or
      below cutoff = rtol s_max dropped (rtol = refnet.frozen.default_rtol). Perturbation theory of
      orthogonal projectors (Wedin) gives
          |g_perp_port - g_perp_ref| <= SAFETY (cutoff + |E_J|_F) / s_r |g|_2,
      s_r the smallest kept singular value (so the bound is about rtol cond_r(J) |g|). A singular value within a factor AMBIGUITY of the cutoff can be
      kept by one correct implementation and dropped by another (rounding moves
      it by about eps s_max); then the rank is ill-defined at this precision, the
      entries are not compared, and only the directions clear of the cutoff are
      checked (V_keep^T g_perp ~ 0, and g_perp agrees with g along V_drop).
      J = 0 exactly with no error bound (dead relu outputs) is rank 0: g_perp = g
      within SAFETY eps |g|_2. A failure is classified: the port leaks (|V_r^T
      g_perp| too large, so |J g_perp| is) and/or over-projects (it changed g along
      the null space, which the definition keeps).
    * frozen_step: invariants first, then parameters:
          frozen outputs on the anchors within tol_c = tol + SAFETY max E_Y, tol
          being refnet's retraction tolerance (refnet.frozen.default_tol: 1e-12 max(1, S)
          in float64, 1e-5 max(1, S) in float32, S the magnitudes that cancel into c);
          progress: <g, theta' - theta> at most half refnet's (negative) value;
          parameters within SAFETY (tol_c / s_r + lr tol_proj + delta |dJ|_2 / s_r):
          two minimum-norm retractions that both stop within tol_c differ by about
          tol_c / s_r in the row space of J, plus, when one keeps J of the step's
          start (a chord) and the other re-evaluates it (Gauss-Newton), the
          correction size delta times how far the row space turns over the step,
          |J(theta - lr g_perp) - J(theta)|_2 / s_r. When J turns by s_r or more
          over the step (relu kinks crossed, saturation), or at all from J = 0
          (rank 0), that bound exceeds the correction itself: the landing point is
          not defined to first order, and only the invariants are checked.
      A case is not compared when the retraction itself is ill-conditioned at
      this precision: a residual at rounding level, eps max(1, |c0|), needs a
      correction of size eps max(1, |c0|) / s_r, and when its square (its
      second-order effect on c) exceeds tol no retraction can promise tol.
    * optimizer steps: |theta| + lr (1 + mu) (|g| + mu (n_in + 2) a_j) per entry,
      a_j the largest |a| entering the entry's neuron j (the mean over n_in + 1
      terms, the update, nesterov's second term, the subtraction), times SAFETY eps. The
      runner's trajectories compare every step with refnet's step from the port's
      own parameters and gradients, so only the buffer carries errors (with factor
      mu <= 1): the per-step tolerances add up. Golden-file trajectories run on
      their own, and the dynamics carry (and amplify) earlier rounding:
      tol_k = growth_k tol_{k-1} + step_tol_k, growth_k = max(1, |theta_k -
      theta_{k-1}| / |theta_{k-1} - theta_{k-2}|) from refnet's own run (an estimate:
      a diverging run amplifies earlier errors about as fast as it grows).
"""
from __future__ import annotations

import numpy as np

from ..nn import ACTIVATIONS

SAFETY = 4.0
AMBIGUITY = 10.0
EPS = {"float64": float(np.finfo(np.float64).eps), "float32": float(np.finfo(np.float32).eps)}


def eps_of(dtype) -> float:
    """The unit roundoff of a port's dtype.

    Parameters
    ----------
    dtype : {"float64", "float32"}

    Returns
    -------
    float
        2^-52 or 2^-23 (ValueError for any other dtype).

    Examples
    --------
    >>> eps_of("float32") == 2.0 ** -23
    True
    """
    if dtype not in EPS:
        raise ValueError(f"dtype must be one of {list(EPS)}, got {dtype!r}")
    return EPS[dtype]


# |phi''(Z)| from Z and A = phi(Z): how an error in Z moves phi'(Z)  (relu: 0 away from its kink)
D2 = {"identity": lambda Z, A: np.zeros_like(Z),
      "relu": lambda Z, A: np.zeros_like(Z),
      "tanh": lambda Z, A: 2 * np.abs(A) * (1 - A * A),                     # |tanh''| = 2 |A| (1 - A^2)
      "sigmoid": lambda Z, A: A * (1 - A) * np.abs(1 - 2 * A),              # |s''| = s (1 - s) |1 - 2 s|
      "softplus": lambda Z, A: np.exp(-np.logaddexp(0, -Z) - np.logaddexp(0, Z))}   # s(Z) (1 - s(Z))


# |d phi' / d A|: how an error in A = phi(Z) moves a phi' computed from A (tanh: 1 - A^2; sigmoid:
# A (1 - A); softplus: 1 - e^-A)
DA = {"identity": lambda A, d: 0.0, "relu": lambda A, d: 0.0, "tanh": lambda A, d: 2 * np.abs(A),
      "sigmoid": lambda A, d: np.abs(1 - 2 * A), "softplus": lambda A, d: 1 - d}


def forward_bound(spec, params, X, eps):
    """Forward pass with its running (first-order) rounding-error bound.

    Parameters
    ----------
    spec : refnet.MLP
    params : list of (W, b)
        NumPy arrays, refnet layout.
    X : ndarray, shape (n, n_0)
    eps : float
        The unit roundoff (:func:`eps_of`).

    Returns
    -------
    As : list of ndarray
        A_l (n, n_l) for l = 0..L (As[0] = X).
    Zs : list
        Z_l (n, n_l) for l = 1..L (Zs[0] is None).
    Es : list of ndarray
        The bound on the error of each A_l (Es[0] = 0).
    EZs : list
        The bound on the error of each Z_l (EZs[0] is None).

    Examples
    --------
    >>> import numpy as np, refnet
    >>> net = refnet.MLP([2, 1], activation="identity")
    >>> As, Zs, Es, EZs = forward_bound(net, [(np.ones((2, 1)), np.zeros(1))], np.ones((1, 2)), 2.0 ** -52)
    >>> As[-1].tolist(), bool(Es[-1][0, 0] == 3 * 2.0 ** -52 * 2)      # gamma_3 (|a| |W| + |b|)
    ([[2.0]], True)
    """
    As, Zs, Es, EZs = [X], [None], [np.zeros_like(X)], [None]
    for l, (W, b) in enumerate(params, start=1):
        phi = ACTIVATIONS[spec.activation if l < len(params) else spec.output_activation]
        A = As[-1]
        Z = A @ W + b                                                      # Z_l = A_{l-1} W_l + b_l
        E_Z = (W.shape[0] + 1) * eps * (np.abs(A) @ np.abs(W) + np.abs(b)) + Es[-1] @ np.abs(W)
        A_new = phi.f(np, Z)
        own = 0.0 if phi.name in ("identity", "relu") else 2 * eps * (np.abs(A_new) + 1.0)   # phi's own rounding
        Es.append(np.abs(phi.df(np, Z, A_new)) * E_Z + own)                # E_A = |phi'| E_Z + own error
        As.append(A_new)
        Zs.append(Z)
        EZs.append(E_Z)
    return As, Zs, Es, EZs


def backward_bound(spec, params, fwd, S, E_S, eps, per_sample=False):
    """Rounding-error bound of backpropagating seeds ``S`` whose own error is ``E_S``.

    Parameters
    ----------
    spec : refnet.MLP
    params : list of (W, b)
        Refnet layout.
    fwd : tuple
        :func:`forward_bound`'s result for the same params and inputs.
    S, E_S : ndarray, shape (K, n, n_L)
        K seeds (dL/dY, or one-hot rows for a Jacobian) and the bound on their error.
    eps : float
    per_sample : bool, default False
        Bound each Jacobian row instead of the sums.

    Returns
    -------
    list of (ndarray, ndarray) or ndarray
        [(E_dW_l, E_db_l)] summed over samples and seeds; with ``per_sample`` an
        array (K n, p), rows output-major, columns in refnet's flatten order.

    Examples
    --------
    >>> import numpy as np, refnet
    >>> net, params, X = refnet.MLP([2, 1], activation="identity"), [(np.ones((2, 1)), np.zeros(1))], np.ones((1, 2))
    >>> fwd = forward_bound(net, params, X, 2.0 ** -52)
    >>> backward_bound(net, params, fwd, np.ones((1, 1, 1)), np.zeros((1, 1, 1)), 2.0 ** -52, per_sample=True)
    array([[0., 0., 0.]])
    """
    As, Zs, Es, EZs = fwd
    L = len(params)
    name = lambda l: spec.activation if l < L else spec.output_activation
    dphi = [None] + [np.abs(ACTIVATIONS[name(l)].df(np, Zs[l], As[l])) for l in range(1, L + 1)]
    # error of phi'(Z_l): its own rounding (about eps absolutely), what A's own rounding (2 eps (|A| + 1),
    # as in the forward bound) makes of a phi' computed from A (1 - A^2, A (1 - A)), plus |phi''| times
    # the error of Z_l (identity and relu: phi' is exactly 1 or 0 in any implementation, given Z's sign)
    e_dphi = [None] + [(0.0 if name(l) in ("identity", "relu") else
                        eps * (1 + dphi[l]) + DA[name(l)](As[l], dphi[l]) * 2 * eps * (np.abs(As[l]) + 1))
                       + D2[name(l)](Zs[l], As[l]) * EZs[l] for l in range(1, L + 1)]
    D = np.abs(S) * dphi[L]                                                # |Delta_L|
    E = np.abs(S) * e_dphi[L] + E_S * (dphi[L] + e_dphi[L])                # its error
    out = [None] * L
    for l in range(L, 0, -1):
        A, E_A, n = As[l - 1], Es[l - 1], As[0].shape[0]
        if per_sample:                                                     # row (k, i): a_i (outer) delta_ki
            EW = np.abs(A)[None, :, :, None] * E[:, :, None, :] + E_A[None, :, :, None] * D[:, :, None, :]
            K = D.shape[0]
            out[l - 1] = np.concatenate([EW.reshape(K * n, -1), E.reshape(K * n, -1)], axis=1)
        else:
            EW = (np.abs(A).T @ E + E_A.T @ D + n * eps * (np.abs(A).T @ D)).sum(axis=0)
            out[l - 1] = (EW, (E + n * eps * D).sum(axis=(0, 1)))
        if l > 1:
            Wt = np.abs(params[l - 1][0]).T                                # |W_l|^T
            n_l = Wt.shape[0]
            E = ((E + n_l * eps * D) @ Wt) * (dphi[l - 1] + e_dphi[l - 1]) \
                + (D @ Wt) * e_dphi[l - 1]                                 # (incl. error x error: phi' may be 0)
            D = (D @ Wt) * dphi[l - 1]
    return np.concatenate(out, axis=1) if per_sample else out


def loss_bound(loss, Y, T, E_Y, eps):
    """A loss, its gradient and their error bounds (refnet's definitions, in NumPy).

    Parameters
    ----------
    loss : {"mse", "softmax_cross_entropy"}
    Y, T : ndarray, shape (n, n_L)
        Outputs and targets.
    E_Y : ndarray, shape (n, n_L)
        The bound on Y's error.
    eps : float

    Returns
    -------
    L : float
    G : ndarray, shape (n, n_L)
        dL/dY.
    E_L : float
        The bound on L's error.
    E_G : ndarray, shape (n, n_L)
        The bound on G's error.

    Examples
    --------
    >>> import numpy as np
    >>> L, G, E_L, E_G = loss_bound("mse", np.array([[1.0, 3.0]]), np.zeros((1, 2)), np.zeros((1, 2)), 2.0 ** -52)
    >>> float(L), G.tolist()
    (5.0, [[1.0, 3.0]])
    """
    n, n_L = Y.shape
    if loss == "mse":
        R = Y - T                                                          # residual
        L, G = np.sum(R * R) / R.size, 2.0 * R / R.size
        E_L = np.sum(np.abs(G) * E_Y) + R.size * eps * L
        E_G = 2.0 * (E_Y + eps * np.abs(R)) / R.size
        return L, G, E_L, E_G
    Zs = Y - Y.max(axis=1, keepdims=True)
    P = np.exp(Zs) / np.exp(Zs).sum(axis=1, keepdims=True)                 # softmax rows
    lse = np.log(np.exp(Zs).sum(axis=1)) + Y.max(axis=1)
    L = np.mean(lse - np.sum(T * Y, axis=1))
    G = (P - T) / n
    E_L = np.sum(np.abs(G) * E_Y) + (n + n_L) * eps * np.mean(np.abs(lse) + np.sum(np.abs(T * Y), axis=1))
    E_G = (2.0 * P * E_Y.max(axis=1, keepdims=True) + eps * (P + np.abs(T))) / n
    return L, G, E_L, E_G


def svd_facts(J, eps, noise=0.0, rtol=None):
    """Singular values of refnet's J and what the cutoff ``rtol s_max`` makes of them.

    rtol: refnet's cutoff relative to s_max (``refnet.frozen.default_rtol(net, m, dtype)``, which
    the kit passes to ports); None: the array-API ``pinv`` default ``max(m, p) eps``.

    noise: a bound on the error of J's entries (``|E_J|_F >= |E_J|_2``, which bounds how far
    rounding moves any singular value, Weyl). A singular value within noise of the cutoff
    may be kept by one correct implementation and dropped by another (e.g. saturated
    units: 1 - tanh^2 rounds to 0 where 1 / cosh^2 gives 1e-20); when
    s_max <= SAFETY noise, J itself is at rounding level and its rank is undefined.
    Returns dict(s, cutoff, keep (bool), rank, s_max, s_r (smallest kept, inf if none),
    ambiguous (the singular values within a factor AMBIGUITY of the cutoff, or all of
    them when J is at rounding level), at_noise (bool), eps, Vt).

    Parameters
    ----------
    J : ndarray, shape (m, p)
    eps : float
    noise : float, default 0
        ``|E_J|_F``.
    rtol : float or None, default None

    Returns
    -------
    dict
        The entries above.

    Examples
    --------
    >>> import numpy as np
    >>> f = svd_facts(np.diag([1.0, 1e-20]), 2.0 ** -52)
    >>> f["rank"], f["ambiguous"].size                 # 1e-20 is far below the cutoff 2 eps
    (1, 0)
    >>> svd_facts(np.zeros((1, 3)), 2.0 ** -52)["rank"]  # J = 0 exactly: rank 0, g_perp = g
    0
    """
    m, p = J.shape
    _, s, Vt = np.linalg.svd(J, full_matrices=True)
    s_max = float(s.max(initial=0.0)) + 0.0                                  # (no -0.0 in reports)
    cutoff = (max(m, p) * eps if rtol is None else rtol) * s_max                # tau = rtol s_max
    keep = s > cutoff
    at_noise = bool(noise > 0 and s_max <= SAFETY * noise)               # (J = 0 exactly, no error: rank 0)
    s_all = np.concatenate([s, np.zeros(min(m, p) - s.size)])             # (thin SVD: s has min(m, p) values)
    band = (s_all > cutoff / AMBIGUITY) & (s_all <= cutoff * AMBIGUITY)   # next to the cutoff
    unresolved = (np.abs(s_all - cutoff) <= noise) & (noise > 0)         # J's own error can move it across
    ambiguous = s_all if at_noise else s_all[band | unresolved]
    return dict(s=s, cutoff=cutoff, keep=keep, rank=int(keep.sum()), s_max=s_max, at_noise=at_noise, eps=eps,
                noise=noise, unresolved=bool(np.any(unresolved)),
                s_r=float(s[keep].min()) if keep.any() else np.inf, ambiguous=ambiguous, Vt=Vt)


def projection_tol(facts, E_J, g_norm):
    """The bound on any entry of g_perp's error: ``SAFETY (cutoff + |E_J|_F) / s_r |g|_2``.

    Parameters
    ----------
    facts : dict
        :func:`svd_facts` of J.
    E_J : ndarray, shape (m, p)
        The bound on J's entries' error.
    g_norm : float
        ``|g|_2``.

    Returns
    -------
    float
        Rank 0 (g_perp = g): ``SAFETY eps |g|_2``.

    Examples
    --------
    >>> import numpy as np
    >>> J = np.array([[2.0, 0.0]])
    >>> bool(projection_tol(svd_facts(J, 2.0 ** -52), np.zeros_like(J), 1.0) == SAFETY * 2 * 2.0 ** -52 * 2 / 2)
    True
    """
    if facts["rank"] == 0:
        return SAFETY * facts["eps"] * g_norm
    return SAFETY * (facts["cutoff"] + float(np.linalg.norm(E_J))) / facts["s_r"] * g_norm


def accumulate(tol, step_tol, growth=1.0):
    """A trajectory's tolerance after one more step: growth tol + step_tol.

    Parameters
    ----------
    tol : float
        The tolerance of the steps so far (0 before the first).
    step_tol : float
        This step's own bound (:func:`optimizer_tol`, plus the projection's).
    growth : float, default 1
        How much the run amplifies earlier errors (golden files: refnet's own run
        carries them; the runner compares from the port's own parameters, so 1).

    Returns
    -------
    float

    Examples
    --------
    >>> accumulate(accumulate(0.0, 1e-16), 1e-16)                 # errors in the buffer carry over
    2e-16
    """
    return growth * tol + step_tol


def optimizer_tol(params, grads, acc, hyper, eps):
    """Per-entry tolerance of one optimizer step (the bound in the module docstring).

    Parameters
    ----------
    params, grads : list of (W, b)
        Refnet layout, before the step.
    acc : list of (W, b) or None
        The momentum buffer before the step (None: zero).
    hyper : dict
        lr and, where they apply, momentum.
    eps : float

    Returns
    -------
    list of (ndarray, ndarray)
        [(tol_W, tol_b)], shaped like params.

    Examples
    --------
    >>> import numpy as np
    >>> tol = optimizer_tol([(np.ones((1, 1)), np.zeros(1))], [(np.ones((1, 1)), np.zeros(1))], None,
    ...                     {"lr": 0.5}, 2.0 ** -52)
    >>> bool(tol[0][0][0, 0] == SAFETY * 2.0 ** -52 * (1 + 0.5))          # |theta| + lr |g|
    True
    """
    lr, mu = hyper["lr"], hyper.get("momentum", 0.0)
    out = []
    for l, (W, b) in enumerate(params):
        gW, gb = grads[l]
        aW, ab = (np.zeros_like(W), np.zeros_like(b)) if acc is None else acc[l]
        k = W.shape[0] + 2                                                 # mean over n_in + 1 terms, update, subtract
        col = np.maximum(np.abs(aW).max(axis=0), np.abs(ab))               # largest |a| entering neuron j
        out.append((SAFETY * eps * (np.abs(W) + lr * (np.abs(gW) + mu * k * col) * (1 + mu)),
                    SAFETY * eps * (np.abs(b) + lr * (np.abs(gb) + mu * k * col) * (1 + mu))))
    return out
