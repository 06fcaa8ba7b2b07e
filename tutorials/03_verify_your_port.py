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
# This tutorial writes a JAX port (float64), lets `refnet.conformance` compare
# it with refnet quantity by quantity, plants a bug and watches it get caught and
# shrunk, and finally exports golden files that a C or Julia port can check
# against without Python.
#
# Notation as in the other tutorials: $A_0 = X$ $(n, n_0)$,
# $Z_l = A_{l-1} W_l + b_l$, $A_l = \phi_l(Z_l)$, $Y = A_L$, $W_l$ of shape
# $(n_{l-1}, n_l)$; $G = \partial L / \partial Y$,
# $\Delta_l = \partial L / \partial Z_l$; $M$ is a momentum buffer.
# Indices are 0-based.
#
# Run as a script: `python tutorials/03_verify_your_port.py` (`REFNET_FAST=1`
# runs only the fixed core cases; `REFNET_OUT=DIR` says where files go).

# %%
import json
import os
import pathlib
import tempfile
from importlib.util import find_spec

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import refnet
from refnet.conformance import Case, layout, run

FAST = os.environ.get("REFNET_FAST") == "1"
OUT = os.environ.get("REFNET_OUT", ".")
HAVE_MPL = find_spec("matplotlib") is not None           # figures need matplotlib (the `plots` extra)
PROFILE = "core" if FAST else "quick"                    # core cases only, or core + hypothesis
np.set_printoptions(precision=4, suppress=True)

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
# $$M \leftarrow G_W + \mu\, \frac{\mathbf 1 \mathbf 1^\top}{n_{l-1}} M, \qquad W \leftarrow W - \eta M .$$

# %%
PHI = {"identity": lambda z: z, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu,
       "softplus": jax.nn.softplus}


class JaxPort:
    name = "my JAX port"
    layout = "refnet"                                       # kernels are (n_in, n_out)

    @staticmethod
    def tree(params):
        return [{"kernel": jnp.asarray(W), "bias": jnp.asarray(b)} for W, b in params]

    @staticmethod
    def net(spec):
        L = len(spec.sizes) - 1

        def f(tree, X):
            a = X
            for l, layer in enumerate(tree):
                phi = PHI[spec.activation if l < L - 1 else spec.output_activation]
                a = phi(a @ layer["kernel"] + layer["bias"])  # A_l = phi(A_{l-1} W_l + b_l)
            return a
        return f

    def forward(self, spec, params, X):
        with jax.enable_x64(True):
            return np.asarray(self.net(spec)(self.tree(params), jnp.asarray(X)))

    def vjp(self, spec, params, X, G):
        with jax.enable_x64(True):
            _, pull = jax.vjp(lambda t: self.net(spec)(t, jnp.asarray(X)), self.tree(params))
            return [(np.asarray(d["kernel"]), np.asarray(d["bias"])) for d in pull(jnp.asarray(G))[0]]

    def jacobian(self, spec, params, X, outputs):
        """jacrev of Y[:, outputs] w.r.t. the ravel_pytree vector: (n, K, p) -> (n K, p)."""
        with jax.enable_x64(True):
            flat, unravel = ravel_pytree(self.tree(params))
            J = jax.jacrev(lambda v: self.net(spec)(unravel(v), jnp.asarray(X))[:, jnp.asarray(outputs)])(flat)
            return np.asarray(J.reshape(-1, flat.shape[0]))

    def mean_in(self, M):
        return jnp.broadcast_to(M.mean(axis=0), M.shape)     # column mean: a neuron's incoming connections

    def optimizer_step(self, name, hyper, params, grads, state):
        lr, mu = hyper["lr"], hyper.get("momentum", 0.0)
        with jax.enable_x64(True):
            W_b = [(jnp.asarray(W), jnp.asarray(b)) for W, b in params]
            g = [(jnp.asarray(W), jnp.asarray(b)) for W, b in grads]
            if name == "sgd":
                return [(W - lr * gW, b - lr * gb) for (W, b), (gW, gb) in zip(W_b, g)], None
            M = state or [(jnp.zeros_like(W), jnp.zeros_like(b)) for W, b in W_b]
            if name == "averaged_momentum" and not hyper["include_bias"]:
                M = [(self.mean_in(MW), Mb) for MW, Mb in M]
            elif name == "averaged_momentum":                # b_j: the weight of a constant-1 input
                M = [(jnp.broadcast_to(m, MW.shape), m) for MW, Mb in M
                     for m in [(MW.sum(axis=0) + Mb) / (MW.shape[0] + 1)]]
            M = [(gW + mu * MW, gb + mu * Mb) for (gW, gb), (MW, Mb) in zip(g, M)]    # M <- G + mu M
            U = [(gW + mu * MW, gb + mu * Mb) for (gW, gb), (MW, Mb) in zip(g, M)] if hyper.get("nesterov") else M
            new = [(np.asarray(W - lr * UW), np.asarray(b - lr * Ub)) for (W, b), (UW, Ub) in zip(W_b, U)]
            return new, M


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
J_back = layout.jacobian_to_refnet(J_port, spec.sizes, n=5, K=2, rows="sample_major", columns="bias_first")
print(f"after jacobian_to_refnet:  {np.max(np.abs(J_back - J_ref)):.1e}")
print("port column 0 is", layout.column_name(spec.sizes, "bias_first", 0), "; refnet column 0 is",
      layout.column_name(spec.sizes, "refnet", 0))
