"""Checkpoints: ``save(path, params, state=None, meta=None)`` and ``load(path)``.

A checkpoint is one ``.npz`` file (NumPy's zip of ``.npy`` arrays), written and
read with ``allow_pickle=False``, so loading a file never runs code. Entries:

    header           JSON string: format name and version, layer sizes
                     [n_0, ..., n_L] (read off the params), dtype, the
                     optimizer kind (the state's type name or null) and meta
    treedef          JSON string: the structure of ``state`` (see below)
    params.{l}.W     W_{l+1}  (n_l, n_{l+1})       l = 0 .. L-1
    params.{l}.b     b_{l+1}  (n_{l+1},)
    state.{path}     every array of the state, named by where it sits in it,
                     e.g. ``state.accumulation.0.0`` or ``state.inner.accumulation.1.1``

Optimizer states are NamedTuples that nest lists, tuples, arrays, None,
Python scalars and other NamedTuples (``ProjectedState`` holds an inner state,
the frozen values c0 and a ``FrozenInfo`` or None). ``treedef`` encodes such a
tree generically, one JSON node per value:

    {"kind": "array", "key": "state.frozen"}            an array, stored under key
    {"kind": "npscalar", "key": ...}                    a NumPy scalar, stored as a 0-d array
    {"kind": "scalar", "value": 0.5}                    bool, int, float or str (exact in JSON)
    {"kind": "none"}
    {"kind": "list" | "tuple", "items": [node, ...]}
    {"kind": "namedtuple", "type": "refnet.optim.MomentumState", "fields": {name: node}}

Only the NamedTuple types in ``STATE_TYPES`` are stored or rebuilt: a treedef
naming any other type is an error, never an import.

Arrays of any library (NumPy, CuPy, PyTorch, array_api_strict) are brought to
the host with :func:`refnet.backend.to_numpy` and always load as NumPy arrays;
``refnet.backend.asarray_like`` moves them back to a device. Values round-trip
bit for bit (``.npy`` stores raw bytes; JSON floats use ``repr``, which is exact).

Writing is atomic: the file is written under a temporary name in the target's
directory, flushed and fsync'ed, then renamed over ``path`` with ``os.replace``,
so a crash or error mid-write leaves the previous checkpoint intact.
A missing, truncated, corrupted or mismatched file raises ``ValueError`` naming
the file and what is wrong.
"""
from __future__ import annotations

import json
import os
import struct
import uuid
import zipfile
import zlib

import numpy as np

from . import _checks as check
from .backend import is_array, to_numpy
from .frozen import FrozenInfo, ProjectedState
from .optim import MomentumState, SGDState

__all__ = ["save", "load", "FORMAT", "VERSION", "STATE_TYPES"]

FORMAT = "refnet-checkpoint"
VERSION = 1

#: The NamedTuple types a state may contain, by the name stored in treedef.
STATE_TYPES = {f"{cls.__module__}.{cls.__qualname__}": cls
               for cls in (SGDState, MomentumState, ProjectedState, FrozenInfo)}

# What reading a damaged file can raise, from zipfile, zlib, NumPy's .npy reader and json.
_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, OverflowError,
                NotImplementedError, RecursionError, UnicodeDecodeError, struct.error,
                RuntimeError,                    # zipfile: "member is encrypted" from a flipped flag bit
                zipfile.BadZipFile, zlib.error)


class _Corrupt(Exception):
    """Internal: a structural problem found while decoding (re-raised as ValueError)."""


