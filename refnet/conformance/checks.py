"""One check per quantity: run the port and refnet on a :class:`Case`, compare within the derived tolerance.

Each ``check_<quantity>(port, case)`` returns ``None`` when the port agrees,
a :class:`Mismatch` when it does not, and raises :class:`NotComparable` when
the case has no well-defined answer at the dtype's precision (the reason is
reported; such cases are skipped, not passed).
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import queue
import threading
import warnings
from dataclasses import dataclass, replace

import numpy as np

import refnet
from . import layout as lay
from . import tolerances as tl
from ..backend import is_array, to_numpy
from ..frozen import ProjectionAccuracyWarning, RetractionError, default_rtol
from ..nn import ACTIVATIONS

# quantity -> (port method it needs, quantities it is built on), in computation order
QUANTITIES = {
    "forward": ("forward", ()),
    "loss": ("loss_and_grads", ("forward",)),
    "vjp": ("vjp", ("forward",)),
    "grads": ("loss_and_grads", ("loss", "vjp")),
    "jacobian": ("jacobian", ("vjp",)),
    "project_out": ("project_out", ("jacobian",)),
    "frozen_step": ("frozen_step", ("project_out", "vjp")),
    "optimizer_step": ("optimizer_step", ()),
    "trajectory": ("optimizer_step", ("optimizer_step",)),
    "projected_trajectory": (("optimizer_step", "project_out"), ("trajectory", "project_out")),
}


class NotComparable(Exception):
    """The case has no answer that can be compared entrywise (the message says why)."""


class Skipped(Exception):
    """The port raised NotImplementedError for this case: reported as SKIP with its message, never FAIL."""


class PortFailure(Exception):
    """The port's call raised, returned something unusable (complex, wrong dtype) or took longer than the
    per-call limit. ``raised``: the call itself raised (an honest "did not converge" may be fine)."""

    def __init__(self, message, raised=False):
        super().__init__(message)
        self.raised = raised


METHODS = ("forward", "vjp", "loss_and_grads", "jacobian", "project_out", "frozen_step", "optimizer_step")
DEFAULT_TIMEOUT = 60.0          # seconds per port call (a JAX or torch.compile port compiles on its first calls)


class Guarded:
    """A port whose calls cannot change the kit's case, hang the run or slip a wrong result through.

    Each call of a protocol method gets deep copies of its arguments (the port's
    ``state`` excepted: it is the port's own), runs on a daemon worker thread and
    is abandoned after ``timeout`` seconds (Python cannot kill a thread: a hung
    call keeps running in the background until the process exits, but the run
    goes on, on a new worker, and reports it), and its result is checked: complex values, or a dtype other
    than the port's declared ``dtype``, are a :class:`PortFailure`;
    ``NotImplementedError`` is :class:`Skipped`. ``timeout=None`` calls inline.
    ``project_out`` and ``frozen_step`` get ``rtol`` (the last positional
    argument) only when their signature accepts it. Other attributes are the port's own.
    """

    def __init__(self, port, timeout=DEFAULT_TIMEOUT):
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"timeout must be a number of seconds > 0 (or None), got {timeout!r}")
        self._port, self._timeout, self._worker = port, timeout, None

    def _in_worker(self, target):
        """Run ``target`` on this port's worker thread (one thread for all its calls, so libraries with
        per-thread state, such as XLA's compilers, keep it); False when it did not finish within the
        limit: that worker is abandoned (stuck in the call) and the next call starts a new one."""
        if self._worker is None:
            inbox = queue.SimpleQueue()

            def serve():
                while True:
                    job, done = inbox.get()
                    job()
                    done.set()
            threading.Thread(target=serve, name="refnet-conformance-port", daemon=True).start()
            self._worker = inbox
        done = threading.Event()
        self._worker.put((target, done))
        if not done.wait(self._timeout):
            self._worker = None
            return False
        return True

    def __getattr__(self, name):
        value = getattr(self._port, name)
        if name in METHODS and callable(value):
            return lambda *args, **kw: self._call(name, value, args, kw)
        return value

    @staticmethod
    def _with_rtol(method, args, rtol):
        """(args, kw) with rtol added when the method's signature has a place for it: one more positional
        parameter (named rtol or not) or a keyword parameter ``rtol``; a method taking only ``*args,
        **kw`` (a decorator without functools.wraps) does not get it, nor do ports written before rtol."""
        try:
            params = list(inspect.signature(method).parameters.values())
        except (TypeError, ValueError):                                   # (no signature to read)
            return args, {}
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(positional) > len(args):
            return args + (rtol,), {}
        if any(p.name == "rtol" and p.kind is p.KEYWORD_ONLY for p in params):
            return args, {"rtol": rtol}
        return args, {}

    def _call(self, name, method, args, kw):
        if "rtol" in kw:
            args, kw = self._with_rtol(method, args, kw["rtol"])
        if name == "optimizer_step":                                      # (state: the port's own, not copied)
            args = copy.deepcopy(args[:-1]) + args[-1:]
        else:
            args = copy.deepcopy(args)
        out = {}

        def target():
            try:
                with np.errstate(all="ignore"):                           # (errstate is per thread)
                    out["value"] = method(*args, **kw)
            except BaseException as e:                                    # noqa: B902 (reported, not lost)
                out["error"] = e

        if self._timeout is None:
            target()
        elif not self._in_worker(target):
            raise PortFailure(f"{name} took longer than {self._timeout:g} s (the per-call limit, --timeout); "
                              f"the call was abandoned")
        if "error" in out:
            e = out["error"]
            if isinstance(e, NotImplementedError):
                raise Skipped(f"{name}: {e}" if str(e) else f"{name} raised NotImplementedError")
            if not isinstance(e, Exception):
                raise e                                                   # KeyboardInterrupt, SystemExit
            raise PortFailure(f"{name} raised {type(e).__name__}: {e}", raised=True)
        value = out["value"]
        params_only = name == "optimizer_step" and isinstance(value, (tuple, list)) and len(value) == 2
        _check_result(value[0] if params_only else value, name, getattr(self._port, "dtype", "float64"))
        return value


def guard(port, timeout=DEFAULT_TIMEOUT):
    """``port`` as a :class:`Guarded` (itself when it already is one)."""
    return port if isinstance(port, Guarded) else Guarded(port, timeout)


def _check_result(value, method, dtype):
    """PortFailure when any array in ``value`` (nested lists/tuples) is complex or not of the port's dtype."""
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_result(v, method, dtype)
        return
    x = to_numpy(value) if is_array(value) else value
    kind = getattr(getattr(x, "dtype", None), "kind", None)
    if kind is None:                                                      # Python numbers, lists of them
        x = np.asarray(x)
        kind = x.dtype.kind
        if kind == "c":
            raise PortFailure(f"{method} returned complex values ({x.dtype}): results must be real")
        return
    if kind == "c":
        raise PortFailure(f"{method} returned complex values ({x.dtype}): results must be real")
    if np.dtype(x.dtype) != np.dtype(dtype):
        raise PortFailure(f"{method} returned dtype {x.dtype}, but the port's dtype is {dtype!r} "
                          f"(declare port.dtype, or return {dtype} arrays)")


@dataclass(frozen=True)
class Mismatch:
    """The first entry (or invariant) where the port differs from refnet by more than the tolerance.

    where: the entry in the port's own layout, e.g. "step 2, W_1[3, 0]" or "Y[1, 0]",
        or the invariant that failed; reference, candidate, tol: the values there.
    """
    quantity: str
    where: str
    reference: float
    candidate: float
    tol: float
    detail: str = ""
    index: tuple = ()               # the entry's index in the port's layout (() for invariants and scalars)
    kind: str = ""                  # "" (values), "port" (the call raised, an unusable result), "timeout"

    def __str__(self):
        if np.isnan(self.reference) and np.isnan(self.candidate):          # no values: the call raised, a shape
            return f"{self.quantity}: {self.where}" + (f"\n  {self.detail}" if self.detail else "")
        diff = abs(self.candidate - self.reference) if np.isfinite(self.candidate) else np.inf
        s = (f"{self.quantity}: {self.where}: reference {self.reference!r}, candidate {self.candidate!r}, "
             f"|difference| {diff:.3e} > tolerance {self.tol:.3e}")
        return s + (f"\n  {self.detail}" if self.detail else "")


def _flat(tree):
    return np.concatenate([np.asarray(x).ravel() for W, b in tree for x in (W, b)])


def _host(x):
    """A port's result as NumPy float64 (GPU arrays and tensors that require grad are copied to the host)."""
    return np.asarray(to_numpy(x) if is_array(x) else x, dtype=np.float64)


def _tree(result, what):
    """[(W, b), ...] or [W_1, b_1, ...] -> [(W, b), ...] as NumPy float64."""
    flat = [x for item in result for x in (item if isinstance(item, (list, tuple)) else (item,))]
    if len(flat) % 2:
        raise ValueError(f"{what} must hold W_1, b_1, W_2, b_2, ...; got {len(flat)} arrays")
    return [(_host(flat[i]), _host(flat[i + 1])) for i in range(0, len(flat), 2)]


def _dtype(port):
    return getattr(port, "dtype", "float64")


def _in_range(eps, *values):
    """NotComparable when refnet's (float64) values leave float32's range and the port computes in float32
    (it overflows to inf where refnet does not: no answer to compare). values: arrays, nested lists."""
    if eps != tl.EPS["float32"]:
        return
    flat = [np.asarray(x, np.float64) for x in _leaves(values)]
    big = max((float(np.max(np.abs(x), initial=0.0)) for x in flat), default=0.0)
    if not big <= float(np.finfo(np.float32).max):
        raise NotComparable(f"refnet's values leave float32's range (max |value| {big:.2e} > "
                            f"{float(np.finfo(np.float32).max):.2e}): a float32 port cannot represent them")


def _leaves(x):
    if isinstance(x, (list, tuple)):
        return [leaf for item in x for leaf in _leaves(item)]
    return [] if x is None else [x]


def _rtol(spec, anchors, freeze, port):
    """The singular-value cutoff relative to s_1 a port's projection gets (``rtol=``): refnet's own."""
    return default_rtol(spec, len(freeze) * anchors.shape[0], _dtype(port))


def inputs(port, case):
    """The case's arrays rounded to the port's dtype (kept as float64), and spec = the refnet.MLP."""
    a = case.arrays()
    if _dtype(port) == "float32":
        r = lambda x: np.asarray(x, np.float32).astype(np.float64)
        a = {k: ([(r(W), r(b)) for W, b in v] if isinstance(v, list) else r(v)) for k, v in a.items()}
    return case.network(), a


def first_mismatch(quantity, named, layout="refnet", prefix=""):
    """named: [(name, reference, candidate, tol)] in refnet layout. The first entry (in list order,
    then the largest |c - r| / tol within it) with |c - r| > tol, indexed in ``layout``; or None."""
    for name, r, c, tol in named:
        r, tol = np.asarray(r, np.float64), np.broadcast_to(np.asarray(tol, np.float64), np.shape(r))
        if layout == "torch" and name.startswith(("W_", "dW_")):
            r, tol = r.T, tol.T                                            # refnet (in, out) -> torch (out, in)
        if c.shape != r.shape:
            return Mismatch(quantity, f"{prefix}{name}", np.nan, np.nan, 0.0,
                            f"shape {c.shape}, expected {r.shape} in layout {layout!r}")
        err = np.where(np.isnan(c - r), np.inf, np.abs(c - r))             # |c - r|, NaN counts as infinite
        bad = err > tol
        if np.any(bad):
            ratio = np.where(bad, err / np.maximum(tol, np.finfo(np.float64).tiny), 0.0)
            idx = np.unravel_index(int(np.argmax(ratio)), r.shape)
            where = f"{prefix}{name}[{', '.join(str(int(i)) for i in idx)}]" if r.ndim else f"{prefix}{name}"
            return Mismatch(quantity, where, float(r[idx]), float(c[idx]), float(tol[idx]),
                            index=tuple(int(i) for i in idx))
    return None


def _compare_trees(quantity, ref, cand, tol, layout, kind="", where="", detail=""):
    """Compare two [(W, b)] trees (ref and tol in refnet layout, cand in the port's layout)."""
    named = [(f"{kind}{k}_{l}", r, c, t)
             for l, ((rW, rb), (cW, cb), (tW, tb)) in enumerate(zip(ref, cand, tol), start=1)
             for k, r, c, t in (("W", rW, cW, tW), ("b", rb, cb, tb))]
    if len(cand) != len(ref):
        return Mismatch(quantity, where + "parameter list", len(ref), len(cand), 0.0,
                        f"{len(cand)} layers, expected {len(ref)}")
    mis = first_mismatch(quantity, named, layout, where)
    return mis if mis is None or not detail else replace(mis, detail=detail)


# ------------------------------------------------------------------------------ quantities
def check_forward(port, case):
    port = guard(port)
    spec, a = inputs(port, case)
    eps = tl.eps_of(_dtype(port))
    As, _, Es, _ = tl.forward_bound(spec, a["params"], a["X"], eps)
    _in_range(eps, As)
    Y = _host(port.forward(spec, lay.to_layout(a["params"], port.layout), a["X"].copy()))
    mis = first_mismatch("forward", [("Y", np.asarray(spec.forward(a["params"], a["X"])), Y, tl.SAFETY * Es[-1])])
    if mis and "softplus" in (spec.activation, spec.output_activation) and Y.shape == Es[-1].shape and \
            np.all(np.abs(Y - _forward_softplus_linear_above(spec, a["params"], a["X"], 20.0)) <= tl.SAFETY * Es[-1]):
        mis = replace(mis, detail="hint: the port matches softplus taken as z itself above 20, which is what "
                                  "torch.nn.Softplus (threshold=20) and F.softplus do; log(1 + e^z) differs from z "
                                  "by e^-z there (2e-9 at 20): use torch.logaddexp(z, 0)")
    return mis


def _forward_softplus_linear_above(spec, params, X, threshold):
    """refnet's forward pass with softplus(z) replaced by z above ``threshold`` (torch.nn.Softplus)."""
    A, L = X, len(params)
    for l, (W, b) in enumerate(params, start=1):
        name = spec.activation if l < L else spec.output_activation
        Z = A @ W + b                                                      # Z_l = A_{l-1} W_l + b_l
        A = np.where(Z > threshold, Z, np.logaddexp(0.0, Z)) if name == "softplus" else ACTIVATIONS[name].f(np, Z)
    return A


def _loss_parts(port, case):
    port = guard(port)
    spec, a = inputs(port, case)
    eps = tl.eps_of(_dtype(port))
    fwd = tl.forward_bound(spec, a["params"], a["X"], eps)
    L_ref, g_ref = spec.loss_and_grads(a["params"], a["X"], a["T"], loss=case.loss)
    _in_range(eps, fwd[0], g_ref)
    _, G, E_L, E_G = tl.loss_bound(case.loss, fwd[0][-1], a["T"], fwd[2][-1], eps)
    L, grads = port.loss_and_grads(spec, lay.to_layout(a["params"], port.layout), a["X"].copy(), a["T"].copy(),
                                   case.loss)
    return spec, a, eps, fwd, (float(L_ref), g_ref), (G, E_L, E_G), (_host(L), _tree(grads, "loss_and_grads"))


def check_loss(port, case):
    _, _, _, _, (L_ref, _), (_, E_L, _), (L, _) = _loss_parts(port, case)
    return first_mismatch("loss", [(f"L ({case.loss})", np.asarray(L_ref), L, tl.SAFETY * E_L)])


def check_grads(port, case):
    spec, a, eps, fwd, (_, g_ref), (G, _, E_G), (_, grads) = _loss_parts(port, case)
    E = tl.backward_bound(spec, a["params"], fwd, G[None], E_G[None], eps)
    tol = [(tl.SAFETY * eW, tl.SAFETY * eb) for eW, eb in E]
    return _compare_trees("grads", [(np.asarray(W), np.asarray(b)) for W, b in g_ref], grads, tol, port.layout, "d")


def check_vjp(port, case):
    port = guard(port)
    spec, a = inputs(port, case)
    eps = tl.eps_of(_dtype(port))
    fwd = tl.forward_bound(spec, a["params"], a["X"], eps)
    E = tl.backward_bound(spec, a["params"], fwd, a["G"][None], np.zeros_like(a["G"])[None], eps)
    ref = spec.vjp(a["params"], a["X"], a["G"])
    _in_range(eps, fwd[0], ref)
    cand = _tree(port.vjp(spec, lay.to_layout(a["params"], port.layout), a["X"].copy(), a["G"].copy()), "vjp")
    return _compare_trees("vjp", ref, cand, [(tl.SAFETY * eW, tl.SAFETY * eb) for eW, eb in E], port.layout, "d")


def _jacobian_bound(spec, a, outputs, eps):
    """refnet's J (m, p) at X for ``outputs`` and the bound on its entries' error."""
    fwd = tl.forward_bound(spec, a["params"], a["X"], eps)
    n, n_L = a["X"].shape[0], spec.sizes[-1]
    S = np.broadcast_to(np.eye(n_L)[list(outputs)][:, None, :], (len(outputs), n, n_L))    # one-hot seeds
    E_J = tl.backward_bound(spec, a["params"], fwd, S, np.zeros(S.shape), eps, per_sample=True)
    J = np.asarray(spec.jacobian(a["params"], a["X"], outputs=list(outputs)))
    _in_range(eps, fwd[0], J)
    return J, E_J


def check_jacobian(port, case):
    port = guard(port)
    spec, a = inputs(port, case)
    eps = tl.eps_of(_dtype(port))
    outputs = list(case.freeze)
    J_ref, E_J = _jacobian_bound(spec, a, outputs, eps)
    rows, cols = getattr(port, "jacobian_rows", "output_major"), getattr(port, "jacobian_columns", "refnet")
    n, K = a["X"].shape[0], len(outputs)
    J = _host(port.jacobian(spec, lay.to_layout(a["params"], port.layout), a["X"].copy(), list(outputs)))
    to_port = lambda M: lay.jacobian_from_refnet(M, spec.sizes, n, K, rows, cols)
    mis = first_mismatch("jacobian", [("J", to_port(J_ref), J, to_port(tl.SAFETY * E_J))])
    if mis is None or not mis.index:
        return mis
    r, c = mis.index
    out_major = int(lay.row_index(n, K, rows)[r])
    entry = (f"J[{r}, {c}] = d Y[{out_major % n}, {outputs[out_major // n]}] / d "
             f"{lay.column_name(spec.sizes, cols, c, port.layout)} (rows {rows}, columns {cols})")
    return replace(mis, where=entry, detail="declare the port's orders with attributes jacobian_rows / "
                   "jacobian_columns (refnet.conformance.layout) if they are not refnet's")


def _eps_dtype(eps):
    """The dtype name whose unit roundoff is ``eps`` (the port's: float32 or float64)."""
    return "float32" if eps == tl.EPS["float32"] else "float64"


def _at(eps, x):
    """An array or [(W, b)] as the dtype whose eps this is: refnet's rank cutoff and retraction
    tolerance follow its inputs' dtype, so a float32 port's reference drops what float32 drops."""
    dt = np.float32 if eps == tl.EPS["float32"] else np.float64
    return [(W.astype(dt), b.astype(dt)) for W, b in x] if isinstance(x, list) else np.asarray(x).astype(dt)


def _f64(tree):
    return [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in tree]


@contextlib.contextmanager
def _judged_by_the_kit():
    """refnet's 'rank ambiguous' warning silenced in the reference: the kit finds the same singular
    values next to the same cutoff itself (svd_facts) and reports such a case as not comparable."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProjectionAccuracyWarning)
        yield


def _project_reference(spec, params, grads, X, freeze, eps):
    """refnet's g_perp (dense: the definition, in the port's dtype), the SVD facts of J and the entry tolerance,
    all with refnet's one cutoff rtol s_max (the rtol the port is given)."""
    J, E_J = _jacobian_bound(spec, {"params": params, "X": X}, freeze, eps)
    rtol = default_rtol(spec, J.shape[0], _eps_dtype(eps))
    facts = tl.svd_facts(J, eps, noise=float(np.linalg.norm(E_J)), rtol=rtol)
    with _judged_by_the_kit():
        g_perp = _f64(refnet.project_out(spec, _at(eps, params), _at(eps, grads), _at(eps, X),
                                         outputs=list(freeze), method="dense", rtol=rtol))
    g_norm = float(np.linalg.norm(np.concatenate([x.ravel() for W, b in grads for x in (W, b)])))
    return [(np.asarray(W), np.asarray(b)) for W, b in g_perp], facts, tl.projection_tol(facts, E_J, g_norm)


