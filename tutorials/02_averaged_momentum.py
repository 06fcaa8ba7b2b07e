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
# # 02 — Incoming-averaged momentum
#
# **The question.** Someone prototyping a TensorFlow optimizer in Python
# starts from SGD with momentum, where every connection $i \to j$ keeps its
# own momentum ("accumulation") and is updated with its own gradient plus
# $\mu$ times that momentum. They want a variant: the momentum used for
# connection $i \to j$ should be the **mean momentum of all connections that
# enter the same neuron $j$**. In their picture, the connections into neuron 5
# come from neurons 2 and 3, so both connections $2 \to 5$ and $3 \to 5$
# should be updated with $\tfrac12(\text{momentum}_{2\to5} + \text{momentum}_{3\to5})$.
# How is that written for whole weight tensors? The accepted answer
# averaged `reduce_mean(accumulation, axis=1)` on the dense kernels, left
# biases un-averaged and convolution kernels as a TODO, and reported that the
# variant converged more slowly than ordinary momentum on MNIST.
#
# Here we derive the update in matrix form, check it line by line, show the
# answer's axis bug on a non-square layer, compare the optimizers on real
# data (the UCI 8x8 handwritten digits, shipped with refnet), sweep learning
# rates and momenta, draw the three optimizers' paths on a 2-D problem, and
# say plainly when averaging helps and when it hurts. Notation: the
# [Design and notation](design.md) page; $M$ is a momentum buffer, $dW$ a
# weight gradient.
#
# Run as a script: `python tutorials/02_averaged_momentum.py`
# (`REFNET_FAST=1` runs short comparisons and a tiny sweep; `REFNET_OUT=DIR`
# says where the PNGs go).

# %%
import os
import time
from importlib.util import find_spec

import numpy as np

import refnet
from refnet.data import digits_split, one_hot
from refnet.demos.style import MU_STYLES, color

FAST = os.environ.get("REFNET_FAST") == "1"
OUT = os.environ.get("REFNET_OUT", ".")
# figures need matplotlib (the `plots` extra)
HAVE_MPL = find_spec("matplotlib") is not None
np.set_printoptions(precision=4, suppress=True)
if not HAVE_MPL:
    print("matplotlib is not installed: figures are skipped (the tables are printed)")

# %% [markdown]
# ## Standard and averaged momentum
#
# TF1's `MomentumOptimizer` (= `torch.optim.SGD` with `dampening=0`) keeps a
# momentum buffer $M$ per weight matrix, starting at zero, and updates it with
# the weight gradient $dW$:
#
# $$M \leftarrow dW + \mu M, \qquad W \leftarrow W - \eta M .$$
#
# The question replaces $\mu M$ by $\mu\,\mathrm{mean_{\mathrm{in}}}(M)$. Because $W$ is
# $(n_{\mathrm{in}}, n_{\mathrm{out}})$ and $Z = A_{prev} W + \mathbf 1 b$, column $j$ of $W$ holds
# the incoming connections of neuron $j$, so $\mathrm{mean_{\mathrm{in}}}$ replaces every
# entry of column $j$ by the column mean:
#
# $$\mathrm{mean_{\mathrm{in}}}(M)_{ij} = \frac{1}{n_{\mathrm{in}}} \sum_{k} M_{kj}
#   \quad\Longrightarrow\quad
#   \mathrm{mean_{\mathrm{in}}}(M) = \frac{1}{n_{\mathrm{in}}} \mathbf 1 \mathbf 1^T M = P_{\mathrm{in}} M,
#   \qquad P_{\mathrm{in}} = \frac{\mathbf 1 \mathbf 1^T}{n_{\mathrm{in}}} \quad (n_{\mathrm{in}} \times n_{\mathrm{in}}),$$
#
# with $\mathbf 1$ the all-ones column of length $n_{\mathrm{in}}$. The update is
#
# $$M \leftarrow dW + \mu\, P_{\mathrm{in}} M, \qquad W \leftarrow W - \eta M .$$
#
# **$P_{\mathrm{in}}$ is an orthogonal projection.** It is symmetric, and idempotent
# because $\mathbf 1^T \mathbf 1 = n_{\mathrm{in}}$:
# $P_{\mathrm{in}}^2 = \mathbf 1 (\mathbf 1^T \mathbf 1) \mathbf 1^T / n_{\mathrm{in}}^2 = P_{\mathrm{in}}$.
# Its range is the line spanned by $\mathbf 1$ ($P_{\mathrm{in}} \mathbf 1 = \mathbf 1$),
# its null space the vectors whose entries sum to zero
# ($\mathbf 1^T v = 0 \Rightarrow P_{\mathrm{in}} v = 0$), so its eigenvalues are 1 (once)
# and 0 ($n_{\mathrm{in}} - 1$ times) and $\operatorname{tr} P_{\mathrm{in}} = 1$. Applied to a
# matrix it acts on each column separately: it keeps a column's mean and removes
# the rest. And $\mathbf 1^T P_{\mathrm{in}} = \mathbf 1^T$, so $\mathbf 1^T P_{\mathrm{in}} M = \mathbf 1^T M$:
# averaging moves momentum between a neuron's inputs but never creates or
# loses any.
#
# refnet has both forms: {py:func}`refnet.averaging_matrix` `(n)` is the explicit
# $P_{\mathrm{in}}$ (for reading), {py:func}`refnet.average_incoming` `(M, axis=0)` the
# fast mean-and-broadcast that the
# optimizer uses. A non-square example:

# %%
M = np.array([[1.0, 10.0],
              [2.0, 20.0],
              [6.0, 60.0]])        # (n_in, n_out) = (3, 2): column j enters neuron j
P_in = refnet.averaging_matrix(3)  # 1 1^T / 3  (3, 3)
print("P_in =\n", P_in)
print("P_in @ M =\n", P_in @ M)  # every column replaced by its mean
# explicit form == fast form
assert np.allclose(P_in @ M, refnet.average_incoming(M, axis=0))
# symmetric, idempotent
assert np.array_equal(P_in, P_in.T) and np.allclose(P_in @ P_in, P_in)
# 1^T P_in M = 1^T M
assert np.allclose((P_in @ M).sum(axis=0), M.sum(axis=0))
# zero-sum vectors are removed
assert np.allclose(P_in @ np.array([1.0, -1.0, 0.0]), 0.0)

# %% [markdown]
# ## What the recursion really does
#
# Split the buffer with the projector: $M = P_{\mathrm{in}} M + (I - P_{\mathrm{in}}) M$.
# Applying $P_{\mathrm{in}}$ and $I - P_{\mathrm{in}}$ to $M \leftarrow dW + \mu P_{\mathrm{in}} M$ (and
# using $P_{\mathrm{in}}^2 = P_{\mathrm{in}}$, $(I - P_{\mathrm{in}}) P_{\mathrm{in}} = 0$) gives two separate
# recursions:
#
# $$P_{\mathrm{in}} M \leftarrow P_{\mathrm{in}}\, dW + \mu\, P_{\mathrm{in}} M, \qquad (I - P_{\mathrm{in}}) M \leftarrow (I - P_{\mathrm{in}})\, dW .$$
#
# The column-mean part of the gradient gets ordinary momentum; everything
# orthogonal to it ($n_{\mathrm{in}} - 1$ of the $n_{\mathrm{in}}$ directions of each column)
# gets **no momentum at all**, as in plain SGD. This one fact explains every
# experiment below. Checked on random gradients:

# %%
rng = np.random.default_rng(0)
params = [(rng.standard_normal((5, 3)), np.zeros(3))]  # one non-square layer W (5, 3)
opt = refnet.AveragedMomentum(lr=0.1, momentum=0.9)
state, P5, mean_part = opt.init(params), refnet.averaging_matrix(5), np.zeros((5, 3))
for t in range(5):
    dW = rng.standard_normal((5, 3))
    params, state = opt.step(params, [(dW, np.zeros(3))], state)
    M_W = state.accumulation[0][0]           # the buffer M of W  (5, 3)
    mean_part = P5 @ dW + 0.9 * mean_part    # standard momentum on P_in dW
    assert np.allclose(P5 @ M_W, mean_part)  # P_in M: momentum
    # (I - P_in) M = (I - P_in) dW: none
    assert np.allclose(M_W - P5 @ M_W, dW - P5 @ dW)
print("P_in M follows standard momentum; (I - P_in) M is just the latest gradient")

# %% [markdown]
# ## The accepted answer's axis bug
#
# The answer used `tf.reduce_mean(accumulation, axis=1, keep_dims=True)` on a
# TF dense kernel, which is $(n_{\mathrm{in}}, n_{\mathrm{out}})$ like refnet's $W$. Axis 1 runs
# along a **row**: the outgoing connections of one input unit. In matrix form
# that is $M P_{\mathrm{out}}$ with $P_{\mathrm{out}} = \mathbf 1 \mathbf 1^T / n_{\mathrm{out}}$ — a
# different algorithm, which averages what one unit *sends* instead of what one
# neuron *receives*. On a square layer with symmetric numbers the mistake can
# hide; on the non-square example above it cannot:

# %%
incoming = refnet.average_incoming(M, axis=0)  # P_in M  : mean over rows of each column
# M P_out  : the answer's reduce_mean(axis=1)
outgoing = refnet.average_incoming(M, axis=1)
print("incoming (P_in M) =\n", incoming)
print("outgoing (M P_out, the answer's axis) =\n", outgoing)
assert np.allclose(outgoing, M @ refnet.averaging_matrix(2))
assert not np.allclose(incoming, outgoing)

# %% [markdown]
# As pictures, on a larger buffer ($n_{\mathrm{in}} = 6$ inputs, $n_{\mathrm{out}} = 4$ neurons):
# $P_{\mathrm{in}} M$ is constant down each **column** (each neuron's incoming connections
# share one momentum), $M P_{\mathrm{out}}$ constant along each **row** (each input unit's
# outgoing connections share one).

# %% tags=["hide-input"]
def plot_averaging(M):
    """Heatmaps of M, P_in M (incoming, axis 0) and M P_out (outgoing, axis 1)."""
    import matplotlib.pyplot as plt
    panels = {"$M$": M,
              "$P_{in} M$ (incoming)": refnet.average_incoming(M, axis=0),
              "$M P_{out}$ (outgoing)": refnet.average_incoming(M, axis=1)}
    lim = np.abs(M).max()
    fig, axes = plt.subplots(1, 3, figsize=(9.5, 3.4), layout="constrained")
    plt.close(fig)  # the cell shows fig
    for ax, (title, A) in zip(axes, panels.items()):
        im = ax.imshow(A, cmap="RdBu_r", vmin=-lim, vmax=lim)
        for (i, j), v in np.ndenumerate(A):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7)
        ax.set(title=title, xlabel="neuron j (column)",
               xticks=range(A.shape[1]), yticks=range(A.shape[0]))
    axes[0].set_ylabel("input i (row)")
    fig.colorbar(im, ax=axes, shrink=0.8)
    return fig


M6 = np.random.default_rng(5).normal(size=(6, 4)).round(1)   # a buffer (6, 4)
plot_averaging(M6) if HAVE_MPL else None

# %% [markdown]
# The "incoming" axis depends on the layout, so `average_incoming` takes it:
# refnet/Keras dense kernels $(n_{\mathrm{in}}, n_{\mathrm{out}})$ use `axis=0`; a PyTorch
# `nn.Linear.weight` is $(n_{\mathrm{out}}, n_{\mathrm{in}})$ and uses `axis=1`; a TF conv
# kernel $(H, W, C_{\mathrm{in}}, C_{\mathrm{out}})$ has fan-in $H W C_{\mathrm{in}}$ and uses
# `axis=(0, 1, 2)` (the answer's conv TODO):

# %%
# torch layout: same numbers
assert np.allclose(refnet.average_incoming(M.T, axis=1), incoming.T)
K = rng.standard_normal((3, 3, 2, 4))  # HWIO conv kernel
K_avg = refnet.average_incoming(K, axis=(0, 1, 2))
# P_in, fan-in 18
P18 = refnet.averaging_matrix(18)                              # fan-in 3 * 3 * 2 = 18
assert np.allclose(K_avg, (P18 @ K.reshape(18, 4)).reshape(K.shape))
print(f"conv kernel: every entry of output channel 0 is {K_avg[0, 0, 0, 0]:.4f},\n"
      f"the mean of its 18 incoming weights {K[..., 0].mean():.4f}")

# %% [markdown]
# ## Biases
#
# A bias $b_j$ is the weight of a connection from a constant-1 unit into
# neuron $j$: $Z = A_{prev} W + \mathbf 1 b = [A_{prev}, \mathbf 1] \begin{bmatrix} W \\ b \end{bmatrix}$.
# So it can be averaged together with column $j$ over the augmented
# $n_{\mathrm{in}} + 1$ rows: {py:class}`refnet.AveragedMomentum` `(include_bias=True)`.
# The default,
# `include_bias=False`, matches the question (which averaged weights only) and
# gives biases **standard** momentum — said explicitly, not left silent.
# One step from a non-zero buffer, against the augmented matrix form:

# %%
W, b = rng.standard_normal((3, 2)), rng.standard_normal(2)
dW, db = rng.standard_normal((3, 2)), rng.standard_normal(2)
M_W, M_b = rng.standard_normal((3, 2)), rng.standard_normal(2)  # some earlier momentum
opt = refnet.AveragedMomentum(lr=0.1, momentum=0.9, include_bias=True)
state = refnet.MomentumState([(M_W, M_b)])
(new_params,), new_state = opt.step([(W, b)], [(dW, db)], state)
M_aug = np.vstack([M_W, M_b])  # [M_W; M_b]  (4, 2)
# M <- dW + mu P_in M  (4 = n_in + 1)
M_aug = np.vstack([dW, db]) + 0.9 * refnet.averaging_matrix(4) @ M_aug
assert np.allclose(new_params[0], W - 0.1 * M_aug[:3])
assert np.allclose(new_params[1], b - 0.1 * M_aug[3])
print("include_bias=True equals averaging the augmented [W; b]")

