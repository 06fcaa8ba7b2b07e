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
# # 00 — Backpropagation by hand
#
# **The question.** A small network — three inputs, four sigmoid hidden units,
# two identity outputs (3-4-2) — is trained on
#
# $$x \in [0, 1]^3, \qquad y_0 = x_0 + x_1 + x_2, \qquad y_1 = x_0^2 + x_1^2 + x_2^2$$
#
# plus a little noise. How is the gradient of a loss with respect to every
# weight computed, by hand, with matrices only; how is the gradient of *one*
# output on *one* sample computed (a row of the Jacobian, which tutorial 01
# needs to keep an output constant); and how do we know the numbers are right?
#
# Indices are 0-based everywhere, in code and prose: "output 0" and "output 1"
# are what the original question calls "output 1" and "output 2". The notation is that of the [Design and notation](design.md) page.
#
# We write the forward pass, derive the backward pass with one identity (the
# Frobenius inner product), code it in plain NumPy line by line, and check
# every number against {py:class}`refnet.MLP` **and** against HIPS autograd, an
# independent automatic differentiator. Then the softmax cross-entropy
# gradient, the Jacobian, and a short gradient-descent run.
#
# Run as a script: `python tutorials/00_backprop_by_hand.py`
# (`REFNET_FAST=1` shortens the training run).

# %%
import os

import numpy as np

import refnet
from refnet.data import seed_regression

FAST = os.environ.get("REFNET_FAST") == "1"
np.set_printoptions(precision=4, suppress=True, linewidth=88)

X, T = seed_regression(n=8, seed=0)  # X (8, 3), T (8, 2): columns y_0, y_1
net = refnet.MLP([3, 4, 2], activation="sigmoid", output_activation="identity")
params = net.init(seed=0)  # [(W_1 (3, 4), b_1 (4,)), (W_2 (4, 2), b_2 (2,))]
(W1, b1), (W2, b2) = params
n = X.shape[0]
print("X", X.shape, "T", T.shape, "W_1", W1.shape, "b_1", b1.shape,
      "W_2", W2.shape, "b_2", b2.shape)

# %% [markdown]
# ## Forward pass
#
# Row-major batches: one row per sample, and a single sample is a **row**
# vector. With $A_0 = X$ of shape $(n, n_0)$,
#
# $$Z_l = A_{l-1} W_l + \mathbf 1 b_l \quad (n, n_l), \qquad A_l = \phi_l(Z_l), \qquad Y = A_L ,$$
#
# where $\mathbf 1$ is the all-ones column $(n, 1)$ and $b_l$ a row $(1, n_l)$,
# so $\mathbf 1 b_l$ repeats the bias on every row (NumPy's broadcasting writes
# it `Z = A @ W + b`). $W_l$ has shape $(n_{l-1}, n_l)$: column $j$ of $W_l$
# holds the incoming connections of neuron $j$. Here $\phi_1 = \sigma$
# (sigmoid, $\sigma(z) = 1/(1 + e^{-z})$) and $\phi_2$ is the identity. The
# loss is the mean squared error over all $N = n \, n_L$ entries,
# $L = \frac1N \sum_{i,k} (Y_{ik} - T_{ik})^2$.

# %%
def sigmoid(Z):
    return 1.0 / (1.0 + np.exp(-Z))                  # sigma(Z), elementwise


A0 = X                                              # A_0 = X                     (8, 3)
Z1 = A0 @ W1 + b1                                   # Z_1 = A_0 W_1 + 1 b_1       (8, 4)
A1 = sigmoid(Z1)                                    # A_1 = sigma(Z_1)            (8, 4)
Z2 = A1 @ W2 + b2                                   # Z_2 = A_1 W_2 + 1 b_2       (8, 2)
Y = Z2                                              # Y = A_2 = Z_2 (identity)    (8, 2)
N = Y.shape[0] * Y.shape[1]                         # N = n * n_L = 16
L = np.sum((Y - T) ** 2) / N                        # L = |Y - T|_F^2 / N

err_forward = np.max(np.abs(Y - net.forward(params, X)))
print(f"loss L = {L:.6f};  max |Y_hand - net.forward| = {err_forward:.1e}")
assert err_forward <= 1e-15

