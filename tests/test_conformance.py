"""The verification kit (refnet.conformance): ports that must pass, seeded bugs that must be caught
with their shrunk case, layout helpers, golden files read back without refnet, the command line."""
import hashlib
import json
import os
import pathlib
import shlex
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given

import refnet
from refnet.conformance import Case, Scenario, assert_conforms, compare_trajectories, golden, reference_trajectory, run
from refnet.conformance import checks, layout as lay, load_port
from refnet.strategies import hard_problems

from ports import numpy_port as P

ROOT = pathlib.Path(__file__).parents[1]


def _cli(*args):
    """python -m refnet conformance ... from the checkout's root (the checkout first on the path)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    return subprocess.run([sys.executable, "-m", "refnet", "conformance", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def _status(report):
    return {r.quantity: r.status for r in report.results}


@pytest.mark.parametrize("args,message", [
    (["run", "--port", "no_such_module:Port"], "--port: cannot import the port module 'no_such_module'"),
    (["run", "--port", "tests/ports/numpy_port.py:NoSuchPort"], "has no attribute 'NoSuchPort'"),
    (["run", "--port", "no_colon"], "--port: port must be MODULE:ATTR"),
    (["run", "--port", "tests/ports/numpy_port.py:MinimalPort", "--case", "{bad"], "--case: "),
    (["check", "no/such/folder"], "manifest.json"),
])
def test_unusable_arguments_are_one_line_errors_with_exit_2(args, message):
    done = _cli(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1


# ------------------------------------------------------------------ ports that must pass
def test_minimal_torch_layout_port_passes_the_command_line():
    # the done-when port: torch layout, only forward, vjp and optimizer_step
    done = _cli("run", "--port", "tests/ports/numpy_port.py:MinimalPort")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS    optimizer_step" in done.stdout and "SKIP    jacobian" in done.stdout
    assert "port has no jacobian" in done.stdout and "OK: every quantity that ran agrees" in done.stdout


def test_full_numpy_port_passes_every_quantity():
    report = assert_conforms(P.FullPort())
    assert set(_status(report).values()) == {"pass"}, str(report)
    assert all(r.n_cases >= len(refnet.conformance.core_cases()) - len(r.not_comparable) for r in report.results)


@pytest.mark.peers
def test_torch_port_passes():
    pytest.importorskip("torch")
    from ports.torch_port import TorchPort
    report = assert_conforms(TorchPort())
    assert set(_status(report).values()) == {"pass"}, str(report)


@pytest.mark.peers
def test_jax_port_passes():
    pytest.importorskip("jax")
    from ports.jax_port import JaxPort
    # JAX compiles per shape: the core cases (every kind of case, ~10 shapes) keep this under a minute
    report = assert_conforms(JaxPort(), profile="core")
    assert _status(report)["frozen_step"] == "skip" and "no frozen_step" in str(report)
    assert {s for q, s in _status(report).items() if q != "frozen_step"} == {"pass"}, str(report)


def _readme_port(*replacements):
    """The README's PyTorch port (its python block, run), with textual ``(old, new)`` edits applied."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Verifying your own implementation"):]
    code = section[section.index("```python\n") + 10:section.index("```", section.index("```python\n") + 10)]
    head = code[:code.index("report = run(")]
    for old, new in replacements:
        assert old in head, old
        head = head.replace(old, new)
    scope = {}
    exec(compile(head, "README.md", "exec"), scope)
    return scope["TorchPort"]()


@pytest.mark.peers
def test_readme_port_passes_and_its_two_seeded_slips_fail():
    pytest.importorskip("torch")
    assert _status(run(_readme_port()))["optimizer_step"] == "pass"
    outgoing = _readme_port(("MW.mean(axis=1, keepdims=True).repeat(MW.shape[1], axis=1)",
                             "MW.mean(axis=0, keepdims=True).repeat(MW.shape[0], axis=0)"))
    report = run(outgoing, quantities=["forward", "vjp", "optimizer_step"])
    assert [r.quantity for r in report.results if r.status == "fail"] == ["optimizer_step"], str(report)
    r = next(r for r in report.results if r.status == "fail")
    assert r.mismatch.where.startswith("step 2, W_1[") and r.shrunk and sum(r.case.sizes) <= 3, str(report)
    # the README shows a shrunk failure: its case, replayed, gives exactly the failure it prints
    shown = (ROOT / "README.md").read_text()
    shown = shown[shown.index("FAIL optimizer_step: "):]
    line, case = shown.splitlines()[0], Case.from_json(shown.splitlines()[1].split("case (shrunk): ")[1])
    replayed = run(outgoing, quantities=["optimizer_step"], case=case)
    assert f"FAIL {replayed.results[0].mismatch}" == line, (line, str(replayed))
    wrong_act = _readme_port(('"tanh": torch.tanh', '"tanh": torch.sigmoid'))
    report = run(wrong_act, quantities=["forward", "vjp", "optimizer_step"])
    assert _status(report) == {"forward": "fail", "vjp": "blocked", "optimizer_step": "pass"}, str(report)


