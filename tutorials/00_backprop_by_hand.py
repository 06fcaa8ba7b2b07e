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
# The network of the seed question (`seeds/000_...`): three inputs, four
# sigmoid hidden units, two identity outputs (3-4-2), trained on
#
# $$x \in [0, 1]^3, \qquad y_1 = x_1 + x_2 + x_3, \qquad y_2 = x_1^2 + x_2^2 + x_3^2$$
#
# plus a little noise. We write the forward pass, derive the backward pass,
# code both in plain NumPy line by line, and check every number against
# `refnet.MLP` **and** against HIPS autograd, an independent automatic
# differentiator. Then the Jacobian (one row per output and sample), and a
# short gradient-descent run.
#
# Run as a script: `python tutorials/00_backprop_by_hand.py`
# (`REFNET_FAST=1` shortens the training run).

# %%
import os

import numpy as np

import refnet
from refnet.data import seed_regression

FAST = os.environ.get("REFNET_FAST") == "1"
np.set_printoptions(precision=4, suppress=True)

X, T = seed_regression(n=8, seed=0)                 # X (8, 3), T (8, 2)
net = refnet.MLP([3, 4, 2], activation="sigmoid", output_activation="identity")
params = net.init(seed=0)                           # [(W_1 (3, 4), b_1 (4,)), (W_2 (4, 2), b_2 (2,))]
(W1, b1), (W2, b2) = params
n = X.shape[0]
print("X", X.shape, "T", T.shape, "W_1", W1.shape, "b_1", b1.shape, "W_2", W2.shape, "b_2", b2.shape)

# %% [markdown]
# ## Forward pass
#
# Row-major batches: one row per sample. With $A_0 = X$ of shape $(n, n_0)$,
#
# $$Z_l = A_{l-1} W_l + b_l \quad (n, n_l), \qquad A_l = \phi_l(Z_l), \qquad Y = A_L .$$
#
# $W_l$ has shape $(n_{l-1}, n_l)$: column $j$ of $W_l$ holds the incoming
# connections of neuron $j$. Here $\phi_1 = \sigma$ (sigmoid,
# $\sigma(z) = 1/(1 + e^{-z})$) and $\phi_2$ is the identity. The loss is the
# mean squared error over all $N = n \cdot n_L$ entries,
# $L = \frac1N \sum_{i,k} (Y_{ik} - T_{ik})^2$.

# %%
def sigmoid(Z):
    return 1.0 / (1.0 + np.exp(-Z))                  # sigma(Z), elementwise


A0 = X                                              # A_0 = X                     (8, 3)
Z1 = A0 @ W1 + b1                                   # Z_1 = A_0 W_1 + b_1         (8, 4)
A1 = sigmoid(Z1)                                    # A_1 = sigma(Z_1)            (8, 4)
Z2 = A1 @ W2 + b2                                   # Z_2 = A_1 W_2 + b_2         (8, 2)
Y = Z2                                              # Y = A_2 = Z_2 (identity)    (8, 2)
N = Y.shape[0] * Y.shape[1]                         # N = n * n_L = 16
L = np.sum((Y - T) ** 2) / N                        # L = |Y - T|^2 / N

err_forward = np.max(np.abs(Y - net.forward(params, X)))
print(f"loss L = {L:.6f};  max |Y_hand - net.forward| = {err_forward:.1e}")
assert err_forward <= 1e-15