# %% [markdown]
# ## The one identity we need
#
# For matrices of equal shape, the **Frobenius inner product** is the sum of
# the entrywise products, and it is a trace:
#
# $$\langle A, B \rangle_F = \sum_{i,j} A_{ij} B_{ij} = \operatorname{tr}(A^T B).$$
#
# Because $\operatorname{tr}(AB) = \operatorname{tr}(BA)$ (cyclic
# permutation), a factor can be moved from one side of the product to the
# other by transposing it:
#
# $$\langle A, B C \rangle_F = \operatorname{tr}(A^T B C) = \operatorname{tr}\big((B^T A)^T C\big) = \langle B^T A, C \rangle_F,$$
#
# $$\langle A, B C \rangle_F = \operatorname{tr}(C A^T B) = \operatorname{tr}\big((A C^T)^T B\big) = \langle A C^T, B \rangle_F .$$
#
# Move every quantity along some direction, $W(t) = W + t \dot W$, and write
# a dot for the rate of change at $t = 0$ (so $\dot W$ is a *direction*; the
# names $dW_l$, $db_l$ stay reserved for gradients). A scalar loss $L$
# changes at the rate $\dot L = \sum_{ij} (\partial L / \partial W_{ij}) \dot W_{ij}
# = \langle \partial L / \partial W, \dot W \rangle_F$. So if we can write
# $\dot L = \langle R, \dot W \rangle_F$ for **every** direction $\dot W$,
# then $\partial L / \partial W = R$. Backpropagation is this identity
# applied once per matrix product. Checked on random matrices:

# %%
rng = np.random.default_rng(0)
A_, B_, C_ = (rng.standard_normal(shape) for shape in ((5, 3), (5, 4), (4, 3)))
frob = lambda U, V: np.sum(U * V)                          # <U, V>_F = sum_ij U_ij V_ij
assert np.isclose(frob(A_, B_ @ C_), np.trace(A_.T @ B_ @ C_))  # = tr(A^T B C)
assert np.isclose(frob(A_, B_ @ C_), frob(B_.T @ A_, C_))       # = <B^T A, C>
assert np.isclose(frob(A_, B_ @ C_), frob(A_ @ C_.T, B_))       # = <A C^T, B>
print("<A, BC> = tr(A^T B C) = <B^T A, C> = <A C^T, B>:", round(frob(A_, B_ @ C_), 6))

# %% [markdown]
# ## Backward pass, derived
#
# Write $G = \partial L / \partial Y$, shape $(n, n_L)$, and
# $\Delta_l = \partial L / \partial Z_l$, shape $(n, n_l)$. So
# $\dot L = \langle G, \dot Y \rangle_F$ and, one layer in, $\dot L = \langle \Delta_l, \dot Z_l \rangle_F$.
#
# **The loss.** $L = \frac1N \langle Y - T, Y - T \rangle_F$ gives
# $\dot L = \frac2N \langle Y - T, \dot Y \rangle_F$, so for the mse
#
# $$G = \frac{2}{N} (Y - T).$$
#
# **Through an activation.** $A_l = \phi_l(Z_l)$ entrywise, so
# $\dot A_l = \phi_l'(Z_l) \odot \dot Z_l$ and, since an entrywise factor can move
# across the inner product ($\langle A, B \odot C \rangle_F = \langle A \odot B, C \rangle_F$),
#
# $$\Delta_L = G \odot \phi_L'(Z_L) \qquad (\text{identity output: } \Delta_L = G).$$
#
# **Through a layer.** $Z_l = A_{l-1} W_l + \mathbf 1 b_l$ changes at the rate
# $\dot Z_l = \dot A_{l-1} W_l + A_{l-1} \dot W_l + \mathbf 1 \dot b_l$ (product rule), so
#
# $$\dot L = \langle \Delta_l, \dot Z_l \rangle_F
#      = \langle \Delta_l W_l^T, \dot A_{l-1} \rangle_F
#      + \langle A_{l-1}^T \Delta_l, \dot W_l \rangle_F
#      + \langle \mathbf 1^T \Delta_l, \dot b_l \rangle_F ,$$
#
# each term by the identity above (move $W_l$, $A_{l-1}$, $\mathbf 1$ across).
# Reading off the three gradients:
#
# $$dW_l = A_{l-1}^T \Delta_l \quad (n_{l-1}, n_l), \qquad
#   db_l = \mathbf 1^T \Delta_l \quad (1, n_l), \qquad
#   \frac{\partial L}{\partial A_{l-1}} = \Delta_l W_l^T \quad (n, n_{l-1}),$$
#
# and through $A_{l-1} = \phi_{l-1}(Z_{l-1})$ as before,
#
# $$\Delta_{l-1} = (\Delta_l W_l^T) \odot \phi_{l-1}'(Z_{l-1}).$$
#
# For the sigmoid, $\sigma'(z) = \sigma(z)(1 - \sigma(z))$, so
# $\phi_1'(Z_1) = A_1 \odot (1 - A_1)$: the forward pass already holds it.
#
# **Why $db_l$ is a column sum.** $\mathbf 1^T \Delta_l$ adds up the rows of
# $\Delta_l$: $db_l = \sum_i \delta_{l,i}$ with $\delta_{l,i}$ row $i$ of
# $\Delta_l$. The bias is added to every sample's row, so every sample's
# $\delta_{l,i}$ flows back into it. The same holds for $W_l$, written per
# sample: with $a_{l-1,i}$ row $i$ of $A_{l-1}$ (a $1 \times n_{l-1}$ row),
#
# $$dW_l = A_{l-1}^T \Delta_l = \sum_{i} a_{l-1,i}^T\, \delta_{l,i} ,$$
#
# a sum over samples of outer products (column times row). The bias is the
# weight of a connection from a unit whose activation is always 1: its
# per-sample outer product is $1 \cdot \delta_{l,i}$, and the sum is
# $\mathbf 1^T \Delta_l$. Stacking the bias under the weights makes it one
# formula: $[dW_l;\, db_l] = [A_{l-1}, \mathbf 1]^T \Delta_l$ (checked below).