# ------------------------------------------------------------------ seeded bugs
SEEDED = {   # port -> (quantity that must fail, text its report must hold, quantities reported blocked)
    P.WrongOutgoingAveraging: ("optimizer_step", "step 2, W_1[", ["trajectory"]),
    P.WrongActivation: ("forward", "Y[", ["vjp"]),
    P.WrongUnaveragedBias: ("optimizer_step", "step 2, ", ["trajectory", "projected_trajectory"]),
    P.WrongDampenedMomentum: ("optimizer_step", "step 1, ", ["trajectory", "projected_trajectory"]),
    P.WrongActivationDerivative: ("vjp", "dW_1[", ["grads", "jacobian", "project_out", "frozen_step"]),
    P.WrongJacobianColumns: ("jacobian", "d Y[0, 0] / d W_1[0, 0]", ["project_out", "frozen_step"]),
    P.WrongNoRetraction: ("frozen_step", "moved (invariant: frozen outputs constant)", []),
    P.WrongAbsoluteCutoff: ("project_out", "dW_", ["frozen_step", "projected_trajectory"]),
}


@pytest.mark.parametrize("port_class", list(SEEDED), ids=lambda c: c.__name__)
def test_seeded_bug_is_caught_with_its_shrunk_case(port_class):
    quantity, where, blocked = SEEDED[port_class]
    report = run(port_class(), replay=f"python -m refnet conformance run --port tests/ports/numpy_port.py:{port_class.__name__}")
    status = _status(report)
    assert not report.ok and status[quantity] == "fail", str(report)
    assert all(status[q] == "blocked" for q in blocked), str(report)
    assert [q for q, s in status.items() if s == "fail"] == [quantity], str(report)     # no cascade of failures
    r = next(r for r in report.results if r.quantity == quantity)
    assert where in r.mismatch.where and r.shrunk, str(report)
    assert r.case.kind in ("plain", "small_magnitude") and sum(r.case.sizes) <= 5, r.case   # shrunk to a tiny net
    assert abs(r.mismatch.candidate - r.mismatch.reference) > r.mismatch.tol
    text = str(report)
    assert f"FAIL {quantity}: {r.mismatch.where}" in text and f"case (shrunk): {r.case.to_json()}" in text
    assert Case.from_json(r.case.to_json()) == r.case
    assert checks.CHECKS[quantity](port_class(), r.case) is not None      # the printed case reproduces it


def test_seeded_bug_fails_the_command_line_and_its_replay(tmp_path):
    done = _cli("run", "--port", "tests/ports/numpy_port.py:WrongOutgoingAveraging", "--save-failures", str(tmp_path))
    assert done.returncode == 1 and "FAIL optimizer_step: step 2, W_1[" in done.stdout, done.stdout + done.stderr
    replay = next(line for line in done.stdout.splitlines() if line.strip().startswith("replay:")).split("replay: ")[1]
    again = _cli(*shlex.split(replay)[4:])
    assert again.returncode == 1 and "FAIL optimizer_step: step 2, W_1[" in again.stdout, again.stdout
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [c["quantity"] for c in manifest["cases"]] == ["optimizer_step"]


def test_wrong_activation_fails_the_command_line():
    done = _cli("run", "--port", "tests/ports/numpy_port.py:WrongActivation")
    assert done.returncode == 1 and "FAIL forward: Y[" in done.stdout and "blocked by forward" in done.stdout


