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
# **The question.** A network with three inputs, four sigmoid hidden units and two
# identity outputs (3-4-2) receives the output gradient
# $G = \partial L / \partial Y = [0, -1]$ on every sample: the loss falls when the
# second output grows and ignores the first. A gradient step raises the second
# output, but it also moves the first, because both read the same hidden layer.
# How should the gradient be changed so that the second output is trained while the
# first stays exactly where it is?
#
# **Numbering.** Outputs are numbered from 0, as in the code: the question's "first
# output" is **output 0** ($Y[:, 0]$, kept constant), its "second output" is
# **output 1** ($Y[:, 1]$, trained). The notation is that of
# [Design and notation](design.md): per-sample vectors are rows,
# $Z_l = A_{l-1} W_l + \mathbf 1 b_l$, $\theta$ is the flat parameter vector
# (order $W_1$ row-major, $b_1$, $W_2$, $b_2$) and $g$ the flat gradient.
#
# This page is the learner's answer: what the accepted answer does, why masking
# fails, the null-space projection, exact steps, and what "constant" means away
# from the inputs we froze on. How refnet computes the projection accurately (the
# routes, the cutoff, the error model, the convergence of the retraction) is
# tutorial [04, Numerics of the projection](04_numerics_of_the_projection.py).
#
# Run as a script: `python tutorials/01_frozen_outputs.py` (`REFNET_FAST=1` for a
# short run).

# %%
import os
import sys
from importlib.util import find_spec

import numpy as np

import refnet
from refnet.data import seed_regression
from refnet.demos.frozen import compare, table
from refnet.demos.style import color

FAST = os.environ.get("REFNET_FAST") == "1"
HAVE_MPL = find_spec("matplotlib") is not None     # figures need matplotlib
np.set_printoptions(precision=4, suppress=True, linewidth=88)

X, T = seed_regression(n=8, seed=0)                # x in [0, 1]^3: X (8, 3), T (8, 2)
net = refnet.MLP([3, 4, 2], activation="sigmoid", output_activation="identity")
params = net.init(seed=0)                          # [(W_1, b_1), (W_2, b_2)]
n, p = X.shape[0], net.n_params
G = np.tile([0.0, -1.0], (n, 1)) / n               # dL/dY of L = -mean(y_1)     (8, 2)
Y0 = net.forward(params, X)                        # Y at the start              (8, 2)
print("p =", p, "parameters; Y0[:3] =\n", Y0[:3])