# %%
def backward(X, A1, W2, G):
    """Manual backprop through the 3-4-2 network for an output gradient G (n, 2).

    X: (n, 3) inputs, A1: (n, 4) hidden activations, W2: (4, 2).
    Returns [(dW_1 (3, 4), db_1 (4,)), (dW_2 (4, 2), db_2 (2,))].
    """
    Delta2 = G * 1.0                            # Delta_2 = G * phi_2' = G        (n, 2)
    dW2 = A1.T @ Delta2                         # dW_2 = A_1^T Delta_2            (4, 2)
    db2 = np.sum(Delta2, axis=0)                # db_2 = 1^T Delta_2              (2,)
    Delta1 = (Delta2 @ W2.T) * A1 * (1.0 - A1)  # (Delta_2 W_2^T) * sigma'(Z_1)   (n, 4)
    dW1 = X.T @ Delta1                          # dW_1 = A_0^T Delta_1            (3, 4)
    db1 = np.sum(Delta1, axis=0)                # db_1 = 1^T Delta_1              (4,)
    return [(dW1, db1), (dW2, db2)]


G = 2.0 * (Y - T) / N  # G = dL/dY for the mse loss  (8, 2)
grads = backward(X, A1, W2, G)
g_hand = refnet.flatten(grads)  # flatten order: W_1 row-major, b_1, W_2, b_2  (26,)

# the per-sample view: dW_1 = sum_i a_{0,i}^T delta_{1,i}, db_1 = sum_i delta_{1,i}
Delta1 = (G @ W2.T) * A1 * (1.0 - A1)                        # Delta_1     (8, 4)
outer_sum = sum(X[i:i + 1].T @ Delta1[i:i + 1] for i in range(n))  # (3,1)(1,4) summed
augmented = np.hstack([X, np.ones((n, 1))]).T @ Delta1       # [A_0, 1]^T Delta_1
assert np.allclose(outer_sum, grads[0][0], rtol=1e-14, atol=0)
assert np.allclose(augmented, np.vstack([grads[0][0], grads[0][1]]), rtol=1e-14, atol=0)
print("dW_1 = sum of per-sample outer products; [dW_1; db_1] = [A_0, 1]^T Delta_1")

# %% [markdown]
# ### The picture
#
# The 3-4-2 network for sample 0: the shapes of the weight matrices on the edges,
# the forward values ($x_0$, $a_{1,0}$, $y_0$, rows of $A_0, A_1, Y$) above each
# unit and the backward deltas ($\delta_{1,0}$, $\delta_{2,0}$, rows of
# $\Delta_1, \Delta_2 = G$) below it. The forward pass runs left to right, the
# backward pass right to left; $dW_l$ collects $a_{l-1}^T \delta_l$ on the edges
# between them.