class _Nudged(P.FullPort):
    """forward with its largest entry moved by a relative ``rel`` (or by one ulp when rel is None)."""
    rel = 1e-12

    def forward(self, spec, params, X):
        Y = np.array(super().forward(spec, params, X))
        i = np.unravel_index(np.argmax(np.abs(Y)), Y.shape)
        Y[i] = np.nextafter(Y[i], np.inf) if self.rel is None else Y[i] * (1 + self.rel)
        return Y


def test_tolerance_tells_one_ulp_from_1e_12():
    assert _status(run(_Nudged(), quantities=["forward"], profile="core"))["forward"] == "fail"
    one_ulp = _Nudged()
    one_ulp.rel = None
    assert _status(run(one_ulp, quantities=["forward"], profile="core"))["forward"] == "pass"


class _Float32(P.MinimalPort):
    """The minimal port computing in float32 (inputs cast down, results cast back)."""
    name, dtype = "numpy port in float32", "float32"

    def forward(self, spec, params, X):
        f32 = [(W.astype(np.float32), b.astype(np.float32)) for W, b in params]
        return super().forward(spec, f32, X.astype(np.float32))

    def vjp(self, spec, params, X, G):
        f32 = [(W.astype(np.float32), b.astype(np.float32)) for W, b in params]
        return super().vjp(spec, f32, X.astype(np.float32), G.astype(np.float32))


def test_tolerances_follow_the_ports_dtype():
    assert _status(run(_Float32(), quantities=["forward", "vjp"])) == {"forward": "pass", "vjp": "pass"}
    as_float64 = _Float32()
    as_float64.dtype = "float64"                                           # claims float64, computes float32
    assert _status(run(as_float64, quantities=["forward"], profile="core"))["forward"] == "fail"


def _as_float32(tree):
    return [(np.float32(W), np.float32(b)) for W, b in tree]


class _Float32Cutoff(P.FullPort):
    """The full port with float32's rank cutoff and retraction tolerance (what a float32 port decides)."""
    name = "numpy port, float32 rank and retraction"
    retract_rtol = 1e-5                                      # float32's retraction tolerance

    def cutoff(self, s, J, rtol=None):                         # (whatever rtol the kit passes)
        return max(J.shape) * np.finfo(np.float32).eps * s.max(initial=0.0)


class _Float32Projection(_Float32Cutoff):
    """... declaring float32 and returning float32 arrays (its arithmetic stays float64)."""
    dtype = "float32"

    def project_out(self, spec, params, grads, anchors, outputs, rtol=None):
        return _as_float32(super().project_out(spec, params, grads, anchors, outputs, rtol))

    def frozen_step(self, spec, params, X, G, freeze, lr, anchors, rtol=None):
        return _as_float32(super().frozen_step(spec, params, X, G, freeze, lr, anchors, rtol))

    def optimizer_step(self, name, hyper, params, grads, state):
        new, state = super().optimizer_step(name, hyper, params, grads, state)
        return _as_float32(new), state


def test_float32_projections_use_float32s_rank():
    # X ~ 1e-12: J's second singular value (~1e-12) is kept in float64 but far below float32's cutoff
    # (~7e-7), so a float32 port drops it; the reference must too (and its retraction hold float32's tol)
    case = Case(sizes=(1, 1, 1), activation="identity", n=2, kind="small_magnitude")
    assert checks.check_project_out(_Float32Projection(), case) is None
    assert checks.check_project_out(P.FullPort(), case) is None                       # float64: rank 2
    steps = Case(sizes=(1, 1, 2), activation="identity", n=2, kind="small_magnitude", n_steps=2)
    assert checks.check_projected_trajectory(_Float32Projection(), steps) is None
    retraction = Case(sizes=(1, 1, 2), activation="identity", n=1, lr=0.01)  # float32's tol: frozen outputs move 4e-6
    assert checks.check_frozen_step(_Float32Projection(), retraction) is None
    no_retraction = _Float32Projection()                                   # float32's tol still holds a step
    no_retraction.retract = lambda spec, params, anchors, freeze, c0, rtol=None: params
    mis = checks.check_frozen_step(no_retraction, Case(sizes=(1, 1, 2), activation="identity", n=1))
    assert mis is not None and "moved (invariant: frozen outputs constant)" in mis.where
    mis = checks.check_project_out(_Float32Cutoff(), case)                # claims float64, drops like float32
    assert mis is not None and not mis.kind, mis