# %% [markdown]
# ## A 2-D picture: one neuron, two incoming weights
#
# Averaging needs a neuron with at least two incoming connections (with one,
# $P_{\mathrm{in}} = 1$ and the method *is* standard momentum). The smallest case is a
# single linear neuron $y = x_0 w_0 + x_1 w_1 + b$ — `refnet.MLP([2, 1])`,
# whose $W$ is the column $(w_0, w_1)^T$ — fitted by least squares to targets
# $t = x\, w^\star$ with $w^\star = (1, 1)$. The inputs are centred with unit
# variance and correlation $\omega$ (exactly, so the bias stays at 0 and the
# problem is exactly two-dimensional; $\omega$, because $\rho$ is the residual of
# tutorial 01's retraction on every page):
#
# $$L(w) = \frac1n \sum_i \big(x_i (w - w^\star)\big)^2 = (w - w^\star)^T C (w - w^\star),
#   \qquad C = \begin{bmatrix} 1 & \omega \\ \omega & 1 \end{bmatrix}.$$
#
# The Hessian $2C$ has eigenvectors $u_+ = (1, 1)/\sqrt2$ with curvature
# $2(1 + \omega)$ and $u_- = (1, -1)/\sqrt2$ with curvature $2(1 - \omega)$. And
# $P_{\mathrm{in}} = u_+ u_+^T$: the column mean is exactly the $u_+$ component. So
# averaged momentum runs **heavy-ball momentum along $u_+$ and plain gradient
# descent along $u_-$** — on this problem the two directions never mix.
#
# * $\omega = -0.9$: $u_+$ is the flat, slow direction (curvature 0.2) and
#   $u_-$ the steep one (3.8). Momentum goes exactly where it is needed, and
#   the steep direction is spared momentum's oscillation.
# * $\omega = +0.9$: now $u_+$ is the steep direction and $u_-$ the slow one.
#   The slow direction gets no momentum: averaged momentum is plain SGD where
#   it matters.
#
# All three optimizers run with the same $\eta$ and $\mu$ from the same start;
# "steps" counts the steps until the loss stays below $10^{-8}$.

# %%
toy_net = refnet.MLP([2, 1], output_activation="identity")
W_STAR, W0, TOL = np.array([1.0, 1.0]), np.array([-1.5, 2.5]), 1e-8


def toy_problem(omega, n=64, seed=0):
    """Inputs X (n, 2): centred, covariance exactly [[1, omega], [omega, 1]];
    targets T = X w* (n, 1)."""
    Z = np.random.default_rng(seed).standard_normal((n, 2))
    Z = Z - Z.mean(axis=0)                                    # centred
    Z = Z @ np.linalg.inv(np.linalg.cholesky(Z.T @ Z / n)).T  # covariance exactly I
    C = np.array([[1.0, omega], [omega, 1.0]])
    X = Z @ np.linalg.cholesky(C).T                           # covariance exactly C
    return X, (X @ W_STAR)[:, None]


def toy_run(opt, X, T, steps):
    """Full-batch training from W0; returns the path of w (steps + 1, 2) and the
    losses (steps + 1,)."""
    params = [(W0.reshape(2, 1), np.zeros(1))]     # W (2, 1): the incoming weights
    state, path, losses = opt.init(params), [], []
    for _ in range(steps + 1):
        path.append(params[0][0][:, 0])
        # loss_and_grads then opt.step, in one call; the loss is at the params passed in
        loss, params, state = opt.train_step(toy_net, params, state, X, T, loss="mse")
        losses.append(float(loss))
    path = np.array(path)
    b = float(params[0][1][0])
    assert abs(b) <= 1e-12 * max(1.0, np.max(np.abs(path)))   # centred data: b stays 0
    return path, np.array(losses)


def settle(losses):
    """First step after which the loss stays below TOL (len(losses) if never)."""
    above = np.nonzero(losses >= TOL)[0]
    return 0 if above.size == 0 else int(above[-1]) + 1


def toy_optimizers(lr, mu):
    return {"SGD": refnet.SGD(lr), "Momentum": refnet.Momentum(lr, mu),
            "AveragedMomentum": refnet.AveragedMomentum(lr, mu)}


TOY_LR, TOY_MU, TOY_STEPS = 0.3, 0.8, 400
toy = {}
print(f"steps to L < 1e-8 at lr {TOY_LR}, mu {TOY_MU}:")
for omega in (-0.9, 0.9):
    X2, T2 = toy_problem(omega)
    H = 2 * X2.T @ X2 / len(X2)                    # Hessian of L(w) = 2 C   (2, 2)
    curv = {"u+": (H @ [1, 1]) @ [1, 1] / 2,       # u^T H u
            "u-": (H @ [1, -1]) @ [1, -1] / 2}
    assert np.isclose(curv["u+"], 2 * (1 + omega))
    assert np.isclose(curv["u-"], 2 * (1 - omega))
    toy[omega] = {name: toy_run(o, X2, T2, TOY_STEPS)
                for name, o in toy_optimizers(TOY_LR, TOY_MU).items()}
    steps = {name: settle(l) for name, (_, l) in toy[omega].items()}
    print(f"omega = {omega:+.1f} (curvature u+ {curv['u+']:.2f}, u- {curv['u-']:.2f}): "
          + ", ".join(f"{k} {v}" for k, v in steps.items()))
    toy[omega]["steps"] = steps
s_neg, s_pos = toy[-0.9]["steps"], toy[0.9]["steps"]
assert s_neg["AveragedMomentum"] < s_neg["Momentum"] < s_neg["SGD"]    # omega < 0
assert abs(s_pos["AveragedMomentum"] - s_pos["SGD"]) <= 1              # omega > 0
assert s_pos["SGD"] - s_pos["Momentum"] > 1


