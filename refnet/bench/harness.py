"""The measuring machinery: environment, interleaved timing, threads, subprocess peak memory.

Nothing here knows a case: ``interleaved`` times any zero-argument callables,
``child_main`` / ``run_child`` measure any case builder in a fresh process,
``machine_info`` describes the machine for the report header.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import refnet


# ============================================================== environment
def _no_peers() -> bool:
    """REFNET_BENCH_NO_PEERS set (to anything but 0): run without peer libraries."""
    return os.environ.get("REFNET_BENCH_NO_PEERS", "") not in ("", "0")


def import_peer(name):
    """Import an optional peer library (torch, autograd), or None when absent or disabled."""
    if _no_peers():
        return None
    try:
        return __import__(name)
    except ImportError:
        return None


def blas_info():
    """(BLAS thread count, description, where the count comes from).

    threadpoolctl when installed (it asks the loaded BLAS); else the BLAS named by
    ``numpy.show_config`` and the thread count of the ``*_NUM_THREADS`` variable that
    the BLAS reads at load time, or, when none is set, OpenBLAS's and MKL's default
    of one thread per core.
    """
    try:
        from threadpoolctl import threadpool_info
        blas = [d for d in threadpool_info() if d.get("user_api") == "blas"]
        if blas:
            d = blas[0]
            desc = f"{d.get('internal_api')} {d.get('version')} ({d.get('architecture', '?')}, {d.get('threading_layer', '?')})"
            return int(d["num_threads"]), desc, "threadpoolctl"
    except ImportError:
        pass
    desc = "unknown BLAS"
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        desc = f"{cfg.get('name')} {cfg.get('version', '')}".strip()
    except Exception:           # older NumPy: no mode="dicts"
        pass
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var):
            return int(os.environ[var]), desc, f"{var}={os.environ[var]} (numpy.show_config; no threadpoolctl)"
    return os.cpu_count() or 1, desc, "one per core, the BLAS default (numpy.show_config; no threadpoolctl)"


def _proc_bytes(path: str, key: str):
    """A "key: N kB" line of a /proc file, in bytes (None when unknown)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def mem_available() -> int:
    """MemAvailable from /proc/meminfo, in bytes (0 when unknown)."""
    return _proc_bytes("/proc/meminfo", "MemAvailable") or 0


def machine_info() -> dict:
    """Platform, CPU model, cores, RAM, load, library versions, threads, date."""
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    blas_threads, blas, threads_from = blas_info()
    torch = import_peer("torch")
    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(ram / 2**30, 1),
        "load_avg_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "numpy": np.__version__,
        "blas": blas,
        "blas_threads": blas_threads,
        "blas_threads_from": threads_from,
        "torch": torch.__version__ if torch else "n/a",
        "torch_threads": torch.get_num_threads() if torch else None,
        "autograd": "n/a",
        "refnet": refnet.__version__,
        "malloc": os.environ.get("GLIBC_TUNABLES") or "defaults (GLIBC_TUNABLES unset)",
        "page_fault_us": page_fault_us(),
    }
    ag = import_peer("autograd")
    if ag is not None:
        try:
            from importlib.metadata import version
            info["autograd"] = version("autograd")
        except Exception:
            info["autograd"] = "installed"
    return info


def page_fault_us(mib: int = 8):
    """Microseconds per minor page fault: the first write to new memory faults in each page.

    ``mib`` MiB of fresh anonymous memory (``mmap``) are filled twice; the first fill pays a
    page fault per 4 KiB page, the second only the writes. On a virtual machine a fault can
    cost microseconds, so a step that frees and reallocates megabytes (glibc returns freed
    memory above its trim threshold to the system) is timed partly on faults: the report
    header gives this number and the malloc settings. None where ``getrusage`` counts no faults.
    """
    import mmap
    with mmap.mmap(-1, mib * 2 ** 20) as buf:
        a = np.frombuffer(buf, dtype=np.float64)                          # mib MiB, untouched
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        a.fill(1.0)                                                       # faults in every page
        t1 = time.perf_counter()
        a.fill(2.0)                                                       # the same writes, no faults
        t2 = time.perf_counter()
        n = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        del a                                                             # (the buffer must not be exported on close)
    return round(((t1 - t0) - (t2 - t1)) / n * 1e6, 2) if n > 0 else None


# ================================================================= threads
def limit_blas_threads(n) -> bool:
    """Pin NumPy's BLAS to n threads: in this process with threadpoolctl, and for subprocesses
    through the environment. Returns False when this process's BLAS could not be changed
    (no threadpoolctl): the caller then restarts itself with the environment set."""
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(n)                 # inherited by the memory subprocesses
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    threadpool_limits(limits=n, user_api="blas")
    return True


