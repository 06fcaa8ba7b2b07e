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
    # JAX compiles per shape: the port jit-compiles per network, and the quick profile draws the core
    # cases' shapes (it found XLA's tanh 6 ulps off, which the core cases alone did not)
    report = assert_conforms(JaxPort(), profile="quick")
    assert _status(report)["frozen_step"] == "skip" and "no frozen_step" in str(report)
    assert {s for q, s in _status(report).items() if q != "frozen_step"} == {"pass"}, str(report)


def _readme_port(*replacements):
    """The kit page's PyTorch port (its python block, run), with textual ``(old, new)`` edits applied."""
    text = (ROOT / "tutorials" / "verification.md").read_text()
    section = text[text.index("## A port"):]
    code = section[section.index("```python\n") + 10:section.index("```", section.index("```python\n") + 10)]
    head = code[:code.index("report = run(")]
    for old, new in replacements:
        assert old in head, old
        head = head.replace(old, new)
    scope = {}
    exec(compile(head, "verification.md", "exec"), scope)
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
    # the kit's page shows a shrunk failure: its case, replayed, gives exactly the failure it prints
    shown = (ROOT / "tutorials" / "verification.md").read_text()
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
    P.WrongJacobianColumns: ("jacobian", "= d Y[0, 0] / d ", ["project_out", "frozen_step"]),
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


def test_frozen_step_from_rank_0_is_compared_by_its_invariants_only():
    # a deep run found it: a relu output that is 0 on every anchor (saturated tanh units) has J = 0, rank 0,
    # s_r = inf; the step wakes it (|dJ| = 3.9), so each retraction lands where its own J takes it (refnet,
    # the NumPy and the torch ports differed by 1e-5 in W_1[2, 1]). Parameters are not compared; the
    # invariants still are (a port without a retraction fails them).
    case = Case(sizes=(3, 3, 5, 3), output_activation="relu", n=5, kind="saturated")
    with pytest.raises(checks.NotComparable, match=r"from J = 0 \(rank 0: no s_r bounds it\).*\(invariants hold\)"):
        checks.check_frozen_step(P.FullPort(), case)
    mis = checks.check_frozen_step(P.WrongNoRetraction(), case)
    assert mis is not None and "moved (invariant: frozen outputs constant)" in mis.where, mis


def test_a_run_whose_error_bound_overflows_is_not_compared():
    # a deep run drew this diverging run (|theta| 5e44 at step 3, 2e219 at step 4): the bound overflows
    # to inf at step 4, where the torch test port's projection returned NaN and passed (|NaN - r| > inf is
    # false), then failed step 5 as unusable input. An infinite tolerance compares nothing.
    case = Case(sizes=(1, 2, 3, 4), activation="identity", seed=25414, n=1, kind="saturated", freeze=(1,),
                optimizer="sgd", n_steps=5)
    res = run(P.FullPort(), quantities=["projected_trajectory"], case=case).results[0]
    assert res.status == "skip" and "overflows at step 4 (its error bound is inf" in res.reason, res


def test_ill_defined_rank_is_not_compared_and_says_why():
    # a tanh 1-2-1 net on near-duplicate anchors: J (5, 7) has a singular value of 3.7e-13 within a
    # factor 10 of refnet's cutoff rtol s_max = 4.0e-14 (default_rtol): rounding in another correct
    # implementation can move it across, so one keeps it and another drops it
    case = Case(sizes=(1, 2, 1), activation="tanh", seed=1, n=5, kind="near_duplicate_anchors")
    with pytest.raises(checks.NotComparable, match=r"rank ambiguous at this precision: singular value\(s\) 3.71e-13 "
                                                    r"within a factor 10 of the cutoff rtol s_max = 4.01e-14; "
                                                    r"invariants checked"):
        checks.check_project_out(P.FullPort(), case)
    assert checks.check_project_out(P.FullPort(), Case(sizes=(1, 2, 1), activation="identity", seed=3, n=5)) is None
    # the invariants still catch a port that ignores the frozen outputs altogether
    class Ignores(P.FullPort):
        def project_out(self, spec, params, grads, anchors, outputs):
            return grads
    mis = checks.check_project_out(Ignores(), case)
    assert mis is not None and mis.where.startswith("leaks: V_keep^T g_perp (row-space directions of J not removed)")


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