def _ambiguous_reason(facts):
    if facts["at_noise"]:
        return (f"rank undefined at this precision: J is at rounding level (s_max = {facts['s_max']:.2e} "
                f"is within its own error bound)")
    s = facts["ambiguous"]
    return (f"rank ambiguous at this precision: singular value(s) {', '.join(f'{v:.2e}' for v in s[:3])} "
            f"within a factor {tl.AMBIGUITY:g} of the cutoff rtol s_max = {facts['cutoff']:.2e}"
            + (f" or within J's own error bound {facts['noise']:.2e} of it" if facts["unresolved"] else ""))


def _invariants_when_ambiguous(quantity, facts, g, g_perp, tol):
    """Directions clear of the cutoff and of J's own error: V_keep^T g_perp ~ 0 and, when no singular
    value hides below J's error (where a correct port's row space may point anywhere), also
    V_drop^T (g_perp - g) ~ 0. Nothing is clear when J is at rounding level."""
    if facts["at_noise"]:
        return None
    s, Vt = facts["s"], facts["Vt"]
    clear_keep = np.zeros(Vt.shape[0], bool)
    clear_keep[:s.size] = s > max(facts["cutoff"] * tl.AMBIGUITY, facts["noise"])
    clear_drop = np.ones(Vt.shape[0], bool)
    clear_drop[:s.size] = s <= facts["cutoff"] / tl.AMBIGUITY
    checks_ = [("leaks: V_keep^T g_perp (row-space directions of J not removed)", clear_keep, _flat(g_perp))]
    if not facts["unresolved"]:
        checks_.append(("over-projects: V_drop^T (g_perp - g) (directions the definition keeps, removed)",
                        clear_drop, _flat(g_perp) - _flat(g)))
    for name, rows, v in checks_:
        proj = Vt[rows] @ v
        if proj.size and np.max(np.abs(proj)) > tol:
            i = int(np.argmax(np.abs(proj)))
            return Mismatch(quantity, f"{name}[{i}]", 0.0, float(proj[i]), tol, _ambiguous_reason(facts))
    return None