# %% tags=["hide-input"]
def plot_toy(toy, path):
    """Left: the first 60 steps of each path on the loss contours; right: loss per
    step. One row per omega."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(10, 8.5))
    plt.close(fig)                             # the cell shows fig
    g0, g1 = np.meshgrid(np.linspace(-2.0, 3.0, 201), np.linspace(-1.0, 3.5, 181))
    for (ax, ax_loss), omega in zip(axes, (-0.9, 0.9)):
        D0, D1 = g0 - W_STAR[0], g1 - W_STAR[1]
        L_grid = D0 * D0 + 2 * omega * D0 * D1 + D1 * D1        # (w - w*)^T C (w - w*)
        ax.contour(g0, g1, L_grid, levels=np.geomspace(1e-3, 20, 14), colors="0.75",
                   linewidths=0.7)
        for name in ("SGD", "Momentum", "AveragedMomentum"):
            w_path, losses = toy[omega][name]
            wide = name == "SGD"                   # drawn wide: others run on top of it
            style = dict(color=color(name), lw=4 if wide else 1.2,
                         alpha=0.5 if wide else 1)
            ax.plot(w_path[:60, 0], w_path[:60, 1], ".-", ms=3, label=name, **style)
            ax_loss.semilogy(np.maximum(losses, 1e-20), **style,
                             label=f"{name} ({toy[omega]['steps'][name]} steps)")
        ax.plot(*W_STAR, "k*", ms=10)
        slow = "$u_+ = (1, 1)/\\sqrt{2}$" if omega < 0 else "$u_- = (1, -1)/\\sqrt{2}$"
        ax.set(xlabel="$w_0$", ylabel="$w_1$", aspect="equal",
               title=f"$\\omega = {omega:+.1f}$: slow direction {slow}")
        ax_loss.axhline(TOL, color="k", lw=0.5, ls=":")
        ax_loss.set(xlabel="step", ylabel="loss", ylim=(1e-16, 1e2),
                    title=f"lr {TOY_LR}, mu {TOY_MU}")
        ax.legend(fontsize=8, loc="upper right")
        ax_loss.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


fig = plot_toy(toy, os.path.join(OUT, "02_toy_trajectories.png")) if HAVE_MPL else None
fig

# %% [markdown]
# The paths show the split. With $\omega = -0.9$ the averaged path (red) first
# drops across the valley along the steep $u_-$ direction exactly like SGD
# (wide gray), then runs along the flat $u_+$ valley with momentum's speed,
# while standard momentum (blue) swings back and forth across the valley.
# With $\omega = +0.9$ averaged momentum spends its momentum on the steep $u_+$
# direction (the red zigzag across the valley) and moves along the slow
# $u_-$ valley exactly like SGD: the red and gray loss curves coincide.
#
# One setting could be lucky, so here is the best number of steps each
# optimizer reaches over a grid of $\eta$ and $\mu$ (each tuned separately):

# %%
TOY_LRS, TOY_MUS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6), (0.3, 0.5, 0.7, 0.8, 0.9)
best_toy = {}
for omega in (-0.9, 0.9):
    X2, T2 = toy_problem(omega)
    best = {}
    for lr in TOY_LRS:
        for mu in TOY_MUS:
            for name, o in toy_optimizers(lr, mu).items():
                try:
                    n_steps = settle(toy_run(o, X2, T2, TOY_STEPS)[1])
                except FloatingPointError:         # diverged
                    n_steps = TOY_STEPS + 1
                if n_steps < best.get(name, (TOY_STEPS + 2,))[0]:
                    best[name] = (n_steps, lr, 0.0 if name == "SGD" else mu)
    best_toy[omega] = best
    print(f"omega = {omega:+.1f}, best over the grid:")
    for k, (n_steps, lr, mu) in best.items():
        print(f"  {k:<17} {n_steps:>4} steps (lr {lr}, mu {mu})")
bn, bp = ({k: v[0] for k, v in best_toy[r].items()} for r in (-0.9, 0.9))
assert bn["AveragedMomentum"] <= 1.5 * bn["Momentum"]
assert 2 * bn["AveragedMomentum"] < bn["SGD"]
assert 2 * bp["Momentum"] < bp["AveragedMomentum"] <= bp["SGD"]

# %% [markdown]
# Tuned, averaged momentum is about as fast as standard momentum when the
# slow direction is the column mean ($\omega < 0$, far ahead of SGD), and only
# somewhat better than SGD when the slow direction is a contrast between the
# inputs ($\omega > 0$, where tuned momentum is more than twice as fast). What matters is
# whether the *slow* directions of the loss lie in the range of $P_{\mathrm{in}}$.

# %% [markdown]
# ## On real data: the digits
#
# The UCI 8x8 handwritten digits (1797 images, shipped with refnet), pixel
# values scaled to $[0, 1]$, a random 75/25 split; a 64-32-10 tanh network
# with softmax cross-entropy, minibatches of 32, the same learning rate $\eta$
# and $\mu = 0.9$ for every momentum method. Five optimizers:
#
# * SGD at $\eta$, and SGD at $\eta / (1 - \mu)$ — the long-run step size of
#   momentum on a constant gradient, a control for "is it just a bigger step?";
# * Momentum (standard);
# * AveragedMomentum (incoming, this tutorial);
# * the accepted answer's variant (outgoing average, written below as a tiny
#   optimizer with the same `init`/`step` interface; not part of refnet).

# %%
class OutgoingAveragedMomentum:
    """The accepted answer's update: M_W <- dW + mu M_W P_out (mean over axis 1 of an
    (n_in, n_out) kernel = each input unit's outgoing connections); biases standard."""

    def __init__(self, lr, momentum):
        self.lr, self.momentum = lr, momentum

    def init(self, params):
        zeros = [(np.zeros_like(W), np.zeros_like(b)) for W, b in params]
        return refnet.MomentumState(zeros)

    def step(self, params, grads, state):
        mu = self.momentum
        M = [(dW + mu * refnet.average_incoming(mW, axis=1),   # M P_out (the bug)
              db + mu * mb)
             for (dW, db), (mW, mb) in zip(grads, state.accumulation)]
        new = [(W - self.lr * mW, b - self.lr * mb)            # theta <- theta - lr M
               for (W, b), (mW, mb) in zip(params, M)]
        return new, refnet.MomentumState(M)


LR, MU, BATCH = 0.05, 0.9, 32
EPOCHS, SEEDS = (3, [0]) if FAST else (15, [0, 1, 2])
OPTIMIZERS = {                                     # name: (lr, mu, averaging)
    "SGD": (LR, 0.0, "none"),
    "SGD, lr/(1-mu)": (LR / (1 - MU), 0.0, "none"),
    "Momentum": (LR, MU, "none"),
    "AveragedMomentum (in)": (LR, MU, "in"),
    "answer's variant (out)": (LR, MU, "out"),
}


def make_opt(lr, mu, mode):
    """The optimizer object of one setting (mu = 0: SGD)."""
    if mu == 0.0:
        return refnet.SGD(lr)
    kind = {"none": refnet.Momentum, "in": refnet.AveragedMomentum,
            "out": OutgoingAveragedMomentum}[mode]
    return kind(lr, mu)
CE = "softmax_cross_entropy"

data = digits_split(seed=0)
T_train = one_hot(data.y_train, data.n_classes)    # (n_train, 10)
net = refnet.MLP([data.X_train.shape[1], 32, data.n_classes], activation="tanh")
print(f"{data.name}: train {data.X_train.shape}, test {data.X_test.shape}; "
      f"network {net.sizes}")


def train(setting, seed, epochs):
    """Minibatch training; per-epoch (train loss, test accuracy), epoch 0 = initial.

    A run that overflows (FloatingPointError) gets an infinite loss from then on.
    """
    rng = np.random.default_rng(seed)              # weights and batch order
    params, opt = net.init(seed=rng), make_opt(*setting)
    state = opt.init(params)

    def evaluate():
        loss, _ = net.loss_and_grads(params, data.X_train, T_train, loss=CE)
        predicted = np.argmax(net.forward(params, data.X_test), axis=1)
        return float(loss), float(np.mean(predicted == data.y_test))

    curve = [evaluate()]
    for _ in range(epochs):
        order = rng.permutation(len(T_train))
        try:
            for start in range(0, len(order), BATCH):
                idx = order[start:start + BATCH]
                _, grads = net.loss_and_grads(params, data.X_train[idx], T_train[idx],
                                              loss=CE)
                params, state = opt.step(params, grads, state)
        except FloatingPointError:                 # diverged: loss inf, accuracy chance
            return np.array(curve + [(np.inf, 0.1)] * (epochs + 1 - len(curve)))
        curve.append(evaluate())
    return np.array(curve)                         # (epochs + 1, 2)