# %% tags=["hide-input"]
def plot_network(x, a1, y, d1, d2):
    """The 3-4-2 network with forward values (black) and backward deltas (red)."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 6.4))
    plt.close(fig)                                 # the cell shows fig
    cols = [(0.0, x, None, "input $x$"), (3.0, a1, d1, "hidden $a_1 = \\sigma(z_1)$"),
            (6.0, y, d2, "output $y$")]
    pos = [[(cx, 1.2 * ((len(v) - 1) / 2 - j)) for j in range(len(v))]
           for cx, v, _, _ in cols]
    for l in range(2):                             # edges: every unit to every unit
        for p0 in pos[l]:
            for p1 in pos[l + 1]:
                ax.plot(*zip(p0, p1), color="0.8", lw=0.8, zorder=0)
    for l, label in enumerate(["$W_1$ (3, 4)", "$W_2$ (4, 2)"]):
        ax.text(3.0 * l + 1.5, 2.35, label, ha="center", fontsize=12)
    for (cx, v, d, title), pts in zip(cols, pos):
        ax.text(cx, 2.9, title, ha="center", fontsize=11)
        for j, (px, py) in enumerate(pts):
            ax.add_patch(plt.Circle((px, py), 0.2, fc="white", ec="k", zorder=2))
            ax.text(px, py + 0.28, f"{v[j]:.3f}", ha="center", fontsize=10)
            if d is not None:
                ax.text(px, py - 0.45, f"{d[j]:+.4f}", ha="center", fontsize=10,
                        color="tab:red")
    ax.annotate("", (5.0, -2.7), (1.0, -2.7), arrowprops=dict(arrowstyle="->"))
    ax.text(3.0, -2.65, "forward: values", ha="center", va="bottom", fontsize=10)
    ax.annotate("", (1.0, -3.2), (5.0, -3.2),
                arrowprops=dict(arrowstyle="->", color="tab:red"))
    ax.text(3.0, -3.15, "backward: deltas $\\delta$", ha="center", va="bottom",
            fontsize=10, color="tab:red")
    ax.set(xlim=(-0.8, 6.8), ylim=(-3.4, 3.3), aspect="equal")
    ax.axis("off")
    return fig


plot_network(X[0], A1[0], Y[0], Delta1[0], G[0])

# %% [markdown]
# ### Check 1: refnet
#
# `net.vjp(params, X, G)` ({py:meth}`refnet.MLP.vjp`) backpropagates any output
# gradient $G$;
# `net.loss_and_grads` computes $G$ from the loss itself.

# %%
g_vjp = refnet.flatten(net.vjp(params, X, G))
loss_ref, grads_ref = net.loss_and_grads(params, X, T, loss="mse")
err_vjp = np.max(np.abs(g_hand - g_vjp)) / np.max(np.abs(g_vjp))
err_lag = np.max(np.abs(g_hand - refnet.flatten(grads_ref))) / np.max(np.abs(g_vjp))
print(f"max rel. error, hand vs net.vjp:            {err_vjp:.1e}")
print(f"max rel. error, hand vs net.loss_and_grads: {err_lag:.1e}  "
      f"(loss {float(loss_ref):.6f})")
assert err_vjp <= 1e-14 and err_lag <= 1e-14 and abs(float(loss_ref) - L) <= 1e-15

# %% [markdown]
# ### Check 2: an independent oracle
#
# HIPS autograd differentiates the same forward pass written in
# `autograd.numpy`, as a function of the flat parameter vector
# $\theta$ (flatten order: $W_1$ row-major, $b_1$, $W_2$, $b_2$). If autograd
# is not installed, we fall back to central finite differences,
# $\partial_j L \approx (L(\theta + h e_j) - L(\theta - h e_j)) / 2h$, which
# agree only to about $h^2$ (here $h = 10^{-5}$) plus rounding, so the
# tolerance is looser.

# %%
try:
    import autograd
    import autograd.numpy as anp
    HAVE_AUTOGRAD = True
except ImportError:                                 # autograd is a test dependency
    import numpy as anp
    HAVE_AUTOGRAD = False


def forward_flat(theta, X):
    """Y (n, 2) from theta (26,) = [W_1 (3x4 row-major), b_1 (4), W_2 (4x2), b_2 (2)],
    in autograd.numpy."""
    W1_, b1_ = anp.reshape(theta[0:12], (3, 4)), theta[12:16]
    W2_, b2_ = anp.reshape(theta[16:24], (4, 2)), theta[24:26]
    A1_ = 1.0 / (1.0 + anp.exp(-(anp.dot(X, W1_) + b1_)))  # A_1 = sigma(X W_1 + 1 b_1)
    return anp.dot(A1_, W2_) + b2_                         # Y = A_1 W_2 + 1 b_2


def loss_flat(theta):
    return anp.mean((forward_flat(theta, X) - T) ** 2)       # L = mean (Y - T)^2


def central_gradient(f, theta, h=1e-5):
    """(f(theta + h e_j) - f(theta - h e_j)) / 2h for every j; f returns an array."""
    cols = [(f(theta + h * e) - f(theta - h * e)) / (2 * h) for e in np.eye(theta.size)]
    return np.stack(cols, axis=-1)  # d f / d theta_j in the last axis


def oracle_gradient(f, theta):
    """d f / d theta by autograd (or central differences without it), and the
    tolerance it allows."""
    if HAVE_AUTOGRAD:
        return np.asarray(autograd.grad(f)(theta)), 1e-12
    return central_gradient(lambda t: np.asarray(f(t)), theta), 1e-7


theta = refnet.flatten(params)
oracle_name = "autograd" if HAVE_AUTOGRAD else "central differences (no autograd)"
g_oracle, tol = oracle_gradient(loss_flat, theta)
err_grad = np.max(np.abs(g_hand - g_oracle)) / np.max(np.abs(g_oracle))
print(f"max rel. error, hand gradient vs {oracle_name}: {err_grad:.1e}")
assert err_grad <= tol
print("dW_1 =\n", grads[0][0], "\ndW_2 =\n", grads[1][0])

# %% [markdown]
# ## The softmax cross-entropy gradient
#
# For classification the outputs $Y$ are **logits**, turned into
# probabilities row by row by the softmax, and compared with one-hot (or
# probability) targets $T$ whose rows sum to 1:
#
# $$S_{ik} = \frac{e^{Y_{ik}}}{\sum_j e^{Y_{ij}}}, \qquad
#   L = -\frac1n \sum_i \sum_k T_{ik} \log S_{ik}.$$
#
# Take one sample $i$. Since $\log S_{ik} = Y_{ik} - \log \sum_j e^{Y_{ij}}$,
#
# $$\frac{\partial \log S_{ik}}{\partial Y_{im}} = [k = m] - \frac{e^{Y_{im}}}{\sum_j e^{Y_{ij}}} = [k = m] - S_{im},$$
#
# and so
#
# $$\frac{\partial L}{\partial Y_{im}} = -\frac1n \sum_k T_{ik} \big([k = m] - S_{im}\big)
#   = -\frac1n \Big(T_{im} - S_{im} \sum_k T_{ik}\Big) = \frac{S_{im} - T_{im}}{n},$$
#
# using $\sum_k T_{ik} = 1$ in the last step. In matrix form
#
# $$G = \frac{S - T}{n} .$$
#
# Every row of $G$ sums to zero: adding the same constant to all logits of
# a sample changes no probability (exercise 3 uses this). Here on the same
# 3-4-2 network, read as a two-class classifier whose label is whether
# $x_0 > 0.5$; the backward pass is the same `backward`, only $G$ changes.

# %%
labels = (X[:, 0] > 0.5).astype(np.int64)         # class 0 or 1 per sample  (8,)
T_cls = np.eye(2)[labels]                         # one-hot targets  (8, 2)
Ys = Y - Y.max(axis=1, keepdims=True)             # shift each row: softmax unchanged
# S = softmax(Y) row-wise  (8, 2)
S = np.exp(Ys) / np.exp(Ys).sum(axis=1, keepdims=True)
L_ce = -np.sum(T_cls * np.log(S)) / n          # L = -(1/n) sum T log S
G_ce = (S - T_cls) / n                         # G = (S - T) / n  (8, 2)
g_ce = refnet.flatten(backward(X, A1, W2, G_ce))  # (26,)

loss_ce_ref, grads_ce_ref = net.loss_and_grads(params, X, T_cls,
                                               loss="softmax_cross_entropy")


def ce_flat(theta):
    Y_ = forward_flat(theta, X)                               # logits (8, 2)
    logZ = anp.log(anp.sum(anp.exp(Y_), axis=1, keepdims=True))
    return -anp.sum(T_cls * (Y_ - logZ)) / n  # L = -(1/n) sum T log softmax(Y)


g_ce_oracle, tol_ce = oracle_gradient(ce_flat, theta)
err_ce_ref = np.max(np.abs(g_ce - refnet.flatten(grads_ce_ref))) / np.max(np.abs(g_ce))
err_ce_oracle = np.max(np.abs(g_ce - g_ce_oracle)) / np.max(np.abs(g_ce_oracle))
print(f"cross-entropy L = {L_ce:.6f} (refnet {float(loss_ce_ref):.6f})")
print(f"max rel. error, (S - T)/n backprop vs net.loss_and_grads: {err_ce_ref:.1e}")
print(f"max rel. error, (S - T)/n backprop vs {oracle_name}: {err_ce_oracle:.1e}")
print("row sums of G:", G_ce.sum(axis=1))
assert abs(L_ce - float(loss_ce_ref)) <= 1e-15
assert err_ce_ref <= 1e-14 and err_ce_oracle <= tol_ce
assert np.max(np.abs(G_ce.sum(axis=1))) <= 1e-16

# %% [markdown]
# ## The Jacobian of the outputs
#
# For the frozen-output problem (tutorial 01) we need every output's
# gradient on every sample separately:
# $J = \partial c / \partial \theta$ with $c$ stacking $Y_{ik}$,
# **output-major**: row $k n + i$ is $\partial Y_{ik} / \partial \theta$.
#
# Row $(k, i)$ is the backward pass above run on sample $i$ alone, with the
# one-hot **seed** $e_k$ (row $k$ of the identity, a $1 \times n_L$ row) in
# place of $G$. All quantities of one sample are rows: $x_i$ $(1, 3)$,
# $a_{1,i}$ $(1, 4)$, and the deltas
#
# $$\delta_{2} = e_k \odot \phi_2'(z_{2,i}) = e_k \quad (1, 2), \qquad
#   \delta_{1} = (\delta_2 W_2^T) \odot a_{1,i} \odot (1 - a_{1,i}) \quad (1, 4).$$
#
# The row's blocks are the per-sample terms of $dW_l = \sum_i a_{l-1,i}^T \delta_{l,i}$
# and $db_l = \sum_i \delta_{l,i}$, laid out in flatten order:
#
# $$\underbrace{x_i^T \delta_1}_{W_1\ (3 \times 4)} \;\Big|\; \underbrace{\delta_1}_{b_1\ (1 \times 4)} \;\Big|\; \underbrace{a_{1,i}^T \delta_2}_{W_2\ (4 \times 2)} \;\Big|\; \underbrace{\delta_2}_{b_2\ (1 \times 2)} .$$
#
# The vjp is a weighted sum of these rows: by linearity of the backward pass
# in $G$, $\mathrm{vjp}(G) = J^T \mathrm{vec}(G)$ with
# $\mathrm{vec}(G)_{kn+i} = G_{ik}$.

# %%
n_out = 2
J_hand = np.zeros((n_out * n, theta.size))  # (16, 26)
for k in range(n_out):                      # output-major rows ...
    for i in range(n):                      # ... then samples
        x_i, a_i = X[i:i + 1], A1[i:i + 1]  # one sample, rows: (1, 3), (1, 4)
        e_k = np.eye(n_out)[k:k + 1]        # one-hot seed e_k  (1, 2)
        delta2 = e_k * 1.0                  # delta_2 = e_k * phi_2' (identity)  (1, 2)
        # delta_1 = (delta_2 W_2^T) * sigma'  (1, 4)
        delta1 = (delta2 @ W2.T) * a_i * (1.0 - a_i)
        J_hand[k * n + i] = np.concatenate([
            # W_1 block x_i^T delta_1, b_1 block delta_1
            (x_i.T @ delta1).ravel(), delta1.ravel(),
            # W_2 block a_i^T delta_2, b_2 block delta_2
            (a_i.T @ delta2).ravel(), delta2.ravel()])

J_ref = net.jacobian(params, X)  # all outputs, output-major  (16, 26)
err_jac = np.max(np.abs(J_hand - J_ref)) / np.max(np.abs(J_ref))
if HAVE_AUTOGRAD:
    # (n, n_L, p): sample-major
    J_oracle = autograd.jacobian(lambda t: forward_flat(t, X))(theta)
else:
    # (n, n_L, p)
    J_oracle = central_gradient(lambda t: forward_flat(t, X), theta)
# -> output-major (16, 26)
J_oracle = np.transpose(J_oracle, (1, 0, 2)).reshape(n_out * n, -1)
err_jac_oracle = np.max(np.abs(J_hand - J_oracle)) / np.max(np.abs(J_oracle))
vecG = G.T.reshape(-1)  # vec(G)[k n + i] = G[i, k]  (16,)
err_jt = np.max(np.abs(J_hand.T @ vecG - g_hand)) / np.max(np.abs(g_hand))
print(f"max rel. error, hand J vs net.jacobian:       {err_jac:.1e}")
print(f"max rel. error, hand J vs {oracle_name}: {err_jac_oracle:.1e}")
print(f"max rel. error, J^T vec(G) vs hand backprop:  {err_jt:.1e}")
assert err_jac <= 1e-14 and err_jac_oracle <= tol and err_jt <= 1e-14
print("rows 0..7: dY[i, 0] / d theta (output 0, samples 0..7)\n"
      "rows 8..15: dY[i, 1] / d theta (output 1)")

# %% [markdown]
# Among the last-layer entries, the rows of output $k$ are non-zero only in
# the $W_2$ and $b_2$ columns belonging to output $k$: output 0 does not
# depend on $W_2[:, 1]$ or $b_2[1]$, and output 1 not on $W_2[:, 0]$ or
# $b_2[0]$. The first-layer blocks are shared, which is why training output
# 1 moves output 0 too (tutorial 01).

# %%
W2_idx = 16 + np.arange(8).reshape(4, 2)  # flat indices of W_2 (4, 2); b_2 is 24, 25
# output 0 rows
assert np.all(J_hand[:n, W2_idx[:, 1]] == 0) and np.all(J_hand[:n, 25] == 0)
# output 1 rows
assert np.all(J_hand[n:, W2_idx[:, 0]] == 0) and np.all(J_hand[n:, 24] == 0)
# W_1 shared by both
assert np.all(J_hand[:n, :12] != 0) and np.all(J_hand[n:, :12] != 0)

# %% [markdown]
# ## Gradient descent with the hand-written backward pass
#
# $\theta \leftarrow \theta - \eta\, \nabla L$ with $\eta = 0.5$, on 32
# samples. Each step: forward, $G = 2(Y - T)/N$, `backward`, update.

# %%
X32, T32 = seed_regression(n=32, seed=0)  # a larger sample: (32, 3), (32, 2)
(W1, b1), (W2, b2) = net.init(seed=0)
lr, steps = 0.5, (300 if FAST else 3000)
report = {0, 10, 100, steps // 2, steps}
history = {}
print(f"{'step':>6} {'mse':>10}")
for step in range(steps + 1):
    H = sigmoid(X32 @ W1 + b1)  # A_1 = sigma(X W_1 + 1 b_1)  (32, 4)
    Yh = H @ W2 + b2            # Y = A_1 W_2 + 1 b_2  (32, 2)
    if step in report:
        history[step] = np.sum((Yh - T32) ** 2) / Yh.size
        print(f"{step:>6} {history[step]:>10.6f}")
    # G = 2 (Y - T) / N
    (dW1, db1), (dW2, db2) = backward(X32, H, W2, 2.0 * (Yh - T32) / Yh.size)
    W1, b1 = W1 - lr * dW1, b1 - lr * db1  # theta <- theta - lr grad
    W2, b2 = W2 - lr * dW2, b2 - lr * db2
assert history[steps] < history[100] < history[0]            # the loss goes down

# %% [markdown]
# The same run with refnet's pieces (`loss_and_grads` + `refnet.SGD`) ends at
# the same parameters:

# %%
params, opt = net.init(seed=0), refnet.SGD(lr)
state = opt.init(params)
for step in range(steps + 1):
    loss, g = net.loss_and_grads(params, X32, T32, loss="mse")
    params, state = opt.step(params, g, state)
theta_hand = refnet.flatten([(W1, b1), (W2, b2)])
err_train = np.max(np.abs(refnet.flatten(params) - theta_hand))
print(f"max |theta_hand - theta_refnet| after {steps + 1} steps: {err_train:.1e}")
assert err_train <= 1e-10

# %% [markdown]
# ## Exercises
#
# Each exercise has a hint; its solution follows it, the derivation in words and
# the check in a hidden code cell (click to show it) that asserts the answer
# against an independent computation.
#
# ### Exercise 1: a tanh hidden layer
#
# Write the backward pass for `refnet.MLP([3, 4, 2], activation="tanh")` and check
# it against `net.loss_and_grads` and against central differences of the loss.
#
# *Hint:* only $\phi_1'$ changes.

# %% [markdown]
# **Solution 1.** $\tanh'(z) = 1 - \tanh^2(z)$, so
# $\phi_1'(Z_1) = 1 - A_1 \odot A_1$ and
# $\Delta_1 = (\Delta_2 W_2^T) \odot (1 - A_1 \odot A_1)$; everything else is as
# for the sigmoid.

# %% tags=["hide-cell"]
X8, T8 = X, T                                      # the 8-sample example
net_tanh = refnet.MLP([3, 4, 2], activation="tanh")
(V1, c1), (V2, c2) = p_tanh = net_tanh.init(seed=1)
H1 = np.tanh(X8 @ V1 + c1)                         # A_1 = tanh(X W_1 + 1 b_1)    (8, 4)
Yt = H1 @ V2 + c2                                  # Y = A_1 W_2 + 1 b_2          (8, 2)
Gt = 2.0 * (Yt - T8) / Yt.size                     # G = 2 (Y - T) / N
D2 = Gt                                            # Delta_2 = G (identity output)
D1 = (D2 @ V2.T) * (1.0 - H1 * H1)                 # (Delta_2 W_2^T) * (1 - A_1^2)
g_tanh = refnet.flatten([(X8.T @ D1, D1.sum(axis=0)), (H1.T @ D2, D2.sum(axis=0))])


def loss_tanh(t):
    (V1_, c1_), (V2_, c2_) = refnet.unflatten(t, like=p_tanh)
    return np.mean((np.tanh(X8 @ V1_ + c1_) @ V2_ + c2_ - T8) ** 2)


g_fd = central_gradient(loss_tanh, refnet.flatten(p_tanh))
_, g_ref = net_tanh.loss_and_grads(p_tanh, X8, T8, loss="mse")
err_fd = np.max(np.abs(g_tanh - g_fd)) / np.max(np.abs(g_fd))
err_ref = np.max(np.abs(g_tanh - refnet.flatten(g_ref))) / np.max(np.abs(g_fd))
print(f"tanh backprop: rel. error vs central differences {err_fd:.1e}, "
      f"vs refnet {err_ref:.1e}")
assert err_fd <= 1e-8 and err_ref <= 1e-14

# %% [markdown]
# ### Exercise 2: the gradient as a directional derivative
#
# Moving all parameters along a direction $V$ (all the $\dot W_l$, $\dot b_l$,
# flattened) changes the loss at the rate $\nabla L^T V$. Pick a random $V$ and
# compare $\big(L(\theta + hV) - L(\theta - hV)\big)/2h$ with the inner product of
# the hand gradient (the 8-sample mse example) and $V$.
#
# *Hint:* the rate of change is
# $\dot L = \sum_l \langle dW_l, \dot W_l \rangle_F + \langle db_l, \dot b_l \rangle$.

# %% [markdown]
# **Solution 2.** Flattening every $dW_l, db_l$ and $\dot W_l, \dot b_l$ in the
# same order turns the sum of Frobenius inner products into one dot product,
# $\dot L = \nabla L^T V$. The central difference approximates $\dot L$ with an
# error $O(h^2)$, so the two agree to about $10^{-10}$ at $h = 10^{-5}$.

# %% tags=["hide-cell"]
theta8 = refnet.flatten(net.init(seed=0))          # the 8-sample example's parameters
V = np.random.default_rng(1).standard_normal(theta8.size)   # a random direction
h = 1e-5
rate_fd = (loss_flat(theta8 + h * V) - loss_flat(theta8 - h * V)) / (2 * h)
rate_ip = float(g_hand @ V)                        # <grad L, V>
print(f"directional derivative: central difference {rate_fd:.10f}, "
      f"<grad, V> {rate_ip:.10f}")
assert abs(rate_fd - rate_ip) <= 1e-8 * max(1.0, abs(rate_ip))

# %% [markdown]
# ### Exercise 3: softmax is blind to a shift
#
# Show that with softmax cross-entropy the output-layer bias gradient $db_2$ sums
# to zero over the outputs, and explain why with the rows of $G$. Check the
# explanation independently: adding the same constant to both output biases
# leaves the loss unchanged.
#
# *Hint:* $db_2 = \mathbf 1^T \Delta_2 = \mathbf 1^T G$; what does each row of
# $G = (S - T)/n$ sum to?

# %% [markdown]
# **Solution 3.** Row $i$ of $G$ sums to
# $\frac1n \big(\sum_k S_{ik} - \sum_k T_{ik}\big) = \frac1n (1 - 1) = 0$, so
#
# $$\sum_k (db_2)_k = \mathbf 1^T G\, \mathbf 1 = \sum_i \sum_k G_{ik} = 0 .$$
#
# Shifting all logits of a row by $c$ leaves the softmax unchanged, so $L$ is
# constant along the direction $b_2 \to b_2 + c\,(1, 1)$, whose rate of change is
# exactly $\sum_k (db_2)_k$. $\square$

# %% tags=["hide-cell"]
p8 = net.init(seed=0)
db2_ce = backward(X8, sigmoid(X8 @ p8[0][0] + p8[0][1]), p8[1][0], G_ce)[1][1]
L_shift = [float(net.loss_and_grads([p8[0], (p8[1][0], p8[1][1] + c)], X8, T_cls,
                                    loss="softmax_cross_entropy")[0])
           for c in (0.0, 3.0)]
print(f"db_2 = {db2_ce}, sum = {db2_ce.sum():.1e}")
print(f"L(b_2) = {L_shift[0]:.12f}, L(b_2 + 3) = {L_shift[1]:.12f}")
assert abs(db2_ce.sum()) <= 1e-16 and abs(L_shift[0] - L_shift[1]) <= 1e-14
