"""Everything backend-specific in refnet lives in this module.

refnet's array code never names an array library. It asks this module for the
namespace ``xp`` of its inputs and then uses only functions of the Python array
API standard (https://data-apis.org/array-api/), so the same lines run on
NumPy, CuPy (GPU), PyTorch tensors, JAX arrays and ``array_api_strict``.

JAX arrays are accepted only with ``jax_enable_x64`` on (float32 arrays stay
float32): without it JAX silently makes float32 of float64 requests, such as
float64 params or the float64 linear algebra of frozen outputs.
JAX transformations (``jax.jit``, ``jax.vmap``, ``jax.grad``) are refused with a
``TypeError``: refnet decides things on the host from concrete values (inputs
are finite, the frozen-output retraction converged, the numerical rank), and a
traced array has no value until the transformation runs.

Rules for contributors (the ``array_api_strict`` test backend enforces most;
tests/test_backends.py checks the import rules statically):

* Only this module imports an array library (``array_api_compat``, torch, CuPy,
  ...). Array code (mlp, nn, optim, frozen, _checks and any new module) gets
  ``xp`` from its inputs (:func:`namespace`) and never imports NumPy; the one
  exception is host-side code inside it, listed by name (``MLP.init``: random
  draws). Host-side modules (data, io, conformance, demos, ``__main__``,
  bench) may use NumPy; bench may import peers (torch, CuPy) only inside a
  function, so importing it never needs them.
* Validate arrays through ``_checks`` (which calls :func:`namespace` with the
  argument names): mixed libraries or devices raise ``TypeError`` naming the
  argument, before any arithmetic mixes them.
* Create arrays on the inputs' device and with an explicit dtype:
  ``xp.zeros(shape, dtype=x.dtype, device=device(x))``. ``array_api_strict``
  has a second device (``device1``) that catches a missing ``device=``; a
  missing ``dtype=`` gives float32 under PyTorch (its default) but float64
  under NumPy.
* Index with arrays of integers made on the device
  (``xp.take(x, xp.asarray(idx, dtype=xp.int64, device=device(x)), axis=...)``),
  not with Python lists (fancy indexing is not portable).
* Randomness is drawn on the host with ``numpy.random.Generator`` and moved with
  :func:`asarray_like`, so every backend starts from bit-identical numbers.
* Mix only Python scalars into arrays. ``float32_array * numpy.float64(x)`` is
  float64 under NumPy 2 promotion rules; ``float32_array * float(x)`` stays
  float32. Convert hyperparameters with ``float()`` once, at construction.
  Host values computed with NumPy (``np.sqrt(2.0)``, a NumPy reduction) are
  NumPy scalars that carry a dtype (``np.float64`` even passes
  ``isinstance(x, float)``): wrap them in ``float()`` before mixing them in.
* Work in float64 internally only on purpose (the frozen-output Gram system),
  with ``xp.astype(x, xp.float64)``, and cast results back to the inputs' dtype.
* Use operators (``@``, ``*``, ``+``, ``.T``) and standard functions
  (``xp.sum``, ``xp.tanh``, ``xp.linalg.eigh``); no NumPy-only methods such as
  ``.dot``, ``.copy()``, ``.flatten()``, ``np.einsum`` or fancy indexing.
* Bring arrays to the host only where a value must be printed or decided on in
  Python (convergence tests, error checks); say so in the docstring.
"""
from __future__ import annotations

import contextlib
import functools
import operator
import sys
import types

import array_api_compat
import array_api_compat.numpy
import numpy as np

__all__ = ["namespace", "device", "host_namespace", "total", "asarray_like", "to_numpy", "is_array", "is_float_dtype",
           "values_only", "quiet"]


