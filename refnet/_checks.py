"""Input validation shared by every public function (one check, one place).

Conventions: a value of the wrong kind (not an array, integer/bool/complex dtype,
mixed float precisions, mixed libraries or devices) raises ``TypeError``; a bad
value or shape raises ``ValueError``. Every message names the argument and says
what was expected. Nothing here modifies its inputs.
"""
from __future__ import annotations

import math
import operator

from .backend import fast_namespace, index_list, is_float_dtype, namespace, total


def all_finite(xp, *arrays) -> bool:
    """True when every entry of every array is finite (0-d arrays and scalars included).

    One fused reduction and one host transfer: ``backend.total`` of each array
    is finite iff no entry is NaN/Inf (unless finite values overflow it), and
    the totals are added on the device before the one value comes to the host.
    The exact ``isfinite`` pass (one transfer per array) runs only when the
    fused value is not finite.
    """
    if math.isfinite(float(total(xp, *arrays))):
        return True
    return all(bool(xp.all(xp.isfinite(x))) for x in arrays)


def leaves(tree) -> list:
    """The arrays of a list of (W, b) pairs, in order [W_1, b_1, W_2, ...]."""
    return [x for layer in tree for x in layer]


def finite(xp, x, name: str):
    """Raise ``ValueError`` naming ``name`` if ``x`` holds NaN or Inf."""
    if not all_finite(xp, x):
        raise ValueError(f"{name} contains NaN or Inf; expected finite values")
    return x


def float_dtype(xp, x, name: str, dtype=None):
    """Check ``x`` has a real floating dtype (equal to ``dtype`` when given)."""
    if not is_float_dtype(xp, x.dtype):
        raise TypeError(f"{name} must have a real floating dtype (float32 or float64), got {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name} has dtype {x.dtype} but params have dtype {dtype}; "
                        f"use one floating dtype throughout")


def shape(x, name: str, expected: tuple):
    """Check ``x.shape`` against ``expected`` (``None`` entries match anything)."""
    if len(x.shape) != len(expected) or any(e is not None and s != e for s, e in zip(x.shape, expected)):
        want = "(" + ", ".join("n" if e is None else str(e) for e in expected) + ("," if len(expected) == 1 else "") + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")


def params(params, sizes=None, name: str = "params"):
    """Validate a parameter list ``[(W_1, b_1), ..., (W_L, b_L)]``.

    ``W_l`` is (n_{l-1}, n_l) and ``b_l`` is (n_l,); consecutive layers chain; one
    float dtype, one library, one device. ``sizes`` (when given) must match.
    Returns ``(xp, dtype)``. Values are not inspected (see ``tree_finite``).
    """
    fast = _params_fast(params, sizes)
    if fast is not None:
        return fast
    if not isinstance(params, (list, tuple)) or len(params) == 0:
        raise TypeError(f"{name} must be a non-empty list of (W, b) pairs, got {type(params).__name__}")
    for l, layer in enumerate(params):
        if not isinstance(layer, (list, tuple)) or len(layer) != 2:
            flat = len(params) % 2 == 0 and all(hasattr(x, "shape") for x in params)
            raise TypeError(f"{name}[{l}] must be a (W, b) pair, got {type(layer).__name__}" + (
                f"; {name} looks like a flat list [W_1, b_1, W_2, ...] (what list(model.parameters()) gives): "
                f"pair it, list(zip({name}[::2], {name}[1::2]))" if flat else ""))
    xp, dtype = _tree_namespace(params, name)
    layered = sizes is not None and len(sizes) == len(params) + 1      # else the layer count is reported below
    n_prev = None
    for l, (W, b) in enumerate(params, start=1):
        if len(W.shape) != 2:
            raise ValueError(f"{name}[{l - 1}][0] (W_{l}) must be 2-D (n_in, n_out), got shape {tuple(W.shape)}")
        if layered and sizes[l - 1] != sizes[l] and tuple(W.shape) == (sizes[l], sizes[l - 1]):
            raise ValueError(f"{name}[{l - 1}][0] (W_{l}) must have shape {(sizes[l - 1], sizes[l])} (n_in, n_out), "
                             f"got {tuple(W.shape)}: it is transposed (torch.nn.Linear's weight is (n_out, n_in); "
                             f"pass weight.T)")
        if tuple(b.shape) != (W.shape[1],):
            shape(b, f"{name}[{l - 1}][1] (b_{l})", (W.shape[1],))
        if n_prev is not None and W.shape[0] != n_prev:
            raise ValueError(f"{name}[{l - 1}][0] (W_{l}) has {W.shape[0]} rows but layer {l - 1} "
                             f"has {n_prev} outputs")
        n_prev = W.shape[1]
    if sizes is not None:
        got = [params[0][0].shape[0]] + [W.shape[1] for W, _ in params]
        if got != list(sizes):
            raise ValueError(f"{name} have layer sizes {got} but the network has sizes {list(sizes)}")
    return xp, dtype