def check_project_out(port, case):
    port = guard(port)
    spec, a = inputs(port, case)
    eps = tl.eps_of(_dtype(port))
    params, X, grads, freeze = a["params"], a["X"], a["grads"], list(case.freeze)
    ref, facts, tol = _project_reference(spec, params, grads, X, freeze, eps)
    cand = _tree(port.project_out(spec, lay.to_layout(params, port.layout), lay.to_layout(grads, port.layout),
                                  X.copy(), freeze, rtol=_rtol(spec, X, freeze, port)), "project_out")
    if facts["ambiguous"].size:
        if len(cand) != len(ref):
            return Mismatch("project_out", "parameter list", len(ref), len(cand), 0.0)
        mis = _invariants_when_ambiguous("project_out", facts, grads, lay.from_layout(cand, port.layout), tol)
        if mis is None:
            raise NotComparable(_ambiguous_reason(facts) + "; invariants checked, entries not compared")
        return mis
    mis = _compare_trees("project_out", ref, cand, [(tol, tol)] * len(ref), port.layout, "d", "",
                         f"tol = SAFETY (cutoff + |E_J|_F) / s_r |g|_2 with s_r = {facts['s_r']:.2e}, "
                         f"s_max = {facts['s_max']:.2e}, cutoff = {facts['cutoff']:.2e}, rank {facts['rank']}")
    if mis is None or not mis.index:
        return mis
    return replace(mis, detail=_leak_or_over(facts, _flat(ref), _flat(lay.from_layout(cand, port.layout)), tol)
                   + "\n  " + mis.detail)