# ---------------------------------------------------------------------- encode
def _encode(x, key: str, arrays: dict, name: str):
    """JSON node for value ``x``; its arrays go into ``arrays`` under ``key``-prefixed names.

    ``name`` is the argument path used in error messages (e.g. ``state.inner``).
    """
    if x is None:
        return {"kind": "none"}
    if isinstance(x, tuple) and hasattr(x, "_fields"):                 # a NamedTuple
        qual = f"{type(x).__module__}.{type(x).__qualname__}"
        if STATE_TYPES.get(qual) is not type(x):
            raise TypeError(f"{name} is a {qual}, which checkpoints cannot store; expected one of "
                            f"{sorted(STATE_TYPES)} (or lists/tuples/arrays/scalars/None of them)")
        return {"kind": "namedtuple", "type": qual,
                "fields": {f: _encode(v, f"{key}.{f}", arrays, f"{name}.{f}") for f, v in zip(x._fields, x)}}
    if isinstance(x, (list, tuple)):
        return {"kind": type(x).__name__,
                "items": [_encode(v, f"{key}.{i}", arrays, f"{name}[{i}]") for i, v in enumerate(x)]}
    if isinstance(x, (bool, int, float, str)):
        return {"kind": "scalar", "value": x}
    if isinstance(x, np.generic):
        arrays[key] = np.asarray(x)
        return {"kind": "npscalar", "key": key}
    if is_array(x):
        arrays[key] = to_numpy(x)                                        # host copy, bit for bit
        return {"kind": "array", "key": key}
    raise TypeError(f"{name} is a {type(x).__name__}, which checkpoints cannot store; expected arrays, "
                    f"Python scalars, None, lists, tuples or refnet state NamedTuples")


def _check_meta(meta):
    """meta must be a dict that survives a strict JSON round trip unchanged."""
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict (JSON object) or None, got {type(meta).__name__}")
    try:
        back = json.loads(json.dumps(meta, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(f"meta must be JSON-serializable (str keys; str, finite numbers, bool, None, "
                         f"lists, dicts): {e}") from None
    if back != meta:
        raise ValueError("meta must survive a JSON round trip unchanged; use lists, not tuples, "
                         "and str keys")
    return meta


def save(path, params, state=None, meta=None) -> None:
    """Write params, an optimizer state and a JSON ``meta`` dict to the ``.npz`` file ``path``.

    One ``.npz`` file, read back with ``allow_pickle=False`` (loading never runs
    code). It stores the layer sizes (read off the params), the dtype, the
    optimizer kind and ``meta``; arrays of any library are copied to the host
    first, and everything round-trips bit for bit. Writing is atomic (a
    temporary file in the same directory, fsync, then ``os.replace``), so the
    previous file at ``path`` survives any failure during writing. The module
    docstring of ``refnet.io`` describes the file's entries.

    Parameters
    ----------
    path : str or os.PathLike
        Used as given: no ``.npz`` suffix is added.
    params : list of (W, b)
        ``W_l`` (n_{l-1}, n_l), ``b_l`` (n_l,), of any array library (validated
        like every refnet function; values are stored as they are, NaN included).
    state : SGDState, MomentumState, ProjectedState or None, optional
        An optimizer state, e.g. from ``opt.step``.
    meta : dict or None, optional
        JSON-serializable (str keys; str, finite numbers, bool, None, lists, dicts),
        e.g. the step count and hyperparameters.

    Returns
    -------
    None

    Raises
    ------
    ValueError
        If ``meta`` does not survive a JSON round trip unchanged, or ``params``
        is not a valid list of ``(W, b)`` pairs.
    TypeError
        If ``meta`` is not a dict, or ``state`` holds a type checkpoints cannot store.
    OSError
        If the file cannot be written (the previous one is left intact).

    Examples
    --------
    >>> import os, tempfile, numpy as np, refnet
    >>> net = refnet.MLP([3, 4, 2])
    >>> params = net.init(seed=0)
    >>> opt = refnet.Momentum(lr=0.1, momentum=0.9)
    >>> state = opt.init(params)
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "run.npz")
    >>> refnet.save(path, params, state, meta={"step": 100, "lr": 0.1})
    >>> params2, state2, meta = refnet.load(path)
    >>> meta, type(state2).__name__
    ({'step': 100, 'lr': 0.1}, 'MomentumState')
    >>> all(np.array_equal(W, W2) for (W, _), (W2, _) in zip(params, params2))
    True
    >>> folder.cleanup()
    """
    path = os.fspath(path)
    check.params(params)
    meta = _check_meta(meta)
    arrays = {}
    for l, (W, b) in enumerate(params):
        arrays[f"params.{l}.W"], arrays[f"params.{l}.b"] = to_numpy(W), to_numpy(b)
    treedef = _encode(state, "state", arrays, "state")
    header = {"format": FORMAT, "version": VERSION,
              "sizes": [int(params[0][0].shape[0])] + [int(W.shape[1]) for W, _ in params],
              "dtype": str(arrays["params.0.W"].dtype),
              "optimizer": None if state is None else type(state).__name__,
              "meta": meta}
    arrays["header"] = np.asarray(json.dumps(header))                  # a 0-d unicode array: no pickle
    arrays["treedef"] = np.asarray(json.dumps(treedef))
    _atomic_savez(path, arrays)


def _atomic_savez(path: str, arrays: dict) -> None:
    """np.savez into a temporary file next to ``path``; fsync; os.replace onto ``path``."""
    directory, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{base}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)     # umask applies, like open()
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())                                         # data on disk before the rename
        os.replace(tmp, path)                                            # atomic on POSIX and Windows
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:                                                                 # persist the rename itself (POSIX)
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# ---------------------------------------------------------------------- decode
def _decode(node, data, used: set):
    """Rebuild a value from its treedef node; arrays are read from ``data`` (an NpzFile)."""
    if not isinstance(node, dict) or "kind" not in node:
        raise _Corrupt(f"treedef node {node!r} is not a {{'kind': ...}} object")
    kind = node["kind"]
    if kind == "none":
        return None
    if kind == "scalar":
        v = node["value"]
        if not isinstance(v, (bool, int, float, str)):
            raise _Corrupt(f"treedef scalar {v!r} is not a bool, int, float or str")
        return v
    if kind in ("array", "npscalar"):
        key = node["key"]
        if key not in data.files:
            raise _Corrupt(f"missing entry {key!r} named by treedef")
        used.add(key)
        a = data[key]
        return a[()] if kind == "npscalar" else a
    if kind in ("list", "tuple"):
        items = [_decode(v, data, used) for v in node["items"]]
        return items if kind == "list" else tuple(items)
    if kind == "namedtuple":
        cls = STATE_TYPES.get(node["type"])
        if cls is None:
            raise _Corrupt(f"treedef names the unknown state type {node['type']!r}; "
                           f"known: {sorted(STATE_TYPES)}")
        fields = node["fields"]
        n_required = len(cls._fields) - len(cls._field_defaults)                 # fields added later have defaults
        if (not isinstance(fields, dict) or len(fields) < n_required
                or list(fields) != list(cls._fields)[:len(fields)]):
            raise _Corrupt(f"treedef fields {list(fields) if isinstance(fields, dict) else fields!r} "
                           f"do not match {node['type']} fields {list(cls._fields)}")
        return cls(**{f: _decode(v, data, used) for f, v in fields.items()})
    raise _Corrupt(f"treedef node kind {kind!r} is unknown")


