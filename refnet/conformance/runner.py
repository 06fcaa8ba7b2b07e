"""The runner: every quantity the port implements, in computation order, on the core cases then hypothesis.

``run(port)`` returns a :class:`RunReport`; ``python -m refnet conformance run
--port MODULE:ATTR`` prints it and exits 0 only when everything that ran passed.
"""
from __future__ import annotations

import importlib
import json
import importlib.util
import pathlib
import shlex
import sys
from dataclasses import dataclass, field

import numpy as np

from . import checks
from .cases import Case, core_cases
from .layout import COLUMN_ORDERS, LAYOUTS, ROW_ORDERS

# hypothesis examples per quantity after the core cases; "quick" is the default; "core": no hypothesis
# (for ports that compile per shape, e.g. JAX, where every new example costs a compilation)
PROFILES = {"core": dict(max_examples=0), "quick": dict(max_examples=25, derandomize=True),
            "deep": dict(max_examples=1000, derandomize=False)}


@dataclass
class QuantityResult:
    """status: "pass", "fail", "skip" (the port lacks the method) or "blocked" (a quantity it is built on failed).

    n_cases: cases compared; not_comparable: [(case, reason)] of cases with no
    well-defined answer at this precision (not counted as passed); mismatch, case:
    the failure and the (shrunk, when ``shrunk``) case that shows it.
    """
    quantity: str
    status: str
    reason: str = ""
    n_cases: int = 0
    not_comparable: list = field(default_factory=list)
    mismatch: checks.Mismatch | None = None
    case: Case | None = None
    shrunk: bool = False            # by hypothesis, or greedily for a failing core case hypothesis missed


@dataclass
class RunReport:
    port: str
    layout: str
    profile: str
    results: list
    replay: str = "python -m refnet conformance run --port MODULE:ATTR"

    @property
    def ok(self) -> bool:
        """True when nothing failed or was blocked (skipped quantities are allowed: the port lacks them)
        and something passed (a port with none of the methods, e.g. all misspelled, proves nothing)."""
        return all(r.status in ("pass", "skip") for r in self.results) and any(r.status == "pass" for r in self.results)

    def __bool__(self):
        return self.ok

    def replay_command(self, r: QuantityResult) -> str:
        return f"{self.replay} --quantity {r.quantity} --case {shlex.quote(r.case.to_json())}"

    def __str__(self):
        lines = [f"refnet conformance: port {self.port!r} (layout {self.layout!r}), profile {self.profile!r}"]
        for r in self.results:
            info = {"pass": f"{r.n_cases} cases", "fail": str(r.mismatch.where) if r.mismatch else "",
                    "skip": r.reason, "blocked": r.reason}[r.status]
            if r.not_comparable:
                info += f"; {len(r.not_comparable)} not comparable (first: {r.not_comparable[0][1]})"
            lines.append(f"  {r.status.upper():8s}{r.quantity:22s}{info}")
        for r in self.results:
            if r.status == "fail":
                lines += ["", f"FAIL {r.mismatch}",
                          f"  case ({'shrunk' if r.shrunk else 'as given'}): {r.case.to_json()}",
                          f"  replay: {self.replay_command(r)}"]
        lines.append("")
        failed = [r.quantity for r in self.results if r.status in ("fail", "blocked")]
        lines.append("OK: every quantity that ran agrees with refnet" if self.ok else "FAILED: " + ", ".join(failed)
                     if failed else "FAILED: nothing was compared (the port has none of the methods these "
                                    "quantities need)")
        return "\n".join(lines)


def load_port(spec: str):
    """"MODULE:ATTR" (or "path/to/file.py:ATTR") -> the port; a class is instantiated without arguments."""
    if ":" not in spec:
        raise ValueError(f"port must be MODULE:ATTR (e.g. my_port:Port), got {spec!r}")
    module, attr = spec.rsplit(":", 1)
    if module.endswith(".py"):
        path = pathlib.Path(module).resolve()
        mod_spec = importlib.util.spec_from_file_location(path.stem, path)
        if mod_spec is None:
            raise ValueError(f"cannot load a port module from {module!r}")
        mod = importlib.util.module_from_spec(mod_spec)
        sys.modules[path.stem] = mod
        mod_spec.loader.exec_module(mod)
    else:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module.split(".")[0] and e.name != module:
                raise                                        # the port's own imports: the user's traceback
            raise ValueError(f"cannot import the port module {module!r} (run from the folder that holds it, "
                             f"or give a path: path/to/{module.replace('.', '/')}.py:{attr})") from None
    if not hasattr(mod, attr):
        raise ValueError(f"port module {module!r} has no attribute {attr!r}")
    obj = getattr(mod, attr)
    return obj() if isinstance(obj, type) else obj