def _leak_or_over(facts, g_ref, g_cand, tol):
    """Which way a projection is wrong: it leaks (leaves part of g in the row space of J, so |J g_perp|
    is too large) and/or over-projects (removes or changes g along the null space, directions the
    definition keeps). tol: the entry bound (sqrt(p) tol bounds a norm)."""
    if not np.all(np.isfinite(g_cand)):
        return "the port returned NaN or Inf" + (" (J = 0 here: rank 0, g_perp = g)" if facts["rank"] == 0 else "")
    s, V_r = facts["s"], facts["Vt"][:facts["rank"]]
    J_norm = lambda v: float(np.linalg.norm(s * (facts["Vt"][:s.size] @ v)))     # |J v|_2 = |S V^T v|_2
    r = g_cand - g_ref
    leak = float(np.linalg.norm(V_r @ g_cand))                          # |V_r^T g_perp|: should be ~0
    over = float(np.linalg.norm(r - V_r.T @ (V_r @ r)))                  # (I - V_r V_r^T)(g_perp - ref)
    bound = tol * np.sqrt(g_ref.size)
    says = []
    if not leak <= bound:
        says.append(f"leaks: |J g_perp|_2 = {J_norm(g_cand):.2e} (refnet's {J_norm(g_ref):.2e}); it leaves "
                    f"{leak:.2e} of g in the row space of J, which the projection must remove")
    if not over <= bound:
        says.append(f"over-projects: it removed or changed {over:.2e} of g along the null space of J, directions "
                    f"the definition keeps (rank {facts['rank']}: singular values at or below the cutoff "
                    f"{facts['cutoff']:.2e} are not constraints)")
    return "; ".join(says) or f"differs from refnet's g_perp by more than the tolerance ({tol:.2e})"