def test_ill_defined_rank_is_not_compared_and_says_why():
    # a linear 1-2-1 net: J (5, 7) has rank 3 exactly; with seed 2 rounding leaves a singular value
    # of 1.2e-15 next to the cutoff 9.2e-15: one correct SVD keeps it, another drops it
    case = Case(sizes=(1, 2, 1), activation="identity", seed=2, n=5)
    with pytest.raises(checks.NotComparable, match=r"rank ambiguous at this precision: singular value\(s\) 1.18e-15 "
                                                    r"within a factor 10 of the cutoff .* = 9.19e-15; invariants checked"):
        checks.check_project_out(P.FullPort(), case)
    assert checks.check_project_out(P.FullPort(), Case(sizes=(1, 2, 1), activation="identity", seed=3, n=5)) is None
    # the invariants still catch a port that ignores the frozen outputs altogether
    class Ignores(P.FullPort):
        def project_out(self, spec, params, grads, anchors, outputs):
            return grads
    mis = checks.check_project_out(Ignores(), case)
    assert mis is not None and mis.where.startswith("V_keep^T g_perp (kept directions removed)")


@given(hard_problems())
def test_projection_tolerance_holds_on_the_hard_problems(prob):
    # the shared hard cases (anchors apart from the batch, gaps down to 1e-10, huge and tiny inputs,
    # saturated units, m close to p): an independent port (NumPy SVD of its own J) stays within the
    # kit's derived project_out tolerance, or the kit says the rank is ambiguous
    net, params, X, G, freeze, anchors, kind = prob
    grads = [(np.asarray(dW), np.asarray(db)) for dW, db in net.vjp(params, X, G)]
    ref, facts, tol = checks._project_reference(net, params, grads, anchors, list(freeze), np.finfo(float).eps)
    if facts["ambiguous"].size:
        assert "ambiguous" in checks._ambiguous_reason(facts) or facts["at_noise"]
        return
    cand = lay.from_layout(P.FullPort().project_out(net, lay.to_layout(params, "torch"), lay.to_layout(grads, "torch"),
                                                    anchors, list(freeze)), "torch")
    err = max(float(np.max(np.abs(c - r))) for cr, rr in zip(cand, ref) for c, r in zip(cr, rr))
    assert err <= tol, (kind, err, tol)


# ------------------------------------------------------------------ layout helpers
def test_column_orders_by_hand():
    sizes = [2, 3]                                                          # W (2, 3), b (3,): p = 9
    assert lay.column_index(sizes, "refnet").tolist() == list(range(9))
    assert lay.column_index(sizes, "torch").tolist() == [0, 3, 1, 4, 2, 5, 6, 7, 8]   # W^T row-major, then b
    assert lay.column_index(sizes, "bias_first").tolist() == [6, 7, 8, 0, 1, 2, 3, 4, 5]
    assert lay.column_name(sizes, "torch", 1, layout="torch") == "W_1[0, 1]"           # torch W[out=0, in=1]
    assert lay.column_name(sizes, "bias_first", 0) == "b_1[0]"
    assert lay.row_index(2, 3, "sample_major").tolist() == [0, 2, 4, 1, 3, 5]          # row i K + k -> k n + i


def test_jacobian_orders_round_trip_and_match_a_hand_permutation():
    rng = np.random.default_rng(0)
    sizes, n, K = [3, 2, 2], 4, 2
    p = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    J = rng.standard_normal((n * K, p))
    for rows in lay.ROW_ORDERS:
        for cols in lay.COLUMN_ORDERS:
            port = lay.jacobian_from_refnet(J, sizes, n, K, rows, cols)
            assert np.array_equal(lay.jacobian_to_refnet(port, sizes, n, K, rows, cols), J)
    sample_major = J.reshape(K, n, p).transpose(1, 0, 2).reshape(n * K, p)               # by hand
    assert np.array_equal(lay.jacobian_from_refnet(J, sizes, n, K, "sample_major"), sample_major)
    params = refnet.MLP(sizes).init(seed=1)
    torch_params = lay.to_layout(params, "torch")
    assert torch_params[0][0].shape == (2, 3) and np.array_equal(torch_params[0][0], params[0][0].T)
    v = lay.flatten(torch_params, columns="bias_first", layout="torch")
    assert np.array_equal(v[:2], params[0][1]) and np.array_equal(v[2:8], params[0][0].ravel())
    back = lay.unflatten(v, sizes, columns="bias_first", layout="torch")
    assert all(np.array_equal(a, b) for (W, b_), (W2, b2) in zip(back, torch_params) for a, b in ((W, W2), (b_, b2)))


