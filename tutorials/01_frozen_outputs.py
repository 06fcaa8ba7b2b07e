# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Frozen outputs: move output 2, keep output 1 constant
#
# The seed question (`seeds/000_d4092dd7695ac9cc.txt`): a 3-4-2 MLP (sigmoid hidden
# layer, identity output) and an output gradient `G = dL/dY = [0, -1]`, i.e. *increase
# output 2*. A plain gradient step moves output 1 too. How do we change the weights so
# that output 2 goes up while output 1 stays constant?
#
# The accepted answer masks output 1 out of the loss. We show why that is not enough
# when the hidden layer trains, derive the null-space projection that is, and measure
# all of them side by side. Notation (design.md): `Z_l = A_{l-1} W_l + b_l`,
# `A_l = phi_l(Z_l)`, row-major batches, `W_l` of shape `(n_{l-1}, n_l)`.
#
# Run as a script: `python tutorials/01_frozen_outputs.py` (`REFNET_FAST=1` for a short run).

# %%
import os
import sys

import numpy as np

import refnet
from refnet.data import seed_regression

FAST = os.environ.get("REFNET_FAST") == "1"
OUT = os.environ.get("REFNET_OUT", ".")
STEPS = 40 if FAST else 200
LR = 0.05

X, T = seed_regression(n=8, seed=0)                      # x in [0, 1]^3, 8 samples   (8, 3)
net = refnet.MLP([3, 4, 2], activation="sigmoid", output_activation="identity")
params = net.init(seed=0)                                # [(W_1 (3, 4), b_1 (4,)), (W_2 (4, 2), b_2 (2,))]
n = X.shape[0]
G = np.tile([0.0, -1.0], (n, 1)) / n                     # dL/dY of L = -mean(y2): raise output 2   (8, 2)
Y0 = net.forward(params, X)
print("p =", net.n_params, "parameters; Y0[:3] =\n", Y0[:3])

# %% [markdown]
# ## 1. Why masking fails when the hidden layer trains
#
# Masking zeroes column 1 of `G`, so output 1 has no gradient of its own. But the
# backpropagated gradient still changes `W_1, b_1`, the hidden layer that *both*
# outputs read: `y1 = A_1 W_2[:, 0] + b_2[0]` changes because `A_1` changes.
# Only if nothing but output 2's last-layer column `W_2[:, 1], b_2[1]` trains is
# output 1 exactly constant — and then a single column of a single layer learns.

# %%
def masked_step(params, head_only):
    g = refnet.masked_grads(net, params, X, G, freeze=[0], head_only=head_only)
    return [(W - LR * gW, b - LR * gb) for (W, b), (gW, gb) in zip(params, g)]     # theta <- theta - lr g


for head_only in (False, True):
    p = params
    for _ in range(20):
        p = masked_step(p, head_only)
    dy = net.forward(p, X) - Y0
    print(f"masked, head_only={head_only!s:5}: max |dy1| = {np.abs(dy[:, 0]).max():.3e}, "
          f"mean dy2 = {dy[:, 1].mean():.4f}")

# %% [markdown]
# ## 2. The null-space projection
#
# Freeze output set `K` on anchor inputs `X_a` (here: output 1 on the batch). Stack the
# frozen values into `c(theta)` (m = |K| n_a entries, output-major) with Jacobian
# `J = dc/dtheta`, shape (m, p). A step `theta - lr d` changes c by `-lr J d + O(lr^2)`,
# so we want the `d` closest to the gradient `g` with `J d = 0`:
#
#     minimise |d - g|^2  subject to  J d = 0
#     Lagrangian:  d = g - J^T lam,   J d = 0  =>  (J J^T) lam = J g
#     g_perp = g - J^T (J J^T)^+ J g
#
# `(J J^T)^+` (pseudo-inverse) also covers rank-deficient J (duplicate anchors, dead
# units). Properties: `J g_perp = 0`; projecting twice changes nothing;
# `<g, g_perp> = |g_perp|^2 >= 0`, so `-g_perp` is still a descent direction for the
# trained outputs (or zero); adding any null-space vector to `g_perp` moves it away
# from `g`. We check them against an explicit J.

# %%
g = net.vjp(params, X, G)                                # backprop of G -> [(dW_l, db_l)]
J = net.jacobian(params, X, outputs=[0])                 # dc/dtheta, c = y1 on X     (8, p)
gv = refnet.flatten(g)                                   # g                           (p,)
gp = refnet.flatten(refnet.project_out(net, params, g, X, outputs=[0]))   # g_perp     (p,)
gpp = refnet.flatten(refnet.project_out(net, params, refnet.unflatten(gp, params), X, outputs=[0]))
lam = np.linalg.lstsq(J.T, gv, rcond=None)[0]           # min |J^T lam - g|, i.e. (J J^T) lam = J g  (8,)
print("|J g_perp|              =", np.linalg.norm(J @ gp), " vs |J| |g| =", np.linalg.norm(J, 2) * np.linalg.norm(gv))
print("|P(P g) - P g|          =", np.linalg.norm(gpp - gp))
print("<g, g_perp> - |g_perp|^2 =", gv @ gp - gp @ gp)
print("|g_perp - (g - J^T lam)| =", np.linalg.norm(gp - (gv - J.T @ lam)))
print("rank J =", np.linalg.matrix_rank(J), "of p =", net.n_params, "-> null space dimension", net.n_params - np.linalg.matrix_rank(J))