def frozen_reference(spec, params, X, G, freeze, lr, eps):
    """refnet's frozen step (dense route: the definition) and the tolerances it is compared with.

    Returns dict(new, g (the gradient), tol_c (frozen outputs), tol (parameters, entrywise),
    detail (how tol was made)); raises NotComparable when refnet's retraction fails or the rank is ambiguous.
    """
    try:
        with _judged_by_the_kit():
            new, info = refnet.frozen_step(spec, _at(eps, params), _at(eps, X), _at(eps, G), freeze=freeze, lr=lr,
                                           method="dense")               # (in the port's dtype: rank, tol)
    except RetractionError as e:
        raise NotComparable(f"refnet's own retraction does not converge here ({e})") from None
    new = _f64(new)
    g = [(np.asarray(W), np.asarray(b)) for W, b in spec.vjp(params, X, G)]
    g_perp, facts, tol_p = _project_reference(spec, params, g, X, freeze, eps)
    if facts["ambiguous"].size:
        raise NotComparable(_ambiguous_reason(facts))
    c0 = np.asarray(spec.forward(params, X))[:, freeze]
    noise = eps * max(1.0, float(np.max(np.abs(c0)))) / facts["s_r"]     # correction of a rounding-level residual
    if noise ** 2 > info.tol:
        raise NotComparable(f"retraction ill-conditioned at this precision: a residual at rounding level "
                            f"needs a correction of eps max(1, |c0|) / s_r = {noise:.1e} (s_r = {facts['s_r']:.1e}), "
                            f"whose second-order effect on the frozen outputs exceeds tol = {info.tol:.1e}")
    E_Y = tl.forward_bound(spec, new, X, eps)[2][-1][:, freeze]
    tol_c = info.tol + tl.SAFETY * float(E_Y.max(initial=0.0))          # retraction tol + evaluation error
    # Minimum-norm retractions (Gauss-Newton, or a chord that keeps J of the step's start) land within
    # tol_c / s_r of each other only up to how much the row space of J turns over the step: their
    # corrections (size delta) differ by about delta |J(theta - lr g_perp) - J(theta)|_2 / s_r.
    half = [(W - lr * gW, b - lr * gb) for (W, b), (gW, gb) in zip(params, g_perp)]   # theta - lr g_perp
    delta = float(np.linalg.norm(_flat(new) - _flat(half)))
    turn = float(np.linalg.norm(np.asarray(spec.jacobian(half, X, outputs=freeze))
                                - np.asarray(spec.jacobian(params, X, outputs=freeze)), 2))
    tol = tl.SAFETY * (tol_c / facts["s_r"] + lr * tol_p + delta * turn / facts["s_r"])
    detail = (f"tol = SAFETY (tol_c / s_r + lr tol_proj + delta |dJ| / s_r) with tol_c = {tol_c:.2e}, "
              f"s_r = {facts['s_r']:.2e}, retraction delta = {delta:.2e}, |dJ| = {turn:.2e}")
    # When J turns by more than s_r over the step (relu kinks crossed, saturation), that bound exceeds
    # the correction itself: where on the constraint set a retraction lands is not defined to first order.
    # At rank 0 (J = 0 at the start, s_r = inf) any turn is such a J: one that appeared over the step.
    pinned = turn < facts["s_r"] if facts["rank"] else turn == 0.0       # rank 0: J must stay 0
    if pinned:
        unpinned = None
    else:
        unpinned = (f"parameters not compared: J changes over the step by |dJ|_2 = {turn:.2e} "
                    + (f">= s_r = {facts['s_r']:.2e}" if facts["rank"] else "from J = 0 (rank 0: no s_r bounds it)")
                    + ", so correct retractions may land at different points of the constraint set")
    return dict(new=new, g=g, tol_c=tol_c, tol=tol, detail=detail, unpinned=unpinned)