# ------------------------------------------------------------------ no false passes, no false failures (item 2)
class _EditsSpec(P.MinimalPort):
    """Wrong (identity activations everywhere), and it edits what it is handed to match: the spec object,
    the parameters and the inputs, in place."""
    name = "bug: identity activations, spec edited"

    def forward(self, spec, params, X):
        spec.activation = spec.output_activation = "identity"
        spec.phis = [refnet.nn.ACTIVATIONS["identity"]] * len(spec.phis)    # (what refnet.MLP computes with)
        for W, b in params:
            W *= 1.0
        X += 0.0
        A = X
        for W, b in params:
            A = A @ W.T + b
        return A


def test_a_port_editing_the_spec_changes_nothing_and_fails():
    report = run(_EditsSpec(), quantities=["forward"], profile="core")
    assert _status(report) == {"forward": "fail"}, str(report)


def test_complex_and_wrong_dtype_results_fail_saying_so():
    class Complex(P.MinimalPort):
        def forward(self, spec, params, X):
            return super().forward(spec, params, X) + 123j

    class Float32(P.MinimalPort):                                         # declares float64
        def forward(self, spec, params, X):
            return super().forward(spec, params, X).astype(np.float32)

    class Ints(P.MinimalPort):
        def vjp(self, spec, params, X, G):
            return [(np.zeros(W.shape, int), np.zeros(b.shape, int)) for W, b in params]

    for port, quantity, says in ((Complex(), "forward", "forward returned complex values (complex128)"),
                                 (Float32(), "forward", "forward returned dtype float32, but the port's dtype is "
                                                        "'float64'"),
                                 (Ints(), "vjp", "vjp returned dtype int64")):
        report = run(port, quantities=[quantity], profile="core")
        r = report.results[0]
        assert r.status == "fail" and says in str(r.mismatch) and "Warning" not in str(report), str(report)


def test_a_hanging_port_fails_after_the_per_call_limit_and_does_not_hang_the_run():
    import threading
    import time
    release = threading.Event()

    class Hangs(P.MinimalPort):
        def vjp(self, spec, params, X, G):
            release.wait(60)                                              # hangs (until the test lets it go)

    try:
        start = time.perf_counter()
        report = run(Hangs(), quantities=["forward", "vjp", "optimizer_step"], timeout=2.0)   # 2 s: not a busy machine's stall
        took = time.perf_counter() - start
    finally:
        release.set()
    r = next(r for r in report.results if r.quantity == "vjp")
    assert r.status == "fail" and str(r.mismatch) == (
        "vjp: vjp took longer than 2 s (the per-call limit, --timeout); the call was abandoned"), str(report)
    assert not r.shrunk and _status(report)["optimizer_step"] == "pass"    # one call abandoned, not one per case
    assert took < 30, took


def test_a_port_whose_layout_the_kit_cannot_see_is_told_and_strict_fails_it(tmp_path):
    # the original answer's reduce_mean(axis=1): outgoing averaging in refnet's layout (W is (n_in, n_out)),
    # which looks incoming when the port declares the torch layout and nothing it computes shows its layout
    (tmp_path / "axis1.py").write_text(
        "import numpy as np\n"
        "class Port:\n"
        "    name, layout = 'optimizer only, axis=1, declares torch', 'torch'\n"
        "    def optimizer_step(self, name, hyper, params, grads, state):\n"
        "        lr, mu = hyper['lr'], hyper.get('momentum', 0.0)\n"
        "        state = state or [(0 * W, 0 * b) for W, b in params]\n"
        "        new, acc = [], []\n"
        "        for (W, b), (gW, gb), (aW, ab) in zip(params, grads, state):\n"
        "            if name == 'averaged_momentum':\n"
        "                if hyper['include_bias']:\n"
        "                    raise NotImplementedError('no include_bias')\n"
        "                aW = np.broadcast_to(aW.mean(axis=1, keepdims=True), aW.shape)\n"
        "            aW, ab = gW + mu * aW, gb + mu * ab\n"
        "            uW, ub = (gW + mu * aW, gb + mu * ab) if hyper.get('nesterov') else (aW, ab)\n"
        "            new.append((W - lr * uW, b - lr * ub))\n"
        "            acc.append((aW, ab))\n"
        "        return new, acc\n")
    port = load_port(f"{tmp_path / 'axis1.py'}:Port")
    report = run(port, profile="core")
    assert report.ok and "NOTE: layout 'torch' is not verified" in str(report), str(report)
    strict = run(port, profile="core", strict=True)
    assert not strict.ok and "FAILED (--strict): layout 'torch' is not verified" in str(strict)
    done = _cli("run", "--port", f"{tmp_path / 'axis1.py'}:Port", "--profile", "core", "--strict")
    assert done.returncode == 1 and "NOTE: layout 'torch' is not verified" in done.stdout, done.stdout + done.stderr
    port.layout = "refnet"                                                 # declared truthfully: caught
    assert _status(run(port, profile="core"))["optimizer_step"] == "fail"


