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
# # 01 — Frozen outputs: train one output, keep another constant
#
# **The question.** A small network with three inputs, four sigmoid hidden units
# and two identity outputs (3-4-2) receives the output gradient
# $G = \partial L / \partial Y = [0, -1]$ for every sample: the loss falls when the
# second output grows and does not care about the first. A plain gradient step
# raises the second output, but it also moves the first one, up or down, because
# both read the same hidden layer. How should the gradient (or the loss) be changed
# so that the second output can still be trained while the first one stays
# exactly where it is?
#
# **Numbering.** Outputs are numbered from 0 here, as in the code: the question's
# "first output" is **output 0** ($Y[:, 0]$, kept constant) and its "second output"
# is **output 1** ($Y[:, 1]$, trained); the answer's `out1`, `y1` and `out2`, `y2` are
# outputs 0 and 1 and their targets $t_0 = \sum_j x_j$, $t_1 = \sum_j x_j^2$.
#
# The accepted answer to this question masks output 0 out of the loss, or trains
# only the last layer's weights into output 1. We show what each of its
# `train_op`s does, derive the null-space projection that keeps output 0 constant
# while every layer learns, fill in the steps (the Lagrangian, the Gram trick for
# one and for several frozen outputs, how the retraction converges), check refnet
# against independent NumPy computations, and then ask what "constant" means
# *away from the inputs we froze it on*.
#
# Notation: row-major batches, $A_0 = X$ of shape $(n, n_0)$,
# $Z_l = A_{l-1} W_l + b_l$, $A_l = \phi_l(Z_l)$, $Y = A_L$, with $W_l$ of shape
# $(n_{l-1}, n_l)$; a single sample is a row vector. $\Delta_l = \partial L / \partial Z_l$;
# parameter gradients are $dW_l, db_l$; $\theta$ is the flat parameter vector
# (order $W_1$ row-major, $b_1$, $W_2$, $b_2$) and $g$ the flat gradient.
#
# Run as a script: `python tutorials/01_frozen_outputs.py` (`REFNET_FAST=1` for a short run).

# %%
import inspect
import os
import sys
from importlib.util import find_spec

import numpy as np

import refnet
from refnet.data import seed_regression
from refnet.demos.frozen import compare, plot, table

FAST = os.environ.get("REFNET_FAST") == "1"
OUT = os.environ.get("REFNET_OUT", ".")
HAVE_MPL = find_spec("matplotlib") is not None           # figures need matplotlib (the `plots` extra)
STEPS = 40 if FAST else 200                              # SGD steps of the side-by-side comparison
LR = 0.05
EPS = np.finfo(np.float64).eps

X, T = seed_regression(n=8, seed=0)                      # x in [0, 1]^3, 8 samples   X (8, 3), T (8, 2)
net = refnet.MLP([3, 4, 2], activation="sigmoid", output_activation="identity")
params = net.init(seed=0)                                # [(W_1 (3, 4), b_1 (4,)), (W_2 (4, 2), b_2 (2,))]
n, p = X.shape[0], net.n_params
G = np.tile([0.0, -1.0], (n, 1)) / n                     # dL/dY of L = -mean(y_1): raise output 1   (8, 2)
Y0 = net.forward(params, X)                              # Y at the start                            (8, 2)
print("p =", p, "parameters; Y0[:3] =\n", Y0[:3])
if not HAVE_MPL:
    print("matplotlib is not installed: figures are skipped")

# %% [markdown]
# ## 1. The accepted answer, for this $G$
#
# **Masking is a no-op here.** Masking multiplies column 0 of $G$ by 0 and column 1
# by 1, so that output 0 has no gradient of its own. But for the question's
# $G = [0, -1]$ column 0 is *already* zero: $G \odot [0, 1] = G$ holds bit for bit
# ($0 \cdot 0 = 0$ and $1 \cdot x = x$ exactly in floating point), the backward pass
# receives the same input and returns the same gradients. We assert it.
#
# Output 0 moves anyway, and not through a gradient of its own: for sample $i$
# (row $a_{1,i}$ of $A_1$),
#
# $$y_{i0} = a_{1,i} W_2[:, 0] + b_2[0], \qquad a_{1,i} = \sigma(x_i W_1 + b_1),$$
#
# and the gradient of output 1 changes $W_1, b_1$, hence the hidden row $a_{1,i}$
# that output 0 reads too. Output 0 stays exactly constant only if
# $W_1, b_1, W_2[:, 0], b_2[0]$ all stay fixed.
#
# **The answer's `train_op`s, as gradient rules.** TensorFlow's
# `optimizer.minimize(loss, var_list=...)` is one SGD step on the gradient of
# `loss` with respect to the listed variables; the others get a zero update. With
# the question's $G$ (the answer's `loss` and its masked `loss2` give the same
# $G$ here), each one is a row of the comparison table in section 6:
#
# | the answer's op | trains | with $G = [0, -1]$ | table row |
# |---|---|---|---|
# | `train_op_all = minimize(loss)` | all layers | the plain gradient, bit-identical to the masked one | masked, all layers |
# | `train_op12 = minimize(loss, var_list=[W2, b2])` (the first version's `train_op_second_layer`) | last layer | $dW_2[:, 0] = A_1^\top G[:, 0] = 0$ and $db_2[0] = \mathbf{1}^\top G[:, 0] = 0$: only output 1's column moves | masked, head only |
# | `train_op2 = minimize(loss2, var_list=[W2, b2])` | last layer, masked loss | output 0's column has zero gradient | masked, head only |
# | `trainable=False` on `W1, b1` (a comment's suggestion) | last layer | same as `var_list=[W2, b2]` | masked, head only |
# | — (not in the answer) | all layers | null-space projection, sections 2–5 | projected, projected + retraction |

