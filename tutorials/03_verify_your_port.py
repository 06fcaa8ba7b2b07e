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
# # 03 — Verify your own implementation
#
# You have ported the MLP, incoming-averaged momentum and the frozen-output
# projection to your own framework. **How do you prove that your port computes
# what refnet computes, to the last few units of rounding, on the awkward cases
# too, and when it does not, get the smallest input that shows the difference?**
#
# This tutorial writes a JAX port (float64) of everything, the frozen-output
# projection and step included, lets `refnet.conformance` compare it with
# refnet quantity by quantity, checks a real library (PyTorch) with an adapter
# refnet ships, plants a bug and watches it get caught and shrunk, and finally
# exports golden files that a C or Julia port can check against without Python.
#
# Notation as in the other tutorials: per-sample vectors are **rows**.
# $A_0 = X$ $(n, n_0)$, $Z_l = A_{l-1} W_l + b_l$, $A_l = \phi_l(Z_l)$,
# $Y = A_L$, $W_l$ of shape $(n_{l-1}, n_l)$. $G = \partial L / \partial Y$
# (only that), $\Delta_l = \partial L / \partial Z_l$, and the gradients are
# $dW_l = A_{l-1}^\top \Delta_l$, $db_l = \mathbf 1^\top \Delta_l$. $M$ is the
# momentum buffer (only that). $J$ is the $(m, p)$ Jacobian of the frozen
# outputs on the anchors. Indices are 0-based.
#
# Run as a script: `python tutorials/03_verify_your_port.py` (`REFNET_FAST=1`
# runs only the fixed core cases; `REFNET_OUT=DIR` says where files go).

# %%
import json
import os
import pathlib
import tempfile
import textwrap
from functools import partial
from importlib.util import find_spec

# The kit's cases are tiny and nearly every one brings new shapes, so a run waits
# on XLA compiling, not computing. XLA's fast-compile settings, read when JAX
# starts, make this tutorial's runs about 1.5x faster; results are still XLA's.
os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""),
                                    "--xla_backend_optimization_level=0",
                                    "--xla_cpu_use_fusion_emitters=false"]).strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import refnet  # noqa: E402
from refnet.conformance import layout, run  # noqa: E402

FAST = os.environ.get("REFNET_FAST") == "1"
OUT = os.environ.get("REFNET_OUT", ".")
# figures need matplotlib (the `plots` extra)
HAVE_MPL = find_spec("matplotlib") is not None
# core cases only, or core + hypothesis
PROFILE = "core" if FAST else "quick"
np.set_printoptions(precision=4, suppress=True)


def show(text, width=88):
    """Print text with its long lines wrapped (reports carry whole cases as JSON)."""
    for line in str(text).splitlines():
        indent = " " * (len(line) - len(line.lstrip()) + 4)
        print(textwrap.fill(line, width, subsequent_indent=indent,
                            break_long_words=False, break_on_hyphens=False)
              if line.strip() else "")

# %% [markdown]
# ## 1. A port is an object with a few methods
#
# The kit calls whatever subset of these your port has (the rest are skipped,
# with the reason): `forward`, `vjp`, `loss_and_grads`, `jacobian`,
# `project_out`, `frozen_step`, `optimizer_step`. Each receives the network
# description `spec` (a `refnet.MLP`: read `spec.sizes`, `spec.activation`,
# `spec.output_activation`) and NumPy float64 arrays in the port's `layout`
# ("refnet": $W_l$ is $(n_{l-1}, n_l)$; "torch": its transpose), and may return
# anything `numpy.asarray` accepts.
#
# Our JAX port keeps parameters the Flax way, a list of
# `{"kernel": W, "bias": b}` dicts, so the layout is "refnet". Incoming-averaged
# momentum replaces the buffer of connection $i \to j$ by the mean over the
# connections entering neuron $j$, a column mean of the kernel:
#
# $$M \leftarrow dW + \mu\, P_{\rm in} M, \qquad
#   P_{\rm in} = \frac{\mathbf 1 \mathbf 1^\top}{n_{l-1}}, \qquad
#   W \leftarrow W - \eta M .$$
#
# The frozen-output projection is the headline algorithm, so the port has it
# too. With $g$ the flat gradient and $J$ the Jacobian of the frozen outputs on
# the anchors, $g_\perp = g - V_r V_r^\top g$, where $V_r$ holds the right
# singular vectors of $J$ whose singular values lie above `rtol` $s_{\max}$.
# The kit passes `rtol` (refnet's cutoff); a port uses it **explicitly**:
# `jnp.linalg.pinv`'s own default is 10 times larger (exercise 2). The frozen
# step projects, steps, then retracts: $\theta \leftarrow \theta - J^+ r$ with
# $r = c(\theta) - c(\theta_0)$ until the frozen outputs are back to rounding.
#
# The Jacobian and the projection are `jax.jit`-compiled, once per network kind
# and shape (the activations are a static argument). Inside `jit` every array
# has a fixed shape, so $V_r V_r^\top g$ is written $V\,\mathrm{diag}(k)\,V^\top g$
# with $k_i = 1$ for a kept singular value and 0 otherwise.