# %% [markdown]
# `train` runs one optimizer at a time. The comparison below and the sweep after it
# train dozens of runs that share everything but the optimizer: for one seed, the
# same initial weights and the same minibatches. So we stack the $R$ runs along a
# leading axis and train them all at once: every weight matrix becomes a stack
# $(R, n_{l-1}, n_l)$, every matrix product a batched one (`@` broadcasts over the
# leading axis), and $\eta$, $\mu$ become arrays of shape $(R, 1, 1)$. SGD is
# momentum with $\mu = 0$ ($M = dW + 0 \cdot M = dW$ exactly); the averaged variants
# differ from standard momentum only in the term $\mu M$, which becomes
# $\mu P_{\mathrm{in}} M$ (incoming) or $\mu M P_{\mathrm{out}}$ (outgoing), chosen per run by a mask.
# A run that overflows ends with a NaN loss, reported as infinite loss and chance
# accuracy, as `train` reports a `FloatingPointError`. The stack must be the loop:
# a few settings, trained both ways, are asserted equal.

# %%
def train_stack(lrs, mus, modes, seed, epochs, every_epoch=True):
    """R runs trained at once; per-epoch (train loss, test accuracy), epoch 0 =
    initial (R, epochs + 1, 2); with every_epoch=False the last epoch's only (R, 1, 2).

    lrs, mus: (R,) learning rates and momenta (mu = 0: SGD); modes: (R,) "none"
    (standard momentum), "in" (AveragedMomentum, include_bias=False: biases get
    standard momentum) or "out" (the answer's variant). Same initial weights and
    minibatches as ``train(setting, seed, epochs)``.
    """
    rng = np.random.default_rng(seed)
    init = net.init(seed=rng)                      # [(W_1 (64, 32), b_1), (W_2, b_2)]
    R = len(lrs)
    lr = np.asarray(lrs, dtype=float)[:, None, None]   # (R, 1, 1)
    mu = np.asarray(mus, dtype=float)[:, None, None]   # (R, 1, 1)
    inc = (np.asarray(modes) == "in")[:, None, None]   # (R, 1, 1) masks
    out = (np.asarray(modes) == "out")[:, None, None]
    theta = []                                     # [W_1, b_1, W_2, b_2], stacked
    for W, b in init:                      # W_l (R, n_{l-1}, n_l), b_l (R, 1, n_l)
        theta += [np.repeat(W[None], R, axis=0), np.repeat(b[None, None], R, axis=0)]
    M = [np.zeros_like(t) for t in theta]

    def forward(X, s=slice(None)):
        """A_1 and Y of the runs s: all of them (stacked) or one (s an int)."""
        W1, b1, W2, b2 = (t[s] for t in theta)
        A1 = np.tanh(X @ W1 + b1)          # A_1 = tanh(X W_1 + 1 b_1)    (R, n, 32)
        return A1, A1 @ W2 + b2            # Y = A_1 W_2 + 1 b_2          (R, n, 10)

    def loss_and_G(Y, T):
        Ys = Y - Y.max(axis=-1, keepdims=True)     # shifted logits: softmax unchanged
        logP = Ys - np.log(np.exp(Ys).sum(axis=-1, keepdims=True))   # log softmax(Y)
        loss = -np.sum(T * logP, axis=(-2, -1)) / len(T)             # (R,)
        return loss, (np.exp(logP) - T) / len(T)   # G = (S - T) / n       (R, n, 10)

    def evaluate():
        """(train loss, test accuracy) of each run, one run at a time: on the full
        sets a 2-D product is much faster than a stacked one          (R, 2)."""
        rows = []
        for s in range(R):
            loss, _ = loss_and_G(forward(data.X_train, s)[1], T_train)
            acc = np.mean(forward(data.X_test, s)[1].argmax(axis=-1) == data.y_test)
            rows.append((loss, acc) if np.isfinite(loss) else (np.inf, 0.1))
        return np.array(rows)                      # overflowed: inf loss, chance acc.

    with np.errstate(over="ignore", invalid="ignore"):
        curve = [evaluate()] if every_epoch else []
        for epoch in range(1, epochs + 1):
            order = rng.permutation(len(T_train))
            for start in range(0, len(order), BATCH):
                idx = order[start:start + BATCH]
                X, T = data.X_train[idx], T_train[idx]
                A1, Y = forward(X)
                _, G = loss_and_G(Y, T)
                D1 = (G @ theta[2].swapaxes(-1, -2)) * (1 - A1 * A1)
                # Delta_1 = (G W_2^T) * tanh'(Z_1)                     (R, n, 32)
                grads = [X.T @ D1, D1.sum(axis=-2, keepdims=True),
                         A1.swapaxes(-1, -2) @ G, G.sum(axis=-2, keepdims=True)]
                # dW_1 = X^T Delta_1, db_1 = 1^T Delta_1, dW_2 = A_1^T G, db_2 = 1^T G
                for i, g in enumerate(grads):
                    carry = M[i]
                    if i % 2 == 0:                 # weights: P_in M or M P_out by mask
                        P_in_M = M[i].mean(axis=-2, keepdims=True)    # P_in M
                        M_P_out = M[i].mean(axis=-1, keepdims=True)   # M P_out
                        carry = np.where(inc, P_in_M, np.where(out, M_P_out, M[i]))
                    M[i] = g + mu * carry          # M <- dW + mu (P_in M | M P_out | M)
                    theta[i] = theta[i] - lr * M[i]   # W <- W - lr M
            if every_epoch or epoch == epochs:
                curve.append(evaluate())
    return np.stack(curve, axis=1)                 # (R, epochs + 1, 2)


CHECK = ["SGD", "Momentum", "AveragedMomentum (in)", "answer's variant (out)"]
t0 = time.perf_counter()
stacked = train_stack(*zip(*(OPTIMIZERS[name] for name in CHECK)), seed=0, epochs=2)
print("stack vs one-run loop: train loss and test accuracy per epoch, 2 epochs")
for name, c_stack in zip(CHECK, stacked):
    c_loop = train(OPTIMIZERS[name], 0, 2)
    err = np.max(np.abs(c_stack - c_loop) / np.abs(c_loop))
    print(f"  {name:<23} max relative difference {err:.1e}")
    assert err <= 1e-9
print(f"({time.perf_counter() - t0:.1f} s)")

t0 = time.perf_counter()
runs = [train_stack(*zip(*OPTIMIZERS.values()), seed=s, epochs=EPOCHS) for s in SEEDS]
curves = {name: np.stack([run[i] for run in runs])            # (seeds, epochs + 1, 2)
          for i, name in enumerate(OPTIMIZERS)}