# %%
def last_layer_only(grads):
    """A var_list=[W2, b2] step: every layer but the last gets a zero update."""
    return [(np.zeros_like(dW), np.zeros_like(db)) for dW, db in grads[:-1]] + grads[-1:]


def same_bits(a, b):
    """Bitwise equality of two gradient lists [(dW_l, db_l)]."""
    return all(np.array_equal(x, y) for (xW, xb), (yW, yb) in zip(a, b) for x, y in ((xW, yW), (xb, yb)))


plain = net.vjp(params, X, G)                                            # train_op_all: dL/dtheta, all layers
ops = {
    "train_op_all": (plain, refnet.masked_grads(net, params, X, G, freeze=[0])),
    "train_op12":   (last_layer_only(plain), refnet.masked_grads(net, params, X, G, freeze=[0], head_only=True)),
    "train_op2":    (last_layer_only(refnet.masked_grads(net, params, X, G, freeze=[0])),
                     refnet.masked_grads(net, params, X, G, freeze=[0], head_only=True)),
}
for name, (op, row) in ops.items():
    assert same_bits(op, row), name
    print(f"{name:13}: bit-identical to its table row")
print("dW_2[:, 0] of train_op12:", plain[1][0][:, 0], " db_2[0]:", plain[1][1][0])

# %% [markdown]
# With the answer's *own* loss, the mean squared error towards both targets,
# column 0 of $G = \frac{2}{n n_L}(Y - T)$ is not zero. Then `train_op_all` and
# `train_op12` move output 0 at first order (it is being trained towards its
# target $t_0$, the opposite of keeping it constant), and only
# `train_op2` (masked loss, last layer) keeps it fixed. One step of each:

# %%
G_mse = 2.0 * (Y0 - T) / Y0.size                         # dL/dY of L = mean((Y - T)^2)   (8, 2)
steps_mse = {
    "train_op_all": net.vjp(params, X, G_mse),
    "train_op12": last_layer_only(net.vjp(params, X, G_mse)),
    "train_op2": refnet.masked_grads(net, params, X, G_mse, freeze=[0], head_only=True),
}
moved = {}
for name, grads in steps_mse.items():
    new = [(W - 0.1 * dW, b - 0.1 * db) for (W, b), (dW, db) in zip(params, grads)]   # theta - lr g
    moved[name] = np.abs(net.forward(new, X)[:, 0] - Y0[:, 0]).max()
    print(f"{name:13}: max |y0 - y0(0)| after one step (lr 0.1) = {moved[name]:.2e}")
assert moved["train_op_all"] > 0 and moved["train_op12"] > 0 and moved["train_op2"] == 0.0

# %% [markdown]
# So the answer keeps output 0 constant only by training a single column of a
# single layer. To let every layer learn, we need a direction in parameter space
# that leaves output 0 unchanged.
#
# ## 2. The null-space projection
#
# Freeze the outputs $K$ (here $K = \{0\}$) on anchor inputs $X_a$ ($n_a$ rows; here
# the batch). Stack the frozen values into the constraint vector
# $c(\theta) \in \mathbb{R}^m$, $m = |K|\, n_a$, output-major (all anchors of the
# first frozen output, then the next), with Jacobian $J = \partial c / \partial \theta$
# of shape $(m, p)$. A step $\theta' = \theta - \eta v$ changes the frozen values by
#
# $$c(\theta - \eta v) = c(\theta) - \eta J v + O(\eta^2),$$
#
# so to first order they stay put exactly when $J v = 0$. Among those directions we
# want the one closest to the gradient $g$:
#
# $$\min_{v} \tfrac12 \lVert v - g \rVert^2 \quad \text{subject to} \quad J v = 0 .$$
#
# **Lagrangian.** With multipliers $\lambda \in \mathbb{R}^m$,
#
# $$\mathcal{L}(v, \lambda) = \tfrac12 \lVert v - g \rVert^2 + \lambda^\top J v .$$
#
# Stationarity in $v$: $\nabla_v \mathcal{L} = v - g + J^\top \lambda = 0$, so
# $v = g - J^\top \lambda$. Feasibility: $J v = J g - J J^\top \lambda = 0$, so
#
# $$(J J^\top)\, \lambda = J g .$$
#
# The objective is convex and the constraint linear, so this stationary point is the
# minimum. The system always has a solution ($Jg$ lies in the range of $J$, which is
# the range of $J J^\top$). When $J J^\top$ is singular (duplicate anchors, dead
# units) $\lambda$ is not unique but $J^\top \lambda$ is: if $J J^\top \mu = 0$ then
# $\lVert J^\top \mu \rVert^2 = \mu^\top J J^\top \mu = 0$. The pseudo-inverse picks
# one solution:
#
# $$g_\perp = g - J^\top (J J^\top)^{+} J g = (I - J^{+} J)\, g = g - V_r V_r^\top g,$$
#
# where $J = U_r S_r V_r^\top$ is the thin SVD restricted to the $r$ nonzero singular
# values. Properties, each checked below against an explicit $J$: $J g_\perp = 0$;
# projecting twice changes nothing; $\langle g, g_\perp \rangle = \lVert g_\perp \rVert^2 \ge 0$,
# so $-g_\perp$ is still a descent direction for the trained outputs (or zero);
# $g_\perp$ equals $g - J^\top \lambda$ for the least-squares $\lambda$.