# %% [markdown]
# ## 1. The accepted answer, annotated
#
# The question and its accepted answer come from a public Q&A thread (2017) that we
# read in a machine translation; the answer, by the user *soloice*, is written for
# TensorFlow 1. Its code is quoted as posted, in pieces, each followed by what it
# does in refnet's terms (trailing comments are moved above their lines to fit the
# page). It builds the same toy problem as refnet's `seed_regression`:
#
# ```python
# # let's make our tiny dataset: (x, y) pairs, where x = (x1, x2, x3), y = (y1, y2),
# # and y1 = x1+x2+x3, y2 = x1^2+x2^2+x3^2
# n_sample = 8
# data_x = np.random.random((n_sample, 3))
# data_y = np.zeros((n_sample, 2))
# data_y[:, 0] += np.sum(data_x, axis=1)
# data_y[:, 1] += np.sum(data_x**2, axis=1)
# # add some noise
# data_y += 0.01 * np.random.random((n_sample, 2))
# ```
#
# > The answer's targets, 0-based: $t_0 = x_0 + x_1 + x_2$ and
# > $t_1 = x_0^2 + x_1^2 + x_2^2$, plus noise. Its `out1`, `y1` are our output 0.
#
# ```python
# hidden = tf.nn.sigmoid(tf.matmul(x, W1) + b1)
# out = tf.matmul(hidden, W2) + b2
# loss = tf.reduce_mean(tf.square(out - y))
# # multiply out by mask, thus out[0] is "invisible" to loss,
# # and its gradient will not be propagated
# masked_out = mask * out
# loss2 = tf.reduce_mean(tf.square(masked_out - y))
# ```
#
# > The 3-4-2 network, $Y = \sigma(X W_1 + \mathbf 1 b_1) W_2 + \mathbf 1 b_2$, with
# > `mask` $= [0, 1]$ on every row. Masking multiplies column 0 of
# > $G = \partial L / \partial Y$ by 0: output 0 gets **no gradient of its own**.
# > That is not the same as "output 0 does not change".
#
# ```python
# # update all variables in the network
# train_op_all = optimizer.minimize(loss)
# # update hidden -> output layer
# train_op12 = optimizer.minimize(loss, var_list=[W2, b2])
# # update hidden -> second output unit
# train_op2 = optimizer.minimize(loss2, var_list=[W2, b2])
# ```
#
# > `minimize(loss, var_list=...)` is one SGD step on the listed variables; the
# > others get a zero update. A comment suggested `trainable=False` (on `W1, b1`
# > that is the same as `var_list=[W2, b2]`); the asker replied that the problem is
# > that *both outputs are affected by the change in the weights*. Each op is a row of
# > the comparison in section 5 ({py:func}`refnet.masked_grads` is the mask):
#
# | the answer's op | trains | table row |
# |---|---|---|
# | `train_op_all` | all layers | masked, all layers |
# | `train_op12` | last layer | masked, head only |
# | `train_op2` | last layer, masked loss | masked, head only |
#
# For the question's $G = [0, -1]$ column 0 is already zero, so the mask changes no
# bit of $G$, and `train_op12` gives $dW_2[:, 0] = A_1^T G[:, 0] = 0$: all three ops
# reduce to two rules, asserted bit for bit.

# %%
def last_layer_only(grads):
    """A var_list=[W2, b2] step: every layer but the last gets a zero update."""
    zero = [(np.zeros_like(dW), np.zeros_like(db)) for dW, db in grads[:-1]]
    return zero + grads[-1:]


def same_bits(a, b):
    """Bitwise equality of two gradient lists [(dW_l, db_l)]."""
    return all(np.array_equal(x, y) for xs, ys in zip(a, b) for x, y in zip(xs, ys))


plain = net.vjp(params, X, G)                      # train_op_all: all layers
masked = refnet.masked_grads(net, params, X, G, freeze=[0])
head = refnet.masked_grads(net, params, X, G, freeze=[0], head_only=True)
assert same_bits(plain, masked)                    # train_op_all = masked, all layers
assert same_bits(last_layer_only(plain), head)     # train_op12 = masked, head only
assert same_bits(last_layer_only(masked), head)    # train_op2 = masked, head only
print("dW_2[:, 0] of train_op12:", plain[1][0][:, 0], " db_2[0]:", plain[1][1][0])

# %% [markdown]
# ## 2. Why masking fails
#
# Output 0 of sample $i$ (row $a_{1,i}$ of $A_1$) is
#
# $$y_{i0} = a_{1,i} W_2[:, 0] + b_2[0], \qquad a_{1,i} = \sigma(x_i W_1 + b_1).$$
#
# The gradient of output 1 changes $W_1, b_1$, hence the hidden row $a_{1,i}$ that
# output 0 reads too. Output 0 stays constant only if $W_1, b_1, W_2[:, 0], b_2[0]$
# all stay fixed: that is what head-only training does, and the only way masking
# keeps it. With the answer's own loss (the mean squared error towards both
# targets) column 0 of $G$ is not zero, and one step of each op shows it:

# %%
G_mse = 2.0 * (Y0 - T) / Y0.size                   # dL/dY of mean((Y - T)^2)    (8, 2)
steps_mse = {
    "train_op_all": net.vjp(params, X, G_mse),
    "train_op12": last_layer_only(net.vjp(params, X, G_mse)),
    "train_op2": refnet.masked_grads(net, params, X, G_mse, freeze=[0], head_only=True),
}
moved = {}
for name, grads in steps_mse.items():
    new = [(W - 0.1 * dW, b - 0.1 * db)            # theta - lr g, lr = 0.1
           for (W, b), (dW, db) in zip(params, grads)]
    moved[name] = np.abs(net.forward(new, X)[:, 0] - Y0[:, 0]).max()
    print(f"{name:13}: max |y0 - y0(0)| after one step = {moved[name]:.2e}")