def _numpy_namespace():
    """``array_api_compat.numpy`` with ``sum`` as the ufunc reduction ``np.add.reduce``
    and ``reshape`` as the array method.

    For NumPy 2 the compat ``sum`` is ``np.sum``, whose Python layer costs about
    1 us a call (more than the reduction itself on a tiny layer); ``np.add.reduce``
    computes the same sum (same pairwise summation, dtype and ``keepdims``) on the
    floating arrays refnet reduces. Likewise ``np.reshape`` is ``x.reshape`` behind
    about 1 us of Python (the matrix-free frozen-output products call it hundreds
    of times a step). Everything else is the compat module's.
    """
    ns = types.ModuleType(array_api_compat.numpy.__name__, array_api_compat.numpy.__doc__)
    ns.__dict__.update({k: v for k, v in vars(array_api_compat.numpy).items() if not k.startswith("__")})
    def sum(x, /, *, axis=None, dtype=None, keepdims=False):
        return np.add.reduce(x, axis, dtype, None, keepdims)   # np.sum without its Python layer (keywords cost 1 us)
    def reshape(x, /, shape, *, copy=None):
        return x.reshape(shape) if copy is None else np.reshape(x, shape, copy=copy)   # np.reshape's own method
    ns.sum, ns.reshape = sum, reshape
    return ns


_NUMPY = _numpy_namespace()
_SCALARS = (int, float, complex, bool)
_JOIN = 4096                    # total(): NumPy arrays this small in all are joined for one BLAS call


def is_array(x) -> bool:
    """True for an array of any library that array_api_compat knows."""
    return array_api_compat.is_array_api_obj(x) and not isinstance(x, (int, float, complex, bool))


def device(x):
    """The device an array lives on (``"cpu"`` for NumPy)."""
    return array_api_compat.device(x)


def fast_namespace(arrays):
    """The namespace of ``arrays`` when they are all arrays of one library on one
    device, else None (then call :func:`namespace` with names for the diagnosis)."""
    for x in arrays:                          # the common case, without array_namespace's overhead
        if type(x) is not np.ndarray:
            break
    else:
        return _NUMPY
    try:
        xp = array_api_compat.array_namespace(*arrays)
    except TypeError:
        return None
    if xp is array_api_compat.numpy:           # NumPy arrays mixed with NumPy scalars
        xp = _NUMPY
    if any(x is None or isinstance(x, _SCALARS) for x in arrays):   # array_namespace lets these through
        return None
    if xp is _NUMPY and any(_odd_ndarray(x) for x in arrays):         # numpy.matrix, masked arrays, ...
        return None
    if xp is not _NUMPY:                      # NumPy arrays all live on the host: nothing to compare
        if array_api_compat.is_jax_namespace(xp) and (not _jax_x64() or any(map(_is_jax_tracer, arrays))):
            return None
        dev = device(arrays[0])
        if any(device(x) != dev for x in arrays):
            return None
    return xp


def _odd_ndarray(x) -> bool:
    """An ndarray subclass whose arithmetic is not an ndarray's (memmap's is: it is only file-backed)."""
    return isinstance(x, np.ndarray) and type(x) is not np.ndarray and not isinstance(x, np.memmap)


# NumPy subclasses refnet refuses -> (their name, what refnet would get wrong with one)
_ODD = {np.matrix: ("numpy.matrix", "its * is a matrix product and its rows stay 2-D"),
        np.ma.MaskedArray: ("numpy.ma.MaskedArray", "refnet would not honour its mask")}


def index_list(values, name: str):
    """A 1-D NumPy array of indices (``np.arange(k)``, ``np.flatnonzero(mask)``) as a list of its
    items, to be checked like a list's; anything else as given. A boolean NumPy array (a mask, not
    indices) raises TypeError naming ``name``."""
    if not isinstance(values, np.ndarray):
        return values
    if values.dtype == bool:
        raise TypeError(f"{name} must be output indices, got a boolean mask; pass numpy.flatnonzero(mask)")
    return values.tolist() if values.ndim == 1 else values


