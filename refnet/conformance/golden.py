"""Golden files: refnet's answers on the core cases, readable from any language (C, Julia, Fortran, ...).

Format (version 1). ``export DIR`` writes::

    DIR/manifest.json
    DIR/<case>/case.json          one case: what to compute, from which inputs, and the expected outputs
    DIR/<case>/<array>.bin        raw little-endian IEEE-754 float64, C order (row-major), no header
    DIR/<case>/arrays.npz         the same arrays for NumPy users (numpy.load)

``manifest.json``: ``format`` ("refnet-conformance-golden"), ``format_version``
(1), ``refnet_version``, ``byte_order`` ("little"), ``dtype`` ("float64"),
``array_order`` ("C"), ``layout`` ("refnet": W is (n_in, n_out); b is (n_out,)),
``tolerances`` (how the per-entry tolerance arrays were derived), ``skipped``
(cases with no well-defined answer, and why) and ``cases``: a list of
``{"name", "quantity", "description": "<case>/case.json", "npz", "files": {path: sha256}}``.

``case.json``: ``quantity``; ``network`` (sizes, activation,
output_activation: activations identity, sigmoid, tanh, relu, softplus);
``arguments`` (scalars and index lists: outputs/freeze, lr, loss, optimizer,
hyper); ``inputs`` and ``expected``: ``{name: {"file", "shape"}}``, each
expected array with ``"tol"`` naming a same-shape file of per-entry absolute
tolerances; and ``case`` (the :class:`~refnet.conformance.Case` it came from).
Parameters are named W_1, b_1, W_2, ... (refnet layout); gradients dW_1, db_1, ...

What each quantity asks for (inputs -> expected):

* forward: W_l, b_l, X -> Y
* loss_and_grads: W_l, b_l, X, T, arguments.loss -> L (shape []), dW_l, db_l
* vjp: W_l, b_l, X, G -> dW_l, db_l
* jacobian: W_l, b_l, X, arguments.outputs -> J (len(outputs) n, p): rows
  output-major (row k n + i = d Y[i, outputs[k]]), columns W_1 row-major, b_1, W_2, ...
* project_out: W_l, b_l, grads gW_l, gb_l, anchors X, arguments.outputs, arguments.rtol
  (singular values <= rtol s_max are not constraints) -> dW_l, db_l
* frozen_step: W_l, b_l, X (also the anchors), G, arguments.freeze, arguments.lr, arguments.rtol -> W_l, b_l
* optimizer_step: W_l, b_l, step-1 gradients g1W_l, g1b_l, step-2 gradients
  g2W_l, g2b_l, arguments.optimizer, arguments.hyper -> step1W_l, step1b_l (one
  step from a zero state) and step2W_l, step2b_l (the next step from the
  *expected* step-1 parameters and your own state after step 1)
* trajectory: W_l, b_l, X, T, arguments (optimizer, hyper, loss, n_steps) ->
  step{k}W_l, step{k}b_l for k = 1..n_steps: full-batch steps on the loss of
  (X, T) with your own gradients, from a zero state
* projected_trajectory: the same with arguments.freeze, every step
  ``refnet.Projected(optimizer, anchors=X, freeze, retract=False)``: project the
  gradient onto the null space of the frozen outputs' Jacobian on X, take the
  optimizer's update U of it, project U again, theta <- theta - U_perp

A candidate writes its answers as ``<case>/result.<name>.bin`` (same format,
one per expected array; in RESULTS_DIR/<case>/ with ``check DIR --results
RESULTS_DIR``, default DIR itself); ``check`` compares them entrywise:
``|result - expected| <= tol``. A case whose results are all absent is skipped,
so a candidate may implement any subset.
"""
from __future__ import annotations

import hashlib
import json
import pathlib

import numpy as np

import refnet
from . import checks
from . import tolerances as tl
from .cases import core_cases

FORMAT, FORMAT_VERSION = "refnet-conformance-golden", 1
QUANTITIES = ("forward", "loss_and_grads", "vjp", "jacobian", "project_out", "frozen_step", "optimizer_step",
              "trajectory", "projected_trajectory")