# %%
PHI = {"identity": lambda z: z, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh,
       "relu": jax.nn.relu, "softplus": jax.nn.softplus}
EPS = float(np.finfo(np.float64).eps)


def x64(method):
    """Run a port method with float64 enabled (only inside the call)."""
    def wrapped(*args, **kw):
        with jax.enable_x64(True):
            return jax.tree_util.tree_map(np.asarray, method(*args, **kw))
    return wrapped


def activations(spec):
    """Each layer's activation name, as a tuple (hashable: a static argument)."""
    L = len(spec.sizes) - 1
    return tuple(spec.activation if l < L - 1 else spec.output_activation
                 for l in range(L))


def mlp(acts, tree, X):
    a = X
    for act, layer in zip(acts, tree):
        # A_l = phi(A_{l-1} W_l + b_l)
        a = PHI[act](a @ layer["kernel"] + layer["bias"])
    return a


@partial(jax.jit, static_argnums=0)
def jac(acts, tree, X, K):
    """J (n |K|, p) of Y[:, K] w.r.t. the ravel_pytree vector."""
    flat, unravel = ravel_pytree(tree)
    # jacrev gives (n, |K|, p)
    J = jax.jacrev(lambda v: mlp(acts, unravel(v), X)[:, K])(flat)
    return J.reshape(-1, flat.shape[0])


def cutoff(J, rtol):
    # ports written before the kit passed rtol: the array-API pinv default
    return max(J.shape) * EPS if rtol is None else rtol


@partial(jax.jit, static_argnums=0)
def project(acts, tree, v, anchors, K, rtol):
    """v - V_r V_r^T v for a tree v shaped like the parameters."""
    J = jac(acts, tree, anchors, K)
    g, unravel = ravel_pytree(v)
    _, s, Vt = jnp.linalg.svd(J, full_matrices=False)
    # k_i = 1 where s_i > rtol s_max (the columns of V_r), else 0
    k = s > cutoff(J, rtol) * s.max(initial=0.0)
    # g - V_r (V_r^T g) = g - V diag(k) V^T g
    return unravel(g - Vt.T @ (k * (Vt @ g)))