def _pair_leaves(tree):
    """The items of a list (or tuple) of 2-item lists (or tuples), in order; None for anything else."""
    if not isinstance(tree, (list, tuple)):
        return None
    arrays = []
    for layer in tree:
        if not isinstance(layer, (list, tuple)) or len(layer) != 2:
            return None
        arrays += layer
    return arrays


def _params_fast(params, sizes):
    """``(xp, dtype)`` of params that pass every check of :func:`params`, else None (then the
    checks run one by one to name what is wrong). The same checks in one pass, without names."""
    arrays = _pair_leaves(params)
    xp = fast_namespace(arrays) if arrays else None
    if xp is None:
        return None
    W = arrays[0]
    dtype, n_prev = W.dtype, W.shape[0] if W.ndim == 2 else None
    if not is_float_dtype(xp, dtype) or (sizes is not None and (len(sizes) != len(params) + 1 or sizes[0] != n_prev)):
        return None
    for l, (W, b) in enumerate(params, start=1):
        if W.ndim != 2 or W.dtype != dtype or b.dtype != dtype or W.shape[0] != n_prev:
            return None
        n_prev = W.shape[1]
        if b.shape != (n_prev,) or (sizes is not None and sizes[l] != n_prev):
            return None
    return xp, dtype


def _tree_namespace(tree, name, ref=None):
    """(xp, dtype) of a list of (W, b) pairs (plus ``ref``, an array they must match):
    one library, one device, one real floating dtype. Names are built only on error."""
    arrays = [x for layer in tree for x in layer] + ([] if ref is None else [ref])
    named = lambda: {**{f"{name}[{l}][{j}]": x for l, layer in enumerate(tree) for j, x in enumerate(layer)},
                     **({} if ref is None else {"params[0][0]": ref})}
    xp = fast_namespace(arrays) or namespace(named())
    dtype = arrays[-1].dtype if ref is not None else arrays[0].dtype
    if not is_float_dtype(xp, dtype) or any(x.dtype != dtype for x in arrays):
        for arg, x in named().items():
            float_dtype(xp, x, arg, dtype)
    return xp, dtype


def like_params(tree, ref, name: str, xp, dtype):
    """Check ``tree`` (grads, updates, a state buffer) has the structure, shapes,
    library, device and dtype of ``ref`` (validated params)."""
    if _like_fast(tree, ref, xp, dtype):
        return tree
    if not isinstance(tree, (list, tuple)) or len(tree) != len(ref):
        got = type(tree).__name__ + (f" of length {len(tree)}" if isinstance(tree, (list, tuple)) else "")
        raise ValueError(f"{name} must be a list of {len(ref)} (W, b) pairs like params, got {got}")
    for l, (layer, (W, b)) in enumerate(zip(tree, ref)):
        if not isinstance(layer, (list, tuple)) or len(layer) != 2:
            raise ValueError(f"{name}[{l}] must be a (W, b) pair like params[{l}]")
        for j, (x, r) in enumerate(zip(layer, (W, b))):
            if not hasattr(x, "shape") or tuple(x.shape) != tuple(r.shape):
                got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
                raise ValueError(f"{name}[{l}][{j}] must have shape {tuple(r.shape)} like params[{l}][{j}], got {got}")
    _tree_namespace(tree, name, ref=ref[0][0])
    return tree


def _like_fast(tree, ref, xp, dtype) -> bool:
    """True when :func:`like_params` passes: the same checks in one pass, without names."""
    arrays = _pair_leaves(tree)
    if arrays is None or len(arrays) != 2 * len(ref) or fast_namespace(arrays + [ref[0][0]]) is not xp:
        return False
    return all(x.dtype == dtype and x.shape == r.shape for x, r in zip(arrays, leaves(ref)))


def tree_all_finite(xp, tree) -> bool:
    """True when every array of a list of (W, b) pairs is finite (:func:`all_finite`: one host transfer)."""
    return all_finite(xp, *leaves(tree))