def _json_entry(data, key: str):
    if key not in data.files:
        raise _Corrupt(f"missing entry {key!r}")
    a = data[key]
    if a.shape != () or a.dtype.kind != "U":
        raise _Corrupt(f"entry {key!r} must be a JSON string, got a {a.dtype} array of shape {a.shape}")
    return json.loads(str(a[()]))


def _check_state(state, params, name: str):
    """The state's arrays have the shapes and dtype the params imply: momentum buffers
    shaped like the params, c0 of a ProjectedState a vector (m,); raises _Corrupt."""
    if isinstance(state, MomentumState):
        try:
            check.like_params(state.accumulation, params, f"{name}.accumulation", np, params[0][0].dtype)
        except (TypeError, ValueError) as e:
            raise _Corrupt(str(e)) from None
    elif isinstance(state, ProjectedState):
        _check_state(state.inner, params, f"{name}.inner")
        c0, dtype = state.frozen, params[0][0].dtype
        if not isinstance(c0, np.ndarray) or c0.ndim != 1 or c0.dtype != dtype:
            got = f"a {c0.dtype} array of shape {c0.shape}" if isinstance(c0, np.ndarray) else type(c0).__name__
            raise _Corrupt(f"{name}.frozen (c0) must be a {dtype} vector (m,) like the params, got {got}")


