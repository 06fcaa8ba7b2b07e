"""The runner: every quantity the port implements, in computation order, on the core cases then hypothesis.

``run(port)`` returns a :class:`RunReport`; ``python -m refnet conformance run
--port MODULE:ATTR`` prints it and exits 0 only when everything that ran passed.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import pathlib
import re
import shlex
import sys
import types
from dataclasses import dataclass, field

import numpy as np

from . import cases as cases_module
from . import checks
from .cases import VARIANTS, Case, core_cases
from .layout import COLUMN_ORDERS, LAYOUTS, ROW_ORDERS

# hypothesis examples per quantity after the core cases; "quick" is the default; "core": no hypothesis
# (for ports that compile per shape, e.g. JAX, where every new example costs a compilation)
PROFILES = {"core": dict(max_examples=0), "quick": dict(max_examples=25, derandomize=True),
            "deep": dict(max_examples=1000, derandomize=False)}


@dataclass
class QuantityResult:
    """status: "pass", "fail", "skip" (the port lacks the method, or every case raised NotImplementedError
    or was not comparable) or "blocked" (a quantity it is built on failed).

    n_cases: cases compared; not_comparable: [(case, reason)] of cases with no
    well-defined answer at this precision (not counted as passed); skipped: [(case,
    message)] of cases the port declined (NotImplementedError); mismatch, case: the
    first failure and the (shrunk, when ``shrunk``) case that shows it; others:
    [(mismatch, case)], further distinct failures (``all_failures``).
    """
    quantity: str
    status: str
    reason: str = ""
    n_cases: int = 0
    not_comparable: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    mismatch: checks.Mismatch | None = None
    case: Case | None = None
    shrunk: bool = False            # by hypothesis, or greedily for a failing core case hypothesis missed
    others: list = field(default_factory=list)


@dataclass
class RunReport:
    """What ``run`` found. profile: what actually ran (e.g. "quick", "core (hypothesis is not installed)",
    "one case (--case)"); notes: what the kit could not check (an unverified layout); strict: notes fail."""
    port: str
    layout: str
    profile: str
    results: list
    replay: str = "python -m refnet conformance run --port MODULE:ATTR"
    notes: list = field(default_factory=list)
    strict: bool = False

    @property
    def compared(self) -> int:
        return sum(r.n_cases for r in self.results)

    @property
    def ok(self) -> bool:
        """True when nothing failed or was blocked (skipped quantities are allowed: the port lacks them),
        something was compared (a port with none of the methods, e.g. all misspelled, proves nothing) and,
        with ``strict``, the kit could check everything (no notes)."""
        return (all(r.status in ("pass", "skip") for r in self.results) and self.compared > 0
                and not (self.strict and self.notes))

    def __bool__(self):
        return self.ok

    def replay_command(self, case: Case, quantity: str) -> str:
        return f"{self.replay} --quantity {quantity} --case {shlex.quote(case.to_json())}"

    def __str__(self):
        lines = [f"refnet conformance: port {self.port!r} (layout {self.layout!r}), profile {self.profile!r}"]
        lines += [f"  NOTE: {note}" for note in self.notes]
        for r in self.results:
            info = {"pass": f"{r.n_cases} cases", "fail": str(r.mismatch.where) if r.mismatch else "",
                    "skip": r.reason, "blocked": r.reason}[r.status]
            if r.skipped and r.status != "skip":
                info += f"; {len(r.skipped)} skipped (first: {r.skipped[0][1]})"
            if r.not_comparable:
                info += f"; {len(r.not_comparable)} not comparable (first: {r.not_comparable[0][1]})"
            lines.append(f"  {r.status.upper():8s}{r.quantity:22s}{info}")
        for r in self.results:
            if r.status == "fail":
                lines += ["", f"FAIL {r.mismatch}",
                          f"  case ({'shrunk' if r.shrunk else 'as given'}): {r.case.to_json()}",
                          f"  replay: {self.replay_command(r.case, r.quantity)}"]
                for mis, case in r.others:
                    lines += ["", f"FAIL (another) {mis}", f"  case (as given): {case.to_json()}",
                              f"  replay: {self.replay_command(case, r.quantity)}"]
        lines.append("")
        failed = [r.quantity for r in self.results if r.status in ("fail", "blocked")]
        if self.ok:
            lines.append("OK: every quantity that ran agrees with refnet")
        elif failed:
            lines.append("FAILED: " + ", ".join(failed))
        elif self.compared == 0:
            lines.append("FAILED: nothing was compared (the port has none of the methods these quantities need, "
                         "or declined every case)")
        else:
            lines.append("FAILED (--strict): " + "; ".join(self.notes))
        return "\n".join(lines)


def load_port(spec: str):
    """"MODULE:ATTR" (or "path/to/file.py:ATTR") -> the port; a class is instantiated without arguments.

    A .py path is imported with its folder first on ``sys.path`` (so the port may import files beside it).
    Raises ValueError (or TypeError) naming what is wrong, and :func:`validate_port`'s errors.
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"port must be MODULE:ATTR (e.g. my_port:Port), got {spec!r}")
    module, attr = spec.rsplit(":", 1)
    if module.endswith(".py"):
        path = pathlib.Path(module).resolve()
        if not path.is_file():
            raise ValueError(f"no port file {module!r}")
        folder = str(path.parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)                                   # the port's sibling files import
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
    if isinstance(obj, type):
        obj = obj()
    if isinstance(obj, types.ModuleType) or not (hasattr(obj, "layout")
                                                 or any(hasattr(obj, m) for m in checks.METHODS)):
        raise TypeError(f"{spec} is {type(obj).__name__} {_short(obj)}, not a port: give the port object or its class "
                        f"(an object with name, layout and some of {', '.join(checks.METHODS)})")
    return validate_port(obj)