# %%
g = net.vjp(params, X, G)                                # backprop of G -> [(dW_l, db_l)]
J = net.jacobian(params, X, outputs=[0])                 # J = dc/dtheta, c = y_0 on X     (8, p)
gv = refnet.flatten(g)                                   # g                                (p,)
gp = refnet.flatten(refnet.project_out(net, params, g, X, outputs=[0]))   # g_perp         (p,)
gpp = refnet.flatten(refnet.project_out(net, params, refnet.unflatten(gp, params), X, outputs=[0]))
lam = np.linalg.lstsq(J.T, gv, rcond=None)[0]           # min |J^T lam - g|, i.e. (J J^T) lam = J g  (8,)
checks = {
    "|J g_perp| / (|J| |g|)": np.linalg.norm(J @ gp) / (np.linalg.norm(J, 2) * np.linalg.norm(gv)),
    "|P(P g) - P g| / |g|": np.linalg.norm(gpp - gp) / np.linalg.norm(gv),
    "(<g, g_perp> - |g_perp|^2) / |g|^2": (gv @ gp - gp @ gp) / (gv @ gv),
    "|g_perp - (g - J^T lam)| / |g|": np.linalg.norm(gp - (gv - J.T @ lam)) / np.linalg.norm(gv),
}
for name, value in checks.items():
    print(f"{name:36} = {value:.1e}")
    assert abs(value) < 1e3 * EPS, name
print("rank J =", np.linalg.matrix_rank(J), "of p =", p, "-> null space dimension", p - np.linalg.matrix_rank(J))

# %% [markdown]
# ## 3. The Gram trick: $J J^\top$ without $J$
#
# **One row of $J$.** Row $(k, i)$ of $J$ is $\partial y_{ik} / \partial \theta$: the
# backward pass of the one-hot seed $e_k$ (a row of length $n_L$) for sample $i$
# alone. Its deltas are $\delta^{(k)}_{L,i} = e_k \odot \phi_L'(z_{L,i})$ and
# $\delta^{(k)}_{l-1,i} = (\delta^{(k)}_{l,i} W_l^\top) \odot \phi_{l-1}'(z_{l-1,i})$, all rows.
# Its $W_l$ block is the outer product $a_{l-1,i}^\top \delta^{(k)}_{l,i}$
# (shape $(n_{l-1}, n_l)$) and its $b_l$ block is $\delta^{(k)}_{l,i}$.
#
# **Frobenius identity.** For row vectors $u, x$ of length $a$ and $v, y$ of length $b$,
#
# $$\langle u^\top v,\; x^\top y \rangle_F = \sum_{s=1}^{a} \sum_{t=1}^{b} u_s v_t\, x_s y_t
#   = \Big(\sum_s u_s x_s\Big) \Big(\sum_t v_t y_t\Big) = (u x^\top)(v y^\top) .$$
#
# Applied to the $W_l$ blocks of two rows, plus the bias blocks (whose inner product
# is $\delta \cdot \delta$, i.e. the same formula with a constant input 1):
#
# $$(J J^\top)_{(k,i),(k',j)} = \sum_l \big(a_{l-1,i}\, a_{l-1,j}^\top + 1\big)
#   \big(\delta^{(k)}_{l,i}\, \delta^{(k')\top}_{l,j}\big) .$$
#
# **Stacked.** Let $\Delta^{(c)}_l$ of shape $(m, n_l)$ hold the rows
# $\delta^{(k)}_{l,i}$ output-major (row $k\, n_a + i$). The second factor is then
# $\Delta^{(c)}_l \Delta^{(c)\top}_l$. The first factor depends on the samples $i, j$
# only, not on the outputs $k, k'$: in the $|K| \times |K|$ block structure it is the
# same $n_a \times n_a$ matrix in every block,
#
# $$J J^\top = \sum_l \Big(\mathbf{1}_{|K|} \mathbf{1}_{|K|}^\top \otimes
#   \big(A_{l-1} A_{l-1}^\top + \mathbf{1}\mathbf{1}^\top\big)\Big) \odot
#   \big(\Delta^{(c)}_l \Delta^{(c)\top}_l\big),$$
#
# ($\otimes$: Kronecker product, `np.tile(..., (K, K))` in code; $\odot$: elementwise).
# For one frozen output the Kronecker factor is just $A_{l-1} A_{l-1}^\top + \mathbf{1}\mathbf{1}^\top$.
# The same blocks give $J v$ and $J^\top \lambda$ without $J$: for $v = (dW_l, db_l)$,
# $(Jv)_{(k,i)} = \sum_l a_{l-1,i}\, dW_l\, \delta^{(k)\top}_{l,i} + db_l\, \delta^{(k)\top}_{l,i}$,
# and $J^\top \lambda$ has blocks $dW_l = A_{l-1}^\top M_l$, $db_l = \mathbf{1}^\top M_l$ with
# $M_l = \sum_k \operatorname{diag}(\lambda^{(k)})\, \Delta^{(k)}_l$ $(n_a, n_l)$, where
# $\lambda^{(k)}$ $(n_a,)$ and $\Delta^{(k)}_l$ $(n_a, n_l)$ are the parts of $\lambda$ and
# $\Delta^{(c)}_l$ that belong to frozen output $k$.
# Memory is $O(m^2 + m \sum_l n_l)$ instead of $O(m p)$; refnet's default route never
# builds $J$. Below we build the factors by hand for $K = \{0\}$ and for $K = \{0, 1\}$
# and compare with the explicit $J J^\top$.

# %%
(W1, b1), (W2, b2) = params
A0 = X                                                   # A_0                               (8, 3)
A1 = 1.0 / (1.0 + np.exp(-(A0 @ W1 + b1)))               # A_1 = sigmoid(A_0 W_1 + b_1)      (8, 4)