class JaxPort:
    name = "my JAX port"
    # kernels are (n_in, n_out)
    layout = "refnet"

    @staticmethod
    def tree(params):
        return [{"kernel": jnp.asarray(W), "bias": jnp.asarray(b)} for W, b in params]

    @staticmethod
    def pairs(tree):
        return [(d["kernel"], d["bias"]) for d in tree]

    @x64
    def forward(self, spec, params, X):
        return mlp(activations(spec), self.tree(params), jnp.asarray(X))

    @x64
    def vjp(self, spec, params, X, G):
        f = partial(mlp, activations(spec))
        _, pull = jax.vjp(lambda t: f(t, jnp.asarray(X)), self.tree(params))
        return self.pairs(pull(jnp.asarray(G))[0])

    @x64
    def jacobian(self, spec, params, X, outputs):
        return jac(activations(spec), self.tree(params), jnp.asarray(X),
                   jnp.asarray(outputs))

    @x64
    def project_out(self, spec, params, grads, anchors, outputs, rtol=None):
        return self.pairs(project(activations(spec), self.tree(params),
                                  self.tree(grads), jnp.asarray(anchors),
                                  jnp.asarray(outputs), rtol))

    @x64
    def frozen_step(self, spec, params, X, G, freeze, lr, anchors, rtol=None):
        acts, tree = activations(spec), self.tree(params)
        A, K = jnp.asarray(anchors), jnp.asarray(freeze)
        # frozen outputs in jacrev's (sample-major) order: c[i |K| + k] = Y[i, K_k]
        c = lambda t: mlp(acts, t, A)[:, K].reshape(-1)
        c0 = c(tree)
        _, pull = jax.vjp(lambda t: mlp(acts, t, jnp.asarray(X)), tree)
        g_perp = project(acts, tree, pull(jnp.asarray(G))[0], A, K, rtol)
        # theta - lr g_perp
        tree = jax.tree_util.tree_map(lambda p, d: p - lr * d, tree, g_perp)
        tol = 1e-12 * max(1.0, float(jnp.abs(c0).max()))
        for _ in range(20):
            r = c(tree) - c0
            if float(jnp.abs(r).max()) <= tol:
                break
            J = jac(acts, tree, A, K)
            flat, unravel = ravel_pytree(tree)
            # Gauss-Newton: theta - J^+ r, rtol explicit
            tree = unravel(flat - jnp.linalg.pinv(J, rtol=cutoff(J, rtol)) @ r)
        return self.pairs(tree)

    def mean_in(self, M):
        # column mean: a neuron's incoming connections
        return jnp.broadcast_to(M.mean(axis=0), M.shape)

    @x64
    def optimizer_step(self, name, hyper, params, grads, state):
        lr, mu = hyper["lr"], hyper.get("momentum", 0.0)
        W_b = [(jnp.asarray(W), jnp.asarray(b)) for W, b in params]
        d = [(jnp.asarray(dW), jnp.asarray(db)) for dW, db in grads]
        if name == "sgd":
            return [(W - lr * dW, b - lr * db)
                    for (W, b), (dW, db) in zip(W_b, d)], None
        M = state or [(jnp.zeros_like(W), jnp.zeros_like(b)) for W, b in W_b]
        if name == "averaged_momentum" and not hyper["include_bias"]:
            M = [(self.mean_in(MW), Mb) for MW, Mb in M]
        elif name == "averaged_momentum":
            # b_j: the weight of a constant-1 input, averaged with column j
            m = [(MW.sum(axis=0) + Mb) / (MW.shape[0] + 1) for MW, Mb in M]
            M = [(jnp.broadcast_to(v, MW.shape), v) for v, (MW, _) in zip(m, M)]
        # M <- dW + mu M
        M = [(dW + mu * MW, db + mu * Mb) for (dW, db), (MW, Mb) in zip(d, M)]
        U = M
        if hyper.get("nesterov"):
            # Nesterov: the update is dW + mu M
            U = [(dW + mu * MW, db + mu * Mb) for (dW, db), (MW, Mb) in zip(d, M)]
        return [(W - lr * UW, b - lr * Ub) for (W, b), (UW, Ub) in zip(W_b, U)], M


port = JaxPort()

# %% [markdown]
# ## 2. Orders: convert once, declare, never compare by hand
#
# refnet's Jacobian of the outputs $K$ on $n$ samples is $(|K| n, p)$ with
# **output-major rows** (row $k n + i$ is $\partial Y_{i, K_k} / \partial \theta$)
# and **columns in flatten order** ($W_1$ row-major, $b_1$, $W_2$, ...). `jacrev`
# over the `ravel_pytree` vector gives **sample-major rows** (row $i |K| + k$) and
# **bias-first columns** (`ravel_pytree` sorts dict keys, and "bias" < "kernel").
# Both are permutations,
#
# $$J_{\text{port}} = P_{\text{rows}}\, J_{\text{refnet}}\, P_{\text{cols}},$$
#
# so a naive entrywise comparison is meaningless:

# %%
spec = refnet.MLP([3, 4, 2], activation="tanh")
params = spec.init(seed=0)
X = np.random.default_rng(0).uniform(-1, 1, (5, 3))
J_ref = np.asarray(spec.jacobian(params, X, outputs=[0, 1]))
J_port = port.jacobian(spec, params, X, [0, 1])
naive = np.max(np.abs(J_port - J_ref))
print(f"naive max |J_port - J_ref| = {naive:.2f}")
assert naive > 0.1
J_back = layout.jacobian_to_refnet(J_port, spec.sizes, n=5, K=2,
                                   rows="sample_major", columns="bias_first")
print(f"after jacobian_to_refnet:  {np.max(np.abs(J_back - J_ref)):.1e}")
print("port column 0 is", layout.column_name(spec.sizes, "bias_first", 0))
print("refnet column 0 is", layout.column_name(spec.sizes, "refnet", 0))
assert np.max(np.abs(J_back - J_ref)) < 1e-14

# %% [markdown]
# Rather than permuting inside the port, **declare** the orders and let the kit
# convert (and report failing entries in your own order). The projection never
# needs the declaration: $J$ and $g$ share `ravel_pytree`'s column order, and a
# permutation of the columns permutes $g_\perp$ the same way.

# %%
JaxPort.jacobian_rows = "sample_major"
JaxPort.jacobian_columns = "bias_first"

# %% [markdown]
# ## 3. Run the kit
#
# Quantities are checked in computation order (forward, loss, vjp, grads,
# jacobian, project_out, frozen_step, optimizer_step, trajectory,
# projected_trajectory). A fixed set of core cases always runs (every activation,
# square and non-square layers, widths of 1, both losses, every optimizer
# variant, and the hard cases: tiny inputs, saturated units, near-duplicate
# anchors, widely scaled layers, $m$ close to $p$), then hypothesis draws more.
# From the command line the same run is
# `python -m refnet conformance run --port my_module:JaxPort`.
#
# `optimizer_step` is run for **two** steps, the second from refnet's parameters
# after the first (so errors do not compound) and from the port's own state:
# the buffer starts at $M = 0$, so the first step is $\theta - \eta\, dW$
# whatever the averaging, and only the second can tell incoming from outgoing
# averaging. `frozen_step` is compared by its invariants first (the frozen
# outputs stay put on the anchors, the trained ones make progress), then
# entrywise.

# %%
report = run(port, profile=PROFILE)
show(report)
assert report.ok
assert {r.quantity: r.status for r in report.results}["frozen_step"] == "pass"

# %% [markdown]
# ## 4. A real library, through a shipped adapter
#
# refnet ships adapters for the libraries people port to: PyTorch, optax,
# Keras 3 (JAX backend), TensorFlow 1's `MomentumOptimizer`, and the original
# question's own TF1 optimizer with its answer's `reduce_mean(axis=1)` as the
# known-bad example. Each is one self-contained file in
# `refnet/conformance/adapters/`, so a porter copies it and runs it alone:
#
# ```
# python -m refnet conformance run --port torch_port.py:PORT
# ```
#
# The PyTorch adapter is an `nn.Sequential` differentiated with `torch.func`,
# stepped by `torch.optim.SGD`, projected with `torch.linalg.pinv(J, rtol=rtol)`.
# `torch.optim.SGD` has no incoming-averaged momentum, so the adapter declares
# the variants it has (`optimizers`) and the kit generates no case for the rest.
# The [conformance matrix](conformance_matrix.md) lists every adapter's result
# per quantity, the library differences each one had to handle (`nn.Softplus`'s
# threshold, TF1's float32 learning rate and float32 `losses.mean_squared_error`,
# Keras's float32 promotion, even in `keras.ops.mean` of float64 values), and how
# the usual OGD projections (Gram-Schmidt, QR) fail where `pinv` with an
# explicit `rtol` does not.

# %%
from refnet.conformance import load_port  # noqa: E402
from refnet.conformance.adapters import PATHS  # noqa: E402