def validate_port(port):
    """The port's declared attributes must be valid (TypeError/ValueError naming the attribute)."""
    if not isinstance(getattr(port, "name", None), str):
        raise TypeError("port.name must be a string")
    for attr, options, default in (("layout", LAYOUTS, None), ("jacobian_rows", ROW_ORDERS, "output_major"),
                                   ("jacobian_columns", COLUMN_ORDERS, "refnet"),
                                   ("dtype", ("float64", "float32"), "float64")):
        value = getattr(port, attr, default)
        if value not in options:
            raise ValueError(f"port.{attr} must be one of {list(options)}, got {value!r}")
    return port


def _evaluate(port, quantity, case):
    """None (agrees), a Mismatch, or NotComparable raised; an exception from the port is a Mismatch.
    NumPy's overflow/invalid warnings are silenced: a non-finite value is compared (and fails) as a value."""
    try:
        with np.errstate(all="ignore"):
            return checks.CHECKS[quantity](port, case)
    except checks.NotComparable:
        raise
    except Exception as e:                                               # the port (or its output) broke
        return checks.Mismatch(quantity, "the call raised", float("nan"), float("nan"), 0.0,
                               f"{type(e).__name__}: {e}")


class _Found(Exception):
    def __init__(self, mismatch, case):
        super().__init__(str(mismatch))
        self.mismatch, self.case = mismatch, case