def test_float32_values_beyond_float32s_range_are_not_comparable():
    from ports.float32_port import Float32Optimizers
    # saturated softplus units: refnet's float64 trajectory reaches ~1e43 at step 4, the port overflows to inf
    case = Case(sizes=(2, 3, 2), activation="softplus", seed=11, n=3, kind="saturated", optimizer="sgd")
    with pytest.raises(checks.NotComparable, match=r"refnet's values leave float32's range"):
        checks.check_trajectory(Float32Optimizers(), case)
    as_float64 = Float32Optimizers()
    as_float64.dtype = "float64"                                           # (in float64 it is compared: fails)
    assert run(as_float64, quantities=["optimizer_step"], profile="core").results[0].status == "fail"
    report = run(Float32Optimizers())
    assert report.ok, str(report)


@pytest.mark.slow
def test_float32_optimizers_pass_the_deep_profile():
    from ports.float32_port import Float32Optimizers
    report = run(Float32Optimizers(), profile="deep")
    assert report.ok, str(report)


class _AxisBugRaisingOnNarrowInputs(P.WrongOutgoingAveraging):
    """Two different failures: the axis bug (values) on averaged momentum, and a crash on 1-wide inputs."""
    name = "bug: outgoing averaging, crashes on 1-wide inputs"

    def optimizer_step(self, name, hyper, params, grads, state):
        if params[0][0].shape[1] == 1:                                     # torch layout: n_in of layer 1
            raise RuntimeError("1-wide inputs not supported")
        return super().optimizer_step(name, hyper, params, grads, state)


def test_the_first_real_failure_is_the_one_reported_and_shrunk(monkeypatch):
    from refnet.conformance import runner
    monkeypatch.setattr(runner, "_hypothesis_search", lambda *a, **k: pytest.fail("searched after a core failure"))
    report = run(_AxisBugRaisingOnNarrowInputs(), quantities=["optimizer_step"])
    r = report.results[0]
    assert r.status == "fail" and r.mismatch.where.startswith("step 2, W_1[") and not r.mismatch.kind, str(report)
    assert r.shrunk and r.case.sizes[0] > 1 and "RuntimeError" not in str(report), str(report)


def test_hypothesis_keeps_the_kind_of_failure_it_found_while_shrinking(monkeypatch):
    # a value failure wherever lr = 0.5, a crash where it is also one of the simplest cases (seed 0, the
    # simplest net), which shrinking heads for: the report must keep the value failure it found first
    # (the quick profile is derandomized: this search is the same on every run)
    from refnet.conformance import runner

    simplest = runner._quick_shapes()[0][0]                               # where hypothesis shrinks sizes to

    def evaluate(port, quantity, case):
        if case.lr == 0.5 and case.seed == 0 and (case.sizes == simplest or sum(case.sizes) <= 3):
            return checks.Mismatch(quantity, "optimizer_step raised RuntimeError: boom", np.nan, np.nan, 0.0,
                                   kind="port")
        return checks.Mismatch(quantity, "step 1, W_1[0, 0]", 1.0, 2.0, 0.1) if case.lr == 0.5 else None
    monkeypatch.setattr(runner, "_evaluate", evaluate)
    monkeypatch.setattr(runner, "core_cases", lambda: [])
    r = run(P.MinimalPort(), quantities=["optimizer_step"]).results[0]
    assert r.status == "fail" and r.mismatch.where == "step 1, W_1[0, 0]" and r.case.lr == 0.5, r