print(sorted(PATHS))
if find_spec("torch") is not None:
    torch_port = load_port(f"{PATHS['torch_port']}:PORT")
    print("optimizers:", torch_port.optimizers)
    torch_report = run(torch_port, profile="core")
    show(torch_report)
    assert torch_report.ok
    status = {r.quantity: r.status for r in torch_report.results}
    assert status["project_out"] == status["frozen_step"] == "pass"
else:
    print("PyTorch is not installed: pip install torch==2.13.0")

# %% [markdown]
# ## 5. What the tolerances mean
#
# Each tolerance is derived, per entry, from a running rounding-error bound, not
# picked by hand. For the forward pass, with $\gamma_k = k\,\varepsilon$,
#
# $$E_{Z_l} = \gamma_{n_{l-1}+1} \left(|A_{l-1}|\,|W_l| + |b_l|\right)
#   + E_{A_{l-1}} |W_l|,$$
#
# $$E_{A_l} = |\phi_l'(Z_l)|\, E_{Z_l} + 2\varepsilon\,(|A_l| + 1),$$
#
# and an entry of $Y$ may differ by $4 E_{A_L}$ (two implementations, each
# within the bound, and a factor 2 for what first-order bounds leave out).
# Gradients and Jacobians use the same bound run backwards. A projection
# $g_\perp = g - V_r V_r^\top g$ is only as well defined as its smallest kept
# singular value $s_r$ allows (perturbation theory of orthogonal projectors):
#
# $$|g_\perp^{\text{port}} - g_\perp^{\text{refnet}}| \le
#   4\,\frac{\text{cutoff} + \lVert E_J \rVert_F}{s_r}\,\lVert g \rVert_2 ,$$
#
# and when a singular value sits so close to the cutoff that rounding can move
# it across, the rank itself is undefined: such cases are reported as *not
# comparable*, with the reason, instead of being compared entrywise. How much
# room did our port leave? The ratio $|{\rm port} - {\rm refnet}| / {\rm tol}$
# on the core cases:

# %%
from refnet.conformance import core_cases, tolerances  # noqa: E402


def worst_ratio(case):
    """max |Y_port - Y_ref| / tol over Y's entries for one case."""
    spec_c, a = case.network(), case.arrays()
    eps = tolerances.EPS["float64"]
    E = tolerances.forward_bound(spec_c, a["params"], a["X"], eps)[2][-1]
    Y = port.forward(spec_c, a["params"], a["X"])
    Y_ref = np.asarray(spec_c.forward(a["params"], a["X"]))
    return float(np.max(np.abs(Y - Y_ref) / (tolerances.SAFETY * E)))


ratios = [worst_ratio(c) for c in core_cases()]
print("forward: max error / tolerance per core case:")
print(np.array(ratios))
assert max(ratios) < 1.0


# %%
def plot_ratios(ratios, path=None):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3))
    # the cell shows fig; pyplot keeps no reference
    plt.close(fig)
    names = [c.kind if c.kind != "plain" else f"plain {i}"
             for i, c in enumerate(core_cases())]
    ax.bar(names, np.maximum(ratios, 1e-3))
    ax.axhline(1.0, color="k", ls="--", label="tolerance")
    ax.set(yscale="log", ylabel="max |port - refnet| / tol",
           title="forward, JAX port, core cases")
    ax.tick_params(axis="x", rotation=60, labelsize=7)
    ax.legend()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


fig = plot_ratios(ratios, os.path.join(OUT, "03_headroom.png")) if HAVE_MPL else None
fig

# %% [markdown]
# ## 6. A bug, caught and shrunk
#
# The most natural slip when porting incoming averaging, and the one the
# original answer made: averaging the kernel's other axis. For a kernel
# $(n_{l-1}, n_l)$, `mean(axis=1)` averages a neuron's **outgoing**
# connections, $M \frac{\mathbf 1 \mathbf 1^\top}{n_l}$, a different
# algorithm. The kit finds it, shrinks the case to the smallest network and
# data that still show it, and prints a one-line replay command:

# %%
class OutgoingPort(JaxPort):
    name = "my JAX port, averaging axis 1"

    def mean_in(self, M):
        # the bug: outgoing connections
        return jnp.broadcast_to(M.mean(axis=1, keepdims=True), M.shape)


bad = run(OutgoingPort(), profile=PROFILE,
          quantities=["optimizer_step", "trajectory"],
          replay="python -m refnet conformance run --port my_module:OutgoingPort")
show(bad)
failure = bad.results[0]
assert not bad.ok and failure.status == "fail"
assert failure.mismatch.where.startswith("step 2, W_")
# built on optimizer_step: reported, not re-failed
assert bad.results[1].status == "blocked"
show("\nshrunk case: " + failure.case.to_json())

# %% [markdown]
# The shrunk case is plain data: `Case.from_json(...)` rebuilds it, and
# `case.arrays()` gives the exact NumPy inputs, so the bug can be studied in
# isolation. `--save-failures DIR` writes it as golden files (next section).

# %% [markdown]
# ## 7. Golden files for ports in any language
#
# `python -m refnet conformance export DIR` writes refnet's answers on the core
# cases: `manifest.json` (format version, refnet version, byte order, a sha256
# per file), and per case a `case.json` (what to compute, the inputs, the
# expected outputs and a same-shape file of per-entry tolerances) with the
# arrays as **raw little-endian float64, row-major**, plus an `.npz`. A C or
# Julia program reads them with `fread` / `read!`; here we read them back with
# nothing but `json` and `numpy.fromfile`, and recompute the forward cases with
# a few lines of NumPy:

# %%
from refnet.conformance import golden  # noqa: E402

# generated on demand, never shipped
root = pathlib.Path(tempfile.mkdtemp()) / "golden"
golden.export(root, quantities=("forward", "vjp", "jacobian", "optimizer_step"))
manifest = json.loads((root / "manifest.json").read_text())
keys = ("format", "format_version", "byte_order", "dtype", "layout")
for k in keys:
    print(f"{k}: {manifest[k]}")
print(len(manifest["cases"]), "cases")

act = {"identity": lambda z: z, "tanh": np.tanh,
       "sigmoid": lambda z: 0.5 * (1 + np.tanh(z / 2)),
       "relu": lambda z: np.maximum(z, 0), "softplus": lambda z: np.logaddexp(0, z)}


def read(d, e):
    # raw little-endian float64, row-major
    return np.fromfile(d / e["file"], dtype="<f8").reshape(e["shape"])


n_ok = 0
for entry in (e for e in manifest["cases"] if e["quantity"] == "forward"):
    desc = json.loads((root / entry["description"]).read_text())
    d, ins, net_ = root / entry["name"], desc["inputs"], desc["network"]
    sizes = net_["sizes"]
    A = read(d, ins["X"])
    for l in range(1, len(sizes)):
        name = net_["activation"] if l < len(sizes) - 1 else net_["output_activation"]
        A = act[name](A @ read(d, ins[f"W_{l}"]) + read(d, ins[f"b_{l}"]))
    Y = desc["expected"]["Y"]
    tol = np.fromfile(d / Y["tol"], dtype="<f8").reshape(Y["shape"])
    n_ok += bool(np.all(np.abs(A - read(d, Y)) <= tol))
    # what a candidate writes back
    A.astype("<f8").tofile(d / "result.Y.bin")
print(f"{n_ok} forward cases reproduced without refnet")
assert n_ok == sum(e["quantity"] == "forward" for e in manifest["cases"])

# = python -m refnet conformance check DIR
ok, lines = golden.check(root)
print("\n".join(lines[:3]), "...")
assert ok