assert moved["train_op_all"] > 0 and moved["train_op12"] > 0
assert moved["train_op2"] == 0.0

# %% [markdown]
# So the answer keeps output 0 constant only by training one column of one layer.
# To let every layer learn we need a direction in parameter space that leaves
# output 0 unchanged.
#
# ## 3. The null-space projection
#
# Freeze the outputs $K$ (here $K = \{0\}$) on anchor inputs $X_a$ ($n_a$ rows; here
# the batch). Stack the frozen values into the constraint vector
# $c(\theta) \in \mathbb{R}^m$, $m = |K|\, n_a$, output-major, with Jacobian
# $J = \partial c / \partial \theta$ of shape $(m, p)$. A step
# $\theta' = \theta - \eta v$ changes them by
#
# $$c(\theta - \eta v) = c(\theta) - \eta J v + O(\eta^2),$$
#
# so to first order they stay put exactly when $J v = 0$: $v$ lies in the **null
# space** of $J$. Among those directions we want the one closest to $g$:
#
# $$\min_{v} \tfrac12 \lVert v - g \rVert^2 \quad \text{subject to} \quad J v = 0 .$$
#
# With multipliers $\lambda \in \mathbb{R}^m$ the Lagrangian is
# $\tfrac12 \lVert v - g \rVert^2 + \lambda^T J v$. Stationarity in $v$ gives
# $v = g - J^T \lambda$, and $J v = 0$ gives
#
# $$(J J^T)\, \lambda = J g, \qquad
#   g_\perp = g - J^T \lambda = (I - J^{+} J)\, g = g - V_r V_r^T g ,$$
#
# with $J = U_r S_r V_r^T$ the thin SVD on the $r$ nonzero singular values. If
# $J J^T$ is singular, $\lambda$ is not unique but $J^T \lambda$ is.
# {py:func}`refnet.project_out` computes $g_\perp$. Properties,
# each checked against an explicit $J$: $J g_\perp = 0$; projecting twice changes
# nothing; $\langle g, g_\perp \rangle = \lVert g_\perp \rVert^2 \ge 0$, so
# $-g_\perp$ still lowers the loss (or is zero); $g_\perp = g - J^T \lambda$ for the
# least-squares $\lambda$.

# %%
EPS = np.finfo(np.float64).eps
g = net.vjp(params, X, G)                          # backprop of G -> [(dW_l, db_l)]
J = net.jacobian(params, X, outputs=[0])           # J = dc/dtheta, c = y_0 on X  (8, p)
gv = refnet.flatten(g)                             # g                            (p,)
gp = refnet.flatten(refnet.project_out(net, params, g, X, outputs=[0]))   # g_perp (p,)
gpp = refnet.flatten(refnet.project_out(net, params, refnet.unflatten(gp, params), X))
lam = np.linalg.lstsq(J.T, gv, rcond=None)[0]     # (J J^T) lambda = J g          (8,)
checks = {
    "|J g_perp| / (|J| |g|)": np.linalg.norm(J @ gp)
    / (np.linalg.norm(J, 2) * np.linalg.norm(gv)),
    "|P(P g) - P g| / |g|": np.linalg.norm(gpp - gp) / np.linalg.norm(gv),
    "(<g, g_perp> - |g_perp|^2) / |g|^2": (gv @ gp - gp @ gp) / (gv @ gv),
    "|g_perp - (g - J^T lam)| / |g|": np.linalg.norm(gp - (gv - J.T @ lam))
    / np.linalg.norm(gv),
}
for name, value in checks.items():
    print(f"{name:36} = {value:.1e}")
    assert abs(value) < 1e3 * EPS, name