def _read(data):
    """(params, state, meta) from an open NpzFile; raises _Corrupt or a reader error."""
    header = _json_entry(data, "header")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _Corrupt(f"header does not identify a {FORMAT!r} file")
    if header.get("version") != VERSION:
        raise _Corrupt(f"format version {header.get('version')!r} is not supported "
                       f"(this refnet reads version {VERSION})")
    sizes, dtype = header["sizes"], header["dtype"]
    if (not isinstance(sizes, list) or len(sizes) < 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes)):
        raise _Corrupt(f"header sizes {sizes!r} are not a list of >= 2 positive layer widths")
    if dtype not in ("float32", "float64"):
        raise _Corrupt(f"header dtype {dtype!r} is not float32 or float64")
    used = {"header", "treedef"}
    params = []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layer = []
        for name, want in (("W", (n_in, n_out)), ("b", (n_out,))):
            key = f"params.{l}.{name}"
            if key not in data.files:
                raise _Corrupt(f"missing entry {key!r}")
            a = data[key]
            if a.shape != want or str(a.dtype) != dtype:
                raise _Corrupt(f"entry {key!r} is {a.dtype} {a.shape}; the header says {dtype} {want}")
            used.add(key)
            layer.append(a)
        params.append(tuple(layer))
    state = _decode(_json_entry(data, "treedef"), data, used)
    kind = None if state is None else type(state).__name__
    if kind != header.get("optimizer"):
        raise _Corrupt(f"header optimizer {header.get('optimizer')!r} does not match the stored state ({kind!r})")
    _check_state(state, params, "state")
    extra = sorted(set(data.files) - used)
    if extra:
        raise _Corrupt(f"unexpected entries {extra[:5]}")
    meta = header.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise _Corrupt(f"header meta is a {type(meta).__name__}, expected a JSON object")
    return params, state, meta


def load(path):
    """Read a checkpoint written by :func:`save`.

    The file is read with ``allow_pickle=False``: loading never runs code, and
    a state type is rebuilt only if it is one of refnet's own.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    params : list of (W, b)
        NumPy arrays of the stored dtype, ``W_l`` (n_{l-1}, n_l), ``b_l`` (n_l,);
        ``refnet.backend.asarray_like`` moves them to another library or device.
    state : SGDState, MomentumState, ProjectedState or None
        The optimizer state, with NumPy arrays.
    meta : dict or None

    Raises
    ------
    ValueError
        Naming ``path``, when the file is missing, not a refnet checkpoint,
        truncated, corrupted (zip CRC checks cover every array) or
        inconsistent (wrong format version, missing or unexpected entries,
        arrays of the wrong shape or dtype: the params, the momentum buffers
        shaped like them, a ProjectedState's c0 a vector; an unknown state type).

    Examples
    --------
    >>> import os, tempfile, refnet
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = os.path.join(folder.name, "run.npz")
    >>> refnet.save(path, refnet.MLP([3, 4, 2]).init(seed=0))
    >>> params, state, meta = refnet.load(path)
    >>> [W.shape for W, b in params], state, meta
    ([(3, 4), (4, 2)], None, None)
    >>> refnet.load(os.path.join(folder.name, "missing.npz"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: checkpoint '...missing.npz' does not exist
    >>> folder.cleanup()
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as fh:                                     # we close it, also when NumPy fails
            data = np.load(fh, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise _Corrupt("it holds a single .npy array, not an .npz archive")
            with data:
                return _read(data)
    except FileNotFoundError:
        raise ValueError(f"checkpoint {path!r} does not exist") from None
    except _Corrupt as e:
        raise ValueError(f"checkpoint {path!r} is not a valid refnet checkpoint: {e}") from None
    except _READ_ERRORS as e:
        raise ValueError(f"checkpoint {path!r} is truncated, corrupted or not a refnet checkpoint: "
                         f"{type(e).__name__}: {e}") from e
