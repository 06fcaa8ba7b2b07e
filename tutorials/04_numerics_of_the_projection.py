# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 — Numerics of the projection
#
# Tutorial [01](01_frozen_outputs.py) derived the null-space projection
# $g_\perp = g - J^T \lambda$, $(J J^T) \lambda = J g$, and the retraction. This page
# is for readers who implement it themselves or compare their results with refnet's:
#
# 1. the **Gram trick**: $J J^T$, $J v$ and $J^T \lambda$ without forming $J$;
# 2. **one definition** of the projection, a singular-value cutoff, and the
#    **error model** every route meets, with its hypothesis;
# 3. the **band** of singular values the Gram matrix cannot resolve;
# 4. the **convergence order** of the retraction, and the rate of a chord method.
#
# Notation as in [Design and notation](design.md): per-sample vectors are rows;
# $c(\theta)$ stacks the frozen outputs on the anchors, output-major, $m$ entries;
# $J = \partial c / \partial \theta$ is $(m, p)$ with thin SVD
# $J = U \operatorname{diag}(s) V^T$, $s_1 \ge s_2 \ge \dots$; $\lambda$ are the
# multipliers; $\varepsilon$ is the machine epsilon of the parameters' dtype.
#
# Run as a script: `python tutorials/04_numerics_of_the_projection.py`.

# %%
from importlib.util import find_spec

import numpy as np

import refnet
from refnet.data import seed_regression
from refnet.demos.style import color

HAVE_MPL = find_spec("matplotlib") is not None     # figures need matplotlib
np.set_printoptions(precision=3, linewidth=88)
EPS = np.finfo(np.float64).eps

X, _ = seed_regression(n=8, seed=0)                # the 3-4-2 problem of tutorial 01
net = refnet.MLP([3, 4, 2], activation="sigmoid", output_activation="identity")
params = net.init(seed=0)                          # [(W_1, b_1), (W_2, b_2)]
n, p = X.shape[0], net.n_params
G = np.tile([0.0, -1.0], (n, 1)) / n               # raise output 1          (8, 2)
Y0 = net.forward(params, X)                        #                         (8, 2)

# %% [markdown]
# ## 1. The Gram trick: $J J^T$ without $J$
#
# **One row of $J$.** Row $(k, i)$ is $\partial y_{ik} / \partial \theta$: the
# backward pass of the one-hot seed $e_k$ (a row of length $n_L$) for sample $i$
# alone, with deltas $\delta^{(k)}_{L,i} = e_k \odot \phi_L'(z_{L,i})$ and
# $\delta^{(k)}_{l-1,i} = (\delta^{(k)}_{l,i} W_l^T) \odot \phi_{l-1}'(z_{l-1,i})$,
# all rows. Its $W_l$ block is the outer product $a_{l-1,i}^T \delta^{(k)}_{l,i}$
# and its $b_l$ block is $\delta^{(k)}_{l,i}$.
#
# **Inner product of two rows.** For rows $u, x$ of length $a$ and $v, y$ of
# length $b$,
# $\langle u^T v, x^T y \rangle_F = \sum_{s,t} u_s v_t x_s y_t = (u x^T)(v y^T)$.
# Applied to the $W_l$ blocks, plus the bias blocks (the same formula with a
# constant input 1):
#
# $$(J J^T)_{(k,i),(k',j)} = \sum_l \big(a_{l-1,i}\, a_{l-1,j}^T + 1\big)
#   \big(\delta^{(k)}_{l,i}\, \delta^{(k')T}_{l,j}\big) .$$
#
# **Stacked.** Let $\Delta^{(c)}_l$ $(m, n_l)$ hold the rows $\delta^{(k)}_{l,i}$
# output-major (row $k\, n_a + i$). The second factor is
# $\Delta^{(c)}_l \Delta^{(c)T}_l$; the first depends on the samples only, so it is
# the same $n_a \times n_a$ block for every pair of frozen outputs:
#
# $$J J^T = \sum_l \Big(\mathbf 1_{|K|} \mathbf 1_{|K|}^T \otimes
#   \big(A_{l-1} A_{l-1}^T + \mathbf 1 \mathbf 1^T\big)\Big) \odot
#   \big(\Delta^{(c)}_l \Delta^{(c)T}_l\big)$$
#
# ($\otimes$: Kronecker product, `np.tile(..., (K, K))`; $\odot$: elementwise).
# The same blocks give $J v$ and $J^T \lambda$: for $v$ with blocks
# $(V_l, v_l)$, $(J v)_{(k,i)} = \sum_l (a_{l-1,i} V_l + v_l)\, \delta^{(k)T}_{l,i}$,
# and $J^T \lambda$ has the $W_l$ block $A_{l-1}^T R_l$ and the $b_l$ block
# $\mathbf 1^T R_l$, with $R_l = \sum_k \operatorname{diag}(\lambda^{(k)})
# \Delta^{(k)}_l$ $(n_a, n_l)$ ($\lambda^{(k)}$, $\Delta^{(k)}_l$: the parts that
# belong to frozen output $k$). Memory $O(m^2 + m \sum_l n_l)$ instead of $O(m p)$:
# refnet's default route does not build $J$ (except where $J$ is small and the
# dense route is cheaper: more constraints than parameters, or a band too wide
# to hold, see section 3). By hand, for $K = \{0\}$ and
# $K = \{0, 1\}$:

# %%
(W1, b1), (W2, b2) = params
A0 = X                                             # A_0                    (8, 3)
A1 = 1.0 / (1.0 + np.exp(-(A0 @ W1 + b1)))         # A_1 = sigma(A_0 W_1 + 1 b_1)


def constraint_deltas(K):
    """Delta_1^(c), Delta_2^(c): backprop of the seeds e_k for every anchor,
    output-major   (|K| n, n_l)."""
    D2 = np.concatenate([np.tile(np.eye(2)[k], (n, 1)) for k in K])
    # Delta_2^(c) = e_k * phi_2' = e_k (identity output)                    (|K| n, 2)
    D1 = (D2 @ W2.T) * np.tile(A1 * (1.0 - A1), (len(K), 1))
    # Delta_1^(c) = (Delta_2^(c) W_2^T) * sigma'(Z_1)                       (|K| n, 4)
    return D1, D2


for K in ([0], [0, 1]):
    D1, D2 = constraint_deltas(K)
    k = len(K)
    S = (np.tile(A0 @ A0.T + 1.0, (k, k)) * (D1 @ D1.T)
         + np.tile(A1 @ A1.T + 1.0, (k, k)) * (D2 @ D2.T))
    # S = sum_l (1 1^T kron (A_{l-1} A_{l-1}^T + 1)) * (Delta_l^(c) Delta_l^(c)T)
    JK = net.jacobian(params, X, outputs=K)        # explicit J             (k n, p)
    err = np.abs(S - JK @ JK.T).max() / np.abs(JK @ JK.T).max()
    print(f"K = {K}: J J^T is {S.shape}, max |S - J J^T| / max |J J^T| = {err:.1e}")
    assert err < 1e2 * EPS

# %% [markdown]
# ## 2. One definition, and the error model
#
# **The definition.** refnet's projection ({py:func}`refnet.project_out`) is the
# one defined by the thin SVD of
# $J$ with the singular values at or below $\tau = \mathrm{rtol}\; s_1$ treated as
# zero: $g_\perp = (I - V_r V_r^T)\, g$, with $V_r$ the right singular vectors of
# the $r$ kept values, and `FrozenInfo.rank`, `nullity` are that definition's.
# The default `rtol` comes from the accuracy of $J$ in its dtype (the module
# `refnet.frozen` derives it); `refnet.frozen.default_rtol(net, m, dtype)` returns
# it, and a port that calls a `pinv` passes it as `rtol=`. For the seed problem:

# %%
J = net.jacobian(params, X, outputs=[0])           # (8, p)
m = J.shape[0]
s = np.linalg.svd(J, compute_uv=False)
rtol = refnet.frozen.default_rtol(net, m, J.dtype)
print(f"m = {m}, p = {p}: rtol = {rtol:.2e}; s / s_1 =\n{s / s[0]}")