def check_frozen_step(port, case):
    port = guard(port)
    """Invariants first (frozen outputs constant, progress on the others), then the parameters."""
    spec, a = inputs(port, case)
    eps = tl.eps_of(_dtype(port))
    params, X, G, freeze, lr = a["params"], a["X"], a["G"], list(case.freeze), case.lr
    ref = frozen_reference(spec, params, X, G, freeze, lr, eps)
    try:
        cand = lay.from_layout(_tree(port.frozen_step(spec, lay.to_layout(params, port.layout), X.copy(), G.copy(),
                                                     list(freeze), lr, X.copy(), rtol=_rtol(spec, X, freeze, port)),
                                     "frozen_step"), port.layout)
    except PortFailure as e:
        if ref["unpinned"] and e.raised:                                 # an honest "did not converge" is fine here
            raise NotComparable(f"{ref['unpinned']}; {e}") from None
        raise
    if [W.shape for W, _ in cand] != [W.shape for W, _ in params]:
        return Mismatch("frozen_step", "parameter shapes", np.nan, np.nan, 0.0,
                        f"got {[W.shape for W, _ in cand]} in refnet layout, expected {[W.shape for W, _ in params]}")
    c = lambda P: np.asarray(spec.forward(P, X))[:, freeze].T.ravel()     # frozen outputs, output-major (m,)
    r = c(cand) - c(params)
    if not np.max(np.abs(r), initial=0.0) <= ref["tol_c"]:
        i = int(np.argmax(np.where(np.isfinite(r), np.abs(r), np.inf)))
        return Mismatch("frozen_step", f"frozen output {freeze[i // X.shape[0]]} on anchor {i % X.shape[0]} "
                        f"moved (invariant: frozen outputs constant)", float(c(params)[i]), float(c(cand)[i]),
                        ref["tol_c"])
    g = _flat(ref["g"])
    d_ref = float(g @ (_flat(ref["new"]) - _flat(params)))                # <g, theta'_ref - theta> = -lr |g_perp|^2
    d_cand = float(g @ (_flat(cand) - _flat(params)))
    slack = float(np.linalg.norm(g)) * ref["tol"] * np.sqrt(g.size)       # what the parameter tol allows in <g, .>
    if not d_cand <= d_ref / 2 + slack:
        return Mismatch("frozen_step", "progress <g, theta' - theta> on the trained outputs "
                        "(invariant: at least half of refnet's first-order decrease)", d_ref, d_cand,
                        abs(d_ref) / 2 + slack)
    if ref["unpinned"]:
        raise NotComparable(ref["unpinned"] + " (invariants hold)")
    return _compare_trees("frozen_step", ref["new"], lay.to_layout(cand, port.layout),
                          [(ref["tol"], ref["tol"])] * len(params), port.layout, "", "new parameters ",
                          "invariants hold; " + ref["detail"])