# %% [markdown]
# **The picture.** In two dimensions, with one constraint $c(\theta) = c_0$ (a
# curve), $J$ is the curve's normal at $\theta$ and its null space the tangent line.
# $g_\perp$ is $g$ with its normal part removed. A step along $-g_\perp$ follows the
# tangent and so leaves the curve by $O(\eta^2)$; the **retraction** (section 4)
# walks back to it along the normal. Everything below is computed, on
# $c(\theta) = \theta_1 + 0.4\, \theta_0^2$.

# %% tags=["hide-input"]
def plot_geometry():
    """g, g_perp, the null space (tangent), the set c(theta) = c0 and the retraction."""
    import matplotlib.pyplot as plt
    c = lambda t: t[1] + 0.4 * t[0] ** 2                 # constraint c(theta)
    jac = lambda t: np.array([0.8 * t[0], 1.0])          # J = dc/dtheta    (1 x 2)
    theta0, g2, lr = np.array([0.5, 0.0]), np.array([-1.2, -0.5]), 1.0
    c0, J0 = c(theta0), jac(theta0)
    g_perp = g2 - J0 * (J0 @ g2) / (J0 @ J0)             # g - J^T (J J^T)^-1 J g
    path = [theta0 - lr * g_perp]                        # the projected step
    for _ in range(4):                                   # Gauss-Newton retraction
        Jk = jac(path[-1])
        path.append(path[-1] - Jk * (c(path[-1]) - c0) / (Jk @ Jk))   # - J^+ r
    assert abs(c(path[-1]) - c0) < 1e-12
    fig, ax = plt.subplots(figsize=(6.5, 4.6))
    plt.close(fig)                                       # the cell shows fig
    t0 = np.linspace(-1.0, 1.6, 200)
    ax.plot(t0, c0 - 0.4 * t0 ** 2, "k", lw=1.5, label="$c(\\theta) = c_0$")
    tang = J0[::-1] * [1, -1] / np.linalg.norm(J0)       # unit tangent: J t = 0
    ax.plot(*np.array([theta0 - 1.2 * tang, theta0 + 1.2 * tang]).T, "k:",
            label="null space of $J$ (tangent)")
    arrow = dict(head_width=0.04, length_includes_head=True)
    ax.arrow(*theta0, *(-lr * g2), color="0.5", **arrow)
    ax.arrow(*theta0, *(-lr * g_perp), color=color("projected"), **arrow)
    ax.plot(*np.array(path).T, ".-", color=color("projected + retraction"), ms=6)
    ax.annotate("$-\\eta g$", theta0 - lr * g2, color="0.4", xytext=(-34, 4),
                textcoords="offset points")
    ax.annotate("$-\\eta g_\\perp$", path[0], color=color("projected"),
                xytext=(4, 4), textcoords="offset points")
    ax.annotate("retraction", path[-1], color=color("projected + retraction"),
                xytext=(-10, -16), textcoords="offset points")
    ax.plot(*theta0, "ko")
    ax.annotate("$\\theta$", theta0, xytext=(6, 4), textcoords="offset points")
    ax.set(xlabel="$\\theta_0$", ylabel="$\\theta_1$", aspect="equal")
    ax.legend(fontsize=8, loc="lower left")
    return fig


plot_geometry() if HAVE_MPL else None

# %% [markdown]
# ## 4. Exact steps: the retraction
#
# After $\theta - \eta g_\perp$ the frozen outputs have moved by $O(\eta^2)$.
# Minimum-norm Gauss-Newton corrections remove that remainder:
#
# $$\rho = c(\theta) - c_0, \qquad \theta \leftarrow \theta - J^{+} \rho
#   \qquad \text{until } \max_j |\rho_j| \le \text{tol} .$$
#
# Each correction is the smallest step that cancels $\rho$ to first order, so the
# residual squares each time (tutorial 04 measures the order).
# {py:func}`refnet.frozen_step` does the projected step and the retraction, and
# reports what it did in a {py:class}`refnet.FrozenInfo`
# (residual, corrections, rank, nullity, the tolerance it used); a retraction that
# cannot converge raises {py:class}`refnet.RetractionError` instead of claiming
# success.