# %% [markdown]
# **The error model.** Rounding makes every route compute the SVD of a nearby
# matrix $J + E$ with $\lVert E \rVert \approx \varepsilon\, s_1$ (times a modest
# factor). By Wedin's theorem the kept subspace then turns by at most (to first
# order in $\lVert E \rVert$)
#
# $$\sin \Theta \le \frac{\lVert E \rVert}{\delta}, \qquad
#   \delta = s_r - s_{r+1} \quad \text{(the gap at the cutoff)},$$
#
# so **the gap, not $s_r$ alone, controls the error**. The hypothesis of the bound
# refnet documents is that **no singular value lies within a factor 10 of the
# cutoff**: $s_r \ge 10\tau$ and $s_{r+1} \le \tau / 10$. Then
# $\delta \ge 0.99\, s_r$, and every route returns
#
# $$\lVert g_\perp - (I - V_r V_r^T)\, g \rVert
#   \le C \max(m, p)\, \varepsilon\, \kappa_r\, \lVert g \rVert,
#   \qquad \kappa_r = s_1 / s_r, \quad C = 8 .$$
#
# Without the hypothesis the rank itself is ambiguous: a singular value at the
# cutoff is kept by one correct implementation and dropped by another, and their
# answers differ by $O(\lVert g \rVert)$. refnet says so then
# (`ProjectionAccuracyWarning`, recorded in `FrozenInfo.warning`).
#
# **The gap at work**, in plain NumPy: a matrix with singular values
# $(1, 10^{-2}, s_r, s_{r+1})$ where $s_r = 10^{-3}$ is kept and $s_{r+1}$ dropped,
# a perturbation of norm $10^{-10}$, and the change of the kept projector
# $V_r V_r^T$ as $s_{r+1}$ approaches $s_r$ ($s_r$ fixed):

# %%
rng = np.random.default_rng(0)
U_, _ = np.linalg.qr(rng.standard_normal((4, 4)))
V_, _ = np.linalg.qr(rng.standard_normal((12, 4)))  # orthonormal columns   (12, 4)
E = rng.standard_normal((4, 12))
E *= 1e-10 / np.linalg.norm(E, 2)                  # |E| = 1e-10


def kept_projector(A, r):
    """V_r V_r^T from the r largest singular values of A          (12, 12)."""
    Vt = np.linalg.svd(A)[2][:r]
    return Vt.T @ Vt


print(f"{'s_r+1 / s_r':>11} {'|dP|':>9} {'|E| / s_r':>10} {'|E| / gap':>10}")
rows = []
for ratio in (0.0, 0.5, 0.9, 0.99, 0.999):
    sv = np.array([1.0, 1e-2, 1e-3, ratio * 1e-3])
    A = U_ @ np.diag(sv) @ V_.T                     # A = U diag(s) V^T      (4, 12)
    dP = np.linalg.norm(kept_projector(A + E, 3) - kept_projector(A, 3), 2)
    rows.append((dP, 1e-10 / (sv[2] - sv[3])))
    print(f"{ratio:>11} {dP:>9.1e} {1e-10 / sv[2]:>10.1e} {rows[-1][1]:>10.1e}")
assert all(dP <= bound for dP, bound in rows)      # Wedin: |dP| <= |E| / gap
assert rows[-1][0] > 50 * rows[0][0]               # same s_r, 100x smaller gap

# %% [markdown]
# $s_r$ never changes, yet the error grows a hundredfold as the gap closes: a bound
# in terms of $\kappa_r = s_1 / s_r$ alone would be false here. Under the
# hypothesis the gap is at least $0.99\, s_r$ and $\kappa_r$ is the right measure.
#
# ## 3. The band the Gram matrix cannot resolve
#
# The Gram matrix holds the squared singular values, $w = s^2$, and rounding puts
# an absolute error of about $m\, \varepsilon\, w_{\max}$ on each of them. So a
# Gram-only solve cannot resolve directions with $s < \sqrt{m \varepsilon}\, s_1$
# (about $1.5 \times 10^{-8} \sqrt m\, s_1$ in float64), while the SVD of $J$
# itself resolves them down to the cutoff. The well-conditioned seed problem is far
# from that band:

# %%
print(f"Gram resolution sqrt(m eps) = {np.sqrt(m * EPS):.1e}; "
      f"smallest s / s_1 = {s[-1] / s[0]:.1e}")
assert s[-1] / s[0] > 1e3 * np.sqrt(m * EPS)

# %% [markdown]
# **Near-duplicate anchors** put singular values in the band. A 3-8-8-2 tanh
# network, 4 random anchors and a copy of each moved by about $10^{-8}$: $J$ has 4
# singular values near $10^{-9} s_1$. We compute the definition with NumPy's SVD (an
# independent oracle), a Gram-only answer (eigendecomposition of $J J^T$,
# eigenvalues below $m \varepsilon w_{\max}$ dropped) and refnet's default route,
# after checking the error model's hypothesis on this $J$.

# %%
net_nd = refnet.MLP([3, 8, 8, 2], "tanh")
params_nd = net_nd.init(seed=3)
base = rng.uniform(-1.0, 1.0, (4, 3))
anchors_nd = np.concatenate([base, base + 1e-8 * rng.standard_normal((4, 3))])
# 4 near-duplicate pairs                                                    (8, 3)
G_nd = np.tile([0.0, -1.0], (8, 1)) / 8            # gradient of -mean(y_1)
g_nd = net_nd.vjp(params_nd, anchors_nd, G_nd)
gv_nd = refnet.flatten(g_nd)                       # g                      (p,)
J_nd = net_nd.jacobian(params_nd, anchors_nd, outputs=[0])   # J           (8, p)
m_nd, p_nd = J_nd.shape

_, s_nd, Vt_nd = np.linalg.svd(J_nd, full_matrices=False)   # J = U S V^T
tau = refnet.frozen.default_rtol(net_nd, m_nd, J_nd.dtype) * s_nd[0]
keep = s_nd > tau                                  # the definition's cutoff
assert not np.any((s_nd > tau / 10) & (s_nd < 10 * tau))    # the hypothesis holds
oracle = gv_nd - Vt_nd[keep].T @ (Vt_nd[keep] @ gv_nd)      # g - V_r V_r^T g
kappa_r = s_nd[0] / s_nd[keep][-1]

w, Q = np.linalg.eigh(J_nd @ J_nd.T)               # J J^T = Q diag(w) Q^T
w_inv = np.where(w > m_nd * EPS * w.max(), 1.0 / w, 0.0)     # Gram-only cutoff
gram_only = gv_nd - J_nd.T @ (Q @ (w_inv * (Q.T @ (J_nd @ gv_nd))))
# g - J^T (J J^T)^+ J g

default = refnet.flatten(refnet.project_out(net_nd, params_nd, g_nd, anchors_nd))
_, info_nd = refnet.frozen_step(net_nd, params_nd, anchors_nd, G_nd, freeze=[0],
                                lr=0.05)
print("s / s_1:", np.array2string(s_nd / s_nd[0], precision=1))
print(f"|g| = {np.linalg.norm(gv_nd):.2f}, rank {keep.sum()}, kappa_r = {kappa_r:.1e}")
err_gram = np.abs(gram_only - oracle).max()
err_default = np.abs(default - oracle).max()
bound = 8 * max(m_nd, p_nd) * EPS * kappa_r * np.linalg.norm(gv_nd)  # error model
print(f"max |Gram-only - oracle|     = {err_gram:.2e}  "
      f"(Gram-only rank {int((w_inv > 0).sum())})")
print(f"max |default route - oracle| = {err_default:.2e}  "
      f"({err_default / bound:.1e} of the bound {bound:.1e})")
print(f"frozen_step: route {info_nd.route!r}, rank {info_nd.rank}, "
      f"converged {info_nd.converged}")