# %% [markdown]
# ## Exercises
#
# ### Exercise 1
#
# PyTorch's `torch.nn.functional.softplus` (and `nn.Softplus`) returns $z$
# itself above $z = 20$ (its `threshold`). How large is the error at $z = 24$,
# and how many times the kit's forward tolerance is it for a single unit
# $Y = \mathrm{softplus}(x w + b)$ with $x = 24$, $w = 1$, $b = 0$?
#
# *Hint:* $\mathrm{softplus}(z) - z = \log(1 + e^{-z})$, and
# $\mathrm{softplus}'(z) = \sigma(z)$, which is $\approx 1$ at $z = 24$: the
# error of $Z$ passes to $Y$ at full strength. Let
# `tolerances.forward_bound` do the bookkeeping on a 1-1 network.
#
# **Solution 1.** $\log(1 + e^{-24}) \approx 3.8 \times 10^{-11}$. The bound is
# $E_Y = \sigma(24)\, E_Z + 2\varepsilon\,(|Y| + 1)$ with
# $E_Z = \gamma_2\,(|x|\,|w| + |b|)$, a few times $10^{-14}$: the slip is
# hundreds of tolerances, so the kit rejects it (the torch adapter uses
# `torch.logaddexp(z, 0)` instead).

# %%
one = refnet.MLP([1, 1], output_activation="softplus")
p1, x1 = [(np.array([[1.0]]), np.array([0.0]))], np.array([[24.0]])
E_Y = tolerances.forward_bound(one, p1, x1, tolerances.EPS["float64"])[2][-1]
tol_1 = float(tolerances.SAFETY * E_Y[0, 0])
err = float(np.log1p(np.exp(-24.0)))
slope = float(jax.nn.sigmoid(24.0))
print(f"softplus'(24) = {slope:.12f}")
print(f"error {err:.2e}, tolerance {tol_1:.2e}: {err / tol_1:.0f} times")
assert slope > 0.999 and err / tol_1 > 100

# %% [markdown]
# ### Exercise 2
#
# Give the port a `project_out` that calls `jnp.linalg.pinv` **without**
# `rtol`: its default cutoff is $10 \max(m, p)\,\varepsilon\, s_{\max}$, not
# the `rtol` the kit passes (refnet's, `refnet.frozen.default_rtol`). Which
# singular values does it treat differently from refnet, and when does the kit
# fail it rather than call the case ambiguous?
#
# *Hint:* compare the two cutoffs for the 3-4-2 net with $m = 4$ constraint
# rows, and look up `tolerances.AMBIGUITY`.
#
# **Solution 2.** The singular values between the two cutoffs are kept by one
# and dropped by the other. A value within a factor `AMBIGUITY` of refnet's
# cutoff lies in the kit's ambiguity band, where rounding alone can move it
# across: the rank is undefined there, so the kit checks only the directions
# clear of the band. A value between the cutoffs but outside the band is a real
# difference, and the kit fails the port there. Passing `rtol=` removes both.

# %%
m_rows = 4
kit_rtol = refnet.frozen.default_rtol(spec, m_rows, "float64")
pinv_rtol = 10 * max(m_rows, spec.n_params) * EPS
print(f"kit's rtol {kit_rtol:.1e}, pinv's default {pinv_rtol:.1e},",
      f"ratio {pinv_rtol / kit_rtol:.1f}, AMBIGUITY {tolerances.AMBIGUITY:g}")
assert kit_rtol != pinv_rtol

# %% [markdown]
# ### Exercise 3
#
# Write `OutgoingPort`'s step 2 by hand for a $1 \times 1$ kernel: with buffer
# $M_1 = dW_1$ after step 1, show that incoming and outgoing averaging give
# the same update, so the shrunk case must have a layer with $n_{l-1} > 1$ or
# $n_l > 1$.
#
# *Hint:* the mean of one number is that number.
#
# **Solution 3.** For a $1 \times 1$ kernel both $P_{\rm in} M$ and
# $M P_{\rm out}$ are $M$ itself, so both give $M_2 = dW_2 + \mu M_1$: the bug
# is invisible there. The shrunk case above has a wider layer:

# %%
M1 = jnp.asarray([[0.7]])
assert np.array_equal(np.asarray(OutgoingPort().mean_in(M1)),
                      np.asarray(port.mean_in(M1)))
W_shapes = list(zip(failure.case.sizes[:-1], failure.case.sizes[1:]))
print("shrunk case layer shapes:", W_shapes)
assert any(a > 1 or b > 1 for a, b in W_shapes)