def test_zero_jacobian_is_rank_0_and_compared():
    case = Case(sizes=(2, 3, 2), activation="relu", output_activation="relu", seed=0, n=3)   # output 0 dead: J = 0
    spec, a = case.network(), case.arrays()
    assert not np.any(np.asarray(spec.jacobian(a["params"], a["X"], outputs=[0])))
    assert checks.check_project_out(P.FullPort(), case) is None

    class NaNs(P.FullPort):
        def project_out(self, spec, params, grads, anchors, outputs, rtol=None):
            return [(np.full_like(W, np.nan), np.full_like(b, np.nan)) for W, b in grads]
    mis = checks.check_project_out(NaNs(), case)
    assert mis is not None and "the port returned NaN or Inf (J = 0 here: rank 0, g_perp = g)" in mis.detail


def test_projection_failures_say_leaks_or_over_projects():
    # X ~ 1e-12: J's singular values ~1e-13 are far above refnet's relative cutoff and below the port's
    # absolute 1e-10, so the port keeps g in directions that move the frozen outputs
    leaks = checks.check_project_out(P.WrongAbsoluteCutoff(), Case(sizes=(1, 2, 1), activation="identity", n=2,
                                                                   kind="small_magnitude"))
    assert leaks.detail.startswith("leaks: |J g_perp|_2 = ") and "over-projects" not in leaks.detail, leaks

    class KeepsEverySingularValue(P.FullPort):                             # no cutoff: noise becomes a constraint
        def cutoff(self, s, J, rtol=None):
            return 0.0
    over = checks.check_project_out(KeepsEverySingularValue(), Case(sizes=(1, 2, 1), activation="identity", seed=3,
                                                                   n=5))
    assert over.detail.startswith("over-projects: it removed or changed ") and "leaks" not in over.detail, over


def test_all_failures_lists_every_distinct_failure():
    class TwoBugs(P.WrongOutgoingAveraging):
        def optimizer_step(self, name, hyper, params, grads, state):
            if hyper.get("nesterov"):
                raise RuntimeError("nesterov is broken too")
            return super().optimizer_step(name, hyper, params, grads, state)
    first = run(TwoBugs(), quantities=["optimizer_step", "trajectory"], profile="core")
    assert _status(first) == {"optimizer_step": "fail", "trajectory": "blocked"} and not first.results[0].others
    every = run(TwoBugs(), quantities=["optimizer_step", "trajectory"], profile="core", all_failures=True)
    text = str(every)
    assert _status(every) == {"optimizer_step": "fail", "trajectory": "fail"}, text     # not blocked
    assert "FAIL (another) optimizer_step: optimizer_step raised RuntimeError: nesterov is broken too" in text, text


def test_reports_hint_at_recognised_slips():
    class RoundsHyper(P.MinimalPort):                                      # TF1: a Python float in a float32 graph
        def optimizer_step(self, name, hyper, params, grads, state):
            h = {k: (float(np.float32(v)) if isinstance(v, float) else v) for k, v in hyper.items()}
            return super().optimizer_step(name, h, params, grads, state)
    r = run(RoundsHyper(), quantities=["optimizer_step"], profile="core").results[0]
    assert r.status == "fail" and r.mismatch.where.startswith("step 1, ")
    assert "hint: the port matches refnet with lr and momentum rounded to float32" in r.mismatch.detail
    assert 1e-10 < abs(r.mismatch.candidate / r.mismatch.reference - 1) < 1e-8                  # ~1e-9 relative

    class LinearSoftplus(P.MinimalPort):                                   # torch.nn.Softplus(threshold=20)
        def act(self, spec, l):
            phi = super().act(spec, l)
            if phi is not P.ACT["softplus"]:
                return phi
            return (lambda Z: np.where(Z > 20, Z, np.logaddexp(0.0, Z)), phi[1])
    r = run(LinearSoftplus(), quantities=["forward"], profile="core").results[0]
    assert r.status == "fail" and "hint: the port matches softplus taken as z itself above 20" in r.mismatch.detail
    assert checks.check_forward(P.MinimalPort(), r.case) is None                  # (the correct port passes it)