def _param_arrays(prefix, tree):
    return {f"{prefix}{k}_{l}": np.asarray(x) for l, (W, b) in enumerate(tree, start=1) for k, x in (("W", W), ("b", b))}


def _expected_tree(prefix, tree, tol):
    return {name: (arr, np.broadcast_to(t, arr.shape)) for (name, arr), t in
            zip(_param_arrays(prefix, tree).items(), [t for pair in tol for t in pair])}


def reference(quantity, case):
    """refnet's answer for one case of one quantity, with its per-entry tolerances.

    Parameters
    ----------
    quantity : str
        One of :data:`QUANTITIES`.
    case : refnet.conformance.Case

    Returns
    -------
    arguments : dict
        Scalars and index lists (outputs, freeze, lr, loss, optimizer, hyper ...).
    inputs : dict of str to ndarray
        W_1, b_1, ..., X and the quantity's other inputs, refnet layout.
    expected : dict of str to (ndarray, ndarray)
        Each expected array with its same-shape absolute tolerances.

    Raises
    ------
    refnet.conformance.NotComparable
        The case has no well-defined answer in float64 (the message says why).

    Examples
    --------
    >>> from refnet.conformance import Case
    >>> args, ins, expected = reference("forward", Case())
    >>> sorted(ins), expected["Y"][0].shape == expected["Y"][1].shape
    (['W_1', 'W_2', 'X', 'b_1', 'b_2'], True)
    """
    spec, a = case.network(), case.arrays()
    eps = tl.EPS["float64"]
    params, X = a["params"], a["X"]
    ins = {**_param_arrays("", params), "X": X}
    freeze = list(case.freeze)
    if quantity == "forward":
        E = tl.forward_bound(spec, params, X, eps)[2][-1]
        return {}, ins, {"Y": (np.asarray(spec.forward(params, X)), tl.SAFETY * E)}
    if quantity in ("loss_and_grads", "vjp"):
        fwd = tl.forward_bound(spec, params, X, eps)
        if quantity == "vjp":
            G, E_G, args = a["G"], np.zeros_like(a["G"]), {}
            ins["G"] = G
            grads = spec.vjp(params, X, G)
            out = {}
        else:
            L, grads = spec.loss_and_grads(params, X, a["T"], loss=case.loss)
            _, G, E_L, E_G = tl.loss_bound(case.loss, fwd[0][-1], a["T"], fwd[2][-1], eps)
            ins["T"], args = a["T"], {"loss": case.loss}
            out = {"L": (np.asarray(L), np.asarray(tl.SAFETY * E_L))}
        E = tl.backward_bound(spec, params, fwd, G[None], E_G[None], eps)
        out.update(_expected_tree("d", grads, [(tl.SAFETY * eW, tl.SAFETY * eb) for eW, eb in E]))
        return args, ins, out
    if quantity == "jacobian":
        J, E_J = checks._jacobian_bound(spec, a, freeze, eps)
        return {"outputs": freeze}, ins, {"J": (J, tl.SAFETY * E_J)}
    if quantity == "project_out":
        g_perp, facts, tol = checks._project_reference(spec, params, a["grads"], X, freeze, eps)
        if facts["ambiguous"].size:
            raise checks.NotComparable(checks._ambiguous_reason(facts))
        ins.update(_param_arrays("g", a["grads"]))
        rtol = checks.default_rtol(spec, len(freeze) * X.shape[0], checks._eps_dtype(eps))   # the cutoff used
        return {"outputs": freeze, "rtol": rtol}, ins, _expected_tree("d", g_perp, [(tol, tol)] * len(params))
    if quantity == "frozen_step":
        ref = checks.frozen_reference(spec, params, X, a["G"], freeze, case.lr, eps)
        if ref["unpinned"]:
            raise checks.NotComparable(ref["unpinned"])
        ins["G"] = a["G"]
        tol = ref["tol"]
        rtol = checks.default_rtol(spec, len(freeze) * X.shape[0], checks._eps_dtype(eps))   # the port's cutoff
        return {"freeze": freeze, "lr": case.lr, "rtol": rtol}, ins, \
            _expected_tree("", ref["new"], [(tol, tol)] * len(params))
    if quantity == "optimizer_step":
        opt, hyper = checks._refnet_optimizer(case), case.hyper()
        ins.pop("X")
        ins.update(_param_arrays("g1", a["grads"]))
        ins.update(_param_arrays("g2", a["grads2"]))
        out, state, p = {}, opt.init(params), params
        for step, g in ((1, a["grads"]), (2, a["grads2"])):
            tol = tl.optimizer_tol(p, g, checks._accumulation(state) if step == 2 else None, hyper, eps)
            p, state = opt.step(p, g, state)
            p = [(np.asarray(W), np.asarray(b)) for W, b in p]
            out.update(_expected_tree(f"step{step}", p, tol))
        return {"optimizer": case.optimizer, "hyper": hyper}, ins, out
    if quantity in ("trajectory", "projected_trajectory"):
        projected = quantity == "projected_trajectory"
        ins["T"] = a["T"]
        args = {"optimizer": case.optimizer, "hyper": case.hyper(), "loss": case.loss, "n_steps": case.n_steps}
        if projected:
            args["freeze"] = freeze
        out = {}
        for step, p, tol in checks.trajectory_reference(spec, a, case, projected, eps, own_grads=True):
            out.update(_expected_tree(f"step{step}", p, [(tol, tol)] * len(p)))
        return args, ins, out
    raise ValueError(f"quantity must be one of {list(QUANTITIES)}, got {quantity!r}")