def values_only(fn):
    """Decorator for refnet's public array functions: they compute values, never autograd graphs.

    PyTorch records a graph (``grad_fn``) for every operation on a tensor with
    ``requires_grad=True``: refnet's results, gradients and optimizer buffers
    would carry one chain per step (memory growing with the steps), and
    converting a 0-d check value to a Python float would warn. So ``fn`` runs
    with torch's gradient recording off (``torch.set_grad_enabled(False)``,
    restored on return) when torch is imported and recording is on: tensors
    that require grad go in, tensors without history come out, and the
    caller's tensors are not touched. Other libraries record nothing eagerly
    (JAX tracers are refused by :func:`namespace`). Without torch imported the
    cost is one dictionary lookup.

    Inside ``torch.func.grad``, ``vmap`` and the other ``torch.func``
    transformations refnet raises ``TypeError``: with recording off a gradient
    transformation would see no dependence and return zeros, and a batching one
    cannot give the host the concrete values refnet's checks decide on.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        torch = sys.modules.get("torch")
        if torch is None:
            return fn(*args, **kwargs)
        if getattr(torch._C, "_are_functorch_transforms_active", bool)():   # private, so guarded
            raise TypeError("refnet was called inside torch.func.grad, torch.func.vmap or another torch.func "
                            "transformation: refnet computes values with PyTorch's autograd off (its results "
                            "carry no history) and decides on the host from concrete values, so the "
                            "transformation would see zero gradients or no values; call refnet outside it "
                            "(MLP.vjp and MLP.loss_and_grads give the gradients)")
        if not torch.is_grad_enabled():
            return fn(*args, **kwargs)
        set_grad_enabled = getattr(torch._C, "_set_grad_enabled", torch.set_grad_enabled)  # private: guarded
        set_grad_enabled(False)
        try:
            return fn(*args, **kwargs)
        finally:
            set_grad_enabled(True)
    return wrapper


def quiet():
    """A context in which NumPy does not warn about overflow or invalid values.

    For computations whose inputs are checked afterwards, in the same host
    transfer as their results: a non-finite input or result then raises a
    clear error instead. NumPy's error state is per thread and restored on
    exit; it also covers libraries that compute with NumPy (``array_api_strict``).
    """
    return np.errstate(all="ignore")


def total(xp, *arrays):
    """A 0-d value that is finite iff every entry of every array is, barring overflow
    (the fused fast path of the finiteness checks, which check exactly when it is not
    finite). NumPy: the sum of ``vdot(x, x)``, BLAS, which is faster than ``np.sum`` and
    raises no overflow warning for finite entries whose sum overflows (a 0-d value, such
    as a loss, adds its ``abs``: a scalar operation, far cheaper than a BLAS call); arrays
    of at most ``_JOIN`` entries in all are joined first, for one call instead of one per
    array (a call costs about 1 us, copying 4096 entries less); other libraries:
    the sum of the sums, computed on the device (``quiet``: NumPy-based libraries such as
    ``array_api_strict`` would warn about inf - inf). Raises ``TypeError`` inside a JAX
    transformation, where the sum would be a tracer that cannot be inspected."""
    if xp is _NUMPY:                           # sum of squares; inf or NaN iff an entry is (or it overflows)
        if sum([x.size for x in arrays]) <= _JOIN:
            y = np.concatenate([x.ravel() for x in arrays])
            return np.vdot(y, y)                                                # |y|^2 of all entries
        return sum(abs(x) if x.ndim == 0 else np.vdot(x, x) for x in arrays)   # 0-d (a loss): |x|, no BLAS call
    with quiet():
        s = functools.reduce(operator.add, [xp.sum(x) for x in arrays])
    if _is_jax_tracer(s):      # inside jax.jit even concrete (closed-over) arrays give traced results
        raise TypeError(_tracing("refnet was called inside a JAX transformation"))
    return s


def namespace(named: dict):
    """Array namespace shared by the named arrays; checks one library and one device.

    ``named`` maps argument names (used in error messages) to arrays. Returns the
    array-API namespace ``xp``. Raises ``TypeError`` naming the argument when a
    value is not an array, when the arrays come from different libraries or
    sit on different devices, when one is a JAX tracer, or when they are JAX
    arrays and JAX has x64 disabled. The per-argument diagnosis runs only when
    something is wrong.
    """
    return fast_namespace(tuple(named.values())) or _diagnose(named)


def _diagnose(named: dict):
    """Raise the TypeError that names the offending argument."""
    ref_name = ref_xp = ref_dev = None
    for name, x in named.items():
        if _odd_ndarray(x):
            what, why = next((v for k, v in _ODD.items() if isinstance(x, k)),
                             (f"{type(x).__module__}.{type(x).__qualname__}", "its arithmetic may not be an ndarray's"))
            raise TypeError(f"{name} is a {what}, a NumPy subclass ({why}); pass a plain ndarray: "
                            f"numpy.asarray({name})")
        if not is_array(x):
            raise TypeError(f"{name} must be an array (NumPy, PyTorch, JAX, CuPy or any array-API "
                            f"library), got {type(x).__name__}")
        if _is_jax_tracer(x):
            raise TypeError(_tracing(f"{name} is a JAX tracer"))
        xp, dev = array_api_compat.array_namespace(x), device(x)
        if ref_xp is None:
            ref_name, ref_xp, ref_dev = name, xp, dev
        elif xp is not ref_xp:
            raise TypeError(f"{name} is {_library(x, article=True)} array but {ref_name} is "
                            f"{_library(named[ref_name], article=True)} array; pass arrays of one library")
        elif dev != ref_dev:
            raise TypeError(f"{name} is on device {dev!r} but {ref_name} is on {ref_dev!r}; "
                            f"move them to one device")
    if array_api_compat.is_jax_namespace(ref_xp) and not _jax_x64():
        raise TypeError(f"{ref_name} is a JAX array, and JAX has x64 disabled: refnet needs it, because "
                        f"JAX then silently makes float32 of every float64 request (float64 params, "
                        f"the float64 linear algebra of frozen outputs). Enable it at startup with "
                        f'jax.config.update("jax_enable_x64", True); float32 arrays stay float32')
    raise TypeError("arrays of incompatible libraries: " + ", ".join(named))


# top-level module of an array type -> the library's name in error messages
_LIBRARY_NAMES = {"numpy": "NumPy", "torch": "PyTorch", "jax": "JAX", "jaxlib": "JAX", "cupy": "CuPy"}


def _library(x, article=False) -> str:
    """The name of x's library ("JAX", not its module "jaxlib"), after "a" or "an" with ``article``."""
    module = type(x).__module__.split(".")[0]
    name = _LIBRARY_NAMES.get(module, module)
    return (("an " if name[0] in "aeiouAEIOU" else "a ") + name) if article else name