def constraint_deltas(K):
    """Delta_2^(c), Delta_1^(c): backprop of the seeds e_k for every anchor, output-major   (|K| n, n_l)."""
    D2 = np.concatenate([np.tile(np.eye(2)[k], (n, 1)) for k in K])    # e_k * phi_2' = e_k (identity)
    D1 = (D2 @ W2.T) * np.tile(A1 * (1.0 - A1), (len(K), 1))           # (Delta_2 W_2^T) * sigmoid'(Z_1)
    return D1, D2


for K in ([0], [0, 1]):
    D1, D2 = constraint_deltas(K)
    k = len(K)
    S = (np.tile(A0 @ A0.T + 1.0, (k, k)) * (D1 @ D1.T)               # (1 1^T kron (A_0 A_0^T + 1)) * (D_1 D_1^T)
         + np.tile(A1 @ A1.T + 1.0, (k, k)) * (D2 @ D2.T))            # + same for layer 2
    JK = net.jacobian(params, X, outputs=K)                            # explicit J                  (k n, p)
    err = np.abs(S - JK @ JK.T).max() / np.abs(JK @ JK.T).max()
    print(f"K = {K}: J J^T is {S.shape}, max |S - J J^T| / max |J J^T| = {err:.1e}")
    assert err < 1e2 * EPS

# %% [markdown]
# ## 4. One definition on every route
#
# **Resolution.** The Gram matrix holds the squared singular values of $J$
# (eigenvalues $w = s^2$), so eigenvalues below about $m\, \varepsilon\, w_{\max}$ are
# rounding noise, and a Gram-only solve cannot resolve directions with
# $s < \sqrt{m \varepsilon}\, s_{\max}$ (about $1.5 \times 10^{-8} \sqrt{m}\, s_{\max}$ in
# float64). The SVD of $J$ itself resolves down to $\max(m, p)\, \varepsilon\, s_{\max}$.
# Earlier versions of refnet let the two routes disagree there: the default Gram
# route dropped such directions, the dense route kept them.
#
# **What changed.** refnet now computes one projection on every route: the one
# defined by the thin SVD of $J$ with singular values at or below
# $\tau = \max(m, p)\, \varepsilon\, s_{\max}$ treated as zero (the cutoff of
# `numpy.linalg.pinv` and of the array API's `pinv`), and `rank` / `nullity` in
# `FrozenInfo` are that definition's. Every route returns it to within
#
# $$\lVert g_\perp - (I - V_r V_r^\top) g \rVert \le C \max(m, p)\, \varepsilon\, \kappa_r\, \lVert g \rVert,
#   \qquad \kappa_r = s_{\max} / s_r, \quad C = 8,$$
#
# with $s_r$ the smallest kept singular value. The default route (`method="gram"`)
# stays matrix-free: it uses the Gram matrix for the eigenvalues it resolves clearly
# and, when some fall in the band it cannot resolve, forms $B = J^\top Q_b$ for just
# those eigenvectors $Q_b$ (matrix-free, $p \times b$), removes its clear part and
# takes a thin SVD of it, which has the dense route's accuracy (route
# `"gram+band"`). Only where that small matrix would exceed a memory budget does it
# fall back to the Gram matrix's own cutoff, with a `ProjectionAccuracyWarning`
# (route `"gram (band unresolved)"`). `FrozenInfo.route` says which computation
# ran, `FrozenInfo.warning` records a warning.
#
# The well-conditioned seed problem is far from that band:

# %%
s = np.linalg.svd(J, compute_uv=False)
print("singular values of J / s_max:", np.array2string(s / s[0], precision=2))
print(f"Gram resolution sqrt(m eps) = {np.sqrt(len(s) * EPS):.1e};  smallest s / s_max = {s[-1] / s[0]:.1e}")
assert s[-1] / s[0] > 1e3 * np.sqrt(len(s) * EPS)

# %% [markdown]
# **Near-duplicate anchors** put singular values in the band. A 3-8-8-2 tanh network,
# anchors = 4 random points and each of them moved by about $10^{-8}$: $J$ has 4
# singular values near $10^{-9} s_{\max}$. We compute the definition with NumPy's SVD
# (an independent oracle), a Gram-only answer (eigendecomposition of $J J^\top$,
# eigenvalues below $m \varepsilon w_{\max}$ dropped) and refnet's default route.

# %%
net_nd = refnet.MLP([3, 8, 8, 2], "tanh")
params_nd = net_nd.init(seed=3)
rng = np.random.default_rng(0)
base = rng.uniform(-1.0, 1.0, (4, 3))
anchors_nd = np.concatenate([base, base + 1e-8 * rng.standard_normal((4, 3))])   # 4 near-duplicate pairs  (8, 3)
g_nd = net_nd.vjp(params_nd, anchors_nd, np.tile([0.0, -1.0], (8, 1)) / 8)      # gradient of -mean(y_1)
gv_nd = refnet.flatten(g_nd)                                                     # g          (p,)
J_nd = net_nd.jacobian(params_nd, anchors_nd, outputs=[0])                      # J          (8, p)
m_nd, p_nd = J_nd.shape

_, s_nd, Vt_nd = np.linalg.svd(J_nd, full_matrices=False)                        # J = U S V^T
keep = s_nd > max(m_nd, p_nd) * EPS * s_nd[0]                                    # pinv cutoff
oracle = gv_nd - Vt_nd[keep].T @ (Vt_nd[keep] @ gv_nd)                           # g - V_r V_r^T g
kappa_r = s_nd[0] / s_nd[keep][-1]