# %% [markdown]
# ## Backward pass, derived
#
# Write $G = \partial L / \partial Y$ (same shape as $Y$); for the mse loss
# $G = 2 (Y - T) / N$. Define $\Delta_l = \partial L / \partial Z_l$, shape
# $(n, n_l)$. The chain rule, one entry at a time:
#
# * Output layer: $A_L = \phi_L(Z_L)$ elementwise, so
#   $\Delta_L = G \odot \phi_L'(Z_L)$ (for the identity, $\Delta_L = G$).
# * Weights: $Z_{l,ij} = \sum_m A_{l-1,im} W_{l,mj} + b_{l,j}$, so
#   $\partial L / \partial W_{l,mj} = \sum_i A_{l-1,im} \Delta_{l,ij}$, i.e.
#   $$dW_l = A_{l-1}^T \Delta_l \quad (n_{l-1}, n_l), \qquad db_l = \textstyle\sum_i \Delta_{l,i} \quad (n_l,)$$
#   (a sum over samples: every sample contributes an outer product
#   $a_{l-1,i} \delta_{l,i}^T$).
# * One layer down: $Z_{l,ij}$ depends on $A_{l-1,im}$ through $W_{l,mj}$, so
#   $\partial L/\partial A_{l-1} = \Delta_l W_l^T$, and through
#   $A_{l-1} = \phi_{l-1}(Z_{l-1})$:
#   $$\Delta_{l-1} = (\Delta_l W_l^T) \odot \phi_{l-1}'(Z_{l-1}).$$
#
# For the sigmoid, $\sigma'(z) = \sigma(z)(1 - \sigma(z))$, so
# $\phi_1'(Z_1) = A_1 \odot (1 - A_1)$: the forward pass already holds it.

# %%
def backward(X, A1, W2, G):
    """Manual backprop through the 3-4-2 network for an output gradient G (n, 2).

    X: (n, 3) inputs, A1: (n, 4) hidden activations, W2: (4, 2).
    Returns [(dW_1 (3, 4), db_1 (4,)), (dW_2 (4, 2), db_2 (2,))].
    """
    Delta2 = G * 1.0                                # Delta_2 = G * phi_2'(Z_2), phi_2' = 1   (n, 2)
    dW2 = A1.T @ Delta2                             # dW_2 = A_1^T Delta_2                    (4, 2)
    db2 = np.sum(Delta2, axis=0)                    # db_2 = colsum Delta_2                   (2,)
    Delta1 = (Delta2 @ W2.T) * A1 * (1.0 - A1)      # Delta_1 = (Delta_2 W_2^T) * sigma'(Z_1) (n, 4)
    dW1 = X.T @ Delta1                              # dW_1 = A_0^T Delta_1                    (3, 4)
    db1 = np.sum(Delta1, axis=0)                    # db_1 = colsum Delta_1                   (4,)
    return [(dW1, db1), (dW2, db2)]


G = 2.0 * (Y - T) / N                               # G = dL/dY for the mse loss               (8, 2)
grads = backward(X, A1, W2, G)
g_hand = refnet.flatten(grads)                      # flatten order: W_1 row-major, b_1, W_2, b_2  (26,)

# %% [markdown]
# ### Check 1: refnet
#
# `net.vjp(params, X, G)` backpropagates any output gradient $G$;
# `net.loss_and_grads` computes $G$ from the loss itself.

# %%
g_vjp = refnet.flatten(net.vjp(params, X, G))
loss_ref, grads_ref = net.loss_and_grads(params, X, T, loss="mse")
err_vjp = np.max(np.abs(g_hand - g_vjp)) / np.max(np.abs(g_vjp))
err_lag = np.max(np.abs(g_hand - refnet.flatten(grads_ref))) / np.max(np.abs(g_vjp))
print(f"max rel. error, hand vs net.vjp:            {err_vjp:.1e}")
print(f"max rel. error, hand vs net.loss_and_grads: {err_lag:.1e}   (loss {float(loss_ref):.6f})")
assert err_vjp <= 1e-14 and err_lag <= 1e-14 and abs(float(loss_ref) - L) <= 1e-15

# %% [markdown]
# ### Check 2: an independent oracle
#
# HIPS autograd differentiates the same forward pass written in
# `autograd.numpy`, as a function of the flat parameter vector
# $\theta$ (flatten order). If autograd is not installed, we fall back to
# central finite differences, $\partial_j L \approx (L(\theta + h e_j) - L(\theta - h e_j)) / 2h$,
# which agree only to about $h^2$ (here $h = 10^{-5}$) and rounding, $\sim 10^{-10}$.

# %%
try:
    import autograd
    import autograd.numpy as anp
    HAVE_AUTOGRAD = True
except ImportError:                                 # autograd is a test dependency
    import numpy as anp
    HAVE_AUTOGRAD = False