assert np.sum(s_nd < 1e-7 * s_nd[0]) == 4 and int((w_inv > 0).sum()) == 4
assert err_gram > 1e-2 * np.linalg.norm(gv_nd)     # off by order |g|
assert err_default <= bound
assert info_nd.rank == keep.sum() and info_nd.converged

# %% [markdown]
# The Gram-only answer misses the 4 small directions and is off by a sizeable
# fraction of $\lVert g \rVert$. refnet's default route stays matrix-free: it uses
# the Gram matrix for the eigenvalues it resolves clearly and, for the few in the
# band, forms $B = J^T Q_b$ ($p \times b$, matrix-free) for just those eigenvectors
# $Q_b$ and takes a thin SVD of its unresolved part, which has the dense route's
# accuracy (`FrozenInfo.route` is `"gram+band"` then). It agrees with the
# definition well inside the error model and reports the definition's rank.
# Two cases go to the dense route instead, where $J$ fits
# `refnet.frozen.DENSE_MAX_ENTRIES`: a band too wide for `BAND_MAX_ENTRIES`
# (`"dense (band too large)"`), and more constraints than parameters, where the
# $m \times m$ Gram matrix has rank at most $p < m$ and its eigendecomposition,
# $O(m^3)$, costs more than the SVD of $J$, $O(m p^2)$ (`"dense (m > p)"`).
#
# ## 4. The retraction's convergence order
#
# After $\theta - \eta g_\perp$ the frozen outputs have moved by $O(\eta^2)$.
# **Gauss-Newton** corrections $\theta \leftarrow \theta - J^+ \rho$, with the
# residual $\rho = c(\theta) - c_0$, re-evaluate $J$ at the current $\theta$. Each
# correction $u = J^+ \rho$ is the smallest step with $J u = \rho$, so the
# linearised residual vanishes and only the curvature term remains:
# $\rho_{\text{new}} = O(\lVert u \rVert^2) = O(\lVert \rho \rVert^2)$ while $J$ has
# full row rank: $\lVert \rho_{k+1} \rVert \approx C \lVert \rho_k \rVert^2$,
# **quadratic** convergence.
#
# refnet's first correction reuses the factorization made for the projection
# (its error is third order in $\eta$); every later one re-factors $J$. A **chord**
# method keeps $J_0$ throughout: its correction $u = J_0^+ \rho$ leaves
# $\rho_{\text{new}} \approx \rho - J u = (J_0 - J) J_0^+ \rho$, and since
# $\lVert J_0^+ \rVert = 1 / s_r$,
#
# $$\frac{\lVert \rho_{k+1} \rVert}{\lVert \rho_k \rVert} \lesssim
#   \gamma_k = \frac{\lVert J(\theta_k) - J_0 \rVert}{s_r(J_0)} ,$$
#
# only **linear** convergence. We run all three from a deliberately large step
# ($\eta = 5$): Gauss-Newton and chord by hand (NumPy's minimum-norm least squares),
# and refnet stopped after $k$ corrections (`max_iter=k` with a tiny `tol` raises
# `RetractionError`, which carries the residual reached). With
# $e_k = \max_j |(\rho_k)_j|$ and $e_{k+1} \approx C e_k^q$, the order is
# $q \approx \log(e_{k+1}/e_k) / \log(e_k/e_{k-1})$, taken from the last three
# residuals above the rounding floor.

# %%
LR_BIG = 5.0
_, info0 = refnet.frozen_step(net, params, X, G, freeze=[0], lr=LR_BIG, retract=False)