w, Q = np.linalg.eigh(J_nd @ J_nd.T)                                             # J J^T = Q diag(w) Q^T
w_inv = np.where(w > m_nd * EPS * w.max(), 1.0 / w, 0.0)                         # Gram-only cutoff on s^2
gram_only = gv_nd - J_nd.T @ (Q @ (w_inv * (Q.T @ (J_nd @ gv_nd))))             # g - J^T (J J^T)^+ J g

default = refnet.flatten(refnet.project_out(net_nd, params_nd, g_nd, anchors_nd, outputs=[0]))
_, info_nd = refnet.frozen_step(net_nd, params_nd, anchors_nd, np.tile([0.0, -1.0], (8, 1)) / 8,
                                freeze=[0], lr=0.05)
print("s / s_max:", np.array2string(s_nd / s_nd[0], precision=1))
print(f"|g| = {np.linalg.norm(gv_nd):.2f}, pinv rank {keep.sum()}, kappa_r = {kappa_r:.1e}")
err_gram = np.abs(gram_only - oracle).max()
err_default = np.abs(default - oracle).max()
print(f"max |Gram-only - oracle|      = {err_gram:.2e}   (Gram-only rank {int((w_inv > 0).sum())})")
bound = 8 * max(m_nd, p_nd) * EPS * kappa_r * np.linalg.norm(gv_nd)            # the documented error model
print(f"max |default route - oracle|  = {err_default:.2e}   ({err_default / bound:.1e} of the bound {bound:.1e})")
print("frozen_step on these anchors:", info_nd)
assert np.sum(s_nd < 1e-7 * s_nd[0]) == 4 and int((w_inv > 0).sum()) == 4   # 4 tiny s, all dropped by Gram-only
assert err_gram > 1e-2 * np.linalg.norm(gv_nd)                   # off by order |g|
assert err_default <= bound
assert info_nd.rank == keep.sum() and info_nd.converged and info_nd.route == "gram+band"

# %% [markdown]
# The Gram-only answer misses the 4 small directions and is off by a sizeable fraction
# of $\lVert g \rVert$; the default route agrees with the SVD definition well inside the
# error model, reports the definition's rank, resolves the band (route `"gram+band"`),
# and its frozen step converges.
#
# ## 5. Retraction: constant to a tolerance after a finite step
#
# $g_\perp$ keeps $c$ constant to first order only: after $\theta - \eta g_\perp$ the
# frozen outputs move by $O(\eta^2)$. Minimum-norm corrections remove that remainder:
#
# $$r = c(\theta) - c_0, \qquad \theta \leftarrow \theta - J^{+} r = \theta - J^\top (J J^\top)^{+} r
#   \qquad \text{until } \max_j |r_j| \le \text{tol} .$$
#
# **Gauss-Newton** re-evaluates $J$ at the current $\theta$ for every correction. Each
# correction $d = J^+ r$ is the smallest step with $J d = r$, so the linearised
# residual vanishes and only the curvature term remains:
# $r_{\text{new}} = c(\theta - d) - c_0 = O(\lVert d \rVert^2) = O(\lVert r \rVert^2)$ while $J$ has
# full row rank, i.e. $r_{k+1} \approx C\, r_k^2$: **quadratic convergence**, the
# number of correct digits doubles each time.
#
# **refnet's retraction** is Gauss-Newton with one saving: its first correction
# reuses the factorization of $J$ at the start of the step, which the projection has
# already made (its error is $O(\lVert d \rVert\, \eta \lVert g_\perp \rVert)$, third order
# in $\eta$); every later correction re-factors $J$ at the current $\theta$. A *chord*
# method that kept the first factorization throughout would converge only linearly,
# $r_{k+1} \approx \rho\, r_k$ with $\rho \sim \lVert J(\theta) - J_0 \rVert\, \kappa_r$, and on the
# benchmark's 784-256-256-10 network it needed 3 to 5 corrections where Gauss-Newton
# needs 2, so it was slower overall.
#
# We compare both from a deliberately large step ($\eta = 5$): Gauss-Newton by hand,
# with NumPy's minimum-norm least squares as the solver, and refnet stopped after
# $k$ corrections (`max_iter=k` with a tiny `tol` makes `frozen_step` raise
# `RetractionError`, which carries the residual it reached). If
# $r_{k+1} \approx C r_k^q$, the order is
# $q \approx \log(r_{k+1}/r_k) / \log(r_k/r_{k-1})$; we take it from the last three
# residuals above the rounding floor: $q = 2$ is quadratic, $q = 1$ linear.

# %%
tol = 1e-12 * max(1.0, np.abs(Y0[:, 0]).max())          # refnet's float64 default tolerance
stepped, _ = refnet.frozen_step(net, params, X, G, freeze=[0], lr=5.0, retract=False)
theta, gauss_newton = refnet.flatten(stepped), []
while len(gauss_newton) < 8:
    p_k = refnet.unflatten(theta, params)
    r = net.forward(p_k, X)[:, 0] - Y0[:, 0]             # r = c(theta) - c0            (8,)
    gauss_newton.append(np.abs(r).max())
    J_k = net.jacobian(p_k, X, outputs=[0])              # J at the current theta        (8, p)
    theta = theta - np.linalg.lstsq(J_k, r, rcond=None)[0]   # theta - J^+ r = theta - J^T (J J^T)^+ r


def residual_after(k, lr=5.0):
    """max |c - c0| after k of refnet's corrections (k = 0: the projected step alone)."""
    if k == 0:
        return refnet.frozen_step(net, params, X, G, freeze=[0], lr=lr, retract=False)[1].residual
    try:
        return refnet.frozen_step(net, params, X, G, freeze=[0], lr=lr, tol=1e-300, max_iter=k)[1].residual
    except refnet.RetractionError as e:                  # stopped after k corrections, as asked
        return e.residual