def _sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def write_case(root, name, quantity, case):
    """Write one case's folder ``root/name`` (case.json, the .bin arrays, arrays.npz).

    Parameters
    ----------
    root : str or path
    name : str
        The case folder's name.
    quantity : str
        One of :data:`QUANTITIES`.
    case : refnet.conformance.Case

    Returns
    -------
    dict
        Its manifest entry: name, quantity, description, npz and files (path: sha256).

    Examples
    --------
    >>> import tempfile
    >>> from refnet.conformance import Case
    >>> write_case(tempfile.mkdtemp(), "forward-00", "forward", Case())["description"]
    'forward-00/case.json'
    """
    args, ins, expected = reference(quantity, case)
    d = pathlib.Path(root) / name
    d.mkdir(parents=True, exist_ok=True)
    arrays, desc = {}, {"inputs": {}, "expected": {}}
    for key, name_, arr in [("inputs", k, v) for k, v in ins.items()] + [("expected", k, v[0]) for k, v in expected.items()]:
        arrays[name_] = np.ascontiguousarray(arr, dtype="<f8")
        desc[key][name_] = {"file": f"{name_}.bin", "shape": list(np.shape(arr))}
    for k, (arr, tol) in expected.items():
        arrays[f"tol.{k}"] = np.ascontiguousarray(np.broadcast_to(tol, np.shape(arr)), dtype="<f8")
        desc["expected"][k]["tol"] = f"tol.{k}.bin"
    for k, arr in arrays.items():
        arr.tofile(d / f"{k}.bin")                                       # raw little-endian float64, C order
    np.savez(d / "arrays.npz", **arrays)
    spec = case.network()
    body = {"name": name, "quantity": quantity,
            "network": {"sizes": spec.sizes, "activation": spec.activation, "output_activation": spec.output_activation},
            "arguments": args, **desc, "case": json.loads(case.to_json())}
    (d / "case.json").write_text(json.dumps(body, indent=1))
    files = {f"{name}/{f.name}": _sha256(f) for f in sorted(d.iterdir()) if not f.name.startswith("result.")}
    return {"name": name, "quantity": quantity, "description": f"{name}/case.json", "npz": f"{name}/arrays.npz",
            "files": files}