# %%
print(f"{'lr':>5} {'drift, no retraction':>21} {'with':>9} {'corr.':>6} {'tol':>8}")
for lr in (0.05, 0.5, 5.0):
    _, info0 = refnet.frozen_step(net, params, X, G, freeze=[0], lr=lr, retract=False)
    new, info = refnet.frozen_step(net, params, X, G, freeze=[0], lr=lr)
    drift = np.abs(net.forward(new, X)[:, 0] - Y0[:, 0]).max()
    print(f"{lr:>5} {info0.residual:>21.2e} {drift:>9.1e} {info.iterations:>6} "
          f"{info.tol:>8.1e}")
    assert info.converged and drift <= info.tol < info0.residual

# %% [markdown]
# ## 5. The baselines side by side
#
# Every method runs the same SGD steps on $G = [0, -1] / n$, anchors = the batch:
# the answer's two rules, {py:class}`refnet.Projected`
# `(refnet.SGD(lr), ..., retract=False)`
# ("projected": the $O(\eta^2)$ remainders accumulate) and the default `Projected`
# ("projected + retraction", output 0 held at its values at `init`). The loop is
# `refnet.demos.frozen.compare`.

# %%
STEPS, LR = (40 if FAST else 200), 0.05
results = compare(steps=STEPS, lr=LR, n=n, seed=0)
table(results, sys.stdout)
_, info = refnet.frozen_step(net, params, X, G, freeze=[0], lr=LR)
drift = {method: d.max() for method, (d, _) in results.items()}
gain = {method: gn[-1] for method, (_, gn) in results.items()}
assert drift["masked, head only"] == 0.0 and drift["projected + retraction"] <= info.tol
assert (drift["masked, all layers"] > drift["projected"]
        > drift["projected + retraction"])
assert gain["masked, all layers"] == max(gain.values())
assert gain["masked, head only"] == min(gain.values())

# %% [markdown]
# Masking with all layers trained gains the most on output 1 and drifts output 0
# the most. Head-only masking keeps output 0 bit for bit but learns through one
# column of one layer, and gains the least. The projection trains all layers;
# without retraction output 0 drifts slowly, with it output 0 stays at its frozen
# values to the tolerance (the orderings are asserted above).

# %% tags=["hide-input"]
def plot_methods(results):
    """Drift of output 0 (log scale) and gain of output 1 against the step."""
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    plt.close(fig)                                       # the cell shows fig
    for method, (d, gn) in results.items():
        a.semilogy(np.maximum(d, 1e-17), color=color(method), label=method)
        b.plot(gn, color=color(method), label=method)
    a.set(xlabel="step", ylabel="max |y0 - y0(0)|  (0 drawn at 1e-17)",
          title="output 0 (frozen)")
    b.set(xlabel="step", ylabel="mean (y1 - y1(0))", title="output 1 (trained)")
    a.legend(fontsize=8)
    fig.tight_layout()
    return fig


plot_methods(results) if HAVE_MPL else None

# %% [markdown]
# ## 6. Constant where? Output 0 away from the anchors
#
# The constraint holds output 0 on the anchors only. The parameters move inside the
# null space of the anchors' $J$, and output 0 at a new input changes unless that
# input's Jacobian row is (nearly) a combination of the anchors' rows. More anchors
# pin output 0 at more places but leave fewer directions to train output 1.
#
# **The experiment.** Output 1 fits the target $t_1 = \sum_j x_j^2$ on 64 training
# inputs (loss $\frac1n \sum_i (y_{i1} - t_{i1})^2$, so $G[:, 0] = 0$), while output 0
# is frozen on the first $m$ of 32 anchor inputs ($m = 0$: not frozen), with
# `Projected(SGD)`. We measure output 0 on 1000 held-out inputs and output 1's
# held-out mean squared error.