# ------------------------------------------------------------------ a clean command line (item 3)
_NOT_PORTS = '''
import numpy as np
from numpy_port import MinimalPort          # a sibling file: the port's folder is on the import path
INT = 3
def function():
    return MinimalPort()
class NoName(MinimalPort):
    name = None
class BadLayout(MinimalPort):
    layout = "column_major"
class BadDtype(MinimalPort):
    dtype = "float16"
class Fine(MinimalPort):
    name = "fine, from a folder of its own"
'''


@pytest.mark.parametrize("attr,message", [
    ("INT", "--port: {f}:INT is int 3, not a port: give the port object or its class"),
    ("function", "--port: {f}:function is function <function function at"),
    ("NoName", "--port: port.name must be a string, got None"),
    ("BadLayout", "--port: port.layout must be one of ['refnet', 'torch'], got 'column_major'"),
    ("BadDtype", "--port: port.dtype must be one of ['float64', 'float32'], got 'float16'"),
])
def test_unusable_ports_are_one_line_errors_with_exit_2(tmp_path, attr, message):
    (tmp_path / "ports.py").write_text(_NOT_PORTS)
    (tmp_path / "numpy_port.py").write_text((ROOT / "tests" / "ports" / "numpy_port.py").read_text())
    done = _cli("run", "--port", f"{tmp_path / 'ports.py'}:{attr}")
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stdout + done.stderr
    assert message.format(f=tmp_path / "ports.py") in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_port_file_imports_its_siblings_from_any_folder(tmp_path):
    (tmp_path / "ports.py").write_text(_NOT_PORTS)
    (tmp_path / "numpy_port.py").write_text((ROOT / "tests" / "ports" / "numpy_port.py").read_text())
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "refnet", "conformance", "run", "--port", "ports.py:Fine",
                           "--profile", "core"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "profile 'core'" in done.stdout, done.stdout + done.stderr
    elsewhere = _cli("run", "--port", f"{tmp_path / 'ports.py'}:Fine", "--profile", "core")   # from the checkout
    assert elsewhere.returncode == 0, elsewhere.stdout + elsewhere.stderr


def _manifest_dir(tmp_path, name, manifest):
    d = tmp_path / name
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