def iterate(chord, X_a=X, lr=LR_BIG, k_max=8):
    """max|r| after each of k_max corrections from a projected step of size lr,
    output 0 frozen on X_a; for chord also (|rho_k+1| / |rho_k|, gamma_k) each."""
    c0 = net.forward(params, X_a)[:, 0]            # frozen values          (n_a,)
    G_a = np.tile([0.0, -1.0], (len(X_a), 1)) / len(X_a)
    p_k, _ = refnet.frozen_step(net, params, X_a, G_a, freeze=[0], lr=lr,
                                retract=False)
    theta = refnet.flatten(p_k)
    J_0 = net.jacobian(params, X_a, outputs=[0])   # J at the start of the step
    s_r = np.linalg.svd(J_0, compute_uv=False)[-1]   # full row rank: s_r = s_m
    res, rates = [], []
    for _ in range(k_max):
        p_k = refnet.unflatten(theta, params)
        rho = net.forward(p_k, X_a)[:, 0] - c0     # rho = c(theta) - c0    (n_a,)
        J_k = net.jacobian(p_k, X_a, outputs=[0])  # J at the current theta
        if res:
            rates.append((np.linalg.norm(rho) / np.linalg.norm(rho_prev),
                          np.linalg.norm(J_k - J_0, 2) / s_r))
        res.append(np.abs(rho).max())
        rho_prev = rho
        theta = theta - np.linalg.lstsq(J_0 if chord else J_k, rho, rcond=None)[0]
        # theta - J^+ rho, J^+ rho = J^T (J J^T)^+ rho
    return res, rates


def residual_after(k):
    """max |c - c0| after k of refnet's corrections (0: the projected step)."""
    if k == 0:
        return info0.residual
    try:
        return refnet.frozen_step(net, params, X, G, freeze=[0], lr=LR_BIG,
                                  tol=1e-300, max_iter=k)[1].residual
    except refnet.RetractionError as e:            # stopped after k, as asked
        return e.residual


def order(res):
    """Order q from the last three residuals above the rounding floor, and how
    many residuals lie above it."""
    e = np.array([x for x in res if x > 1e3 * EPS])
    return np.log(e[-1] / e[-2]) / np.log(e[-2] / e[-3]), len(e)


gauss_newton, _ = iterate(chord=False)
chord, _ = iterate(chord=True)
ours = [residual_after(k) for k in range(8)]
print(" k   Gauss-Newton      chord     refnet")
for k in range(8):
    print(f"{k:2}   {gauss_newton[k]:12.2e} {chord[k]:10.2e} {ours[k]:10.2e}")
q_gn, n_gn = order(gauss_newton)
q_ours, n_ours = order(ours[1:])                   # from the first re-factorization on
print(f"order: Gauss-Newton q = {q_gn:.2f}, refnet q = {q_ours:.2f}")
assert n_gn >= 3 and 1.7 < q_gn < 2.6              # quadratic
assert n_ours >= 3 and 1.7 < q_ours < 2.6          # refnet too
_, info = refnet.frozen_step(net, params, X, G, freeze=[0], lr=LR_BIG)
assert info.converged and min(ours) <= info.tol
print(f"default retraction: {info.iterations} corrections to {info.residual:.1e} "
      f"(tol {info.tol:.1e})")