def _tracing(what: str) -> str:
    return (f"{what}: refnet cannot run inside jax.jit, jax.vmap, jax.grad or another JAX "
            f"transformation. It runs eagerly and decides on the host from concrete values (the "
            f"inputs are finite, the frozen-output retraction converged, the numerical rank), which "
            f"traced arrays do not have; call refnet on concrete arrays, outside the transformation")


def _jax_x64() -> bool:
    """JAX's process-wide (or ``jax.enable_x64`` context) switch for 64-bit types."""
    return bool(sys.modules["jax"].config.jax_enable_x64)


def _is_jax_tracer(x) -> bool:
    """True for an abstract JAX value (inside jit, vmap, grad, ...). Without an
    import: a program that never imported jax holds no tracer."""
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(x, jax.core.Tracer)


def is_float_dtype(xp, dtype) -> bool:
    """True for the standard's real floating dtypes, float32 and float64."""
    return dtype == xp.float64 or dtype == xp.float32


def host_namespace():
    """(xp, device) of the host default, NumPy, for functions called without arrays."""
    return _NUMPY, "cpu"


def asarray_like(a: np.ndarray, like):
    """Move a host NumPy array onto the namespace and device of ``like``.

    The values are copied bit for bit; the dtype is that of ``a``.
    """
    xp = array_api_compat.array_namespace(like)
    if array_api_compat.is_numpy_namespace(xp):
        return np.array(a, copy=True)
    return xp.asarray(a, device=device(like), copy=True)


def to_numpy(x) -> np.ndarray:
    """A host NumPy copy of any array (DLPack first, then the library's own route).

    CuPy arrays are copied from the GPU (``.get()``); arrays on a non-CPU device
    of another library are moved to the CPU first.
    """
    if isinstance(x, np.ndarray):
        return np.array(x, copy=True)
    try:
        return np.array(np.from_dlpack(x), copy=True)
    except (TypeError, ValueError, BufferError, RuntimeError, AttributeError):
        pass
    if hasattr(x, "get") and type(x).__module__.startswith("cupy"):
        return x.get()
    if hasattr(x, "cpu"):  # torch tensors on an accelerator
        return np.array(x.detach().cpu().numpy(), copy=True)
    return np.array(np.asarray(x), copy=True)