def export(root, cases=None, quantities=QUANTITIES):
    """Write golden files (the format in the module docstring) under ``root``.

    Parameters
    ----------
    root : str or path
        Created if needed.
    cases : list of Case, optional
        Default: the core cases.
    quantities : sequence of str, default :data:`QUANTITIES`

    Returns
    -------
    dict
        The manifest written to ``root/manifest.json``; cases with no well-defined answer are listed
        under "skipped" with the reason.

    Examples
    --------
    >>> import tempfile
    >>> m = export(tempfile.mkdtemp(), quantities=("forward",))
    >>> m["format"], len(m["cases"]) + len(m["skipped"]) == len(core_cases())
    ('refnet-conformance-golden', True)
    """
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    entries, skipped = [], []
    for q in quantities:
        for i, case in enumerate(core_cases() if cases is None else cases):
            name = f"{q}-{i:02d}"
            try:
                entries.append(write_case(root, name, q, case))
            except checks.NotComparable as e:
                skipped.append({"name": name, "quantity": q, "reason": str(e), "case": json.loads(case.to_json())})
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "refnet_version": refnet.__version__,
                "byte_order": "little", "dtype": "float64", "array_order": "C", "layout": "refnet",
                "tolerances": "per entry, absolute, in the tol.<name>.bin files; derived from running rounding-error "
                              "bounds (see refnet.conformance.tolerances)",
                "cases": entries, "skipped": skipped}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _inside(root, path, what):
    """root / path, when it names a file inside ``root`` (no absolute paths, no "..", no links out)."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"{what} must be a relative path inside {str(root)!r}, got {path!r}")
    full = (root / path).resolve()
    if pathlib.PurePath(path).is_absolute() or not full.is_relative_to(root.resolve()):
        raise ValueError(f"{what} {path!r} names a file outside {str(root)!r}; refusing to read it")
    return full


def _manifest(root):
    """manifest.json read and checked: its format, and every path it names inside ``root`` (before any
    of them is read)."""
    manifest = json.loads((root / "manifest.json").read_text())
    where = root / "manifest.json"
    if not isinstance(manifest, dict):
        raise ValueError(f"{where} must hold a JSON object, got a {type(manifest).__name__}")
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{where} is not a {FORMAT} version {FORMAT_VERSION} manifest")
    if not isinstance(manifest.get("cases"), list):
        raise ValueError(f"{where} has no \"cases\" list")
    for i, entry in enumerate(manifest["cases"]):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("name", "description")) \
                or not isinstance(entry.get("files"), dict):
            raise ValueError(f"{where}: cases[{i}] must be an object with \"name\", \"description\" and "
                             f"\"files\" (path: sha256)")
        _inside(root, entry["name"], f"cases[{i}].name")
        _inside(root, entry["description"], f"cases[{i}].description")
        for path in entry["files"]:
            _inside(root, path, f"cases[{i}].files")
        if entry["description"] not in entry["files"]:
            raise ValueError(f"{where}: cases[{i}].description {entry['description']!r} has no sha256 in its files")
    return manifest


def _read(d, entry):
    """A raw .bin array described by {"file", "shape"}."""
    return np.fromfile(d / entry["file"], dtype="<f8").reshape(entry["shape"])


def check(root, results=None):
    """Compare a candidate's result.<name>.bin files with the golden files under ``root``.

    Every path the manifest names is checked to lie inside ``root`` before anything is
    read, and every golden file's sha256 before it is used.

    Parameters
    ----------
    root : str or path
        The golden folder (with manifest.json).
    results : str or path, optional
        Where the candidate's <case>/result.<name>.bin files are (default: ``root``).

    Returns
    -------
    ok : bool
        Every file's sha256 matches, at least one case was compared and every compared
        entry is within its tolerance.
    lines : list of str
        One per case ("PASS", "FAIL" with the first entry outside its tolerance, or "SKIP").

    Raises
    ------
    ValueError
        An unusable manifest (not an object, no "cases", an entry without "files", a path
        outside ``root``), a file that does not match its sha256, a missing ``results`` folder.
    OSError
        No manifest.json.

    Examples
    --------
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> _ = export(root, quantities=("forward",))
    >>> check(root)                    # doctest: +ELLIPSIS
    (False, ['  SKIP  forward-00: no results', ...])
    """
    root = pathlib.Path(root)
    if results is not None and not pathlib.Path(results).is_dir():
        raise ValueError(f"--results: no folder {str(results)!r}")
    results = root if results is None else pathlib.Path(results)
    manifest = _manifest(root)
    lines, ok, compared = [], True, 0
    for entry in manifest["cases"]:
        for path, digest in entry["files"].items():
            if _sha256(root / path) != digest:
                raise ValueError(f"{root / path} does not match its sha256 in the manifest (corrupt or edited)")
        desc = json.loads((root / entry["description"]).read_text())
        d, rd = root / entry["name"], results / entry["name"]
        for k, e in desc.get("expected", {}).items():
            for key in ("file", "tol"):
                _inside(d, e.get(key, ""), f"{entry['description']}: expected {k} {key}")
            _inside(d, f"result.{k}.bin", f"{entry['description']}: expected name")
        present = {k: rd / f"result.{k}.bin" for k in desc["expected"] if (rd / f"result.{k}.bin").exists()}
        if not present:
            lines.append(f"  SKIP  {entry['name']}: no results")
            continue
        compared += 1
        bad = None
        for k, e in desc["expected"].items():
            if k not in present:
                bad = f"result.{k}.bin missing"
                break
            ref, tol = _read(d, e), np.fromfile(d / e["tol"], dtype="<f8").reshape(e["shape"])
            got = np.fromfile(present[k], dtype="<f8")
            if got.size != ref.size:
                bad = f"result.{k}.bin holds {got.size} values, expected {ref.size} (shape {e['shape']})"
                break
            got = got.reshape(e["shape"])
            err = np.where(np.isnan(got - ref), np.inf, np.abs(got - ref))
            if np.any(err > tol):
                idx = np.unravel_index(int(np.argmax(err / np.maximum(tol, np.finfo(float).tiny))), ref.shape)
                bad = (f"{k}[{', '.join(str(int(i)) for i in idx)}]: expected {float(ref[idx])!r}, got {float(got[idx])!r}, "
                       f"|difference| {err[idx]:.3e} > tolerance {tol[idx]:.3e}")
                break
        ok &= bad is None
        lines.append(f"  {'PASS' if bad is None else 'FAIL'}  {entry['name']}" + (f": {bad}" if bad else ""))
    if compared == 0:
        lines.append("  no results found: nothing was compared")
    return ok and compared > 0, lines


def save_failure(root, report):
    """Write each failing quantity's (shrunk) case of a run as golden files under ``root``.

    Parameters
    ----------
    root : str or path
        A folder (created if needed); its manifest.json lists only these cases.
    report : refnet.conformance.RunReport

    Returns
    -------
    list of dict
        The manifest entries written (a failing case with no well-defined float64 answer is left out).

    Examples
    --------
    >>> import tempfile
    >>> from refnet.conformance import RunReport
    >>> save_failure(tempfile.mkdtemp(), RunReport("port", "refnet", "quick", []))
    []
    """
    written = []
    for r in report.results:
        if r.status == "fail" and r.case is not None:
            q = {"loss": "loss_and_grads", "grads": "loss_and_grads"}.get(r.quantity, r.quantity)
            try:
                written.append(write_case(root, f"{r.quantity}-failure", q, r.case))
            except checks.NotComparable:
                continue
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text(json.dumps(
        {"format": FORMAT, "format_version": FORMAT_VERSION, "refnet_version": refnet.__version__,
         "byte_order": "little", "dtype": "float64", "array_order": "C", "layout": "refnet",
         "cases": written, "skipped": []}, indent=1))
    return written


__all__ = ["FORMAT", "FORMAT_VERSION", "QUANTITIES", "check", "export", "reference", "save_failure", "write_case"]