ours = [residual_after(k) for k in range(8)]


def order(res):
    """Order q = log(r_{k+1} / r_k) / log(r_k / r_{k-1}) from the last three residuals above the
    rounding floor, and how many residuals lie above it."""
    r = np.array([x for x in res if x > 1e3 * EPS])
    return np.log(r[-1] / r[-2]) / np.log(r[-2] / r[-3]), len(r)


print(" k   Gauss-Newton   refnet")
for k in range(8):
    print(f"{k:2}   {gauss_newton[k]:12.2e}   {ours[k]:.2e}")
q_gn, n_gn = order(gauss_newton)
q_ours, n_ours = order(ours[1:])                         # from the first re-factorization on
print(f"order: Gauss-Newton by hand q = {q_gn:.2f}, refnet q = {q_ours:.2f}")
assert n_gn >= 3 and 1.7 < q_gn < 2.6                    # quadratic
assert n_ours >= 3 and 1.7 < q_ours < 2.6                # refnet too ...
assert min(ours) <= tol                                  # ... down to the tolerance
new, info = refnet.frozen_step(net, params, X, G, freeze=[0], lr=5.0)
print("refnet's retraction with the default tol:", info)
assert info.converged and np.abs(net.forward(new, X)[:, 0] - Y0[:, 0]).max() <= tol

# %% [markdown]
# Both sequences reach the rounding floor in a handful of corrections. They land on
# the constraint set $c(\theta) = c_0$ (not at the same point: the retraction is not unique, any
# nearby point with $c(\theta) = c_0$ will do). The default tolerance is
# $10^{-12} \max(1, \max|c_0|)$ in float64 ($10^{-5} \max(1, \max|c_0|)$ in float32).
# `frozen_step` reports what it did; a retraction that does not converge raises
# `RetractionError` instead of claiming success, with a message that says what would
# help. At the small learning rates used in training a few corrections suffice:

# %%
for lr in (0.05, 0.5, 5.0):
    _, info0 = refnet.frozen_step(net, params, X, G, freeze=[0], lr=lr, retract=False)
    _, info = refnet.frozen_step(net, params, X, G, freeze=[0], lr=lr)
    print(f"lr {lr:4}: drift without retraction {info0.residual:.2e}  ->  with: {info.residual:.1e} "
          f"after {info.iterations} corrections (rank {info.rank}, nullity {info.nullity}, route {info.route!r})")

# %% [markdown]
# ## 6. Side by side, over many steps
#
# Every method runs the same SGD steps on $G = [0, -1] / n$; the anchors are the batch.
# "projected" wraps SGD in `refnet.Projected(..., retract=False)` (the drift it shows
# is the accumulated $O(\eta^2)$ remainder); "projected + retraction" is the default
# `Projected`, holding output 0 at its values at `init`. The loop is
# `refnet.demos.frozen.compare`, the code `python -m refnet demo --section frozen` runs:

# %%
print(inspect.getsource(compare))
results = compare(steps=STEPS, lr=LR, n=n, seed=0)
table(results, sys.stdout)
drift = {method: d.max() for method, (d, _) in results.items()}
gain = {method: gn[-1] for method, (_, gn) in results.items()}
assert drift["masked, head only"] == 0.0 and drift["projected + retraction"] <= tol
assert drift["masked, all layers"] > drift["projected"] > drift["projected + retraction"]
assert gain["masked, all layers"] == max(gain.values()) and gain["masked, head only"] == min(gain.values())

# %% [markdown]
# Masking with all layers trained (`train_op_all`) gains the most on output 1 but
# drifts output 0 by far the most. Head-only masking (`train_op12`, `train_op2`)
# keeps output 0 bit for bit but learns through one column of one layer, and gains
# the least. The projection trains all layers; without retraction output 0 drifts
# slowly (second order per step, accumulated), with retraction it stays at its
# frozen values to the tolerance. (The table's numbers are printed above; the
# orderings stated here are asserted.)

# %%
fig = plot(results, os.path.join(OUT, "01_frozen_outputs.png")) if HAVE_MPL else None
fig

# %% [markdown]
# ## 7. Constant where? Output 0 away from the anchors
#
# The constraint holds output 0 on the anchors only. On other inputs nothing is
# promised: the parameters move inside the null space of the anchors' $J$, and
# output 0 at a new input $x$ changes unless that input's own Jacobian row happens to
# be (nearly) a combination of the anchors' rows. More anchors pin output 0 down at
# more places, but leave fewer directions to train output 1 with.
#
# **The experiment.** Output 1 now fits a real target, the question's
# $t_1 = \sum_j x_j^2$ (plus a little noise), on 64 training inputs: loss
# $L = \frac1n \sum_i (y_{i1} - t_{i1})^2$, so $G[:, 0] = 0$ and
# $G[:, 1] = \frac2n (Y[:, 1] - T[:, 1])$. Output 0 is frozen on the first $m$ of 32
# anchor inputs ($m = 0$: nothing frozen), with `Projected(SGD)` and retraction. We
# measure output 0 on 1000 held-out inputs (neither anchors nor training inputs) and
# output 1's mean squared error there.

# %%
SWEEP_STEPS = 300 if FAST else 2000
LR_FIT = 0.2
MS = [0, 1, 2, 4, 8, 16, 20, 21, 32]                      # number of anchors (0: output 0 not frozen)
X_fit, T_fit = seed_regression(n=64, seed=1)              # training inputs and targets   (64, 3), (64, 2)
X_ho, T_ho = seed_regression(n=1000, seed=2)              # held-out inputs and targets   (1000, 3), (1000, 2)
POOL, _ = seed_regression(n=32, seed=3)                   # anchors: POOL[:m]              (32, 3)
Y0_ho = net.forward(params, X_ho)                         # outputs at the start           (1000, 2)