def forward_flat(theta, X):
    """Y (n, 2) from theta (26,) = [W_1 (3x4 row-major), b_1 (4), W_2 (4x2), b_2 (2)], in autograd.numpy."""
    W1_, b1_ = anp.reshape(theta[0:12], (3, 4)), theta[12:16]
    W2_, b2_ = anp.reshape(theta[16:24], (4, 2)), theta[24:26]
    A1_ = 1.0 / (1.0 + anp.exp(-(anp.dot(X, W1_) + b1_)))     # A_1 = sigma(X W_1 + b_1)
    return anp.dot(A1_, W2_) + b2_                            # Y = A_1 W_2 + b_2


def loss_flat(theta):
    return anp.mean((forward_flat(theta, X) - T) ** 2)       # L = mean (Y - T)^2


def central_gradient(f, theta, h=1e-5):
    """(f(theta + h e_j) - f(theta - h e_j)) / 2h for every j; f returns an array."""
    cols = [(f(theta + h * e) - f(theta - h * e)) / (2 * h) for e in np.eye(theta.size)]
    return np.stack(cols, axis=-1)                            # d f / d theta_j in the last axis


theta = refnet.flatten(params)
if HAVE_AUTOGRAD:
    oracle_name, tol = "autograd", 1e-12
    g_oracle = autograd.grad(loss_flat)(theta)
else:
    oracle_name, tol = "central differences (autograd not installed)", 1e-7
    g_oracle = central_gradient(lambda t: np.asarray(loss_flat(t)), theta)
err_grad = np.max(np.abs(g_hand - g_oracle)) / np.max(np.abs(g_oracle))
print(f"max rel. error, hand gradient vs {oracle_name}: {err_grad:.1e}")
assert err_grad <= tol
print("dW_1 =\n", grads[0][0], "\ndW_2 =\n", grads[1][0])

# %% [markdown]
# ## The Jacobian of the outputs
#
# For the frozen-output problem (tutorial 01) we need every output's
# gradient on every sample separately:
# $J = \partial c / \partial \theta$ with $c$ stacking $Y_{ik}$,
# **output-major**: row $k n + i$ is $\partial Y_{ik} / \partial \theta$.
#
# Row $(k, i)$ is the backward pass above run on sample $i$ alone with the
# one-hot seed $G = e_k^T$ (a $1 \times n_L$ row): $\delta_2 = e_k$,
# $\delta_1 = (\delta_2 W_2^T) \odot a_{1,i} (1 - a_{1,i})$, and its blocks are
#
# $$\underbrace{x_i \delta_1^T}_{W_1\ (3 \times 4)} \;\Big|\; \underbrace{\delta_1}_{b_1} \;\Big|\; \underbrace{a_{1,i} \delta_2^T}_{W_2\ (4 \times 2)} \;\Big|\; \underbrace{\delta_2}_{b_2}$$
#
# laid out in flatten order. The vjp is a weighted sum of these rows:
# $\mathrm{vjp}(G) = J^T \mathrm{vec}(G)$ with $\mathrm{vec}(G)_{kn+i} = G_{ik}$.

# %%
n_out = 2
J_hand = np.zeros((n_out * n, theta.size))                    # (16, 26)
for k in range(n_out):                                        # output-major rows ...
    for i in range(n):                                        # ... then samples
        x_i, a_i = X[i:i + 1], A1[i:i + 1]                    # one sample: (1, 3), (1, 4)
        e_k = np.eye(n_out)[k:k + 1]                          # one-hot seed e_k^T  (1, 2)
        delta2 = e_k * 1.0                                    # delta_2 = e_k * phi_2' (identity)     (1, 2)
        delta1 = (delta2 @ W2.T) * a_i * (1.0 - a_i)          # delta_1 = (delta_2 W_2^T) * sigma'     (1, 4)
        J_hand[k * n + i] = np.concatenate([
            (x_i.T @ delta1).ravel(), delta1.ravel(),         # W_1 block x_i delta_1^T, b_1 block delta_1
            (a_i.T @ delta2).ravel(), delta2.ravel()])        # W_2 block a_i delta_2^T, b_2 block delta_2