print(f"trained {len(OPTIMIZERS)} optimizers x {len(SEEDS)} seeds x {EPOCHS} epochs "
      f"in {time.perf_counter() - t0:.1f} s")

# %%
early = min(3, EPOCHS)
print(f"mean (std) over seeds {SEEDS}; lr={LR}, mu={MU}, batch {BATCH}")
print(f"{'optimizer':<23}{'loss ep ' + str(early):>17}{'final loss':>17}"
      f"{'test acc':>17}")
for name, c in curves.items():
    le, lf, af = c[:, early, 0], c[:, -1, 0], c[:, -1, 1]
    print(f"{name:<23}{le.mean():>9.4f} ({le.std():.3f}){lf.mean():>9.4f} "
          f"({lf.std():.3f}){af.mean():>9.4f} ({af.std():.3f})")
final = {name: c[:, -1, 0].mean() for name, c in curves.items()}
print("final train loss relative to Momentum:")
for name, v in final.items():
    print(f"  {name:<23} x{v / final['Momentum']:.1f}")
assert final["Momentum"] == min(final.values())                 # momentum ends lowest
for variant in ("AveragedMomentum (in)", "answer's variant (out)"):
    assert 0.8 * final["SGD"] < final[variant] < final["SGD"]   # just ahead of SGD
assert final["Momentum"] < final["SGD, lr/(1-mu)"] < final["SGD"]   # bigger step: part

# %% tags=["hide-input"]
def plot_curves(curves, path):
    """Train loss (mean over seeds, thin lines per seed) and test accuracy per epoch."""
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    plt.close(fig)  # the cell shows fig
    epochs = np.arange(EPOCHS + 1)
    for name, c in curves.items():
        col = color(name)
        ax1.semilogy(epochs, c[:, :, 0].mean(axis=0), color=col, label=name)
        ax2.plot(epochs, c[:, :, 1].mean(axis=0), color=col, label=name)
        for s in range(len(SEEDS)):            # thin lines: individual seeds
            ax1.semilogy(epochs, c[s, :, 0], color=col, alpha=0.25, lw=0.8)
    ax1.set(xlabel="epoch", ylabel="train softmax cross-entropy", title=data.name)
    ax2.set(xlabel="epoch", ylabel="test accuracy", ylim=(0.5, 1.0))
    ax1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


path = os.path.join(OUT, "02_averaged_momentum.png")
fig = plot_curves(curves, path) if HAVE_MPL else None
fig

# %% [markdown]
# Standard momentum ends far lower than everything else at the same learning
# rate (the ratios are printed above). Incoming-averaged momentum and the
# answer's outgoing variant both track **plain SGD at the same learning
# rate**, only slightly ahead of it. This matches the question's report that
# the variant converges more slowly than SGD with momentum on MNIST. The SGD
# control at $\eta/(1-\mu)$ shows that part of momentum's advantage is its
# larger effective step. Incoming and outgoing averaging are different
# algorithms (the tests prove it on non-square layers), and neither is a
# faster optimizer on this problem.
#
# ## A learning-rate / momentum sweep
#
# Perhaps $\eta = 0.05$, $\mu = 0.9$ just suits standard momentum. So we
# sweep: SGD over $\eta$, Momentum and AveragedMomentum over $\eta \times \mu$,
# and compare the final training loss (mean over seeds). A run that overflows
# counts as infinite loss.

# %%
if FAST:
    SWEEP_LRS, SWEEP_MUS = (0.03, 0.1, 0.3, 1.0), (0.5, 0.9)
    SWEEP_EPOCHS, SWEEP_SEEDS = 3, [0]
else:
    SWEEP_LRS, SWEEP_MUS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0), (0.5, 0.9, 0.99)
    SWEEP_EPOCHS, SWEEP_SEEDS = 15, [0, 1, 2]
settings = [("SGD", lr, 0.0) for lr in SWEEP_LRS] + [
    (name, lr, mu) for lr in SWEEP_LRS for mu in SWEEP_MUS
    for name in ("Momentum", "AveragedMomentum")]
lrs, mus = [s[1] for s in settings], [s[2] for s in settings]
modes = ["in" if s[0] == "AveragedMomentum" else "none" for s in settings]

t0 = time.perf_counter()
final_sweep = np.mean([train_stack(lrs, mus, modes, seed, SWEEP_EPOCHS,
                                   every_epoch=False)[:, -1, 0]
                       for seed in SWEEP_SEEDS], axis=0)  # mean over seeds
sweep = dict(zip(settings, final_sweep))
print(f"sweep: {len(sweep)} settings x {len(SWEEP_SEEDS)} seeds x {SWEEP_EPOCHS} "
      f"epochs in {time.perf_counter() - t0:.1f} s\n")

print(f"final train loss after {SWEEP_EPOCHS} epochs (mean over seeds {SWEEP_SEEDS})")
print(f"{'lr':>5}{'SGD':>9}" + "".join(f"{'Mom ' + str(mu):>10}{'Avg ' + str(mu):>10}"
                                      for mu in SWEEP_MUS))
for lr in SWEEP_LRS:
    print(f"{lr:>5}{sweep[('SGD', lr, 0.0)]:>9.4f}" + "".join(
        f"{sweep[('Momentum', lr, mu)]:>10.4f}"
        f"{sweep[('AveragedMomentum', lr, mu)]:>10.4f}"
        for mu in SWEEP_MUS))

best = {name: min((v, lr, mu) for (n_, lr, mu), v in sweep.items() if n_ == name)
        for name in ("SGD", "Momentum", "AveragedMomentum")}
print("\nbest setting of each optimizer:")
for name, (v, lr, mu) in best.items():
    print(f"  {name:<17} {v:.4f} (lr {lr}, mu {mu})")
moderate = [(lr, mu) for lr in SWEEP_LRS for mu in SWEEP_MUS
            if lr / (1 - mu) < 5]                       # momentum's long-run step
ratio = {name: np.array([sweep[(name, lr, mu)] / sweep[("SGD", lr, 0.0)]
                         for lr, mu in moderate])
         for name in ("Momentum", "AveragedMomentum")}
print("final loss / SGD's at the same lr, settings with lr/(1-mu) < 5:")
for name, r in ratio.items():
    print(f"  {name:<17} {r.min():.2f} to {r.max():.2f}")
wins = [(lr, mu) for lr in SWEEP_LRS for mu in SWEEP_MUS
        if sweep[("AveragedMomentum", lr, mu)] < sweep[("Momentum", lr, mu)]]
print("settings where AveragedMomentum ends below Momentum:" + ("" if wins else
                                                                " none"))
for lr, mu in wins:
    print(f"  lr {lr}, mu {mu}: Momentum {sweep[('Momentum', lr, mu)]:.3g}, "
          f"Averaged {sweep[('AveragedMomentum', lr, mu)]:.3g}")

# the claims of the text below, checked on the numbers just printed
assert best["Momentum"][0] < 0.5 * best["AveragedMomentum"][0]   # tuned momentum wins
assert 0.7 * best["SGD"][0] < best["AveragedMomentum"][0]        # averaging ~ tuned SGD
assert all(sweep[("Momentum", lr, mu)] > best["SGD"][0]
           for lr, mu in wins)  # wins where momentum broke