# %%
SWEEP_STEPS, LR_FIT = (300 if FAST else 1000), 0.2
MS = [0, 1, 2, 4, 8, 16, 20, 21, 32]               # anchors (0: output 0 not frozen)
X_fit, T_fit = seed_regression(n=64, seed=1)       # training set     (64, 3), (64, 2)
X_ho, T_ho = seed_regression(n=1000, seed=2)       # held-out set     (1000, 3), ...
POOL, _ = seed_regression(n=32, seed=3)            # anchors POOL[:m] (32, 3)
Y0_ho = net.forward(params, X_ho)                  # held-out outputs at the start


def fit_output_1(m, steps=SWEEP_STEPS):
    """Train output 1 towards T_fit[:, 1], output 0 frozen on POOL[:m] (m = 0: SGD).
    Returns (params, FrozenInfo of the last step or None)."""
    opt = refnet.SGD(LR_FIT)
    if m:
        opt = refnet.Projected(opt, net, POOL[:m], freeze=[0])
    trained, state = params, opt.init(params)
    for _ in range(steps):
        Y = net.forward(trained, X_fit)
        G_fit = np.zeros_like(Y)
        G_fit[:, 1] = 2.0 * (Y[:, 1] - T_fit[:, 1]) / len(Y)     # dL/dY   (64, 2)
        trained, state = opt.step(trained, net.vjp(trained, X_fit, G_fit), state)
    return trained, (state.info if m else None)


sweep = {}
mse_start = np.mean((Y0_ho[:, 1] - T_ho[:, 1]) ** 2)
print(f"{SWEEP_STEPS} SGD steps, lr {LR_FIT}; held-out mse of y1 at the start "
      f"{mse_start:.3f}")
print(f"{'m':>3} {'rank':>5} {'nullity':>8} {'on anchors':>11} {'held-out |dy0|':>15} "
      f"{'held-out mse':>13}")
for m in MS:
    trained, info = fit_output_1(m)
    Y_ho = net.forward(trained, X_ho)
    sweep[m] = dict(params=trained, info=info,
                    drift=np.abs(Y_ho[:, 0] - Y0_ho[:, 0]).max(),   # max |dy0|
                    mse=np.mean((Y_ho[:, 1] - T_ho[:, 1]) ** 2))    # y1's error
    rank, nullity, on = ("-", p, "-") if info is None else (
        info.rank, info.nullity, f"{info.residual:.1e}")
    print(f"{m:>3} {rank:>5} {nullity:>8} {on:>11} {sweep[m]['drift']:>15.2e} "
          f"{sweep[m]['mse']:>13.4f}")

# %% [markdown]
# On the anchors output 0 is held to the tolerance for every $m$. Unfrozen, it moves
# visibly on the held-out inputs. One or two anchors hold it at one or two points
# and hardly anywhere else; 8 anchors cut the held-out drift by more than an order
# of magnitude while output 1 fits about as well as unfrozen. Near $m = 20$ the
# drift is tiny but output 1's error climbs; from $m = 21$ on output 0 does not
# move beyond rounding, on any input, and output 1 can no longer learn features.
# The assertions check these statements on the printed numbers.

# %% tags=["hide-input"]
d = {m: sweep[m]["drift"] for m in MS}
mse = {m: sweep[m]["mse"] for m in MS}
assert all(sweep[m]["info"].converged for m in MS[1:])   # held on the anchors
assert d[0] > 1e-2 and d[8] < 0.1 * d[1] and d[16] < 0.1 * d[2]   # less drift
assert mse[8] < 1.5 * mse[0]                             # ... at little cost
assert d[20] < 1e-3 * d[0] and mse[20] > 1.3 * mse[8]    # tiny drift, worse fit
assert max(d[21], d[32]) < 1e-10                         # constant everywhere
assert mse[21] > 1.3 * max(mse[0], mse[4], mse[8])       # ... and a worse fit
assert abs(mse[21] - mse[32]) < 1e-9                     # the same 5 free parameters