def _refnet_optimizer(case):
    if case.optimizer == "sgd":
        return refnet.SGD(case.lr)
    if case.optimizer == "momentum":
        return refnet.Momentum(case.lr, case.momentum, nesterov=case.nesterov)
    return refnet.AveragedMomentum(case.lr, case.momentum, include_bias=case.include_bias)


def _accumulation(state):
    return None if not hasattr(state, "accumulation") else [(np.asarray(W), np.asarray(b)) for W, b in state.accumulation]


def check_optimizer_step(port, case):
    """Steps 1 and 2: step 2 starts from refnet's parameters after step 1 (so errors do not compound)
    and the port's own state; step 1 alone cannot see any averaging (the buffer starts at zero)."""
    port = guard(port)
    _, a = inputs(port, case)
    eps = tl.eps_of(_dtype(port))
    opt, hyper = _refnet_optimizer(case), case.hyper()
    rounded = replace(case, lr=float(np.float32(case.lr)), momentum=float(np.float32(case.momentum)))
    slip = _refnet_optimizer(rounded)                                   # hyperparameters rounded to float32
    params, state, slip_state, port_state = a["params"], None, None, None
    for step, grads in ((1, a["grads"]), (2, a["grads2"])):
        state = opt.init(params) if state is None else state
        slip_state = slip.init(params) if slip_state is None else slip_state
        acc = _accumulation(state)
        new, state = opt.step(params, grads, state)
        out, port_state = port.optimizer_step(case.optimizer, dict(hyper), lay.to_layout(params, port.layout),
                                              lay.to_layout(grads, port.layout), port_state)
        tol = tl.optimizer_tol(params, grads, acc, hyper, eps)
        out = _tree(out, "optimizer_step")
        _in_range(eps, new, _accumulation(state))
        mis = _compare_trees("optimizer_step", _f64(new), out, tol, port.layout, "", f"step {step}, ")
        slipped, slip_state = slip.step(params, grads, slip_state)
        if mis:
            if _dtype(port) == "float64" and not _compare_trees("", _f64(slipped), out, tol, port.layout):
                mis = replace(mis, detail=f"hint: the port matches refnet with lr and momentum rounded to float32 "
                                          f"(lr {rounded.lr!r}, momentum {rounded.momentum!r}), a relative "
                                          f"difference of about 1e-9 in float64: pass them as float64 (a Python "
                                          f"float in a float32 graph, e.g. TF1's, is rounded)")
            return mis
        params = _f64(new)
    return None


def _bounded(tol, step):
    """A trajectory's tolerance, or NotComparable when it overflowed: an infinite tolerance passes anything
    (a deep run drew a diverging run whose port returned NaN at step 4, passed there, then failed step 5
    as unusable input)."""
    if not np.isfinite(tol):
        raise NotComparable(f"the run overflows at step {step} (its error bound is {tol}, which would pass "
                            f"any value)")
    return tol


def trajectory_reference(spec, a, case, projected, eps, own_grads=False):
    """refnet's run of ``case.n_steps`` full-batch steps with its tolerance, step by step (golden files:
    a candidate runs on its own, so rounding is carried, and amplified, by the dynamics).

    Yields (step, params after the step, tol): tol_k = growth_k tol_{k-1} + step_tol_k,
    step_tol the optimizer's bound (plus, with ``projected``, the projection's bound on
    the gradient and on the update, a gradient error staying in the buffer for
    sum_j mu^j steps; plus, with ``own_grads``, the gradients' own bound, for a
    candidate that computes them itself). Raises NotComparable when refnet's own run
    overflows or a projection's rank is ambiguous.
    """
    X, T, freeze, hyper = a["X"], a["T"], list(case.freeze), case.hyper()
    lr, mu = hyper["lr"], hyper.get("momentum", 0.0)
    inner = _refnet_optimizer(case)
    opt = refnet.Projected(inner, spec, X, freeze=freeze, retract=False, method="dense") if projected else inner
    ref, state, tol, last = a["params"], opt.init(a["params"]), 0.0, None
    for step in range(1, case.n_steps + 1):
        try:
            _, g_ref = spec.loss_and_grads(ref, X, T, loss=case.loss)
        except FloatingPointError as e:                                  # refnet's own run diverged
            raise NotComparable(f"refnet's own trajectory overflows at step {step} ({e})") from None
        g_ref = [(np.asarray(W), np.asarray(b)) for W, b in g_ref]
        acc = _accumulation(state.inner if projected else state)
        step_tol = max(float(t.max()) for tt in tl.optimizer_tol(ref, g_ref, acc, hyper, eps) for t in tt)
        kept = sum(mu ** j for j in range(step))                         # steps a gradient error stays in the buffer
        if own_grads:
            fwd = tl.forward_bound(spec, ref, X, eps)
            _, G, _, E_G = tl.loss_bound(case.loss, fwd[0][-1], T, fwd[2][-1], eps)
            E = tl.backward_bound(spec, ref, fwd, G[None], E_G[None], eps)
            step_tol += lr * kept * tl.SAFETY * max(float(max(eW.max(), eb.max())) for eW, eb in E)
        if projected:
            _, facts, tol_p = _project_reference(spec, ref, g_ref, X, freeze, eps)
            if facts["ambiguous"].size:
                raise NotComparable(f"step {step}: " + _ambiguous_reason(facts))
            step_tol += 2 * lr * kept * tol_p                             # g projected, then the update again
        prev = ref
        ref, state = opt.step(ref, g_ref, state)
        ref = [(np.asarray(W), np.asarray(b)) for W, b in ref]
        move = float(np.max(np.abs(_flat(ref) - _flat(prev))))             # |theta_k - theta_{k-1}|
        growth = 1.0 if not last else max(1.0, move / last)              # how the run carries earlier errors
        tol, last = _bounded(tl.accumulate(tol, step_tol, growth), step), move
        yield step, ref, tol