def tree_finite(xp, tree, name: str):
    """Raise ``ValueError`` naming the first array of a list of (W, b) pairs that holds NaN or Inf.

    One fused reduction and one host transfer; the per-array search runs only on failure.
    """
    if not tree_all_finite(xp, tree):
        for l, (W, b) in enumerate(tree):
            finite(xp, W, f"{name}[{l}][0]")
            finite(xp, b, f"{name}[{l}][1]")


def data(x, name: str, params, n_cols: int, n_rows=None, what="samples", check_finite=True):
    """``batch`` that must also match (validated) ``params``: their library, device and dtype."""
    return batch(x, name, n_cols, what, n_rows=n_rows, like=params[0][0], check_finite=check_finite)


def batch(x, name: str, n_cols: int, what="samples", n_rows=None, like=None, check_finite=True):
    """A 2-D batch (n, n_cols) of a real floating dtype, n >= 1 (n == n_rows when given),
    finite (one host transfer; ``check_finite=False`` leaves that to the caller, who fuses it with
    its other finiteness checks); with ``like`` (an array) also of its library, device and dtype."""
    if like is None:
        xp = fast_namespace((x,)) or namespace({name: x})
    else:
        xp = fast_namespace((like, x)) or namespace({"params[0][0]": like, name: x})
    if len(x.shape) != 2:
        raise ValueError(f"{name} must be 2-D ({what}, {n_cols}), got shape {tuple(x.shape)}")
    if x.shape[1] != n_cols or (n_rows is not None and x.shape[0] != n_rows):
        shape(x, name, (n_rows, n_cols))
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty; expected at least one row ({what})")
    if x.dtype != (like.dtype if like is not None else x.dtype) or not is_float_dtype(xp, x.dtype):
        float_dtype(xp, x, name, None if like is None else like.dtype)
    return finite(xp, x, name) if check_finite else x


def network(net, name: str = "net"):
    """A ``refnet.MLP`` (the architecture object, not its params)."""
    from .mlp import MLP                                  # local: mlp imports this module
    if not isinstance(net, MLP):
        raise TypeError(f"{name} must be a refnet.MLP, got {type(net).__name__}")
    return net


def flag(value, name: str) -> bool:
    """A Python bool (``True``/``False``), not a truthy stand-in such as "yes" or 1."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def axes(axis, ndim: int, name: str = "axis") -> tuple:
    """Distinct axes (an int or a tuple/list of ints) of an ``ndim``-D array, normalised to >= 0."""
    items = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in items:
        if isinstance(a, bool) or not isinstance(a, int):
            raise TypeError(f"{name} must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{name} must be an axis (or tuple of axes) of an array with ndim {ndim}, got {axis!r}")
        out.append(a % ndim)
    if not out or len(set(out)) != len(out):
        raise ValueError(f"{name} must name at least one axis, each once, got {axis!r}")
    return tuple(out)


def positive_finite(value, name: str) -> float:
    """A Python float > 0 and finite (learning rates, tolerances)."""
    v = real(value, name)
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def real(value, name: str) -> float:
    """A Python float from a real scalar (rejects bools, strings, arrays of size != 1)."""
    if isinstance(value, bool) or isinstance(value, str):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}") from None


def count(value, name: str, minimum: int) -> int:
    """A Python int >= minimum (iteration limits, layer sizes)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v}")
    return v


def indices(values, name: str, n: int) -> list[int]:
    """Distinct output indices in [0, n), as a list of ints in the given order (a list, tuple, range
    or 1-D NumPy integer array)."""
    values = index_list(values, name)                              # np.arange(k), np.flatnonzero(mask)
    if not isinstance(values, (list, tuple, range)):
        got = type(values).__name__ + (f" of shape {tuple(values.shape)}" if hasattr(values, "shape") else "")
        raise TypeError(f"{name} must be a list of output indices (or a 1-D NumPy integer array), got {got}")
    out = []
    for i, v in enumerate(values):
        v = count(v, f"{name}[{i}]", -(2**63))
        if not 0 <= v < n:
            raise ValueError(f"{name}[{i}] = {v} is out of range; expected an output index in [0, {n})")
        out.append(v)
    if len(set(out)) != len(out):
        raise ValueError(f"{name} has duplicate indices {out}; expected distinct outputs")
    return out


def choice(value, name: str, options) -> str:
    """One of the named options."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return value