# %% tags=["hide-input"]
def plot_retraction(gauss_newton, chord, ours, tol):
    """max |c - c0| against the correction k, log scale."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4))
    plt.close(fig)                                 # the cell shows fig
    floor = 1e-17                                  # exact zeros drawn here
    ax.semilogy(np.maximum(gauss_newton, floor), "o-", color="k", label="Gauss-Newton")
    ax.semilogy(np.maximum(chord, floor), "s--", color="0.5",
                label="chord ($J_0$ kept)")
    ax.semilogy(np.maximum(ours, floor), ".-", color=color("projected + retraction"),
                label="refnet")
    ax.axhline(tol, color="k", lw=0.6, ls=":", label="default tol")
    ax.set(xlabel="correction k", ylabel="max |c - c0|",
           title=f"retraction after a projected step, lr = {LR_BIG}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


plot_retraction(gauss_newton, chord, ours, info.tol) if HAVE_MPL else None

# %% [markdown]
# Gauss-Newton and refnet reach the rounding floor in a handful of corrections;
# the chord method creeps. Here $s_r / s_1$ is small (printed in section 2), so
# $\gamma_k > 1$ and the chord has no guarantee at all. With 2 anchors
# ($s_r$ much larger) and $\eta = 2$ the bound is informative:

# %%
_, chord_rates = iterate(chord=True, X_a=X[:2], lr=2.0, k_max=6)
print("chord, 2 anchors: |rho_k+1| / |rho_k|  <=  gamma_k = |J_k - J_0| / s_r")
for rate, gamma in chord_rates:
    print(f"  {rate:.2e} <= {gamma:.2e}")
assert all(rate <= gamma < 1 for rate, gamma in chord_rates)   # linear, rate <= gamma

# %% [markdown]
# The measured rate stays below $\gamma_k < 1$ (the bound is not tight: $\rho$ need not
# lie along $J_0$'s weakest direction), and it does not shrink from one correction
# to the next as Gauss-Newton's does. The
# sequences land on the set $c(\theta) = c_0$ at different points: the retraction
# is not unique, any nearby point on the set will do. Re-factoring costs one
# factorization per correction and saves corrections: that is why refnet
# re-factors.
#
# ## Exercises
#
# ### Exercise 1: the drift of a projected step is second order
#
# Without retraction a projected step moves the frozen outputs by $O(\eta^2)$.
# Measure `info.residual` of `frozen_step(..., retract=False)` for
# $\eta = 0.01 \cdot 2^j$, $j = 0, \dots, 4$, and fit the exponent.
#
# *Hint:* Taylor-expand $c(\theta - \eta g_\perp)$ and use $J g_\perp = 0$; fit a
# line to $\log$ residual against $\log \eta$.

# %% [markdown]
# **Solution 1.** $c(\theta - \eta g_\perp) = c(\theta) - \eta J g_\perp
# + \tfrac{\eta^2}{2} \nabla^2 c[g_\perp, g_\perp] + O(\eta^3)$ and
# $J g_\perp = 0$, so the drift is
# $\tfrac{\eta^2}{2} \lvert \nabla^2 c[g_\perp, g_\perp] \rvert + O(\eta^3)$: a
# straight line of slope 2 in log-log.

# %% tags=["hide-cell"]
lrs = 0.01 * 2.0 ** np.arange(5)                   # 0.01 .. 0.16
drifts = [refnet.frozen_step(net, params, X, G, freeze=[0], lr=lr,
                             retract=False)[1].residual for lr in lrs]
slope = np.polyfit(np.log(lrs), np.log(drifts), 1)[0]
print("drift:", np.array2string(np.array(drifts), precision=2), f" slope {slope:.3f}")
assert abs(slope - 2.0) < 0.1

# %% [markdown]
# ### Exercise 2: what the Gram matrix gets wrong
#
# For the near-duplicate anchors above, compare the eigenvalues of the computed
# $J J^T$ with the squared singular values of $J$. Which ones are wrong, and by
# about how much?
#
# *Hint:* a symmetric perturbation $E_S$ moves every eigenvalue by at most
# $\lVert E_S \rVert$ (Weyl), and rounding $J J^T$ gives
# $\lVert E_S \rVert \approx m\, \varepsilon\, w_{\max}$.

# %% [markdown]
# **Solution 2.** By Weyl's inequality every computed eigenvalue is off by at most
# about $m \varepsilon w_{\max}$ in absolute terms. The large ones are then right
# to many digits, but the 4 eigenvalues $s^2 \approx 10^{-18} w_{\max}$ lie far
# below that error: their computed values are rounding noise of size
# $\lesssim m \varepsilon w_{\max}$, unrelated to $s^2$. Hence the resolution limit
# $s \gtrsim \sqrt{m \varepsilon}\, s_1$.

# %% tags=["hide-cell"]
w_sorted, s2 = np.sort(w)[::-1], s_nd ** 2         # Gram eigenvalues, squared SVD
noise = m_nd * EPS * w_sorted[0]                   # Weyl: |error| <~ m eps w_max
err_w = np.abs(w_sorted - s2)
print("relative error of each eigenvalue:\n", err_w / s2)
assert np.all(err_w <= 10 * noise)                 # every error within the Weyl bound
assert np.all(err_w[:4] <= 1e-10 * s2[:4])         # large ones: accurate
assert np.all(err_w[4:] > 1e-2 * s2[4:])           # small ones: noise