def set_torch_threads(torch, info):
    """Give torch (when present) the BLAS thread count of ``info``; record what torch took."""
    if torch is not None:
        torch.set_num_threads(info["blas_threads"])
        info["torch_threads"] = torch.get_num_threads()


# ================================================================== timing
MAX_SPREAD = 0.30      # a case whose spread (IQR / median) exceeds this is measured again ...
RETRIES = 2            # ... up to this many more times
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def interleaved(contenders: dict, repeats: int, min_sample: float, warmup: int = 2,
                max_spread: float = MAX_SPREAD, retries: int = RETRIES, clock: str = "wall") -> dict:
    """Median seconds per call of each callable, timed in interleaved rounds.

    contenders: name -> zero-argument callable (called for its side effects).
    Each contender is warmed up ``warmup`` times (the last, timed, call sizes
    the sample: ``number`` calls lasting >= ``min_sample`` seconds). Round r times one sample
    of every contender, in forward order on even rounds and reverse order on
    odd ones. When a contender's spread exceeds ``max_spread``, the whole case
    (every contender, so its ratios stay same-run) is measured again, up to
    ``retries`` more times, and the attempt whose worst spread is smallest is
    kept. Returns name -> {"median": s, "spread": IQR / median, "number",
    "repeats", "attempts": measurements made, "noisy": the kept one still
    exceeds ``max_spread``}. ``clock``: "wall" (``time.perf_counter``) or "cpu"
    (``time.process_time``: the CPU time of every thread of this process, which
    other programs on a busy machine inflate far less than the wall time; with one
    BLAS and torch thread it is the work a call does).
    """
    now = CLOCKS[clock]
    numbers = {}
    for name, fn in contenders.items():
        for _ in range(max(1, warmup)):        # the last warm-up call sizes the sample
            t0 = now()
            fn()
            one = max(now() - t0, 1e-7)
        numbers[name] = max(1, math.ceil(min_sample / one))
    best = None
    for attempt in range(1, retries + 2):
        out = _rounds(contenders, numbers, repeats, now)
        worst = max(v["spread"] for v in out.values())
        if best is None or worst < best[0]:
            best = (worst, out)
        if worst <= max_spread:
            break
    worst, out = best
    for v in out.values():
        v.update(attempts=attempt, noisy=worst > max_spread)
    return out


def _rounds(contenders, numbers, repeats, now) -> dict:
    """One measurement of a case: ``repeats`` interleaved rounds; name -> median, spread, number, repeats."""
    samples = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            fn, k = contenders[name], numbers[name]
            t0 = now()
            for _ in range(k):
                fn()
            samples[name].append((now() - t0) / k)
    out = {}
    for name, s in samples.items():
        med = statistics.median(s)
        q = statistics.quantiles(s, n=4) if len(s) >= 2 else [med, med, med]
        out[name] = {"median": med, "spread": (q[2] - q[0]) / med if med else 0.0,
                     "number": numbers[name], "repeats": len(s)}
    return out


class Stepper:
    """Holds a contender's evolving parameters so that ``__call__`` is one training step."""

    def __init__(self, fn, state):
        self.fn, self.state = fn, state

    def __call__(self):
        self.state = self.fn(self.state)


# ================================================== subprocess peak memory
def _rss_now() -> int:
    """Current resident size of this process, in bytes (0 when unknown)."""
    return _proc_bytes("/proc/self/status", "VmRSS") or 0


def _peak_rss() -> int:
    """Peak resident size of this process: VmHWM (reset by exec), else ru_maxrss.

    ru_maxrss is not used first because Linux carries the forking parent's
    high-water mark across exec into it, which would charge the benchmark
    driver's memory (torch included) to the child.
    """
    hwm = _proc_bytes("/proc/self/status", "VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kB


def child_main(make, name, quick) -> int:
    """Run one memory case in this (fresh) process; print one JSON line.

    make: ``(name, quick) -> (fn, repeats, meta)`` builds the case's inputs; ``fn()`` is timed.
    """
    fn, reps, meta = make(name, quick)
    base = _rss_now()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    peak = _peak_rss()
    print(json.dumps({"name": name, "times": times, "median": statistics.median(times),
                      "peak_rss": peak, "rss_after_setup": base, **meta}))
    return 0


def run_child(name, quick, mem_limit=None, timeout=900) -> dict:
    """Run ``python -m refnet.bench --_child NAME`` and return its JSON (or an error dict)."""
    cmd = [sys.executable, "-m", "refnet.bench", "--_child", name] + (["--quick"] if quick else [])

    def limit():
        if mem_limit:
            resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, preexec_fn=limit)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s", "timeout": timeout}
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {p.returncode}: {tail}"}
    return json.loads(p.stdout.strip().splitlines()[-1])