assert np.max(np.abs(J_back - J_ref)) < 1e-14

# %% [markdown]
# Rather than permuting inside the port, **declare** the orders and let the kit
# convert (and report failing entries in your own order):

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
# the buffer starts at $M = 0$, so the first step is
# $\theta - \eta G$ whatever the averaging, and only the second can tell
# incoming from outgoing averaging.

# %%
report = run(port, profile=PROFILE)
print(report)
assert report.ok

# %% [markdown]
# ## 4. What the tolerances mean
#
# Each tolerance is derived, per entry, from a running rounding-error bound, not
# picked by hand. For the forward pass, with $\gamma_k = k\,\varepsilon$,
#
# $$E_{Z_l} = \gamma_{n_{l-1}+1} \left(|A_{l-1}|\,|W_l| + |b_l|\right) + E_{A_{l-1}} |W_l|,
#   \qquad E_{A_l} = |\phi_l'(Z_l)|\, E_{Z_l} + 2\varepsilon\,(|A_l| + 1),$$
#
# and an entry of $Y$ may differ by $4 E_{A_L}$ (two implementations, each
# within the bound, and a factor 2 for what first-order bounds leave out).
# Gradients and Jacobians use the same bound run backwards. A projection
# $g_\perp = g - V_r V_r^\top g$ is only as well defined as its smallest kept
# singular value $s_r$ allows (perturbation theory of orthogonal projectors):
#
# $$|g_\perp^{\text{port}} - g_\perp^{\text{refnet}}| \le
#   4\,\frac{\max(m, p)\,\varepsilon\, s_{\max} + \lVert E_J \rVert_F}{s_r}\,\lVert g \rVert_2 ,$$
#
# and when a singular value sits so close to the cutoff
# $\max(m, p)\,\varepsilon\, s_{\max}$ that rounding can move it across, the
# rank itself is undefined: such cases are reported as *not comparable*, with
# the reason, instead of being compared entrywise. How much room did our port
# leave? The ratio $|{\rm port} - {\rm refnet}| / {\rm tol}$ on the core cases:

# %%
from refnet.conformance import checks, core_cases, tolerances  # noqa: E402


def worst_ratio(case):
    """max |Y_port - Y_ref| / tol over Y's entries for one case."""
    spec_c, a = case.network(), case.arrays()
    E = tolerances.forward_bound(spec_c, a["params"], a["X"], tolerances.EPS["float64"])[2][-1]
    Y = port.forward(spec_c, a["params"], a["X"])
    return float(np.max(np.abs(Y - np.asarray(spec_c.forward(a["params"], a["X"]))) / (tolerances.SAFETY * E)))


ratios = [worst_ratio(c) for c in core_cases()]
print("forward: max error / tolerance per core case:", np.array(ratios))
assert max(ratios) < 1.0


# %%
def plot_ratios(ratios, path=None):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3))
    plt.close(fig)                                            # the cell shows fig; pyplot keeps no reference
    ax.bar([c.kind if c.kind != "plain" else f"plain {i}" for i, c in enumerate(core_cases())],
           np.maximum(ratios, 1e-3))
    ax.axhline(1.0, color="k", ls="--", label="tolerance")
    ax.set(yscale="log", ylabel="max |port - refnet| / tol", title="forward, JAX port, core cases")
    ax.tick_params(axis="x", rotation=60, labelsize=7)
    ax.legend()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


fig = plot_ratios(ratios, os.path.join(OUT, "03_headroom.png")) if HAVE_MPL else None
fig

# %% [markdown]
# ## 5. A bug, caught and shrunk
#
# The most natural slip when porting incoming averaging: averaging the kernel's
# other axis. For a kernel $(n_{l-1}, n_l)$, `mean(axis=1)` averages a neuron's
# **outgoing** connections, $M \frac{\mathbf 1 \mathbf 1^\top}{n_l}$, a different
# algorithm. The kit finds it, shrinks the case to the smallest network and data
# that still show it, and prints a one-line replay command:

# %%
class OutgoingPort(JaxPort):
    name = "my JAX port, averaging axis 1"

    def mean_in(self, M):
        return jnp.broadcast_to(M.mean(axis=1, keepdims=True), M.shape)   # the bug: outgoing


bad = run(OutgoingPort(), profile=PROFILE, quantities=["optimizer_step", "trajectory"],
          replay="python -m refnet conformance run --port my_module:OutgoingPort")
print(bad)
failure = bad.results[0]
assert not bad.ok and failure.status == "fail" and failure.mismatch.where.startswith("step 2, W_")
assert bad.results[1].status == "blocked"                 # built on optimizer_step: reported, not re-failed
print("\nshrunk case:", failure.case)

