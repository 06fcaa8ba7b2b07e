"""Write the conformance matrix page (tutorials/conformance_matrix.md) from real runs.

    python -m refnet.conformance.adapters.matrix [OUT.md]

Each adapter runs through the kit's command line from a folder holding only its
file (as tests/test_adapters.py runs it); each documented difference runs as a
variant port that leaves the adapter's fix out, so the page shows what the fix
is for. The projection side re-implements the two usual OGD basis
constructions and measures them beside ``pinv`` with an explicit ``rtol``.
The page is committed with the date of its run (the site does not rebuild it:
TensorFlow and Keras are not documentation dependencies).
"""
from __future__ import annotations

import datetime
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap

import numpy as np

import refnet
from refnet.conformance.adapters import PATHS
from refnet.conformance.cases import VARIANTS as OPTIMIZER_VARIANTS
from refnet.conformance.checks import QUANTITIES

ROOT = pathlib.Path(__file__).resolve().parents[3]
# (column title, adapter, attribute, profile, the libraries it needs)
COLUMNS = [("torch", "torch_port", "PORT", "quick", ["torch"]),
           ("optax", "optax_port", "PORT", "core", ["optax"]),
           ("Keras/JAX", "keras_port", "PORT", "core", ["keras"]),
           ("TF1", "tf1_port", "PORT", "core", ["tensorflow"]),
           ("question", "tf1_question_port", "PORT", "core", ["tensorflow"]),
           ("fixed", "tf1_question_port", "FIXED_PORT", "core", ["tensorflow"]),
           ("answer", "tf1_question_port", "BAD_PORT", "core", ["tensorflow"])]
# documented differences: (library, adapter, what the variant leaves out, variant module, quantity,
# extra CLI arguments, the adapter's fix); the variant imports the adapter from the same folder.
# The softplus slip needs a hidden z in (20, 37): a saturated softplus case (the quick profile's
# hypothesis draws did not meet one)
SATURATED_SOFTPLUS = '{"sizes": [3, 4, 2], "activation": "softplus", "kind": "saturated", "seed": 1}'
VARIANTS = [
    ("torch", "torch_port", "nn.Softplus (threshold 20) for softplus",
     "import torch\nfrom torch_port import TorchPort\nPORT = TorchPort(softplus=torch.nn.Softplus)\n",
     "forward", ["--case", SATURATED_SOFTPLUS], "logaddexp(z, 0) as the softplus module"),
    ("TF1", "tf1_port", "Python floats for lr and momentum",
     "import tensorflow as tf\nfrom tf1_port import TF1Port\n\n\nclass P(TF1Port):\n"
     "    @staticmethod\n    def make_optimizer(name, hyper):\n        if name == 'sgd':\n"
     "            return tf.compat.v1.train.GradientDescentOptimizer(hyper['lr'])\n"
     "        return tf.compat.v1.train.MomentumOptimizer(hyper['lr'], hyper['momentum'],\n"
     "                                                    use_nesterov=hyper['nesterov'])\n\n\nPORT = P()\n",
     "optimizer_step", ["--profile", "core"], "tf.constant(lr, tf.float64) (and momentum)"),
    ("TF1", "tf1_port", "tf.compat.v1.losses.mean_squared_error as the loss",
     "import tensorflow as tf\nfrom tf1_port import TF1Port\n"
     "PORT = TF1Port(mse=tf.compat.v1.losses.mean_squared_error)\n",
     "loss", ["--profile", "core"], "tf.reduce_mean(tf.square(Y - T))"),
    ("Keras/JAX", "keras_port", "keras.losses.MeanSquaredError(dtype='float64') as the loss",
     "import keras_port\n"
     "PORT = keras_port.KerasPort(mse=keras_port.keras.losses.MeanSquaredError(dtype='float64'))\n",
     "loss", ["--profile", "core"], "jnp.mean(jnp.square(Y - T))"),
    ("Keras/JAX", "keras_port", "floatx float32 (the default) when the optimizer is built",
     "import keras_port\nkeras_port.FLOATX = 'float32'\nPORT = keras_port.PORT\n",
     "optimizer_step", ["--profile", "core"], "keras.config.set_floatx('float64') around SGD(...)"),
    ("Keras/JAX", "keras_port", "Keras's activation names (activation='tanh')",
     "import keras_port\nkeras_port.ACT = {k: None if k == 'identity' else k for k in keras_port.ACT}\n"
     "PORT = keras_port.PORT\n", "forward", ["--profile", "core"], "JAX's functions as the activations"),
]
ROW = re.compile(r"^  (PASS|FAIL|SKIP|BLOCKED|NOT\S*)\s+(\w+)\s*(.*)$")