def test_bad_ports_are_named():
    class NoLayout:
        name = "x"
    with pytest.raises(ValueError, match=r"port.layout must be one of"):
        run(NoLayout())
    bad = P.MinimalPort()
    bad.jacobian_rows = "by_sample"
    with pytest.raises(ValueError, match=r"port.jacobian_rows must be one of"):
        run(bad)
    with pytest.raises(ValueError, match=r"quantities must be among"):
        run(P.MinimalPort(), quantities=["hessian"])
    with pytest.raises(ValueError, match=r"case has unknown keys \['width'\]"):
        Case.from_json('{"width": 3}')


def test_a_raising_or_misshapen_port_is_reported_without_made_up_values():
    class Raises(P.FullPort):
        def loss_and_grads(self, spec, params, X, T, loss):
            raise ValueError("only mse")

    class Stacked(P.FullPort):                                            # jacrev's (K, n, p), not reshaped
        def jacobian(self, spec, params, X, outputs):
            return super().jacobian(spec, params, X, outputs).reshape(len(outputs), len(X), -1)

    case = Case(sizes=(1, 1), activation="identity", n=1)
    for quantity, port, says in (("loss", Raises(), "loss: loss_and_grads raised ValueError: only mse"),
                                 ("jacobian", Stacked(), "jacobian: J\n  shape (1, 1, 2), expected (1, 2)")):
        text = str(checks.CHECKS[quantity](port, case)) if quantity == "jacobian" else str(
            run(port, quantities=[quantity], case=case).results[0].mismatch)
        assert text.startswith(says) and "nan" not in text and "inf" not in text, text


def test_a_port_that_implements_nothing_fails(tmp_path):
    # every method misspelled: nothing is compared, which must not read as a pass (nor exit 0)
    (tmp_path / "typo_port.py").write_text("class Port:\n    name, layout = 'typos', 'refnet'\n"
                                           "    def optimiser_step(self, *args):\n        pass\n")
    report = run(load_port(f"{tmp_path / 'typo_port.py'}:Port"))
    assert not report.ok and set(_status(report).values()) == {"skip"}
    assert str(report).endswith("FAILED: nothing was compared (the port has none of the methods these quantities "
                                "need, or declined every case)")
    assert run(P.MinimalPort(), quantities=["optimizer_step"], profile="core").ok


# ------------------------------------------------------------------ trajectories (the original kit)
def test_one_step_momentum_scenario_and_one_entry_trajectories_raise():
    with pytest.raises(ValueError, match=r"n_steps must be >= 2 for 'averaged_momentum'"):
        reference_trajectory(Scenario(n_steps=1))
    assert len(reference_trajectory(Scenario(n_steps=1), "sgd")) == 2          # SGD has no buffer to miss
    ref = reference_trajectory(Scenario(sizes=(3, 2), n_steps=2))
    with pytest.raises(ValueError, match=r"candidate must hold step 0 .* got 1 entry: nothing to compare"):
        compare_trajectories(ref, ref[:1])
    with pytest.raises(ValueError, match=r"n_steps must be an integer >= 1"):
        Scenario(n_steps=0)


# ------------------------------------------------------------------ golden files
def _fromfile(d, entry):
    return np.fromfile(d / entry["file"], dtype="<f8").reshape(entry["shape"])