# %% [markdown]
# The shrunk case is plain data: `Case.from_json(...)` rebuilds it, and
# `case.arrays()` gives the exact NumPy inputs, so the bug can be studied in
# isolation. `--save-failures DIR` writes it as golden files (next section).

# %% [markdown]
# ## 6. Golden files for ports in any language
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

root = pathlib.Path(tempfile.mkdtemp()) / "golden"           # generated on demand, never shipped
golden.export(root, quantities=("forward", "vjp", "jacobian", "optimizer_step"))
manifest = json.loads((root / "manifest.json").read_text())
print({k: manifest[k] for k in ("format", "format_version", "byte_order", "dtype", "layout")},
      len(manifest["cases"]), "cases")

act = {"identity": lambda z: z, "tanh": np.tanh, "sigmoid": lambda z: 0.5 * (1 + np.tanh(z / 2)),
       "relu": lambda z: np.maximum(z, 0), "softplus": lambda z: np.logaddexp(0, z)}
read = lambda d, e: np.fromfile(d / e["file"], dtype="<f8").reshape(e["shape"])     # raw float64
n_ok = 0
for entry in (e for e in manifest["cases"] if e["quantity"] == "forward"):
    desc = json.loads((root / entry["description"]).read_text())
    d, ins, sizes = root / entry["name"], desc["inputs"], desc["network"]["sizes"]
    A = read(d, ins["X"])
    for l in range(1, len(sizes)):
        name = desc["network"]["activation"] if l < len(sizes) - 1 else desc["network"]["output_activation"]
        A = act[name](A @ read(d, ins[f"W_{l}"]) + read(d, ins[f"b_{l}"]))
    Y = desc["expected"]["Y"]
    tol = np.fromfile(d / Y["tol"], dtype="<f8").reshape(Y["shape"])
    n_ok += bool(np.all(np.abs(A - read(d, Y)) <= tol))
    A.astype("<f8").tofile(d / "result.Y.bin")              # what a candidate writes back
print(f"{n_ok} forward cases reproduced without refnet")
assert n_ok == sum(e["quantity"] == "forward" for e in manifest["cases"])

ok, lines = golden.check(root)                            # = python -m refnet conformance check DIR
print("\n".join(lines[:3]), "...")
assert ok

# %% [markdown]
# ## Exercises
#
# 1. PyTorch's `torch.nn.functional.softplus` returns $z$ itself above $z = 20$
#    (its `threshold`). How large is the error at $z = 24$, and how many times
#    the kit's forward tolerance is it for $Y = \mathrm{softplus}(z)$ of a single
#    unit? (Hint: $\mathrm{softplus}(z) - z = \log(1 + e^{-z})$.)
# 2. Give the port a `project_out` that uses `jnp.linalg.pinv` with its default
#    cutoff, $10 \max(m, p)\,\varepsilon\, s_{\max}$. Which singular values can
#    it treat differently from refnet, and why does the kit report those cases
#    as ambiguous instead of failing them?
# 3. Write `OutgoingPort`'s shrunk case's step 2 by hand: with buffer
#    $M_1 = G_1$ after step 1, show that incoming and outgoing averaging give the
#    same update when the kernel is $1 \times 1$, so the shrunk case must have a
#    layer with $n_{l-1} > 1$ or $n_l > 1$.

# %% tags=["hide-cell"]
# Solution 1: log(1 + e^-24) = 3.8e-11; the bound for one unit is about 4 * 2 eps (|A| + 1) ~ 4.4e-14.
z = 24.0
err = np.log1p(np.exp(-z))
tol_1 = tolerances.SAFETY * 2 * tolerances.EPS["float64"] * (z + 1)    # E_A's own-rounding term, |phi'| E_Z ~ 0
print(f"error {err:.2e}, tolerance about {tol_1:.2e}: {err / tol_1:.0f} times")
assert err / tol_1 > 100

# %% tags=["hide-cell"]
# Solution 2: singular values in (cutoff, 10 cutoff] are kept by refnet and dropped by pinv's default.
# They lie inside the kit's ambiguity band (a factor 10 either side of the cutoff), where rounding
# alone can move a singular value across: the rank is undefined there, so the kit does not compare.
s_test = np.array([1.0, 5e-15])
cut = max(3, 4) * tolerances.EPS["float64"] * s_test[0]
print(f"cutoff {cut:.1e}: refnet keeps 5e-15 ({5e-15 > cut}), pinv default drops it ({5e-15 <= 10 * cut})")
assert cut < 5e-15 <= 10 * cut <= cut * tolerances.AMBIGUITY

# %% tags=["hide-cell"]
# Solution 3: for a 1 x 1 kernel both means are the entry itself, so the bug is invisible there.
M1 = np.array([[0.7]])
assert np.array_equal(np.asarray(OutgoingPort().mean_in(jnp.asarray(M1))), np.asarray(port.mean_in(jnp.asarray(M1))))
W_shapes = [(a, b) for a, b in zip(failure.case.sizes[:-1], failure.case.sizes[1:])]
print("shrunk case layer shapes:", W_shapes)
assert any(a > 1 or b > 1 for a, b in W_shapes)