def _hypothesis_search(port, quantity, settings_kw):
    """Hypothesis over refnet.strategies.conformance_cases: (mismatch, shrunk case, n compared, not comparable),
    mismatch and case None when every example agreed."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from ..strategies import conformance_cases
    count, skipped = [0], []

    @settings(deadline=None, database=None, verbosity=Verbosity.quiet, report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink], **settings_kw)
    @given(case=conformance_cases())
    def prop(case):
        try:
            mis = _evaluate(port, quantity, case)
        except checks.NotComparable as e:
            skipped.append((case, str(e)))
            return
        count[0] += 1
        if mis is not None:
            raise _Found(mis, case)

    try:
        prop()
    except _Found as f:
        return f.mismatch, f.case, count[0], skipped
    return None, None, count[0], skipped


_ACTIVATION_ORDER = ["identity", "relu", "tanh", "sigmoid", "softplus"]   # simplest first


def _simpler(case):
    """Cases one step simpler than ``case`` (fewer/narrower layers, fewer samples, plain data, ...)."""
    s, out = list(case.sizes), []
    for i in range(1, len(s) - 1):
        out.append(dict(sizes=s[:i] + s[i + 1:]))                          # drop hidden layer i
    for i, w in enumerate(s):
        out += [dict(sizes=s[:i] + [v] + s[i + 1:]) for v in {1, w - 1} if 1 <= v < w]
    out += [dict(n=v) for v in {1, case.n - 1} if 1 <= v < case.n]
    out += [dict(kind="plain"), dict(seed=0)] + [dict(activation=a) for a in _ACTIVATION_ORDER] + [
            dict(output_activation=a) for a in _ACTIVATION_ORDER] + [
            dict(freeze=tuple(sorted(case.freeze))), dict(freeze=case.freeze[:1]), dict(freeze=(0,)), dict(loss="mse"),
            dict(n_steps=2), dict(momentum=0.9), dict(lr=0.1), dict(nesterov=False), dict(include_bias=False)]
    for change in out:
        d = {**json.loads(case.to_json()), **change}
        d["freeze"] = [k for k in d["freeze"] if k < d["sizes"][-1]] or [0]
        simpler = Case.from_json(d)
        if simpler != case:
            yield simpler


def _complexity(case):
    """A key that every accepted shrinking step lowers (so greedy shrinking terminates)."""
    return (len(case.sizes), sum(case.sizes), case.n, case.kind != "plain", len(case.freeze), case.seed,
            _ACTIVATION_ORDER.index(case.activation), _ACTIVATION_ORDER.index(case.output_activation),
            case.loss != "mse", case.n_steps, case.nesterov, case.include_bias, abs(case.momentum - 0.9),
            abs(case.lr - 0.1), case.freeze)


def _shrink(port, quantity, case, mismatch, budget=200):
    """Greedy shrinking of a failing case (core cases, which hypothesis cannot shrink, and a polish of
    hypothesis's result): move to the first simpler case that still fails, until none does.
    Returns (mismatch, case)."""
    improved = True
    while improved and budget > 0:
        improved = False
        for simpler in _simpler(case):
            if _complexity(simpler) >= _complexity(case):
                continue
            budget -= 1
            try:
                mis = _evaluate(port, quantity, simpler)
            except (checks.NotComparable, ValueError):
                mis = None
            if mis is not None:
                case, mismatch, improved = simpler, mis, True
                break
            if budget <= 0:
                break
    return mismatch, case


def run(port, profile="quick", quantities=None, case=None, replay=None) -> RunReport:
    """Compare ``port`` with refnet, quantity by quantity (see refnet.conformance for the protocol).

    Arguments::

        profile: "quick" (core cases, then 25 hypothesis examples per quantity), "deep"
            (1000) or "core" (the core cases only); hypothesis is optional: without it
            only the core cases run.
        quantities: a subset of checks.QUANTITIES (default: all); case: run only this Case.
        replay: the command prefix printed for replays (e.g. "python -m refnet conformance run --port m:P").
    """
    validate_port(port)
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    wanted = list(checks.QUANTITIES) if quantities is None else list(quantities)
    for q in wanted:
        if q not in checks.QUANTITIES:
            raise ValueError(f"quantities must be among {list(checks.QUANTITIES)}, got {q!r}")
    try:
        import hypothesis  # noqa: F401
        have_hypothesis = case is None and PROFILES[profile]["max_examples"] > 0
    except ImportError:
        have_hypothesis = False
    results, status = [], {}
    for q in checks.QUANTITIES:
        if q not in wanted:
            continue
        methods, deps = checks.QUANTITIES[q]
        methods = (methods,) if isinstance(methods, str) else methods
        missing = [m for m in methods if not callable(getattr(port, m, None))]
        broken = [d for d in deps if status.get(d) in ("fail", "blocked")]
        if missing:
            res = QuantityResult(q, "skip", f"port has no {' or '.join(missing)}")
        elif broken:
            res = QuantityResult(q, "blocked", f"blocked by {', '.join(broken)}")
        else:
            res = QuantityResult(q, "pass")
            for c in ([case] if case is not None else core_cases()):
                try:
                    mis = _evaluate(port, q, c)
                except checks.NotComparable as e:
                    res.not_comparable.append((c, str(e)))
                    continue
                res.n_cases += 1
                if mis is not None:
                    res.status, res.mismatch, res.case = "fail", mis, c
                    break
            if have_hypothesis:
                mis, shrunk, n, skipped = _hypothesis_search(port, q, PROFILES[profile])
                res.n_cases += n
                res.not_comparable += skipped
                if mis is not None:
                    res.status, res.mismatch, res.case, res.shrunk = "fail", mis, shrunk, True
            if res.status == "fail" and case is None:                      # (hypothesis's result polished too)
                res.mismatch, res.case = _shrink(port, q, res.case, res.mismatch)
                res.shrunk = True
        status[q] = res.status
        results.append(res)
    return RunReport(port.name, port.layout, profile, results,
                     replay or "python -m refnet conformance run --port MODULE:ATTR")


def assert_conforms(port, profile="quick", **kw):
    """pytest entry point: ``assert_conforms(MyPort())`` raises AssertionError with the full report."""
    report = run(port, profile=profile, **kw)
    assert report.ok, str(report)
    return report
