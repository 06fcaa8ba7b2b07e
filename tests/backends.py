"""The test backends: one place that knows how to put host data on each library.

Rows: NumPy, ``array_api_strict`` (two devices), PyTorch, JAX (x64 on) and,
with a GPU, CuPy, PyTorch CUDA and JAX CUDA; float32 variants of the CPU ones.
``Backend.asarray(a)`` moves a NumPy array onto the backend (cast to the
backend's dtype); ``Backend.numpy(x)`` brings a result back; ``Backend.params``
does both for a parameter list. Tolerances for comparing a backend's results
with the NumPy float64 reference live here (``rtol``/``atol``).
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
from dataclasses import dataclass, field

import numpy as np

from refnet.backend import to_numpy


@dataclass(frozen=True)
class Backend:
    name: str
    dtype: str                      # "float64" or "float32"
    _make: object = field(repr=False)
    rtol: float = 1e-10             # vs the NumPy float64 reference
    atol: float = 1e-12

    def asarray(self, a):
        out = self._make(np.asarray(a, dtype=self.dtype))
        assert str(out.dtype).endswith(self.dtype), f"{self.name} made {out.dtype}, not {self.dtype}"
        return out

    def numpy(self, x):
        return to_numpy(x)

    def params(self, params):
        return [(self.asarray(W), self.asarray(b)) for W, b in params]

    def params_numpy(self, params):
        return [(self.numpy(W), self.numpy(b)) for W, b in params]

    def __str__(self):
        return self.name


def _strict(device_name):
    import array_api_strict as xs
    dev = xs.Device(device_name)
    return lambda a: xs.asarray(a, device=dev)


def _torch(a):
    import torch
    return torch.asarray(a, device="cpu")


def _cupy(a):
    import cupy
    return cupy.asarray(a)


def _jax(platform):
    """A JAX backend's constructor. Building it turns ``jax_enable_x64`` on (refnet refuses
    JAX arrays without it). The switch is process-global: from then on every JAX array this
    test process makes defaults to 64 bits; a test that needs it off uses :func:`jax_x64`."""
    import jax
    jax.config.update("jax_enable_x64", True)
    dev = jax.devices(platform)[0]
    return lambda a: jax.numpy.asarray(a, device=dev)


@contextlib.contextmanager
def jax_x64(enabled):
    """``jax_enable_x64`` set to ``enabled`` inside the block, restored after it."""
    import jax
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", enabled)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)


def _jax_cuda_available():
    if importlib.util.find_spec("jax") is None or not _nvidia_driver():
        return False
    import jax
    try:
        return len(jax.devices("gpu")) > 0
    except RuntimeError:                     # the CPU-only jaxlib has no gpu platform
        return False


def _torch_cuda(a):
    import torch
    return torch.asarray(a, device="cuda")


def _nvidia_driver():
    """Cheap pre-check (no import of torch or CuPy) for an NVIDIA driver."""
    return os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidia0")


def _torch_cuda_available():
    if importlib.util.find_spec("torch") is None or not _nvidia_driver():
        return False
    import torch
    return torch.cuda.is_available()


def _cuda_available():
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


F32 = dict(rtol=2e-4, atol=2e-5)    # float32 vs float64: documented in tutorials/errors.md "Tolerances"

# name -> (constructor, skip reason or None)
ALL = {
    "numpy": (lambda: Backend("numpy", "float64", np.array), None),
    "strict": (lambda: Backend("strict", "float64", _strict("CPU_DEVICE")), None),
    "strict-device1": (lambda: Backend("strict-device1", "float64", _strict("device1")), None),
    "numpy-float32": (lambda: Backend("numpy-float32", "float32", np.array, **F32), None),
    "strict-float32": (lambda: Backend("strict-float32", "float32", _strict("CPU_DEVICE"), **F32), None),
    "torch": (lambda: Backend("torch", "float64", _torch),
              None if importlib.util.find_spec("torch") else "torch is not installed"),
    "torch-float32": (lambda: Backend("torch-float32", "float32", _torch, **F32),
                      None if importlib.util.find_spec("torch") else "torch is not installed"),
    "jax": (lambda: Backend("jax", "float64", _jax("cpu")),
            None if importlib.util.find_spec("jax") else "jax is not installed"),
    "jax-float32": (lambda: Backend("jax-float32", "float32", _jax("cpu"), **F32),
                    None if importlib.util.find_spec("jax") else "jax is not installed"),
    "cupy": (lambda: Backend("cupy", "float64", _cupy),
             None if _cuda_available() else "CuPy with a CUDA device is not available"),
    "torch-cuda": (lambda: Backend("torch-cuda", "float64", _torch_cuda),
                   None if _torch_cuda_available() else "torch with a CUDA device is not available"),
    "jax-cuda": (lambda: Backend("jax-cuda", "float64", _jax("gpu")),
                 None if _jax_cuda_available() else "jax with a CUDA device is not available (CI installs the "
                                                    "CPU-only jax)"),
}
GPU = ["cupy", "torch-cuda", "jax-cuda"]    # marked ``gpu`` (tests/conftest.py)
CORE = ["numpy", "strict"]          # every core test runs on both


# -------------------------------------------------------------- host transfers
# Every way an array_api_strict array hands its values to the host: Python scalars
# (bool/float/int/index/complex: what an ``if`` or ``float()`` on a 0-d result does) and
# whole arrays (NumPy's ``__array__`` and DLPack, as ``to_numpy`` uses). On a GPU each is a
# device-to-host copy that waits for the queued work: a sync.
TRANSFER_METHODS = ("__bool__", "__float__", "__int__", "__index__", "__complex__", "__array__", "__dlpack__")


@contextlib.contextmanager
def count_transfers():
    """Count device-to-host transfers of ``array_api_strict`` arrays inside the block.

    Yields a list that receives one entry per transfer (the method's name), so
    ``len(log)`` is the count and ``log`` says which conversions happened. Works
    without a GPU: ``array_api_strict`` arrays (``Backend`` "strict") stand in for
    device arrays, and a thin wrapper around each of :data:`TRANSFER_METHODS` of
    their class records the call and then performs it. The class is restored on
    exit. A NumPy array has no such boundary (its values are on the host), so
    count on the "strict" backend.
    """
    import array_api_strict as xs
    cls = type(xs.asarray(0.0))
    log, saved = [], {name: cls.__dict__[name] for name in TRANSFER_METHODS}

    def counting(name, method):
        def wrapper(self, *args, **kwargs):
            log.append(name)
            return method(self, *args, **kwargs)
        return wrapper
    for name, method in saved.items():
        setattr(cls, name, counting(name, method))
    try:
        yield log
    finally:
        for name, method in saved.items():
            setattr(cls, name, method)