# %% [markdown]
# **Why $m = 21$: counting the null space.** The network has
# $p = 3 \cdot 4 + 4 + 4 \cdot 2 + 2 = 26$ parameters. Output 0 depends on
# $W_1, b_1, W_2[:, 0], b_2[0]$ only, $12 + 4 + 4 + 1 = 21$ of them, so
# $\operatorname{rank} J \le 21$. For generic anchors each anchor adds an
# independent row until that bound: $\operatorname{rank} J = \min(m, 21)$. At
# $m \ge 21$ the null space is exactly output 1's last-layer column $W_2[:, 1]$,
# $b_2[1]$: every feasible step keeps the hidden layer and output 0's column fixed,
# so output 0 is constant on *every* input and output 1 is a linear regression on
# 4 fixed hidden features. That is the right answer to the constraint, not a
# failure: the answer's head-only training, reached by counting constraints. We
# check the ranks against NumPy's SVD of the explicit $J$ with refnet's cutoff.

# %% tags=["hide-input"]
for m in MS[1:]:
    J_m = net.jacobian(params, POOL[:m], outputs=[0])
    s = np.linalg.svd(J_m, compute_uv=False)
    rtol = refnet.frozen.default_rtol(net, m, J_m.dtype)    # refnet's cutoff / s_max
    info = sweep[m]["info"]
    assert info.rank == np.sum(s > rtol * s[0]) == min(m, 21), m
    assert info.nullity == p - info.rank
print("rank = min(m, 21), nullity = 26 - rank for every m (FrozenInfo and numpy SVD)")
(W1, b1), (W2, b2) = params
for m in (21, 32):
    (W1m, b1m), (W2m, b2m) = sweep[m]["params"]
    own = max(np.abs(W1m - W1).max(), np.abs(b1m - b1).max(),
              np.abs(W2m[:, 0] - W2[:, 0]).max(), abs(b2m[0] - b2[0]))
    free = max(np.abs(W2m[:, 1] - W2[:, 1]).max(), abs(b2m[1] - b2[1]))
    print(f"m = {m}: change of W_1, b_1, W_2[:, 0], b_2[0]: {own:.1e}; "
          f"of W_2[:, 1], b_2[1]: {free:.2f}")
    assert own < 1e-12 and free > 0.1


# %% tags=["hide-input"]
def plot_anchors(sweep):
    """Held-out drift of output 0 and held-out error of output 1 against m."""
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    plt.close(fig)                                       # the cell shows fig
    ms = [m for m in sweep if m > 0]
    kw = dict(color=color("projected + retraction"), label="frozen on m anchors")
    a.semilogy(ms, [max(sweep[m]["drift"], 1e-17) for m in ms], "o-", **kw)
    b.plot(ms, [sweep[m]["mse"] for m in ms], "o-", **kw)
    for ax, key in ((a, "drift"), (b, "mse")):
        ax.axhline(sweep[0][key], ls="--", color=color("not frozen"),
                   label="not frozen")
        ax.axvline(21, ls=":", c="k")
        ax.legend(fontsize=8)
    a.set(xlabel="anchors m", ylabel="held-out max |y0 - y0(0)|",
          title="output 0 off the anchors")
    b.set(xlabel="anchors m", ylabel="held-out mse of y1",
          title=r"output 1 fitting $\sum_j x_j^2$")
    fig.tight_layout()
    return fig


plot_anchors(sweep) if HAVE_MPL else None

# %% [markdown]
# **Choosing anchors.** Freeze output 0 on the inputs where it matters (the data it
# will be asked about), with enough of them to cover that region; the held-out
# drift tells whether they do. Past the count of output 0's own parameters the
# network has no freedom left but the other outputs' last-layer weights.
#
# ## Exercises
#
# ### Exercise 1: the null space of a wider network
#
# For a 3-$h$-2 sigmoid network, predict the nullity of $J$ for output 0 with many
# anchors, as a function of $h$. Check it for $h = 6$ with 40 anchors against
# `FrozenInfo` and NumPy.
#
# *Hint:* count the parameters output 0 depends on, as for $m = 21$ above.