def _short(obj, n=60):
    text = repr(obj)
    return text if len(text) <= n else text[:n - 3] + "..."


def validate_port(port):
    """The port's declared attributes must be valid (TypeError/ValueError naming the attribute)."""
    if not isinstance(getattr(port, "name", None), str):
        raise TypeError(f"port.name must be a string, got {_short(getattr(port, 'name', None))}")
    for attr, options, default in (("layout", LAYOUTS, None), ("jacobian_rows", ROW_ORDERS, "output_major"),
                                   ("jacobian_columns", COLUMN_ORDERS, "refnet"),
                                   ("dtype", ("float64", "float32"), "float64")):
        value = getattr(port, attr, default)
        if not isinstance(value, str) or value not in options:
            raise ValueError(f"port.{attr} must be one of {list(options)}, got {value!r}")
    declared = getattr(port, "optimizers", None)
    if declared is not None:
        if isinstance(declared, str) or not all(isinstance(v, str) for v in _iterable(declared)):
            raise TypeError(f"port.optimizers must be a collection of variant names among {list(VARIANTS)}, "
                            f"got {declared!r}")
        unknown = sorted(set(declared) - set(VARIANTS))
        if unknown:
            raise ValueError(f"port.optimizers must hold names among {list(VARIANTS)}, got {unknown}")
    return port


def _iterable(x):
    try:
        return list(x)
    except TypeError:
        return [None]


def variants(port):
    """The optimizer variants the port declares (``port.optimizers``), in VARIANTS order; all when absent."""
    declared = getattr(port, "optimizers", None)
    return [v for v in VARIANTS if declared is None or v in set(declared)]


_OPTIMIZER_QUANTITIES = ("optimizer_step", "trajectory", "projected_trajectory")


def _cases_for(quantity, cases, declared):
    """The core cases, each with an undeclared optimizer variant replaced by a declared one (round robin),
    for the quantities that run an optimizer; the rest do not depend on it."""
    if quantity not in _OPTIMIZER_QUANTITIES:
        return list(cases)
    return [c if c.variant in declared else c.with_variant(declared[i % len(declared)])
            for i, c in enumerate(cases)]


def _kind(mismatch):
    """What kind of failure this is (the port raised, timed out, a shape, which invariant or array), so that
    shrinking and the search keep the failure they found instead of drifting to another one."""
    return mismatch.kind, re.sub(r"\d+", "#", mismatch.where.split(":")[0] if mismatch.kind else mismatch.where)


def _evaluate(port, quantity, case):
    """None (agrees), a Mismatch, or NotComparable / Skipped raised. A port's call that raised, timed out or
    returned complex values or the wrong dtype is a Mismatch that says so."""
    try:
        with np.errstate(all="ignore"):        # a non-finite value is compared (and fails) as a value
            return checks.CHECKS[quantity](port, case)
    except (checks.NotComparable, checks.Skipped):
        raise
    except checks.PortFailure as e:
        kind = "timeout" if "took longer than" in str(e) else "port"
        return checks.Mismatch(quantity, str(e), float("nan"), float("nan"), 0.0, kind=kind)
    except Exception as e:                                               # its output could not be used
        return checks.Mismatch(quantity, "the result could not be used", float("nan"), float("nan"), 0.0,
                               f"{type(e).__name__}: {e}", kind="port")


class _Found(Exception):
    def __init__(self, mismatch, case):
        super().__init__(str(mismatch))
        self.mismatch, self.case = mismatch, case


def _quick_shapes():
    """The (sizes, n) pairs of the core cases (m close to p aside): what the quick profile draws from, so
    that a port that compiles per shape (JAX, torch.compile) compiles little beyond the core cases."""
    return sorted({(c.sizes, c.n) for c in cases_module.core_cases() if c.kind != "m_close_to_p"})