def test_export_reads_back_with_json_and_numpy_fromfile_only(tmp_path):
    golden.export(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert (manifest["format"], manifest["format_version"], manifest["byte_order"], manifest["dtype"]) == \
        ("refnet-conformance-golden", 1, "little", "float64")
    assert manifest["refnet_version"] == refnet.__version__
    assert {c["quantity"] for c in manifest["cases"]} == set(golden.QUANTITIES)
    for entry in manifest["cases"]:
        for path, digest in entry["files"].items():
            assert hashlib.sha256((tmp_path / path).read_bytes()).hexdigest() == digest
    # an independent forward pass (not refnet) from the raw files reproduces every forward case
    phi = {"identity": lambda z: z, "tanh": np.tanh, "sigmoid": lambda z: 0.5 * (1 + np.tanh(z / 2)),
           "relu": lambda z: np.maximum(z, 0), "softplus": lambda z: np.logaddexp(0, z)}
    for entry in (c for c in manifest["cases"] if c["quantity"] == "forward"):
        desc = json.loads((tmp_path / entry["description"]).read_text())
        d, net, ins = tmp_path / entry["name"], desc["network"], desc["inputs"]
        A = _fromfile(d, ins["X"])
        L = len(net["sizes"]) - 1
        for l in range(1, L + 1):
            A = phi[net["activation"] if l < L else net["output_activation"]](
                A @ _fromfile(d, ins[f"W_{l}"]) + _fromfile(d, ins[f"b_{l}"]))
        Y = desc["expected"]["Y"]
        tol = np.fromfile(d / Y["tol"], dtype="<f8").reshape(Y["shape"])
        assert np.all(np.abs(A - _fromfile(d, Y)) <= tol), entry["name"]
        npz = np.load(tmp_path / entry["npz"])
        assert np.array_equal(npz["Y"], _fromfile(d, Y))


def _write_results(root, port):
    """A candidate (the NumPy port, torch layout) writes result.<name>.bin for forward, vjp, jacobian and
    trajectory cases (its own gradients)."""
    manifest = json.loads((root / "manifest.json").read_text())
    spec_of = lambda net: refnet.MLP(net["sizes"], net["activation"], net["output_activation"])
    for entry in manifest["cases"]:
        desc = json.loads((root / entry["description"]).read_text())
        d, ins = root / entry["name"], desc["inputs"]
        spec = spec_of(desc["network"])
        L = len(spec.sizes) - 1
        params = [(_fromfile(d, ins[f"W_{l}"]).T, _fromfile(d, ins[f"b_{l}"])) for l in range(1, L + 1)]  # torch layout
        X = _fromfile(d, ins["X"]) if "X" in ins else None
        if entry["quantity"] == "forward":
            out = {"Y": port.forward(spec, params, X)}
        elif entry["quantity"] == "vjp":
            g = port.vjp(spec, params, X, _fromfile(d, ins["G"]))
            out = {f"d{k}_{l}": (x.T if k == "W" else x) for l, (W, b) in enumerate(g, 1) for k, x in (("W", W), ("b", b))}
        elif entry["quantity"] == "jacobian":
            out = {"J": port.jacobian(spec, params, X, desc["arguments"]["outputs"])}
        elif entry["quantity"] in ("trajectory", "projected_trajectory"):
            args, T, state, out = desc["arguments"], _fromfile(d, ins["T"]), None, {}
            project = lambda v: port.project_out(spec, params, v, X, args["freeze"])
            for k in range(1, args["n_steps"] + 1):                       # the candidate's own gradients
                _, g = port.loss_and_grads(spec, params, X, T, args["loss"])
                g = project(g) if "freeze" in args else g
                new, state = port.optimizer_step(args["optimizer"], args["hyper"], params, g, state)
                if "freeze" in args:                                      # theta - U_perp
                    U = project([(W - nW, b - nb) for (W, b), (nW, nb) in zip(params, new)])
                    new = [(W - uW, b - ub) for (W, b), (uW, ub) in zip(params, U)]
                params = new
                out.update({f"step{k}{n}_{l}": (x.T if n == "W" else x)
                            for l, (W, b) in enumerate(params, 1) for n, x in (("W", W), ("b", b))})
        else:
            continue
        for k, v in out.items():
            np.ascontiguousarray(v, dtype="<f8").tofile(d / f"result.{k}.bin")


def test_check_passes_a_correct_candidate_and_names_a_wrong_entry(tmp_path):
    golden.export(tmp_path, quantities=("forward", "vjp", "jacobian", "trajectory", "projected_trajectory"))
    _write_results(tmp_path, P.FullPort())
    ok, lines = golden.check(tmp_path)
    assert ok and not any("SKIP" in line for line in lines), "\n".join(lines)
    done = _cli("check", str(tmp_path))
    assert done.returncode == 0 and "PASS  jacobian-09" in done.stdout, done.stdout + done.stderr
    bad = tmp_path / "vjp-03" / "result.dW_1.bin"
    v = np.fromfile(bad, dtype="<f8")
    v[0] += 1e-9
    v.tofile(bad)
    ok, lines = golden.check(tmp_path)
    assert not ok and any(line.startswith("  FAIL  vjp-03: dW_1[0, 0]: expected") for line in lines), lines
    fail = next(line for line in lines if "FAIL" in line)                  # plain numbers, as in a run's report
    assert "np.float64" not in fail and f"got {float(v[0])!r}," in fail, fail
    (tmp_path / "forward-00" / "Y.bin").write_bytes(b"\0" * 8)             # tampered golden file
    with pytest.raises(ValueError, match=r"Y.bin does not match its sha256"):
        golden.check(tmp_path)


def test_check_with_no_results_fails(tmp_path):
    golden.export(tmp_path, quantities=("forward",))
    ok, lines = golden.check(tmp_path)
    assert not ok and lines[-1] == "  no results found: nothing was compared"
    assert _cli("check", str(tmp_path)).returncode == 1


# ------------------------------------------------------------------ partial ports (issue 18 item 1)
def test_a_port_declaring_sgd_and_momentum_is_never_asked_for_the_rest():
    port = P.SgdMomentumOnly()
    report = run(port)                                                    # core cases and hypothesis
    assert report.ok and port.asked == {"sgd", "momentum"}, (port.asked, str(report))
    status = _status(report)
    assert status["optimizer_step"] == status["trajectory"] == "pass"
    opt = next(r for r in report.results if r.quantity == "optimizer_step")
    assert opt.n_cases >= len(refnet.conformance.core_cases()) and not opt.skipped   # every core case, remapped
    done = _cli("run", "--port", "tests/ports/numpy_port.py:SgdMomentumOnly")
    assert done.returncode == 0 and "OK: every quantity that ran agrees" in done.stdout, done.stdout + done.stderr


def test_not_implemented_is_a_skip_with_its_message_never_a_failure():
    report = run(P.NoAveragedMomentum())
    opt = next(r for r in report.results if r.quantity == "optimizer_step")
    assert report.ok and opt.status == "pass" and opt.skipped and opt.n_cases > 0, str(report)
    assert "skipped (first: optimizer_step: this library has no averaged momentum)" in str(report)

    class Declines(P.MinimalPort):                                        # every case of a quantity declined
        def optimizer_step(self, *args):
            raise NotImplementedError("not yet")
    report = run(Declines(), profile="core")
    assert _status(report)["optimizer_step"] == "skip" and _status(report)["trajectory"] == "skip"
    assert "every case declined: optimizer_step: not yet" in str(report)
    assert report.ok and _status(report)["forward"] == "pass"              # never blocking the others

    class DeclinesAll:
        name, layout = "declines everything", "refnet"

        def forward(self, *args):
            raise NotImplementedError
    report = run(DeclinesAll(), profile="core")
    assert not report.ok and _status(report)["forward"] == "skip", str(report)  # nothing compared: exit 1


def test_optimizers_declaration_is_checked():
    for bad, error in (("sgd", TypeError), (["sgd", "adam"], ValueError), (3, TypeError)):
        port = P.MinimalPort()
        port.optimizers = bad
        with pytest.raises(error, match=r"port.optimizers must"):
            run(port)
    port = P.MinimalPort()
    port.optimizers = ()
    assert "port.optimizers declares no optimizer variant" in str(run(port, profile="core"))


def test_projections_get_refnets_rtol_when_their_signature_takes_it():
    got = []

    class Records(P.FullPort):
        def project_out(self, spec, params, grads, anchors, outputs, rtol):
            got.append((rtol, refnet.frozen.default_rtol(spec, len(outputs) * len(anchors), "float64")))
            return super().project_out(spec, params, grads, anchors, outputs, rtol)

    class Old(P.FullPort):                                               # written before rtol existed
        def project_out(self, spec, params, grads, anchors, outputs):
            return super().project_out(spec, params, grads, anchors, outputs)

    class Keyword(P.FullPort):
        def project_out(self, spec, params, grads, anchors, outputs, *, rtol):
            got.append((rtol, None))
            return super().project_out(spec, params, grads, anchors, outputs, rtol)

    for port in (Records(), Old(), Keyword()):
        assert _status(run(port, quantities=["project_out"], profile="core")) == {"project_out": "pass"}
    assert got and all(r == d for r, d in got if d is not None) and all(r > 0 for r, _ in got)
    assert any(d is None for _, d in got)                                    # the keyword-only port got it too