def _trajectory(port, case, projected):
    """n_steps of the port's optimizer, each compared with refnet's step from the port's own parameters
    and the same gradients (refnet's, at the port's parameters) fed to a refnet optimizer alongside:
    the state is carried over the run, but the dynamics cannot amplify earlier rounding."""
    port = guard(port)
    spec, a = inputs(port, case)
    eps = tl.eps_of(_dtype(port))
    X, T, freeze, hyper = a["X"], a["T"], list(case.freeze), case.hyper()
    lr, mu = hyper["lr"], hyper.get("momentum", 0.0)
    inner = _refnet_optimizer(case)
    # (projected: in the port's dtype, so refnet's rank cutoff is the port's)
    cast = (lambda x: _at(eps, x)) if projected else (lambda x: x)
    opt = refnet.Projected(inner, spec, cast(X), freeze=freeze, retract=False, method="dense") if projected else inner
    quantity = "projected_trajectory" if projected else "trajectory"
    rtol = _rtol(spec, X, freeze, port)
    cand, port_state, state, tol = a["params"], None, opt.init(cast(a["params"])), 0.0
    for step in range(1, case.n_steps + 1):
        try:
            _, g = spec.loss_and_grads(cand, X, T, loss=case.loss)      # refnet's gradients at the port's params
        except FloatingPointError as e:
            raise NotComparable(f"the run overflows at step {step} ({e})") from None
        g = [(np.asarray(W), np.asarray(b)) for W, b in g]
        acc = _accumulation(state.inner if projected else state)
        try:
            _in_range(eps, g, acc)
        except NotComparable as e:
            raise NotComparable(f"step {step}: {e}") from None
        step_tol = max(float(t.max()) for tt in tl.optimizer_tol(cand, g, acc, hyper, eps) for t in tt)
        if projected:
            _, facts, tol_p = _project_reference(spec, cand, g, X, freeze, eps)
            if facts["ambiguous"].size:
                raise NotComparable(f"step {step}: " + _ambiguous_reason(facts))
            step_tol += 2 * lr * sum(mu ** j for j in range(step)) * tol_p   # g projected, then the update again
        tol = _bounded(tl.accumulate(tol, step_tol), step)               # buffer errors carry over (mu <= 1)
        ref, state = opt.step(cast(cand), cast(g), state)                # refnet's step from the same point
        P = lambda: lay.to_layout(cand, port.layout)                      # a fresh copy for every call
        if projected:                                                    # the port's own projection, twice
            g = lay.from_layout(_tree(port.project_out(spec, P(), lay.to_layout(g, port.layout), X.copy(), freeze,
                                                       rtol=rtol), "project_out"), port.layout)
        out, port_state = port.optimizer_step(case.optimizer, dict(hyper), P(), lay.to_layout(g, port.layout),
                                              port_state)
        new = lay.from_layout(_tree(out, "optimizer_step"), port.layout)
        if projected:
            U = [(W - nW, b - nb) for (W, b), (nW, nb) in zip(cand, new)]  # the port's update theta - theta'
            U = lay.from_layout(_tree(port.project_out(spec, P(), lay.to_layout(U, port.layout), X.copy(), freeze,
                                                       rtol=rtol), "project_out"), port.layout)
            new = [(W - uW, b - ub) for (W, b), (uW, ub) in zip(cand, U)]
        mis = _compare_trees(quantity, [(np.asarray(W), np.asarray(b)) for W, b in ref],
                             lay.to_layout(new, port.layout), [(tol, tol)] * len(ref), port.layout, "", f"step {step}, ")
        if mis:
            return mis
        cand = new
    return None


def check_trajectory(port, case):
    """n_steps full-batch steps of the case's optimizer (state carried over), each from the port's own parameters."""
    return _trajectory(port, case, projected=False)


def check_projected_trajectory(port, case):
    """refnet.Projected(optimizer, retract=False) against the port's project_out + optimizer_step + project_out."""
    return _trajectory(port, case, projected=True)


CHECKS = {q: globals()[f"check_{q}"] for q in QUANTITIES}