assert np.all(np.abs(np.log(ratio["AveragedMomentum"]))
              < np.abs(np.log(ratio["Momentum"])))              # nearer SGD

# %% tags=["hide-input"]
def plot_sweep(sweep, path, ceil=10.0):
    """Final train loss against lr: colour = optimizer, line style = mu.
    Diverged or blown-up runs are drawn at ``ceil``."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    plt.close(fig)  # the cell shows fig
    clip = lambda v: min(v, ceil)
    ax.loglog(SWEEP_LRS, [clip(sweep[("SGD", lr, 0.0)]) for lr in SWEEP_LRS], ".-",
              color=color("SGD"), label="SGD")
    for mu in SWEEP_MUS:
        for name, marker in (("Momentum", "o"), ("AveragedMomentum", "s")):
            ax.loglog(SWEEP_LRS, [clip(sweep[(name, lr, mu)]) for lr in SWEEP_LRS],
                      marker=marker, ls=MU_STYLES[mu], color=color(name), mfc="none",
                      label=f"{name}, mu {mu}")
    ax.axhline(ceil, color="0.6", lw=0.6, ls=":")
    ax.set(xlabel="learning rate",
           ylabel=f"train loss after {SWEEP_EPOCHS} epochs (capped at {ceil:g})",
           title=f"{data.name}, 64-32-10 tanh")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return fig


fig = plot_sweep(sweep, os.path.join(OUT, "02_sweep.png")) if HAVE_MPL else None
fig

# %% [markdown]
# The sweep confirms the single comparison. Tuned, standard momentum ends
# several times lower than tuned averaged momentum, and tuned averaged
# momentum is about as good as tuned **plain SGD** (or a little worse). At
# equal $\eta$ and a moderate $\eta/(1-\mu) < 5$ it ends much nearer to SGD
# than to standard momentum (the printed ratio ranges). The only settings
# where averaged momentum ends below standard momentum are those where
# standard momentum has broken down — its effective step $\eta/(1-\mu)$ is so
# large that it ends worse than tuned plain SGD — because averaged momentum
# gives most directions no momentum and so stays stable longer.
#
# ## Why: where the column mean points on the digits
#
# The 2-D picture says averaging helps only if the slow directions of the
# loss lie along the column means. For the first layer, the (Gauss-Newton)
# curvature of the loss along one column of $W_1$ is a sum of the samples'
# outer products $x_i^T x_i$ with non-negative weights; with equal weights it
# is the inputs' second-moment matrix $C = X^T X / n$ ($64 \times 64$; exactly
# the curvature of a linear neuron under the mse, as in the toy). Pixels are
# non-negative, so $C$ has one dominant eigenvector, close to the mean image,
# and the all-ones direction leans heavily on it (the cosine is printed
# below). The column-mean direction is therefore among the **steepest**
# directions of the first layer: the $\omega = +0.9$ case of the toy, where
# averaging gives momentum to the direction that needs it least.
# For the second layer (32 tanh inputs of both signs) the column mean is
# just one direction out of 32, and it carries only a few percent of the
# gradient.

# %%
C = data.X_train.T @ data.X_train / len(data.X_train)   # second moment    (64, 64)
eig, vecs = np.linalg.eigh(C)                          # ascending eigenvalues
u = np.ones(64) / 8.0                                  # unit all-ones direction
rayleigh = u @ C @ u                                   # curvature along the column mean
cos_top = abs(vecs[:, -1] @ u)                         # cosine with the top eigenvector
print(f"C = X^T X / n: largest eigenvalue {eig[-1]:.2f}, median {np.median(eig):.4f}")
print(f"along the all-ones direction {rayleigh:.2f}; cosine with the top eigenvector "
      f"{cos_top:.2f}")
assert rayleigh > 0.5 * eig[-1] and rayleigh > 100 * np.median(eig) and cos_top > 0.5

# the share of each layer's gradient in the range of P_in (gets momentum), one SGD epoch
rng = np.random.default_rng(0)
params_, shares = net.init(seed=0), []
for start in range(0, len(T_train), BATCH):
    idx = rng.permutation(len(T_train))[:BATCH]
    _, grads = net.loss_and_grads(params_, data.X_train[idx], T_train[idx], loss=CE)
    shares.append([np.sum(refnet.average_incoming(dW) ** 2) / np.sum(dW ** 2)
                   for dW, _ in grads])                # |P_in dW|^2 / |dW|^2
    params_ = [(W - 0.1 * dW, b - 0.1 * db)            # SGD step
               for (W, b), (dW, db) in zip(params_, grads)]
share = np.mean(shares, axis=0)
print(f"share of |dW|^2 in the column means (gets momentum): layer 1 {share[0]:.2f}, "
      f"layer 2 {share[1]:.3f}\n(1/n_in would be {1 / 64:.3f} and {1 / 32:.3f})")
assert share[0] > 5 / 64 and share[1] < 3 / 32

# %% [markdown]
# So in the first layer a large share of the gradient does get momentum, but
# it is the steep common-mode share (all of a neuron's pixel weights moving
# together), which plain SGD already handles well; the many flat directions
# — contrasts between pixels, which is what recognising a digit needs — get
# none. In the second layer only a few percent of the gradient gets momentum.
#
# ## When averaged momentum helps, and when it hurts
#
# * It **helps** (relative to SGD, and even relative to standard momentum at
#   the same $\eta, \mu$) when the slow, consistent part of each neuron's
#   gradient is the column mean — all incoming weights of a neuron wanting to
#   move together — while the contrasts between inputs are steep: the
#   $\omega < 0$ toy. Tuned, it then matches standard momentum.
# * It **hurts** (relative to standard momentum) when the slow directions are
#   contrasts between a neuron's inputs: there it *is* plain SGD. That is the
#   $\omega > 0$ toy and, measured above, the digits network, where no setting
#   of $\eta, \mu$ made it better than tuned momentum; it only outlasted
#   momentum where momentum's step was too large to be stable.
# * The reason is the projection: $P_{\mathrm{in}} M$ gets momentum,
#   $(I - P_{\mathrm{in}}) M$ is just the latest gradient. With fan-in $n_{\mathrm{in}}$ that
#   leaves $n_{\mathrm{in}} - 1$ of every $n_{\mathrm{in}}$ directions of each column without
#   momentum.

# %% [markdown]
# ## Exercises
#
# Each exercise has a hint; its solution follows it, the derivation in words and
# the check in a hidden code cell that asserts it against an independent
# computation.
#
# ### Exercise 1: the spectrum of $P_{\mathrm{in}}$
#
# Show that $P_{\mathrm{in}}$ has the eigenvalue 1 once (eigenvector $\mathbf 1$) and 0 with
# multiplicity $n_{\mathrm{in}} - 1$, and that $\langle P_{\mathrm{in}} A, (I - P_{\mathrm{in}}) A \rangle_F = 0$
# for any $A$ (the two parts of the buffer are orthogonal). Check with
# `numpy.linalg.eigh`.
#
# *Hint:* apply $P_{\mathrm{in}}$ to $\mathbf 1$ and to a vector whose entries sum to zero;
# for the second part use $P_{\mathrm{in}}^T = P_{\mathrm{in}} = P_{\mathrm{in}}^2$.

# %% [markdown]
# **Solution 1.** $P_{\mathrm{in}} \mathbf 1 = \mathbf 1 (\mathbf 1^T \mathbf 1) / n_{\mathrm{in}}
# = \mathbf 1$, and $P_{\mathrm{in}} v = \mathbf 1 (\mathbf 1^T v) / n_{\mathrm{in}} = 0$ for every $v$
# in the $(n_{\mathrm{in}} - 1)$-dimensional space $\mathbf 1^T v = 0$: together a full
# eigenbasis, eigenvalues $1$ (once) and $0$ ($n_{\mathrm{in}} - 1$ times). And
#
# $$\langle P_{\mathrm{in}} A, (I - P_{\mathrm{in}}) A \rangle_F
#   = \operatorname{tr}\big(A^T P_{\mathrm{in}}^T (I - P_{\mathrm{in}}) A\big)
#   = \operatorname{tr}\big(A^T (P_{\mathrm{in}} - P_{\mathrm{in}}^2) A\big) = 0 . \qquad \square$$

# %% tags=["hide-cell"]
n_in = 7
P7 = refnet.averaging_matrix(n_in)
evals, V = np.linalg.eigh(P7)                        # independent: LAPACK
assert np.allclose(evals, [0.0] * (n_in - 1) + [1.0], atol=1e-15)
assert np.allclose(np.abs(V[:, -1]), 1 / np.sqrt(n_in))   # eigenvector 1 / sqrt(n)
A7 = np.random.default_rng(3).standard_normal((n_in, 4))
inner = np.sum((P7 @ A7) * (A7 - P7 @ A7))         # <P A, (I - P) A>_F
print(f"eigenvalues {evals.round(12)}, <P A, (I - P) A> = {inner:.1e}")
assert abs(inner) < 1e-12

# %% [markdown]
# ### Exercise 2: the steady state under a constant gradient
#
# With a constant gradient $dW$, standard momentum's buffer tends to
# $dW / (1 - \mu)$ (the "effective step" $\eta/(1-\mu)$). Derive the limit for
# averaged momentum and check it by running `AveragedMomentum` for many steps.
#
# *Hint:* use the two decoupled recursions for $P_{\mathrm{in}} M$ and $(I - P_{\mathrm{in}}) M$.

# %% [markdown]
# **Solution 2.** $P_{\mathrm{in}} M \leftarrow P_{\mathrm{in}}\, dW + \mu P_{\mathrm{in}} M$ has the fixed
# point $P_{\mathrm{in}} M^\star = P_{\mathrm{in}}\, dW / (1 - \mu)$, and
# $(I - P_{\mathrm{in}}) M^\star = (I - P_{\mathrm{in}})\, dW$. Adding the two,
#
# $$M^\star = dW + \frac{\mu}{1 - \mu} P_{\mathrm{in}}\, dW :$$
#
# only the column means are amplified by $1 / (1 - \mu)$.

# %% tags=["hide-cell"]
mu_ = 0.9
dW_ = np.random.default_rng(4).standard_normal((5, 3))
params_c = [(np.zeros((5, 3)), np.zeros(3))]
opt_c = refnet.AveragedMomentum(lr=1e-3, momentum=mu_)
state_c = opt_c.init(params_c)
for _ in range(400):                               # mu^400 ~ 5e-19: converged
    params_c, state_c = opt_c.step(params_c, [(dW_, np.zeros(3))], state_c)
M_star = dW_ + mu_ / (1 - mu_) * (np.ones((5, 5)) / 5) @ dW_   # P written out by hand
err_c = np.max(np.abs(state_c.accumulation[0][0] - M_star))
print(f"max |M_400 - (dW + mu/(1-mu) P dW)| = {err_c:.1e}")
assert err_c < 1e-12

# %% [markdown]
# ### Exercise 3: predict the 2-D race
#
# On the toy, each optimizer converges along each eigendirection at a rate set by
# the curvature $h$ there: plain descent at $|1 - \eta h|$, heavy-ball momentum at
# the spectral radius of
# $\begin{bmatrix} 1 + \mu - \eta h & -\mu \\ 1 & 0 \end{bmatrix}$. Compute the
# predicted worst-direction rate of each optimizer for both values of $\omega$ at the
# tutorial's $\eta, \mu$, and check it against the measured step counts.
#
# *Hint:* averaged momentum runs heavy-ball along $u_+$ and plain descent along
# $u_-$.

# %% [markdown]
# **Solution 3.** With $h_\pm = 2(1 \pm \omega)$, the worst rates are
# $\max_\pm |1 - \eta h_\pm|$ (SGD), $\max_\pm r_{hb}(h_\pm)$ (momentum) and
# $\max\big(r_{hb}(h_+), |1 - \eta h_-|\big)$ (averaged). For $\omega < 0$ the slow
# direction is $u_+$, which gets momentum, so averaged momentum shares momentum's
# worst rate; for $\omega > 0$ the slow direction $u_-$ gets none, so it shares
# SGD's. (Averaged beats momentum at $\omega < 0$ although the worst rates tie: its
# steep direction decays at $|1 - \eta h_-|$ instead of $\sqrt\mu$.)

# %% tags=["hide-cell"]
def heavy_ball_rate(lr, mu, h):
    """Spectral radius of the heavy-ball iteration matrix at curvature h."""
    return max(abs(np.linalg.eigvals(np.array([[1 + mu - lr * h, -mu], [1.0, 0.0]]))))


rates = {}
for omega in (-0.9, 0.9):
    h_plus, h_minus = 2 * (1 + omega), 2 * (1 - omega)     # curvatures along u+ and u-
    rate = rates[omega] = {
        "SGD": max(abs(1 - TOY_LR * h) for h in (h_plus, h_minus)),
        "Momentum": max(heavy_ball_rate(TOY_LR, TOY_MU, h) for h in (h_plus, h_minus)),
        "AveragedMomentum": max(heavy_ball_rate(TOY_LR, TOY_MU, h_plus),
                                abs(1 - TOY_LR * h_minus))}
    print(f"omega = {omega:+.1f}: predicted worst rates "
          + ", ".join(f"{k} {v:.3f}" for k, v in rate.items()))
    print("            measured steps "
          + ", ".join(f"{k} {v}" for k, v in toy[omega]["steps"].items()))
r, s = rates[-0.9], toy[-0.9]["steps"]             # omega < 0: u+ (slow) gets momentum
assert np.isclose(r["AveragedMomentum"], r["Momentum"]) and r["Momentum"] < r["SGD"]
assert max(s["AveragedMomentum"], s["Momentum"]) < s["SGD"]
r, s = rates[0.9], toy[0.9]["steps"]               # omega > 0: u- (slow) gets none
assert np.isclose(r["AveragedMomentum"], r["SGD"]) and r["Momentum"] < r["SGD"]
assert s["Momentum"] < min(s["AveragedMomentum"], s["SGD"])