# %% [markdown]
# ## 3. The Gram trick: J J^T without J
#
# Row (k, i) of J is the backprop of the one-hot seed `e_k` for sample i alone: its
# `W_l` block is the outer product `a_{l-1,i} delta_{l,i}^T`, its `b_l` block `delta_{l,i}`.
# The inner product of two rows is therefore
#
#     <row_i, row_j> = sum_l (a_{l-1,i} . a_{l-1,j}) (delta_{l,i} . delta_{l,j}) + delta_{l,i} . delta_{l,j}
#     J J^T          = sum_l (A_{l-1} A_{l-1}^T + 1) * (Delta_l Delta_l^T)      (elementwise *)
#
# an m x m matrix from per-layer factors of size m x n_l: memory O(m^2 + m sum n_l)
# instead of O(m p). `J g` and `J^T lam` are per-layer contractions the same way. The
# `"gram"` route (default) never builds J. We build the factors by hand here
# (one backprop of the seed e_1 for every sample) and compare with the explicit J J^T.

# %%
(W1, b1), (W2, b2) = params
A0 = X                                                   # A_0                       (8, 3)
A1 = 1.0 / (1.0 + np.exp(-(A0 @ W1 + b1)))               # A_1 = sigmoid(A_0 W_1 + b_1)  (8, 4)
D2 = np.tile([1.0, 0.0], (n, 1))                         # Delta_2 = e_1 * phi_2' = e_1 (identity)  (8, 2)
D1 = (D2 @ W2.T) * A1 * (1.0 - A1)                       # Delta_1 = (Delta_2 W_2^T) * sigmoid'      (8, 4)
S = (A0 @ A0.T + 1.0) * (D1 @ D1.T) + (A1 @ A1.T + 1.0) * (D2 @ D2.T)   # sum_l (A A^T + 1) * (D D^T)
print("max |S - J J^T| =", np.abs(S - J @ J.T).max(), " (|J J^T| =", np.abs(J @ J.T).max(), ")")
gd = refnet.flatten(refnet.project_out(net, params, g, X, outputs=[0], method="dense"))
print("max |g_perp(gram) - g_perp(dense)| =", np.abs(gp - gd).max())

# %% [markdown]
# **Resolution.** The Gram matrix holds the squared singular values of J, so the gram
# route drops eigenvalues at or below about `m eps lambda_max` and cannot resolve
# directions with `s < sqrt(m eps) s_max` (about `1.5e-8 sqrt(m) s_max` in float64);
# the dense route (`method="dense"`, thin SVD of J) resolves down to `max(m, p) eps s_max`.
# Both do their small linear algebra in float64, also for float32 parameters.

# %%
s = np.linalg.svd(J, compute_uv=False)
print("singular values of J / s_max:", np.round(s / s[0], 6))

# %% [markdown]
# ## 4. Retraction: constant to a tolerance after a finite step
#
# `g_perp` keeps `c` constant to first order: after `theta - lr g_perp` output 1 moves by
# `O(lr^2)`. Gauss-Newton minimum-norm corrections remove that remainder,
#
#     repeat:  r = c(theta) - c0;   theta <- theta - J^T (J J^T)^+ r     until max|r| <= tol
#
# which converges quadratically while J has full row rank. The default tolerance is
# `1e-12 max(1, max|c0|)` in float64 (`1e-5 max(1, max|c0|)` in float32). `frozen_step`
# reports what it did; a retraction that does not converge raises `RetractionError`.

# %%
for lr in (0.05, 0.5, 5.0):
    _, info0 = refnet.frozen_step(net, params, X, G, freeze=[0], lr=lr, retract=False)
    new, info = refnet.frozen_step(net, params, X, G, freeze=[0], lr=lr)
    print(f"lr {lr:4}: drift without retraction {info0.residual:.2e}  ->  with: {info.residual:.1e} "
          f"after {info.iterations} corrections (rank {info.rank}, nullity {info.nullity})")

# %% [markdown]
# ## 5. Side by side, over many steps
#
# Every method runs the same SGD steps on `G = [0, -1] / n`; anchors are the batch.
# "projected" wraps SGD with `refnet.Projected(..., retract=False)` (the drift it
# shows is the accumulated O(lr^2) remainder); "projected + retraction" is the default
# `Projected`, holding output 1 at its values at `init`.

# %%
# The comparison loop is `refnet.demos.frozen.compare` (the same code the demo runs);
# its source is printed so it can be read here.
import inspect

from refnet.demos.frozen import compare, table

print(inspect.getsource(compare))
results = compare(steps=STEPS, lr=LR, n=n, seed=0)
table(results, sys.stdout)

# %% [markdown]
# Masking with all layers trained gains the most on output 2 but drifts output 1 by
# order one. Head-only masking keeps output 1 bit for bit but learns only through one
# column of one layer. The projection trains all layers; without retraction output 1
# drifts slowly (second order per step, accumulated), with retraction it stays at its
# frozen values to ~1e-16.

# %%
# The plot (same figure as `python -m refnet demo --section frozen --plot PREFIX`).
from refnet.demos.frozen import plot

try:
    print("plot:", plot(results, os.path.join(OUT, "01_frozen_outputs.png")))
except ImportError:
    print("plot skipped: matplotlib is not installed")