@pytest.mark.parametrize("args,message", [
    (["run", "--port", "os:path"], "--port: os:path is module <module"),
    (["run", "--port", "tests/ports/numpy_port.py:MinimalPort", "--case", '{"sizes": []}'],
     "--case: sizes must list at least two layer widths, each >= 1, got []"),
    (["run", "--port", "tests/ports/numpy_port.py:MinimalPort", "--case", "[3]"], "--case: case must be a JSON object"),
    (["run", "--port", "tests/ports/numpy_port.py:MinimalPort", "--save-failures", "README.md"],
     "--save-failures: 'README.md' is a file; expected a folder"),
    (["run", "--port", "tests/ports/numpy_port.py:MinimalPort", "--timeout", "soon"],
     "--timeout: expected a number of seconds (0: no limit), got 'soon'"),
    (["check", "{list}"], "manifest.json must hold a JSON object, got a list"),
    (["check", "{no_cases}"], "has no \"cases\" list"),
    (["check", "{no_files}"], "cases[0] must be an object with \"name\", \"description\" and \"files\""),
    (["check", "{outside}"], "cases[0].files '../secret.bin' names a file outside"),
    (["check", "{good}", "--results", "{good}/no_such_results"], "--results: no folder"),
    (["export", "README.md"], "README.md"),
])
def test_unusable_arguments_of_run_export_check_are_one_line_errors(tmp_path, args, message):
    golden_header = {"format": golden.FORMAT, "format_version": golden.FORMAT_VERSION}
    dirs = {"list": _manifest_dir(tmp_path, "list", [1, 2]),
            "no_cases": _manifest_dir(tmp_path, "no_cases", golden_header),
            "no_files": _manifest_dir(tmp_path, "no_files", {**golden_header, "cases": [{"name": "a",
                                                                                       "description": "a/case.json"}]}),
            "outside": _manifest_dir(tmp_path, "outside", {**golden_header, "cases": [
                {"name": "a", "description": "a/case.json", "files": {"a/case.json": "0", "../secret.bin": "0"}}]}),
            "good": _manifest_dir(tmp_path, "good", {**golden_header, "cases": []})}
    fill = lambda text: next((text.replace(f"{{{k}}}", str(d)) for k, d in dirs.items() if f"{{{k}}}" in text), text)
    done = _cli(*map(fill, args))
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stdout + done.stderr
    assert fill(message) in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_check_refuses_a_path_outside_its_folder_before_reading_anything(tmp_path, monkeypatch):
    golden.export(tmp_path / "g", quantities=("forward",))
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    (tmp_path / "secret.bin").write_bytes(b"\0" * 8)
    manifest["cases"][-1]["files"]["../secret.bin"] = "0" * 64
    (tmp_path / "g" / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(golden, "_sha256", lambda path: pytest.fail(f"read {path} before refusing"))
    with pytest.raises(ValueError, match=r"cases\[\d+\].files '../secret.bin' names a file outside"):
        golden.check(tmp_path / "g")
    desc = tmp_path / "g" / "forward-00" / "case.json"                     # a description pointing out, too
    body = json.loads(desc.read_text())
    body["expected"]["Y"]["file"] = "../../secret.bin"
    desc.write_text(json.dumps(body))
    manifest["cases"][-1]["files"].pop("../secret.bin")
    manifest["cases"][0]["files"]["forward-00/case.json"] = hashlib.sha256(desc.read_bytes()).hexdigest()
    (tmp_path / "g" / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"expected Y file '../../secret.bin' names a file outside"):
        golden.check(tmp_path / "g")


def test_the_header_names_the_profile_that_ran(monkeypatch):
    assert "profile 'quick'" in str(run(P.MinimalPort(), quantities=["forward"]))
    assert "profile 'one case (--case)'" in str(run(P.MinimalPort(), quantities=["forward"], case=Case()))
    monkeypatch.setitem(sys.modules, "hypothesis", None)                    # hypothesis not installed
    assert "profile 'core (hypothesis is not installed)'" in str(run(P.MinimalPort(), quantities=["forward"]))


# ------------------------------------------------------------------ the kit's own checks, broken on purpose (item 7)
from refnet.conformance import runner, tolerances as tl                   # noqa: E402

_TOL = {name: getattr(tl, name) for name in ("forward_bound", "backward_bound", "optimizer_tol", "projection_tol",
                                              "svd_facts")}              # the unbroken tolerances, kept here
_SAFETY, _EPS = tl.SAFETY, tl.EPS["float64"]


class _Offset:
    """refnet's own answer moved by ``f`` times the kit's tolerance at every entry (the tolerances as derived
    by the unbroken formulas above): f = 0.5 must pass, f = 2 must fail. A tool for testing the kit, not a
    port (it calls refnet). ``accumulate``: optimizer steps moved by f times the trajectory's summed tolerance."""
    layout = "refnet"

    def __init__(self, f, accumulate=False):
        self.f, self.accumulate, self.name = f, accumulate, f"refnet + {f} tol"

    def forward(self, spec, params, X):
        Es = _TOL["forward_bound"](spec, params, X, _EPS)[2]
        return np.asarray(spec.forward(params, X)) + self.f * _SAFETY * Es[-1]

    def vjp(self, spec, params, X, G):
        fwd = _TOL["forward_bound"](spec, params, X, _EPS)
        E = _TOL["backward_bound"](spec, params, fwd, G[None], np.zeros_like(G)[None], _EPS)
        return [(dW + self.f * _SAFETY * eW, db + self.f * _SAFETY * eb)
                for (dW, db), (eW, eb) in zip(spec.vjp(params, X, G), E)]

    def jacobian(self, spec, params, X, outputs):
        fwd = _TOL["forward_bound"](spec, params, X, _EPS)
        n, n_L = X.shape[0], spec.sizes[-1]
        S = np.broadcast_to(np.eye(n_L)[list(outputs)][:, None, :], (len(outputs), n, n_L))
        E_J = _TOL["backward_bound"](spec, params, fwd, S, np.zeros(S.shape), _EPS, per_sample=True)
        return np.asarray(spec.jacobian(params, X, outputs=list(outputs))) + self.f * _SAFETY * E_J

    def project_out(self, spec, params, grads, anchors, outputs):
        J = np.asarray(spec.jacobian(params, anchors, outputs=list(outputs)))
        fwd = _TOL["forward_bound"](spec, params, anchors, _EPS)
        n, n_L = anchors.shape[0], spec.sizes[-1]
        S = np.broadcast_to(np.eye(n_L)[list(outputs)][:, None, :], (len(outputs), n, n_L))
        E_J = _TOL["backward_bound"](spec, params, fwd, S, np.zeros(S.shape), _EPS, per_sample=True)
        facts = _TOL["svd_facts"](J, _EPS, noise=float(np.linalg.norm(E_J)))
        g = np.concatenate([x.ravel() for W, b in grads for x in (W, b)])
        tol = _TOL["projection_tol"](facts, E_J, float(np.linalg.norm(g)))
        ref = refnet.project_out(spec, params, grads, anchors, outputs=list(outputs), method="dense")
        return [(np.asarray(W) + self.f * tol, np.asarray(b) + self.f * tol) for W, b in ref]

    def optimizer_step(self, name, hyper, params, grads, state):
        opt = {"sgd": lambda: refnet.SGD(hyper["lr"]),
               "momentum": lambda: refnet.Momentum(hyper["lr"], hyper["momentum"], nesterov=hyper["nesterov"]),
               "averaged_momentum": lambda: refnet.AveragedMomentum(hyper["lr"], hyper["momentum"],
                                                                    include_bias=hyper["include_bias"])}[name]()
        inner, summed = state if state is not None else (opt.init(params), 0.0)
        acc = checks._accumulation(inner)
        tol = _TOL["optimizer_tol"](params, grads, acc, hyper, _EPS)
        new, inner = opt.step(params, grads, inner)
        if self.accumulate:                                               # the trajectory's summed tolerance
            summed += max(float(t.max()) for pair in tol for t in pair)
            tol = [(summed, summed)] * len(tol)
        return [(np.asarray(W) + self.f * tW, np.asarray(b) + self.f * tb)
                for (W, b), (tW, tb) in zip(new, tol)], (inner, summed)


_TIGHT = ["forward", "vjp", "jacobian", "project_out", "optimizer_step"]


@pytest.mark.parametrize("quantity", _TIGHT)
def test_each_tolerance_is_tight_half_passes_twice_fails(quantity):
    assert run(_Offset(0.5), quantities=[quantity], profile="core").results[0].status == "pass"
    r = run(_Offset(2.0), quantities=[quantity], profile="core").results[0]
    assert r.status == "fail" and r.mismatch.candidate != r.mismatch.reference, r


def test_trajectory_tolerances_add_up_over_the_steps():
    # moved by half the summed per-step tolerance at every step: passes; by twice it: fails
    assert run(_Offset(0.5, accumulate=True), quantities=["trajectory"], profile="core").results[0].status == "pass"
    assert run(_Offset(2.0, accumulate=True), quantities=["trajectory"], profile="core").results[0].status == "fail"


def _times(name, k):
    """A tolerance function of refnet.conformance.tolerances made k times looser."""
    f = _TOL[name]
    scale = lambda x: [(k * a, k * b) for a, b in x] if isinstance(x, list) else k * x
    if name == "forward_bound":
        return lambda *a, **kw: (lambda r: (r[0], r[1], [k * e for e in r[2]], r[3]))(f(*a, **kw))
    return lambda *a, **kw: scale(f(*a, **kw))


def _self_comparison(monkeypatch):
    original = checks.first_mismatch
    monkeypatch.setattr(checks, "first_mismatch", lambda q, named, *a, **k: original(
        q, [(n, c, c, t) for n, r, c, t in named], *a, **k))                # the candidate against itself


MUTANTS = {   # name -> (how the kit is broken, a quantity whose twice-the-tolerance candidate then passes)
    "candidate compared with itself": (_self_comparison, "forward"),
    "forward tolerance 10x": (lambda mp: mp.setattr(tl, "forward_bound", _times("forward_bound", 10)), "forward"),
    "backprop tolerance 10x": (lambda mp: mp.setattr(tl, "backward_bound", _times("backward_bound", 10)), "vjp"),
    "SAFETY 10x": (lambda mp: mp.setattr(tl, "SAFETY", 10 * _SAFETY), "forward"),
    "SAFETY 1000x": (lambda mp: mp.setattr(tl, "SAFETY", 1000 * _SAFETY), "jacobian"),
    "projection tolerance 10x": (lambda mp: mp.setattr(tl, "projection_tol", _times("projection_tol", 10)),
                                 "project_out"),
    "optimizer tolerance 1000x": (lambda mp: mp.setattr(tl, "optimizer_tol", _times("optimizer_tol", 1000)),
                                  "optimizer_step"),
}


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_a_loose_or_vacuous_check_lets_a_wrong_candidate_pass(monkeypatch, mutant):
    # the kit broken on purpose: the twice-the-tolerance candidate, which the tests above fail, now passes,
    # so each of these mutants fails test_each_tolerance_is_tight_half_passes_twice_fails
    breaks, quantity = MUTANTS[mutant]
    assert run(_Offset(2.0), quantities=[quantity], profile="core").results[0].status == "fail"
    breaks(monkeypatch)
    assert run(_Offset(2.0), quantities=[quantity], profile="core").results[0].status == "pass"


def test_per_step_tolerances_not_accumulated_fail_a_correct_trajectory(monkeypatch):
    monkeypatch.setattr(tl, "accumulate", lambda tol, step_tol, growth=1.0: step_tol)    # the mutant
    assert run(_Offset(0.5, accumulate=True), quantities=["trajectory"], profile="core").results[0].status == "fail"


def test_shrinking_switched_off_fails_the_seeded_bug_test(monkeypatch):
    monkeypatch.setattr(runner, "_shrink", lambda port, q, case, mismatch, declared, budget=200: (mismatch, case))
    with pytest.raises(AssertionError, match=r"sizes=\(3, 4, 2\)"):
        test_seeded_bug_is_caught_with_its_shrunk_case(P.WrongOutgoingAveraging)


def test_an_unverified_sha256_lets_a_tampered_golden_file_through(tmp_path, monkeypatch):
    golden.export(tmp_path, quantities=("forward",))
    digests = {str(tmp_path / p): d for e in json.loads((tmp_path / "manifest.json").read_text())["cases"]
               for p, d in e["files"].items()}
    (tmp_path / "forward-00" / "Y.bin").write_bytes(b"\0" * 8)
    with pytest.raises(ValueError, match=r"Y.bin does not match its sha256"):
        golden.check(tmp_path)
    monkeypatch.setattr(golden, "_sha256", lambda path: digests[str(path)])   # the mutant: digests not computed
    golden.check(tmp_path)                                                    # (no error: the test above kills it)


def test_every_hard_case_kind_still_produces_its_hard_case():
    from hypothesis import find
    from refnet.conformance.cases import KINDS
    from refnet.strategies import conformance_cases
    for kind in KINDS:                                                       # the strategy still draws each kind
        find(conformance_cases(), lambda c: c.kind == kind)
    base = dict(sizes=(3, 4, 2), seed=3, n=4)
    plain = Case(**base).arrays()
    small = Case(**base, kind="small_magnitude").arrays()
    assert np.max(np.abs(small["X"])) <= 2e-12 < np.min(np.abs(plain["X"]))
    sat = Case(**base, kind="saturated").arrays()
    assert np.min(1 - np.tanh(sat["X"] @ sat["params"][0][0] + sat["params"][0][1]) ** 2) < 1e-6   # tanh' ~ 0
    dup = Case(**base, kind="near_duplicate_anchors").arrays()
    assert 0 < np.max(np.abs(dup["X"][1] - dup["X"][0])) <= 1e-8
    wide = Case(**base, kind="wide_scale").arrays()
    assert np.allclose(wide["params"][0][0], 1e3 * plain["params"][0][0])
    assert np.allclose(wide["params"][1][0], 1e-3 * plain["params"][1][0])
    for n in range(3):
        c = Case(sizes=(2, 2, 2), n=n + 1, freeze=(0,), kind="m_close_to_p")
        assert abs(c.n_samples - c.network().n_params) <= 1                  # m = len(freeze) n next to p