def fit_output_1(m, steps=SWEEP_STEPS):
    """Train output 1 towards T_fit[:, 1] with output 0 frozen on POOL[:m] (m = 0: plain SGD).
    Returns (params, FrozenInfo of the last step or None)."""
    opt = refnet.SGD(LR_FIT) if m == 0 else refnet.Projected(refnet.SGD(LR_FIT), net, POOL[:m], freeze=[0])
    trained, state = params, opt.init(params)
    for _ in range(steps):
        Y = net.forward(trained, X_fit)
        G_fit = np.stack([np.zeros(len(Y)), 2.0 * (Y[:, 1] - T_fit[:, 1]) / len(Y)], axis=1)   # dL/dY  (64, 2)
        trained, state = opt.step(trained, net.vjp(trained, X_fit, G_fit), state)
    return trained, (None if m == 0 else state.info)


sweep = {}
print(f"{SWEEP_STEPS} SGD steps, lr {LR_FIT}; held-out: 1000 inputs; mse at the start "
      f"{np.mean((Y0_ho[:, 1] - T_ho[:, 1]) ** 2):.3f}")
print(f"{'m':>3} {'rank':>5} {'nullity':>8} {'on anchors':>11} {'held-out max|dy0|':>18} {'held-out mse y1':>16}")
for m in MS:
    trained, info = fit_output_1(m)
    Y_ho = net.forward(trained, X_ho)
    sweep[m] = dict(params=trained, info=info,
                    drift=np.abs(Y_ho[:, 0] - Y0_ho[:, 0]).max(),          # max over held-out inputs of |dy0|
                    mse=np.mean((Y_ho[:, 1] - T_ho[:, 1]) ** 2))           # output 1's held-out error
    rank, nullity, on_anchors = ("-", p, "-") if info is None else (info.rank, info.nullity, f"{info.residual:.1e}")
    print(f"{m:>3} {rank:>5} {nullity:>8} {on_anchors:>11} {sweep[m]['drift']:>18.2e} {sweep[m]['mse']:>16.4f}")

# %% [markdown]
# Read the table from the top. On the anchors output 0 is held to the retraction
# tolerance for every $m$. Unfrozen, it moves visibly on the held-out inputs (first
# row). One or two anchors hold it at one or two points and hardly
# anywhere else; 8 anchors cut the held-out drift by more than an order of magnitude
# while output 1 fits about as well as unfrozen. Near $m = 20$ the drift becomes tiny
# but output 1's error climbs; from $m = 21$ on, output 0 does not move beyond rounding,
# on any input, and output 1 can no longer learn features. The assertions below check these
# statements on the printed numbers.

# %%
d, mse = {m: sweep[m]["drift"] for m in MS}, {m: sweep[m]["mse"] for m in MS}
assert all(sweep[m]["info"].converged for m in MS[1:])                    # held on the anchors for every m
assert d[0] > 1e-2 and d[8] < 0.1 * d[1] and d[16] < 0.1 * d[2]          # more anchors: much less drift
assert mse[8] < 1.5 * mse[0]                                              # ... at little cost for m = 8
assert d[20] < 1e-3 * d[0] and mse[20] > 1.3 * mse[8]                     # m = 20: tiny drift, worse fit
assert max(d[21], d[32]) < 1e-10                                          # collapse: output 0 constant everywhere
assert mse[21] > 1.3 * max(mse[0], mse[4], mse[8])                        # ... and output 1 fits worse
assert abs(mse[21] - mse[32]) < 1e-9                                      # same 5 free parameters, same fit

# %% [markdown]
# **Why $m = 21$: counting the null space.** The 3-4-2 network has
# $p = 3 \cdot 4 + 4 + 4 \cdot 2 + 2 = 26$ parameters. Output 0 depends on
# $W_1, b_1, W_2[:, 0], b_2[0]$ only: $12 + 4 + 4 + 1 = 21$ of them, so the columns
# of $J$ belonging to $W_2[:, 1], b_2[1]$ are zero and $\operatorname{rank} J \le 21$.
# For generic anchors each new anchor adds an independent row until that bound:
# $\operatorname{rank} J = \min(m, 21)$ and the nullity is $26 - \min(m, 21)$. At
# $m \ge 21$ the null space is exactly the 5 coordinates of output 1's last-layer
# column $W_2[:, 1], b_2[1]$: every feasible step keeps the hidden layer and output
# 0's column fixed, so output 0 is constant on *every* input, and output 1 is a
# linear regression on 4 fixed hidden features. That is the right answer to the
# constraint, not a failure. It is the seed answer's head-only training, reached by
# constraint counting: 21 anchors or more leave nothing else free. We check the
# ranks against NumPy's `matrix_rank` of the explicit $J$ (same cutoff), and that
# output 0's own parameters did not move beyond rounding.

# %%
for m in MS[1:]:
    rank_np = np.linalg.matrix_rank(net.jacobian(params, POOL[:m], outputs=[0]))   # cutoff max(m, p) eps s_max
    info = sweep[m]["info"]
    assert info.rank == rank_np == min(m, 21) and info.nullity == p - info.rank, m