# %% [markdown]
# **Solution 1.** Output 0 owns $W_1, b_1, W_2[:, 0], b_2[0]$:
# $3h + h + h + 1 = 5h + 1$ parameters, out of $p = 3h + h + 2h + 2 = 6h + 2$. With
# $m \ge 5h + 1$ generic anchors the rank is $5h + 1$ and the nullity
# $p - (5h + 1) = h + 1$: output 1's column $W_2[:, 1]$ ($h$ weights) and $b_2[1]$.

# %% tags=["hide-cell"]
h = 6
net_h = refnet.MLP([3, h, 2], activation="sigmoid", output_activation="identity")
params_h = net_h.init(seed=1)
X_h, _ = seed_regression(n=40, seed=4)
G_h = np.tile([0.0, -1.0], (40, 1)) / 40
_, info_h = refnet.frozen_step(net_h, params_h, X_h, G_h, freeze=[0], lr=0.05)
J_h = net_h.jacobian(params_h, X_h, outputs=[0])
s_h = np.linalg.svd(J_h, compute_uv=False)
rtol_h = refnet.frozen.default_rtol(net_h, 40, J_h.dtype)
nullity_np = net_h.n_params - np.sum(s_h > rtol_h * s_h[0])
print(f"h = {h}: p = {net_h.n_params}, predicted nullity {h + 1}, "
      f"FrozenInfo {info_h.nullity}, numpy {nullity_np}")
assert info_h.nullity == nullity_np == h + 1

# %% [markdown]
# ### Exercise 2: steepest descent under the constraint
#
# Show that $-g_\perp$ is the steepest descent direction among those that keep the
# frozen outputs constant to first order: over unit vectors $u$ with $J u = 0$,
# $\langle g, u \rangle$ is largest at $u = g_\perp / \lVert g_\perp \rVert$, where
# it equals $\lVert g_\perp \rVert$. Check it with a null-space basis from NumPy's
# SVD.
#
# *Hint:* write $u = N a$ with $N$ an orthonormal basis of the null space, and use
# Cauchy-Schwarz.

# %% [markdown]
# **Solution 2.** Let the columns of $N$ $(p, p - r)$ be an orthonormal basis of
# $\operatorname{null}(J)$. Every unit $u$ with $J u = 0$ is $u = N a$ with
# $\lVert a \rVert = 1$, and by Cauchy-Schwarz
#
# $$\langle g, N a \rangle = \langle N^T g, a \rangle \le \lVert N^T g \rVert ,$$
#
# with equality at $a = N^T g / \lVert N^T g \rVert$, i.e.
# $u = N N^T g / \lVert N N^T g \rVert = g_\perp / \lVert g_\perp \rVert$, since
# $N N^T = I - V_r V_r^T$. There
# $\langle g, u \rangle = \lVert N^T g \rVert = \lVert g_\perp \rVert$. $\square$

# %% tags=["hide-cell"]
_, s_full, Vt_full = np.linalg.svd(J)              # rows r.. of V^T span null(J)
r = np.sum(s_full > refnet.frozen.default_rtol(net, n, J.dtype) * s_full[0])
N = Vt_full[r:].T                                  # null-space basis      (p, p - r)
best = gv @ gp / np.linalg.norm(gp)                # <g, u> at u = g_perp / |g_perp|
print(f"<g, g_perp>/|g_perp| = {best:.6f},  |N^T g| = {np.linalg.norm(N.T @ gv):.6f}")
assert np.isclose(best, np.linalg.norm(N.T @ gv), rtol=1e-12)
U_rand = N @ np.random.default_rng(1).standard_normal((N.shape[1], 1000))
# 1000 random null-space directions: none beats g_perp
assert np.all(gv @ U_rand / np.linalg.norm(U_rand, axis=0) <= best * (1 + 1e-12))