def have(libraries):
    return all(importlib.util.find_spec(m) is not None for m in libraries)


def run_cli(folder, module, attr, args):
    """(exit code, stdout) of the kit's CLI on ``module``:``attr`` in ``folder``, with ``args``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "refnet", "conformance", "run", "--port", f"{module}.py:{attr}", *args]
    done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=1800)
    return done.returncode, done.stdout


def declared_optimizers(folder, module, attr):
    """The port's ``optimizers`` (all variants when it declares none), read in a fresh process."""
    code = (f"import sys; sys.path.insert(0, '.'); import {module} as m; "
            f"print(','.join(getattr(m.{attr}, 'optimizers', None) or {list(OPTIMIZER_VARIANTS)!r}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=600)
    return done.stdout.strip().splitlines()[-1].split(",") if done.stdout.strip() else []


def parse(stdout):
    """{quantity: (status, info)} and the first FAIL line of a report."""
    rows = {m[2]: (m[1], m[3].strip()) for m in map(ROW.match, stdout.splitlines()) if m and m[2] in QUANTITIES}
    fails = [line[5:] for line in stdout.splitlines() if line.startswith("FAIL ")]
    return rows, (fails[0] if fails else "")


def adapters_part(work):
    """Runs every column; returns the markdown lines of the matrix and its notes."""
    results, heads = {}, []
    for title, adapter, attr, profile, libs in COLUMNS:
        if not have(libs):
            results[title] = None
            heads.append(f"{title}: not installed here ({', '.join(libs)})")
            continue
        folder = work / f"{adapter}-{attr}"
        folder.mkdir()
        shutil.copy(PATHS[adapter], folder)
        code, out = run_cli(folder, adapter, attr, ["--profile", profile])
        header = out.splitlines()[0] if out else ""
        name = re.search(r"port (['\"])(.*?)\1", header)
        results[title] = (code, *parse(out))
        has = declared_optimizers(folder, adapter, attr)
        lacks = [v for v in OPTIMIZER_VARIANTS if v not in has]
        heads.append(f"{title}: `{adapter}.py:{attr}`, {name[2] if name else '?'}; profile {profile}; "
                     f"exit {code}; optimizer variants {', '.join(has)}"
                     + (f" (SKIP {', '.join(lacks)}: not in this optimizer)" if lacks else ""))
    width = max(len(q) for q in QUANTITIES)
    titles = [t for t, *_ in COLUMNS]
    w = {t: max(len(t), 4) for t in titles}
    lines = ["| " + "quantity".ljust(width) + " | " + " | ".join(t.ljust(w[t]) for t in titles) + " |",
             "|" + "-" * (width + 2) + "|" + "|".join("-" * (w[t] + 2) for t in titles) + "|"]
    for q in QUANTITIES:
        cells = [("n/a" if results[t] is None else results[t][1].get(q, ("-", ""))[0][:4]).ljust(w[t])
                 for t in titles]
        lines.append("| " + q.ljust(width) + " | " + " | ".join(cells) + " |")
    notes = []
    for t in titles:
        r = results[t]
        if r is None:
            continue
        missing = [m for _, (status, info) in r[1].items() if status == "SKIP"
                   for m in re.findall(r"port has no (\w+)", info)]
        skipped = [q for q, (status, info) in r[1].items() if status == "SKIP" and "port has no" in info]
        if skipped:
            notes.append(f"{t}: SKIP {', '.join(skipped)}: the adapter has no "
                         f"{', '.join(dict.fromkeys(missing))}")
        why = {}                                               # reason -> quantities, in order
        for q, (status, info) in r[1].items():
            if status == "PASS" and "skipped (first:" in info:
                info = "PASS with " + info.split("; ", 1)[1].split("; ")[0]   # declined optimizer variants
            elif status == "PASS" or "port has no" in info or not info:
                continue
            else:
                info = f"{status} ({info})"
            why.setdefault(info, []).append(q)
        notes += [f"{t}: {', '.join(qs)}: {reason}" for reason, qs in why.items()]
        if r[2]:
            notes.append(f"{t}: first failure: {r[2]}")
    return lines, heads, notes


def variants_part(work):
    lines = []
    for library, adapter, left_out, code, quantity, args, fix in VARIANTS:
        libs = next(c[4] for c in COLUMNS if c[1] == adapter)
        if not have(libs):
            lines.append(f"- {library}, {left_out}: not measured ({', '.join(libs)} not installed)")
            continue
        folder = work / f"variant-{len(lines)}"
        folder.mkdir()
        shutil.copy(PATHS[adapter], folder)
        (folder / "variant_port.py").write_text(code)
        exit_code, out = run_cli(folder, "variant_port", "PORT", ["--quantity", quantity, *args])
        rows, fail = parse(out)
        status = rows.get(quantity, ("?", ""))[0]
        lines.append(f"- **{library}**, {left_out}: {quantity} {status} (exit {exit_code})"
                     + (f": `{fail.split(chr(10))[0]}`" if fail else "") + f". The adapter: {fix}.")
    return lines


# ------------------------------------------------------------------ the projection side
def gram_schmidt_basis(J):
    """OGD's basis (Farajtabar et al., Orthogonal Gradient Descent): each row of J minus its
    components along the basis so far, the coefficients taken from the row itself (classical
    Gram-Schmidt), normalized; no re-orthogonalization. (m, p) -> (m, p)."""
    basis = []
    for v in J:
        u = v - sum(((b @ v) * b for b in basis), np.zeros_like(v))   # v - sum_i <u_i, v> u_i
        basis.append(u / np.linalg.norm(u))                           # u / |u|
    return np.array(basis)


def project_gram_schmidt(J, g, rtol):
    U = gram_schmidt_basis(J)
    return g - U.T @ (U @ g)                                          # g - U^T U g


def project_qr(J, g, rtol):
    """QR of J^T keeping all min(m, p) columns of Q (what CL-style OGD code does)."""
    Q, _ = np.linalg.qr(J.T)                                          # J^T = Q R, Q (p, min(m, p))
    return g - Q @ (Q.T @ g)                                          # g - Q Q^T g


def project_pinv(J, g, rtol):
    """The definition: singular values at or below rtol s_max dropped, rtol (refnet.frozen.default_rtol,
    what the kit passes) given explicitly: pinv's own default max(m, p) eps grows with p."""
    return g - np.linalg.pinv(J, rtol=rtol) @ (J @ g)                 # g - J^+ J g


METHODS = {"Gram-Schmidt": project_gram_schmidt, "QR min(m, p)": project_qr, "pinv rtol": project_pinv}
SCENARIOS = {"plain": "4 random anchors",
             "near-duplicate": "anchor 1 = anchor 0 + delta (1e-8 float64, 1e-4 float32)",
             "redundant": "anchors 1 and 2 = anchor 0 exactly",
             "zero row": "ReLU output 0 off at every anchor: J = 0 (rank 0, g_perp = g)",
             "m > p": "30 anchors, p = 26 (rank 21 at most: output 0's own parameters)"}


def scenario(kind, dtype, rng):
    """(net, params, anchors) for one scenario: a 3-4-2 sigmoid net, output 0 frozen."""
    net = refnet.MLP([3, 4, 2], activation="sigmoid",
                     output_activation="relu" if kind == "zero row" else "identity")
    params = net.init(seed=0)
    X = rng.uniform(-1, 1, (30 if kind == "m > p" else 4, 3))
    if kind == "near-duplicate":
        X[1] = X[0] + (1e-8 if dtype == np.float64 else 1e-4) * rng.standard_normal(3)
    elif kind == "redundant":
        X[1] = X[2] = X[0]
    elif kind == "zero row":
        (W1, b1), (W2, b2) = params
        params = [(W1, b1), (W2, b2 - np.array([np.abs(W2[:, 0]).sum() + 1.0, 0.0]))]   # Z[:, 0] < 0
    return net, params, X


def projection_study(seed=1):
    """[(dtype, scenario, method, m, p, rank, leak, over, nan, error)]: leak = |J g_perp| / |J g|
    (the frozen outputs' first-order change, relative to the plain gradient's), over = the part
    of g - g_perp in the definition's null space, / |g| (directions removed that it keeps)."""
    rows, rng = [], np.random.default_rng(seed)
    for dtype in (np.float64, np.float32):
        for kind in SCENARIOS:
            net, params, X = scenario(kind, dtype, rng)
            J = np.asarray(net.jacobian(params, X, outputs=[0]))                # (m, p) float64
            g = rng.standard_normal(J.shape[1])
            _, s, Vt = np.linalg.svd(J)
            rtol = refnet.frozen.default_rtol(net, J.shape[0], dtype)          # the definition's cutoff
            rank = int(np.sum(s > rtol * s.max(initial=0.0)))
            for name, f in METHODS.items():
                try:
                    with np.errstate(all="ignore"):
                        gp = f(J.astype(dtype), g.astype(dtype), rtol).astype(np.float64)
                except Exception as e:                                      # noqa: BLE001 (reported)
                    rows.append((dtype.__name__, kind, name, *J.shape, rank, np.nan, np.nan, False,
                                 f"{type(e).__name__}"))
                    continue
                Jg = np.linalg.norm(J @ g)
                leak = np.linalg.norm(J @ gp) / Jg if Jg > 0 else np.linalg.norm(J @ gp)
                over = np.linalg.norm(Vt[rank:] @ (g - gp)) / np.linalg.norm(g)
                rows.append((dtype.__name__, kind, name, *J.shape, rank, leak, over,
                             bool(np.isnan(gp).any()), ""))
    return rows


def projection_part():
    """The table's lines and pinv's leak on near-duplicate float64 anchors (the text quotes it)."""
    rows = projection_study()
    fmt = lambda x: "NaN" if np.isnan(x) else f"{x:.1e}"
    lines = ["| dtype   | anchors        | method       | rank | leak    | over    |",
             "|---------|----------------|--------------|------|---------|---------|"]
    for dt, kind, name, m, p, rank, leak, over, nan, err in rows:
        what = err or ("NaN" if nan else "")
        lines.append(f"| {dt:7s} | {kind:14s} | {name:12s} | {rank:4d} | "
                     f"{(what or fmt(leak)):7s} | {(what or fmt(over)):7s} |")
    near = next(r[6] for r in rows if r[:3] == ("float64", "near-duplicate", "pinv rtol"))
    return lines, near


def page(work) -> str:
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    matrix, heads, notes = adapters_part(work)
    table, near = projection_part()
    near = f"{near:.0e}".replace("e-0", "e-")                                   # 2e-08 -> 2e-8
    wrap = lambda s, first="- ", rest="  ": textwrap.wrap(s, 88, initial_indent=first, subsequent_indent=rest,
                                                             break_on_hyphens=False, break_long_words=False)
    # orphan: no warning until the site's toctree lists the page (then harmless)
    out = ["---", "orphan: true", "---", "", "# Conformance matrix: real libraries against refnet", "",
           *textwrap.wrap(
               f"A committed run of `python -m refnet.conformance.adapters.matrix` on {date} "
               f"(refnet {refnet.__version__}, Python {sys.version.split()[0]}, NumPy {np.__version__}). "
               "The site does not rebuild this page: TensorFlow and Keras are not documentation "
               "dependencies. Each adapter ran through the kit's command line from a folder holding "
               "only its file, as a porter runs it "
               "(`python -m refnet conformance run --port torch_port.py:PORT`); the adapters ship in "
               "`refnet/conformance/adapters/`, and [tutorial 03](03_verify_your_port.py) shows how "
               "to run one.", 88),
           "", "## Result per quantity", "",
           *textwrap.wrap("PASS: every case compared agreed within the derived tolerance. SKIP: the "
                          "adapter does not implement it (the reason follows the table). FAIL: the "
                          "first diverging entry is below the table. BLOC: blocked, built on a quantity that "
                          "failed. \"fixed\" is the answer's "
                          "optimizer with `axis=0`; \"answer\" is the answer as posted, "
                          "`reduce_mean(accumulation, axis=1)`: the known-bad port.", 88),
           "", *matrix, "", "Columns:", ""]
    for h in heads:
        out += wrap(h)
    out += ["", "Reasons and failures:", ""]
    for n in notes:
        out += wrap(n)
    out += ["", "## Documented differences", "",
            *textwrap.wrap("Each adapter does what a correct porter does about its library's "
                           "difference; the variant below leaves that fix out and was run through "
                           "the kit the same way, so the failure is measured, not asserted.", 88), ""]
    for v in variants_part(work):
        out += wrap(v[2:])
    out += ["- **Keras, TensorFlow backend** (not an adapter here): `keras.ops.cast(0.9, "
            "\"float64\")`", "  gives 0.8999999761581421: momentum goes through float32 first."]
    out += ["", "## The projection side: OGD bases against the definition", "",
            *textwrap.wrap(
                "Orthogonal-gradient-descent code keeps output k fixed by projecting the gradient "
                "off a basis of the rows of J. Two constructions are common; below they are "
                "re-implemented from their published descriptions (`refnet.conformance.adapters."
                "matrix`) beside the definition refnet uses, `g - pinv(J, rtol=rtol) J g`, here "
                "with refnet's rtol (`refnet.frozen.default_rtol`, 10 sqrt(m k) eps) passed explicitly:", 88), "",
            "- Gram-Schmidt: classical, no re-orthogonalization, every row normalized;",
            "- QR min(m, p): `Q, R = qr(J^T)`, all min(m, p) columns of Q kept;",
            "- pinv rtol: singular values at or below rtol s_max dropped.", "",
            *textwrap.wrap(
                "A 3-4-2 sigmoid net, output 0 frozen, a random gradient g. leak = |J g_perp| / "
                "|J g|: how much of the plain gradient's first-order effect on the frozen outputs "
                "survives (the constraint is broken). over = |V_0^T (g - g_perp)| / |g|, V_0 the "
                "definition's null space: directions the definition keeps that the method removed "
                "(the constraint holds but progress is lost). The rank is the definition's.", 88),
            "", *[f"- {k}: {v}" for k, v in SCENARIOS.items()], "", *table, "",
            *textwrap.wrap(
                "Read it as: Gram-Schmidt without re-orthogonalization loses orthogonality like "
                "eps cond(J)^2, so near-duplicate or redundant anchors leak, and a zero row (0 / 0) "
                "turns the whole projection into NaN. QR keeping min(m, p) vectors never leaks but "
                "keeps vectors for directions J does not have: redundant anchors and m > p "
                "over-project (with m >= p it removes everything). None of the three raised when "
                "m > p: the failure there is silent. pinv with an explicit rtol stays within "
                f"eps cond(J), the accuracy of any backward-stable method ({near} with anchors "
                "1e-8 apart in float64); in float32 its one larger leak (m > p) lies along singular "
                "values at or below rtol s_max, which float32 cannot resolve and the definition "
                "drops by design.", 88)]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = pathlib.Path(argv[0]) if argv else ROOT / "tutorials" / "conformance_matrix.md"
    with tempfile.TemporaryDirectory() as tmp:
        text = page(pathlib.Path(tmp))
    out.write_text(text)
    print(f"wrote {out} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