print("rank = min(m, 21), nullity = 26 - rank for every m above (FrozenInfo and numpy.linalg.matrix_rank)")
for m in (21, 32):
    (W1m, b1m), (W2m, b2m) = sweep[m]["params"]
    own = max(np.abs(W1m - W1).max(), np.abs(b1m - b1).max(), np.abs(W2m[:, 0] - W2[:, 0]).max(), abs(b2m[0] - b2[0]))
    free = max(np.abs(W2m[:, 1] - W2[:, 1]).max(), abs(b2m[1] - b2[1]))
    print(f"m = {m}: max change of W_1, b_1, W_2[:, 0], b_2[0] = {own:.1e};  of W_2[:, 1], b_2[1] = {free:.2f}")
    assert own < 1e-12 and free > 0.1


# %%
def plot_sweep(sweep, path=None):
    """Held-out drift of output 0 and held-out error of output 1 against the number of anchors."""
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    plt.close(fig)                                            # the cell shows fig; pyplot keeps no reference
    ms = [m for m in sweep if m > 0]
    a.semilogy(ms, [max(sweep[m]["drift"], 1e-17) for m in ms], "o-")
    a.axhline(sweep[0]["drift"], ls="--", c="gray", label="not frozen")
    b.plot(ms, [sweep[m]["mse"] for m in ms], "o-")
    b.axhline(sweep[0]["mse"], ls="--", c="gray", label="not frozen")
    for ax in (a, b):
        ax.axvline(21, ls=":", c="k")
        ax.legend(fontsize=8)
    a.set(xlabel="anchors m", ylabel="held-out max |y0 - y0(0)|", title="output 0 off the anchors")
    b.set(xlabel="anchors m", ylabel="held-out mse of y1", title=r"output 1 fitting $\sum_j x_j^2$")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


fig = plot_sweep(sweep, os.path.join(OUT, "01_anchors.png")) if HAVE_MPL else None
fig

# %% [markdown]
# **Choosing anchors.** Freeze output 0 on the inputs where it matters (the data it
# will be asked about), with enough of them to cover that region; the held-out drift
# tells whether they do. Past the count of output 0's own parameters the network has
# no freedom left except the other outputs' last-layer weights.
#
# ## Exercises
#
# 1. Without retraction a projected step moves the frozen outputs by $O(\eta^2)$.
#    Measure `info.residual` of `frozen_step(..., retract=False)` for
#    $\eta = 0.01 \cdot 2^j$, $j = 0, \dots, 4$, and fit the exponent.
# 2. For a 3-$h$-2 sigmoid network, predict the nullity of $J$ for output 0 with
#    many anchors, as a function of $h$. Check it for $h = 6$ with 40 anchors against
#    `FrozenInfo` and NumPy.
# 3. Show that $-g_\perp$ is the steepest descent direction among those that keep the
#    frozen outputs constant to first order: over unit vectors $u$ with $J u = 0$,
#    $\langle g, u \rangle$ is largest for $u = g_\perp / \lVert g_\perp \rVert$, where it
#    equals $\lVert g_\perp \rVert$. Check it with a null-space basis from NumPy's SVD.

# %% tags=["hide-cell"]
# Solution 1: a straight line of slope 2 in log-log.
lrs = 0.01 * 2.0 ** np.arange(5)                          # 0.01 .. 0.16
drifts = [refnet.frozen_step(net, params, X, G, freeze=[0], lr=lr, retract=False)[1].residual for lr in lrs]
slope = np.polyfit(np.log(lrs), np.log(drifts), 1)[0]
print("drift:", np.array2string(np.array(drifts), precision=2), f" slope {slope:.3f}")
assert abs(slope - 2.0) < 0.1

# %% tags=["hide-cell"]
# Solution 2: output 0 owns W_1, b_1, W_2[:, 0], b_2[0]: 3h + h + h + 1 = 5h + 1 parameters.
# With m >= 5h + 1 generic anchors the rank is 5h + 1 and the nullity p - (5h + 1) = h + 1:
# output 1's last-layer column W_2[:, 1] (h weights) and b_2[1].
h = 6
net_h = refnet.MLP([3, h, 2], activation="sigmoid", output_activation="identity")
params_h = net_h.init(seed=1)
X_h, _ = seed_regression(n=40, seed=4)
_, info_h = refnet.frozen_step(net_h, params_h, X_h, np.tile([0.0, -1.0], (40, 1)) / 40, freeze=[0], lr=0.05)
nullity_np = net_h.n_params - np.linalg.matrix_rank(net_h.jacobian(params_h, X_h, outputs=[0]))
print(f"h = {h}: p = {net_h.n_params}, predicted nullity {h + 1}, FrozenInfo {info_h.nullity}, numpy {nullity_np}")
assert info_h.nullity == nullity_np == h + 1

# %% tags=["hide-cell"]
# Solution 3: with N an orthonormal basis of null(J), u = N a, |a| = 1, <g, u> = <N^T g, a> <= |N^T g|,
# with equality at a = N^T g / |N^T g|, i.e. u = N N^T g / |N N^T g| = g_perp / |g_perp|.
_, s_full, Vt_full = np.linalg.svd(J)                     # full SVD: the last p - r rows of V^T span null(J)
N = Vt_full[np.sum(s_full > max(J.shape) * EPS * s_full[0]):].T                 # null-space basis  (p, p - r)
best = gv @ gp / np.linalg.norm(gp)                       # <g, u> at u = g_perp / |g_perp|
print(f"<g, g_perp>/|g_perp| = {best:.6f},  |N^T g| = {np.linalg.norm(N.T @ gv):.6f}")
assert np.isclose(best, np.linalg.norm(N.T @ gv), rtol=1e-12)
U_rand = N @ np.random.default_rng(1).standard_normal((N.shape[1], 1000))       # 1000 random null directions
assert np.all(gv @ U_rand / np.linalg.norm(U_rand, axis=0) <= best * (1 + 1e-12))