J_ref = net.jacobian(params, X)                               # all outputs, output-major   (16, 26)
err_jac = np.max(np.abs(J_hand - J_ref)) / np.max(np.abs(J_ref))
if HAVE_AUTOGRAD:
    J_oracle = autograd.jacobian(lambda t: forward_flat(t, X))(theta)   # (n, n_L, p): sample-major
else:
    J_oracle = central_gradient(lambda t: forward_flat(t, X), theta)    # (n, n_L, p)
J_oracle = np.transpose(J_oracle, (1, 0, 2)).reshape(n_out * n, -1)     # -> output-major (16, 26)
err_jac_oracle = np.max(np.abs(J_hand - J_oracle)) / np.max(np.abs(J_oracle))
vecG = G.T.reshape(-1)                                        # vec(G)[k n + i] = G[i, k]    (16,)
err_jt = np.max(np.abs(J_hand.T @ vecG - g_hand)) / np.max(np.abs(g_hand))
print(f"max rel. error, hand J vs net.jacobian:       {err_jac:.1e}")
print(f"max rel. error, hand J vs {oracle_name}: {err_jac_oracle:.1e}")
print(f"max rel. error, J^T vec(G) vs hand backprop:  {err_jt:.1e}")
assert err_jac <= 1e-14 and err_jac_oracle <= tol and err_jt <= 1e-14
print("rows 0..7: d y_1 / d theta (output 1, samples 0..7); rows 8..15: d y_2 / d theta")

# %% [markdown]
# Only the $W_2$ and $b_2$ columns belonging to output $k$ are non-zero
# among the last-layer entries of rows for output $k$: output 1 does not
# depend on $W_2[:, 1]$ or $b_2[1]$. The first-layer blocks are shared, which
# is why training output 2 moves output 1 too (tutorial 01).

# %%
W2_cols = 16 + np.arange(8).reshape(4, 2)                     # flat indices of W_2 (4, 2)
assert np.all(J_hand[:n, W2_cols[:, 1]] == 0) and np.all(J_hand[:n, 25] == 0)
assert np.all(J_hand[n:, W2_cols[:, 0]] == 0) and np.all(J_hand[n:, 24] == 0)

# %% [markdown]
# ## Gradient descent with the hand-written backward pass
#
# $\theta \leftarrow \theta - \eta\, \nabla L$ with $\eta = 0.5$, on 32
# samples. Each step: forward, $G = 2(Y - T)/N$, `backward`, update.

# %%
X, T = seed_regression(n=32, seed=0)
(W1, b1), (W2, b2) = net.init(seed=0)
lr, steps = 0.5, (300 if FAST else 3000)
report = {0, 10, 100, steps // 2, steps}
print(f"{'step':>6} {'mse':>10}")
for step in range(steps + 1):
    A1 = sigmoid(X @ W1 + b1)                                 # A_1 = sigma(X W_1 + b_1)
    Y = A1 @ W2 + b2                                          # Y = A_1 W_2 + b_2
    N = Y.size
    if step in report:
        print(f"{step:>6} {np.sum((Y - T) ** 2) / N:>10.6f}")
    (dW1, db1), (dW2, db2) = backward(X, A1, W2, 2.0 * (Y - T) / N)
    W1, b1 = W1 - lr * dW1, b1 - lr * db1                     # theta <- theta - lr grad
    W2, b2 = W2 - lr * dW2, b2 - lr * db2

# %% [markdown]
# The same run with refnet's pieces (`loss_and_grads` + `refnet.SGD`) ends at
# the same parameters:

# %%
params, opt = net.init(seed=0), refnet.SGD(lr)
state = opt.init(params)
for step in range(steps + 1):
    loss, g = net.loss_and_grads(params, X, T, loss="mse")
    params, state = opt.step(params, g, state)
err_train = max(np.max(np.abs(a - b)) for a, b in zip(refnet.flatten(params), refnet.flatten([(W1, b1), (W2, b2)])))
print(f"max |theta_hand - theta_refnet| after {steps + 1} steps: {err_train:.1e}")
assert err_train <= 1e-10