def _case_strategy(quantity, declared, fixed_shapes):
    """Hypothesis cases for ``quantity``: the optimizer variant drawn from the declared ones (for the
    quantities that run an optimizer), and with ``fixed_shapes`` the architecture and n drawn from the core
    cases' (:func:`_quick_shapes`; at most two frozen outputs; "m_close_to_p" on the core case's net)."""
    from hypothesis import strategies as st
    from ..strategies import conformance_cases
    base = conformance_cases()
    if fixed_shapes:
        def fix(args):
            case, (sizes, n) = args
            if case.kind == "m_close_to_p":
                sizes, n = (2, 2, 2), 1
            freeze = sorted({k % sizes[-1] for k in case.freeze})[:2]
            return dataclasses.replace(case, sizes=sizes, n=n, freeze=tuple(freeze))
        base = st.tuples(base, st.sampled_from(_quick_shapes())).map(fix)
    if quantity in _OPTIMIZER_QUANTITIES:
        base = st.tuples(base, st.sampled_from(declared)).map(lambda cv: cv[0].with_variant(cv[1]))
    return base


def _hypothesis_search(port, quantity, settings_kw, declared, fixed_shapes, avoid=()):
    """Hypothesis over the case strategy: (mismatch, shrunk case, n compared, not comparable, skipped),
    mismatch and case None when every example agreed. Only the first failure's kind counts as failing
    while hypothesis shrinks (so it cannot swap it for another), and kinds in ``avoid`` never do."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    count, not_comparable, skipped, kind = [0], [], [], []

    @settings(deadline=None, database=None, verbosity=Verbosity.quiet, report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink], **settings_kw)
    @given(case=_case_strategy(quantity, declared, fixed_shapes))
    def prop(case):
        try:
            mis = _evaluate(port, quantity, case)
        except checks.NotComparable as e:
            not_comparable.append((case, str(e)))
            return
        except checks.Skipped as e:
            skipped.append((case, str(e)))
            return
        count[0] += 1
        if mis is None or _kind(mis) in avoid or (kind and _kind(mis) != kind[0]):
            return
        kind[:1] = [_kind(mis)]
        if mis.kind == "timeout":
            raise _Timeout(mis, case)                                    # no shrinking a hung port
        raise _Found(mis, case)

    try:
        prop()
    except _Found as f:
        return f.mismatch, f.case, count[0], not_comparable, skipped
    return None, None, count[0], not_comparable, skipped


class _Timeout(BaseException):
    """Stops hypothesis at once (a BaseException is not shrunk): every further call may hang as long."""
    def __init__(self, mismatch, case):
        super().__init__(str(mismatch))
        self.mismatch, self.case = mismatch, case


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
            dict(n_steps=2), dict(momentum=0.9), dict(lr=0.1)]
    if case.optimizer == "momentum":                # (the variant itself is kept: the port may lack the others)
        out.append(dict(nesterov=False))
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


def _shrink(port, quantity, case, mismatch, declared, budget=200):
    """Greedy shrinking of a failing case (core cases, which hypothesis cannot shrink, and a polish of
    hypothesis's result): move to the first simpler case that still fails the same way, until none does.
    Cases of an undeclared optimizer variant are not tried. Returns (mismatch, case)."""
    kind, improved = _kind(mismatch), mismatch.kind != "timeout"          # a hung port is not called again
    while improved and budget > 0:
        improved = False
        for simpler in _simpler(case):
            if _complexity(simpler) >= _complexity(case) or (
                    quantity in _OPTIMIZER_QUANTITIES and simpler.variant not in declared):
                continue
            budget -= 1
            try:
                mis = _evaluate(port, quantity, simpler)
            except (checks.NotComparable, checks.Skipped):
                mis = None
            if mis is not None and _kind(mis) == kind:
                case, mismatch, improved = simpler, mis, True
                break
            if budget <= 0:
                break
    return mismatch, case


_LAYOUT_METHODS = ("forward", "vjp", "loss_and_grads", "jacobian")


def _unverified_layout(port, declared):
    """A note when nothing the port computes shows its layout, but a result depends on it."""
    if any(callable(getattr(port, m, None)) for m in _LAYOUT_METHODS):
        return []
    depends = [m for m in ("project_out", "frozen_step") if callable(getattr(port, m, None))]
    if callable(getattr(port, "optimizer_step", None)) and any(v.startswith("averaged") for v in declared):
        depends.append("optimizer_step (averaged momentum's axis)")
    if not depends:
        return []
    return [f"layout {port.layout!r} is not verified: the port has none of {', '.join(_LAYOUT_METHODS)}, and "
            f"what depends on it ({', '.join(depends)}) passes whichever way round its W is (a transposed layout "
            f"turns outgoing averaging into incoming); add forward, or run with --strict to make this a failure"]


def run(port, profile="quick", quantities=None, case=None, replay=None, timeout=checks.DEFAULT_TIMEOUT,
        strict=False, all_failures=False) -> RunReport:
    """Compare ``port`` with refnet, quantity by quantity (see refnet.conformance for the protocol).

    Arguments::

        profile: "quick" (core cases, then 25 hypothesis examples per quantity, on the core
            cases' architectures), "deep" (1000, any architecture) or "core" (the core cases only);
            hypothesis is optional: without it only the core cases run (the report says so).
        quantities: a subset of checks.QUANTITIES (default: all); case: run only this Case.
        replay: the command prefix printed for replays (e.g. "python -m refnet conformance run --port m:P").
        timeout: seconds one port call may take (None: no limit, calls run inline).
        strict: what the kit cannot check (an unverified layout) is a failure.
        all_failures: every distinct failure of every quantity (core cases and a search for other
            kinds), and quantities run even when one they are built on failed.
    """
    validate_port(port)
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    wanted = list(checks.QUANTITIES) if quantities is None else list(quantities)
    for q in wanted:
        if q not in checks.QUANTITIES:
            raise ValueError(f"quantities must be among {list(checks.QUANTITIES)}, got {q!r}")
    guarded, declared = checks.Guarded(port, timeout), variants(port)
    ran = profile
    try:
        import hypothesis  # noqa: F401
        have_hypothesis = case is None and PROFILES[profile]["max_examples"] > 0
    except ImportError:
        have_hypothesis = False
        if case is None and profile != "core":
            ran = "core (hypothesis is not installed)"
    if case is not None:
        ran = "one case (--case)"
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
        elif q in _OPTIMIZER_QUANTITIES and not declared:
            res = QuantityResult(q, "skip", "port.optimizers declares no optimizer variant")
        elif broken and not all_failures:
            res = QuantityResult(q, "blocked", f"blocked by {', '.join(broken)}")
        else:
            res = _run_quantity(guarded, q, case, declared, have_hypothesis, profile, all_failures)
        status[q] = res.status
        results.append(res)
    return RunReport(port.name, port.layout, ran, results,
                     replay or "python -m refnet conformance run --port MODULE:ATTR",
                     _unverified_layout(port, declared), strict)


def _run_quantity(port, q, case, declared, have_hypothesis, profile, all_failures):
    """One quantity: the core cases (or ``case``), then the hypothesis search unless a core case failed;
    the first failure is shrunk; with ``all_failures`` every distinct kind is kept in ``others``."""
    res, found = QuantityResult(q, "pass"), []                          # found: [(mismatch, case)]
    cases = [case] if case is not None else _cases_for(q, core_cases(), declared)
    for c in cases:
        if c.variant not in declared and q in _OPTIMIZER_QUANTITIES:
            res.skipped.append((c, f"optimizer variant {c.variant!r} is not among port.optimizers"))
            continue
        try:
            mis = _evaluate(port, q, c)
        except checks.NotComparable as e:
            res.not_comparable.append((c, str(e)))
            continue
        except checks.Skipped as e:
            res.skipped.append((c, str(e)))
            continue
        res.n_cases += 1
        if mis is not None and _kind(mis) not in {_kind(m) for m, _ in found}:
            found.append((mis, c))
            if not all_failures or mis.kind == "timeout":
                break
    timed_out = any(m.kind == "timeout" for m, _ in found)
    if have_hypothesis and not timed_out and (not found or all_failures):
        try:
            mis, shrunk, n, not_comparable, skipped = _hypothesis_search(
                port, q, PROFILES[profile], declared, profile == "quick", avoid={_kind(m) for m, _ in found})
        except _Timeout as t:
            mis, shrunk, n, not_comparable, skipped = t.mismatch, t.case, 1, [], []
        res.n_cases += n
        res.not_comparable += not_comparable
        res.skipped += skipped
        if mis is not None:
            found.append((mis, shrunk))
    if found:
        (mis, c), res.others = found[0], found[1:]
        res.status, res.mismatch, res.case = "fail", mis, c
        if case is None and mis.kind != "timeout":                       # (hypothesis's result polished too)
            res.mismatch, res.case = _shrink(port, q, c, mis, declared)
            res.shrunk = True
    elif res.n_cases == 0:
        res.status = "skip"
        first = (res.skipped or res.not_comparable or [(None, "no case")])[0][1]
        res.reason = (f"every case declined: {first}" if res.skipped else f"no case was comparable: {first}")
    return res


def assert_conforms(port, profile="quick", **kw):
    """pytest entry point: ``assert_conforms(MyPort())`` raises AssertionError with the full report."""
    report = run(port, profile=profile, **kw)
    assert report.ok, str(report)
    return report
