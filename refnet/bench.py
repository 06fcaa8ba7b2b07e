"""Benchmark suite (issue 6): refnet against what a user would otherwise run.

Usage::

    python -m refnet.bench [--quick] [--out DIR] [--cases NAME ...] [--repeats N]

``--quick`` runs every case with few repeats (and the ~1e7-parameter gram case
at a smaller, labelled size) in under about a minute; it is what CI smoke-tests.
``--out`` (default ``bench-results/``, git-ignored) receives ``bench.md`` (a
Markdown table with the machine header) and ``bench.json`` (every number).
``--cases`` picks case groups by name or prefix: ``train``, ``grad``,
``momentum``, ``projection``, ``gram_large``, ``frozen``, ``flops``,
``memory``, ``gpu``. Peers come from the ``peers`` extra
(``pip install -e ".[peers]"``: torch 2.13.0, autograd, psutil); without them,
or with the environment variable ``REFNET_BENCH_NO_PEERS=1``, peer columns
read "n/a" and the refnet columns still run.

Method. Contenders of one case are timed in the same process, interleaved:
each round times one sample of every contender, in alternating order, so
slow drift (other jobs, frequency changes) hits all of them alike. A sample
is ``number`` back-to-back calls, with ``number`` calibrated after warm-up so
a sample lasts at least a few milliseconds; the reported time per call is the
median over rounds, and ``spread`` is the interquartile range over the median.
Ratios are refnet / peer (lower is better). PyTorch runs with
``torch.set_num_threads`` equal to the BLAS thread count NumPy uses.

Memory is the peak resident set size (``VmHWM``; ``ru_maxrss`` elsewhere) of a fresh
``python -m refnet.bench --_child CASE`` subprocess that imports only what the
case needs, builds its inputs, and runs it; the whole process is counted
(interpreter and imports included), so it is an upper bound on the case.

Training step = forward, MSE loss, backward, SGD update, tanh hidden layers,
identity output, parameters replaced by new arrays each step (refnet's pure
semantics). The peers are ``nn.Sequential`` + ``MSELoss`` + ``optim.SGD``
(zero_grad/backward/step, in-place as PyTorch does) and a bare NumPy loop
written here (same math and the same pure semantics, in-place only on
temporaries).
"""
from __future__ import annotations

import argparse
import datetime
import fnmatch
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

# name: (layer sizes, batch)
SIZES = {
    "tiny": ([3, 4, 2], 8),
    "small": ([64, 64, 10], 32),
    "medium": ([784, 256, 256, 10], 128),
    "large": ([2048, 2048, 2048, 10], 512),
}
TRAIN_TARGET_TORCH = {"tiny": 0.5, "small": 0.5, "medium": 0.8, "large": 0.95}
TRAIN_TARGET_NUMPY = 1.25
LR = 1e-3                      # small enough that thousands of timed steps stay finite
_LARGE_STEP = {}               # dtype -> interleaved() result of the large training step (train case)
GROUPS = ["train", "grad", "momentum", "projection", "gram_large", "frozen", "flops", "memory", "gpu"]


# ============================================================== environment
def _no_peers() -> bool:
    return os.environ.get("REFNET_BENCH_NO_PEERS", "") not in ("", "0")


def _peer(name):
    """Import an optional peer library (torch, autograd), or None when absent or disabled."""
    if _no_peers():
        return None
    try:
        return __import__(name)
    except ImportError:
        return None


def _blas_info():
    """(BLAS thread count, description) from threadpoolctl, else from environment variables."""
    try:
        from threadpoolctl import threadpool_info
        blas = [d for d in threadpool_info() if d.get("user_api") == "blas"]
        if blas:
            d = blas[0]
            desc = f"{d.get('internal_api')} {d.get('version')} ({d.get('architecture', '?')}, {d.get('threading_layer', '?')})"
            return int(d["num_threads"]), desc
    except ImportError:
        pass
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var):
            return int(os.environ[var]), f"unknown BLAS ({var}={os.environ[var]})"
    cfg = getattr(np, "show_config", None)
    desc = "unknown BLAS"
    try:
        desc = str(np.show_config(mode="dicts")["Build Dependencies"]["blas"].get("name"))
    except Exception:           # older NumPy: no mode="dicts"
        pass
    return os.cpu_count() or 1, desc


def _proc_bytes(path: str, key: str):
    """A "key: N kB" line of a /proc file, in bytes (None when unknown)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _mem_available() -> int:
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
    blas_threads, blas = _blas_info()
    torch = _peer("torch")
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
        "torch": torch.__version__ if torch else "n/a",
        "torch_threads": torch.get_num_threads() if torch else None,
        "autograd": "n/a",
        "refnet": refnet.__version__,
    }
    ag = _peer("autograd")
    if ag is not None:
        try:
            from importlib.metadata import version
            info["autograd"] = version("autograd")
        except Exception:
            info["autograd"] = "installed"
    return info


# ================================================================== timing
def interleaved(contenders: dict, repeats: int, min_sample: float, warmup: int = 2) -> dict:
    """Median seconds per call of each callable, timed in interleaved rounds.

    contenders: name -> zero-argument callable (called for its side effects).
    Each contender is warmed up ``warmup`` times (the last, timed, call sizes
    the sample: ``number`` calls lasting >= ``min_sample`` seconds). Round r times one sample
    of every contender, in forward order on even rounds and reverse order on
    odd ones. Returns name -> {"median": s, "spread": IQR / median, "number", "repeats"}.
    """
    numbers = {}
    for name, fn in contenders.items():
        for _ in range(max(1, warmup)):        # the last warm-up call sizes the sample
            t0 = time.perf_counter()
            fn()
            one = max(time.perf_counter() - t0, 1e-7)
        numbers[name] = max(1, math.ceil(min_sample / one))
    samples = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            fn, k = contenders[name], numbers[name]
            t0 = time.perf_counter()
            for _ in range(k):
                fn()
            samples[name].append((time.perf_counter() - t0) / k)
    out = {}
    for name, s in samples.items():
        med = statistics.median(s)
        q = statistics.quantiles(s, n=4) if len(s) >= 2 else [med, med, med]
        out[name] = {"median": med, "spread": (q[2] - q[0]) / med if med else 0.0,
                     "number": numbers[name], "repeats": len(s)}
    return out


def fmt_time(s) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "n/a"
    if s >= 1.0:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def row(case, group, refnet_s=None, peer=None, peer_s=None, ratio=None, target=None,
        op="<=", value=None, value_str=None, note="", spread=None, status=None, **extra):
    """One result row. The target compares ``value`` (default: the ratio) with ``op``.

    status: "met"/"missed" when a target and a value exist, "info" without a
    target, "n/a" when the peer is missing, or as given (e.g. "skipped").
    """
    if ratio is None and refnet_s is not None and peer_s:
        ratio = refnet_s / peer_s
    if value is None:
        value = ratio
    if status is None:
        if target is None:
            status = "info"
        elif value is None:
            status = "n/a"
        else:
            status = "met" if (value <= target if op == "<=" else value >= target if op == ">=" else value < target) else "missed"
    return {"case": case, "group": group, "refnet_s": refnet_s, "peer": peer, "peer_s": peer_s,
            "ratio": ratio, "value": value, "value_str": value_str, "target": target, "op": op,
            "status": status, "spread": spread, "note": note, **extra}


# ============================================================ problem setup
def make_problem(size, dtype, seed=0):
    """(net, params, X, T) for a named size: tanh hidden layers, identity output, MSE."""
    sizes, n = SIZES[size] if isinstance(size, str) else size
    net = refnet.MLP(sizes, activation="tanh")
    params = net.init(seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    T = rng.standard_normal((n, sizes[-1])).astype(dtype)
    return net, params, X, T


def numpy_train_step(params, X, T, lr):
    """The bare NumPy loop: the same training step as refnet, no library around it.

    tanh hidden layers (keeping only A_l, since tanh' = 1 - A_l^2), identity
    output, mse loss, SGD; returns (loss, new params) with new arrays for the
    parameters (pure, like refnet), in-place arithmetic only on temporaries.
    """
    As = [X]
    for W, b in params[:-1]:
        Z = As[-1] @ W                              # Z_l = A_{l-1} W_l
        Z += b                                      #       + b_l
        As.append(np.tanh(Z, out=Z))                # A_l = tanh(Z_l), in place
    W, b = params[-1]
    R = As[-1] @ W                                  # Y = A_{L-1} W_L + b_L
    R += b
    R -= T                                          # R = Y - T
    N = R.size
    loss = np.vdot(R, R) / N                        # L = |R|^2 / N
    D = R
    D *= 2.0 / N                                    # Delta_L = G = 2 R / N (identity output)
    new = [None] * len(params)
    for l in range(len(params) - 1, -1, -1):
        W, b = params[l]
        A = As[l]
        dW = A.T @ D                                # dW_l = A_{l-1}^T Delta_l
        db = D.sum(axis=0)                          # db_l = 1^T Delta_l
        if l > 0:
            Dn = D @ W.T                            # Delta_l W_l^T
            d = A * A
            np.subtract(1.0, d, out=d)              # tanh' = 1 - A^2
            Dn *= d
            D = Dn
        dW *= lr
        db *= lr
        new[l] = (W - dW, b - db)                   # theta <- theta - lr g (new arrays)
    return loss, new


def _check_same_step(net, params, X, T):
    """The bare loop must compute refnet's step (fairness): compare one step's new params."""
    _, g = net.loss_and_grads(params, X, T)
    ref, _ = refnet.SGD(LR).step(params, g, refnet.SGD(LR).init(params))
    _, new = numpy_train_step(params, X, T, LR)
    tol = 1e-4 if X.dtype == np.float32 else 1e-10
    for (W, b), (W2, b2) in zip(ref, new):
        if W2.dtype != W.dtype or not (np.allclose(W, W2, rtol=tol, atol=tol) and np.allclose(b, b2, rtol=tol, atol=tol)):
            raise AssertionError("bare NumPy step differs from refnet's step")


class Stepper:
    """Holds a contender's evolving parameters so that ``__call__`` is one training step."""

    def __init__(self, fn, state):
        self.fn, self.state = fn, state

    def __call__(self):
        self.state = self.fn(self.state)


def refnet_trainer(net, params, X, T, opt):
    state = (params, opt.init(params))

    def step(s):
        p, st = s
        _, g = net.loss_and_grads(p, X, T, loss="mse")
        return opt.step(p, g, st)
    return Stepper(step, state)


def numpy_trainer(params, X, T):
    return Stepper(lambda p: numpy_train_step(p, X, T, LR)[1], params)


def torch_model(torch, net, params, dtype):
    """nn.Sequential with refnet's weights (nn.Linear.weight is W^T)."""
    layers = []
    for l, (W, b) in enumerate(params):
        lin = torch.nn.Linear(W.shape[0], W.shape[1], dtype=getattr(torch, dtype))
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if l < len(params) - 1:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers)


def torch_trainer(torch, model, X, T, opt):
    """PyTorch's idiomatic step: forward, MSELoss, zero_grad, backward, step."""
    Xt, Tt, loss_fn = torch.from_numpy(X), torch.from_numpy(T), torch.nn.MSELoss()

    def step():
        loss = loss_fn(model(Xt), Tt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def torch_averaged_sgd(torch):
    """A PyTorch port of refnet.AveragedMomentum (include_bias=False), as a torch user would write it.

    weight (n_out, n_in): buf <- grad + mu * mean over dim 1 (the incoming axis of
    nn.Linear.weight); bias: buf <- grad + mu * buf; param -= lr * buf, in place.
    """
    class AveragedSGD(torch.optim.Optimizer):
        def __init__(self, params, lr, momentum):
            super().__init__(params, dict(lr=lr, momentum=momentum))

        @torch.no_grad()
        def step(self):
            for group in self.param_groups:
                lr, mu = group["lr"], group["momentum"]
                for p in group["params"]:
                    buf = self.state[p].get("buf")
                    if buf is None:
                        buf = self.state[p]["buf"] = torch.zeros_like(p)
                    m = buf.mean(dim=1, keepdim=True) if p.ndim == 2 else buf   # mean_in(a)  (n_out, 1)
                    torch.add(p.grad, m, alpha=mu, out=buf)                      # a <- g + mu mean_in(a)
                    p.add_(buf, alpha=-lr)                                       # theta <- theta - lr a
    return AveragedSGD


def _limit_blas_threads(n):
    """Pin NumPy's BLAS to n threads for this process (threadpoolctl; else the env vars, for children)."""
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(n)                 # inherited by the memory subprocesses
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=n, user_api="blas")
    except ImportError:
        print("  (threadpoolctl absent: --threads applies to subprocesses only)", flush=True)


def _set_torch_threads(torch, info):
    if torch is not None:
        torch.set_num_threads(info["blas_threads"])
        info["torch_threads"] = torch.get_num_threads()


# =================================================================== cases
def case_train(cfg, info):
    """Training step at four sizes and two dtypes vs PyTorch CPU and the bare NumPy loop."""
    torch = _peer("torch")
    rows = []
    for size in SIZES:
        for dtype in ("float32", "float64"):
            net, params, X, T = make_problem(size, dtype)
            _check_same_step(net, params, X, T)
            cont = {"refnet": refnet_trainer(net, params, X, T, refnet.SGD(LR)),
                    "numpy": numpy_trainer(params, X, T)}
            if torch is not None:
                model = torch_model(torch, net, params, dtype)
                cont["torch"] = torch_trainer(torch, model, X, T, torch.optim.SGD(model.parameters(), lr=LR))
            big = size == "large"
            if big:                                       # the machine's matmul peak, in the same rounds
                cont["matmul_peak"] = _peak_matmul_fn(dtype)
            t = interleaved(cont, cfg["repeats_big"] if big else cfg["repeats"], cfg["min_sample"],
                            warmup=1 if big else 2)
            r = t["refnet"]["median"]
            if big:
                _LARGE_STEP[dtype] = t                    # reused by the flops case
            name = f"train/{size}/{dtype}"
            rows.append(row(f"{name} vs torch", "train", r, "torch SGD", t.get("torch", {}).get("median"),
                            target=TRAIN_TARGET_TORCH[size], spread=t["refnet"]["spread"],
                            note=f"spread refnet {t['refnet']['spread']:.0%}"
                                 + (f", torch {t['torch']['spread']:.0%}" if "torch" in t else "")))
            rows.append(row(f"{name} vs numpy", "train", r, "bare NumPy", t["numpy"]["median"],
                            target=TRAIN_TARGET_NUMPY, spread=t["refnet"]["spread"],
                            note=f"spread numpy {t['numpy']['spread']:.0%}"))
            print(f"  {name}: refnet {fmt_time(r)}, numpy {fmt_time(t['numpy']['median'])}, torch "
                  f"{fmt_time(t['torch']['median']) if 'torch' in t else 'n/a'}", flush=True)
    return rows


def case_grad(cfg, info):
    """Loss and gradient only (no update) vs HIPS autograd on the same forward, float64."""
    autograd = _peer("autograd")
    rows = []
    for size in SIZES:
        net, params, X, T = make_problem(size, "float64")
        cont = {"refnet": lambda: net.loss_and_grads(params, X, T, loss="mse")}
        if autograd is not None:
            import autograd.numpy as anp

            def ag_loss(ps, X, T):
                A = X
                for W, b in ps[:-1]:
                    A = anp.tanh(anp.dot(A, W) + b)
                W, b = ps[-1]
                R = anp.dot(A, W) + b - T
                return anp.sum(R * R) / R.size
            ag_grad = autograd.grad(ag_loss)
            cont["autograd"] = lambda: ag_grad(params, X, T)
        t = interleaved(cont, cfg["repeats_big"] if size == "large" else cfg["repeats"], cfg["min_sample"],
                        warmup=1 if size == "large" else 2)
        rows.append(row(f"grad/{size}/float64 vs autograd", "grad", t["refnet"]["median"], "autograd.grad",
                        t.get("autograd", {}).get("median"), target=0.4, spread=t["refnet"]["spread"],
                        note="refnet loss_and_grads vs autograd.grad"))
        print(f"  grad/{size}: refnet {fmt_time(t['refnet']['median'])}", flush=True)
    return rows


def case_momentum(cfg, info):
    """Whole training step with Momentum / AveragedMomentum on the medium net vs torch."""
    torch = _peer("torch")
    rows = []
    mu = 0.9
    for dtype in ("float32", "float64"):
        for kind in ("momentum", "averaged_momentum"):
            net, params, X, T = make_problem("medium", dtype)
            opt = refnet.Momentum(LR, mu) if kind == "momentum" else refnet.AveragedMomentum(LR, mu)
            cont = {"refnet": refnet_trainer(net, params, X, T, opt)}
            if torch is not None:
                model = torch_model(torch, net, params, dtype)
                topt = (torch.optim.SGD(model.parameters(), lr=LR, momentum=mu) if kind == "momentum"
                        else torch_averaged_sgd(torch)(model.parameters(), lr=LR, momentum=mu))
                cont["torch"] = torch_trainer(torch, model, X, T, topt)
            t = interleaved(cont, cfg["repeats"], cfg["min_sample"])
            peer = "torch SGD(momentum)" if kind == "momentum" else "torch averaged-SGD port"
            rows.append(row(f"{kind}/medium/{dtype} vs torch", "momentum", t["refnet"]["median"], peer,
                            t.get("torch", {}).get("median"), target=1.0, spread=t["refnet"]["spread"],
                            note="whole training step (fwd, bwd, optimizer step)"))
            print(f"  {kind}/{dtype}: refnet {fmt_time(t['refnet']['median'])}", flush=True)
    return rows


def _torch_func_projection(torch, model, Xa, k):
    """Per-sample Jacobian of output k with torch.func (vmap of jacrev), then SVD projection of g."""
    from torch.func import functional_call, jacrev, vmap
    names = [n for n, _ in model.named_parameters()]
    pdict = {n: p.detach() for n, p in model.named_parameters()}
    Xt = torch.from_numpy(Xa)
    eps = torch.finfo(Xt.dtype).eps

    def out_k(pd, x):
        return functional_call(model, pd, (x[None, :],))[0, k]

    def project(g):
        Jd = vmap(jacrev(out_k), in_dims=(None, 0))(pdict, Xt)                  # {name: (n, *shape)}
        J = torch.cat([Jd[n].reshape(Xt.shape[0], -1) for n in names], dim=1)    # (m, p)
        U, S, Vh = torch.linalg.svd(J, full_matrices=False)
        Vr = Vh[S > max(J.shape) * eps * S.max()]                                # V_r^T
        return g - Vr.T @ (Vr @ g)                                               # (I - V_r V_r^T) g
    return project


def case_projection(cfg, info):
    """project_out: gram vs dense vs torch.func (vmap(jacrev) + SVD), sizes where all fit."""
    torch = _peer("torch")
    rows = []
    sizes = ["small", "medium"] if not cfg["quick"] else ["small", ([256, 128, 10], 64)]
    for size in sizes:
        net, params, X, T = make_problem(size, "float64")
        big = not isinstance(size, str) or size == "medium"
        size = size if isinstance(size, str) else "256-128-10 b64 (quick: reduced size)"
        _, grads = net.loss_and_grads(params, X, T)
        cont = {m: (lambda m=m: refnet.project_out(net, params, grads, X, outputs=[0], method=m))
                for m in ("gram", "dense")}
        if torch is not None:
            model = torch_model(torch, net, params, "float64")
            g = torch.from_numpy(np.concatenate([np.concatenate([W.T.ravel(), b]) for W, b in grads]))
            proj = _torch_func_projection(torch, model, X, 0)
            cont["torch.func"] = lambda: proj(g)
        t = interleaved(cont, min(3, cfg["repeats_big"]) if big else cfg["repeats"], cfg["min_sample"],
                        warmup=1 if big else 2)
        m = X.shape[0]
        desc = f"p={net.n_params}, m={m}"
        rows.append(row(f"projection/{size}/float64 gram vs dense", "projection", t["gram"]["median"],
                        "refnet dense", t["dense"]["median"], note=desc))
        ts = t.get("torch.func", {}).get("median")
        rows.append(row(f"projection/{size}/float64 gram vs torch.func", "projection", t["gram"]["median"],
                        "torch.func", ts, note=desc, status=None if ts else "n/a"))
        rows.append(row(f"projection/{size}/float64 dense vs torch.func", "projection", t["dense"]["median"],
                        "torch.func", ts, note=desc, status=None if ts else "n/a"))
        print(f"  projection/{size}: gram {fmt_time(t['gram']['median'])}, dense {fmt_time(t['dense']['median'])}",
              flush=True)
    return rows


def case_frozen(cfg, info):
    """frozen_step on the medium net, 128 anchors (the batch), output 0 frozen, vs an unprojected step."""
    rows = []
    net, params, X, T = make_problem("medium", "float64")
    Y = net.forward(params, X)
    G = 2.0 * (Y - T) / Y.size                                               # dL/dY of the mse
    lr = 0.01
    info_ = refnet.frozen_step(net, params, X, G, freeze=[0], lr=lr)[1]
    cont = {"frozen": lambda: refnet.frozen_step(net, params, X, G, freeze=[0], lr=lr),
            "frozen_noretract": lambda: refnet.frozen_step(net, params, X, G, freeze=[0], lr=lr, retract=False),
            "plain": lambda: refnet.frozen_step(net, params, X, G, freeze=[], lr=lr)}
    t = interleaved(cont, cfg["repeats"], cfg["min_sample"])
    rows.append(row("frozen/medium/float64 vs unprojected step", "frozen", t["frozen"]["median"],
                    "unprojected step", t["plain"]["median"], target=3.0,
                    note=f"retraction {info_.iterations} iteration(s), residual {info_.residual:.1e}; "
                         f"unprojected = frozen_step(freeze=[]) (vjp + SGD update)"))
    rows.append(row("frozen/medium/float64 no retraction vs unprojected step", "frozen",
                    t["frozen_noretract"]["median"], "unprojected step", t["plain"]["median"],
                    note="retract=False (projection only)"))
    print(f"  frozen: {fmt_time(t['frozen']['median'])} vs plain {fmt_time(t['plain']['median'])}", flush=True)
    return rows


def train_step_flops(sizes, n) -> int:
    """Exact arithmetic of one training step (tanh hidden, identity output, mse, SGD).

    Counted per algorithm, not per implementation: matmul 2 n i o; bias add,
    tanh (1 flop per entry), residual, square, sum, 2/N scale: 1 per entry;
    dW_l: 2 n i o; db_l: n o; Delta_{l-1} = (Delta_l W_l^T) * (1 - A^2): 2 n o i + 3 n i;
    update W - lr dW: 2 per parameter.
    """
    L = len(sizes) - 1
    f = 0
    for l, (i, o) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        f += 2 * n * i * o + n * o + (n * o if l < L else 0)     # forward: matmul, bias, tanh
        f += 2 * n * i * o + n * o                               # dW, db
        if l > 1:
            f += 2 * n * o * i + 3 * n * i                       # Delta_{l-1}
        f += 2 * (i * o + o)                                     # update
    f += 4 * n * sizes[-1]                                       # R, R*R, sum, G = 2R/N
    return f


PEAK_N = 2048


def _peak_matmul_fn(dtype, n=PEAK_N):
    """An (n, n) @ (n, n) np.matmul (2 n^3 flops): timed next to the step, it gives the machine's peak."""
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)
    return lambda: A @ B


def case_flops(cfg, info):
    """Achieved flop rate of the large training step as a fraction of the measured matmul peak.

    The step times are the train case's (same run) when it ran, else measured here.
    """
    torch = _peer("torch")
    rows = []
    sizes, n = SIZES["large"]
    flops = train_step_flops(sizes, n)
    for dtype in ("float32", "float64"):
        t = _LARGE_STEP.get(dtype)                   # the train case's timings of this run, when it ran
        if t is None:
            net, params, X, T = make_problem("large", dtype)
            cont = {"refnet": refnet_trainer(net, params, X, T, refnet.SGD(LR)), "numpy": numpy_trainer(params, X, T),
                    "matmul_peak": _peak_matmul_fn(dtype)}
            if torch is not None:
                model = torch_model(torch, net, params, dtype)
                cont["torch"] = torch_trainer(torch, model, X, T, torch.optim.SGD(model.parameters(), lr=LR))
            t = interleaved(cont, cfg["repeats_big"], cfg["min_sample"], warmup=1)
        peak = 2.0 * PEAK_N ** 3 / t["matmul_peak"]["median"]        # flop/s, measured in the same rounds
        frac = {k: flops / v["median"] / peak for k, v in t.items() if k != "matmul_peak"}
        rows.append(row(f"flops/large/{dtype} fraction of matmul peak", "flops", t["refnet"]["median"],
                        value=frac["refnet"], value_str=f"{frac['refnet']:.2f}", target=0.8, op=">=",
                        note=f"{flops / 1e9:.2f} GFLOP/step; peak {peak / 1e9:.1f} GFLOP/s (2048^3 matmul, "
                             f"interleaved with the steps); "
                             f"refnet {flops / t['refnet']['median'] / 1e9:.1f} GFLOP/s; bare numpy {frac['numpy']:.2f}"
                             + (f"; torch {frac['torch']:.2f}" if "torch" in frac else ""),
                        flops=flops, peak_flops=peak))
        print(f"  flops/{dtype}: fraction {frac['refnet']:.2f} (peak {peak / 1e9:.1f} GF/s)", flush=True)
    return rows


# ----------------------------------------------------- subprocess (memory) cases
def _gram_problem(sizes, m, dtype="float64"):
    """A tanh net ``sizes`` with m anchors, one frozen output, and a gradient to project."""
    net = refnet.MLP(sizes, activation="tanh")
    params = net.init(seed=0, dtype=dtype)
    rng = np.random.default_rng(1)
    Xa = rng.standard_normal((m, sizes[0])).astype(dtype)
    grads = net.vjp(params, Xa, rng.standard_normal((m, sizes[-1])).astype(dtype))
    return net, params, Xa, grads


# name -> (sizes, constraints, quick sizes, quick constraints)
PROJ_CHILD = {
    "gram_1e6": ([1000, 1000, 10], 512, [200, 200, 10], 128, "gram"),
    "dense_1e6": ([1000, 1000, 10], 512, [200, 200, 10], 128, "dense"),
    "gram_1e7": ([3162, 3162, 10], 1000, [1000, 1000, 10], 512, "gram"),
}


def _child_projection(name, quick):
    sizes, m, qs, qm, method = PROJ_CHILD[name]
    if quick:
        sizes, m = qs, qm
    net, params, Xa, grads = _gram_problem(sizes, m)
    fn = lambda: refnet.project_out(net, params, grads, Xa, outputs=[0], method=method)
    reps = 1 if method == "dense" else (2 if quick else 3)
    return fn, reps, {"p": net.n_params, "m": m, "sizes": sizes, "method": method}


def _child_train(name, quick):
    contender = name.split("_", 2)[2]
    net, params, X, T = make_problem("large", "float64")
    if contender == "refnet":
        fn = refnet_trainer(net, params, X, T, refnet.SGD(LR))
    elif contender == "numpy":
        fn = numpy_trainer(params, X, T)
    else:
        torch = _peer("torch")
        if torch is None:
            raise SystemExit(3)
        torch.set_num_threads(_blas_info()[0])
        model = torch_model(torch, net, params, "float64")
        fn = torch_trainer(torch, model, X, T, torch.optim.SGD(model.parameters(), lr=LR))
    return fn, 1 if quick else 3, {"sizes": SIZES["large"][0], "batch": SIZES["large"][1], "contender": contender}


CHILD_CASES = {**{k: _child_projection for k in PROJ_CHILD},
               **{f"train_large_{c}": _child_train for c in ("refnet", "numpy", "torch")}}


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


def child_main(name, quick) -> int:
    """Run one memory case in this (fresh) process; print one JSON line."""
    fn, reps, meta = CHILD_CASES[name](name, quick)
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


def _gb(b):
    return f"{b / 2**30:.2f} GB"


def case_gram_large(cfg, info):
    """gram at ~1e6 params / 512 constraints vs dense (fresh subprocesses), and gram at ~1e7 / 1000."""
    quick = cfg["quick"]
    label = " (quick: reduced size)" if quick else ""
    rows = []
    g = run_child("gram_1e6", quick)
    sizes, m = (PROJ_CHILD["dense_1e6"][2:4] if quick else PROJ_CHILD["dense_1e6"][:2])
    p = refnet.MLP(sizes).n_params
    need = 5 * m * p * 8                      # J, its blocks, LAPACK's copy, V^T, workspace (float64)
    avail = _mem_available()
    if avail and avail < need:
        d = {"error": f"skipped: needs ~{_gb(need)}, {_gb(avail)} available"}
    else:
        d = run_child("dense_1e6", quick, mem_limit=int(avail * 0.9) if avail else None,
                      timeout=cfg["dense_timeout"])
    name = f"gram_large/1e6 p={p} m={m}{label}"
    if "error" in g:
        rows.append(row(name + " gram vs dense", "gram_large", status="error", note=g["error"]))
    else:
        if d.get("timeout"):          # dense did not finish: its time, and the speedup, are lower bounds
            speed = d["timeout"] / g["median"]
            rows.append(row(name + " gram vs dense speedup", "gram_large", g["median"], "refnet dense", None,
                            value=speed, value_str=f"> {speed:.0f}x", target=10.0, op=">=",
                            note=f"dense did not finish within {d['timeout']} s (killed); speedup is a lower bound"))
        elif "error" in d:
            rows.append(row(name + " gram vs dense speedup", "gram_large", g["median"], "refnet dense", None,
                            target=10.0, op=">=", status="n/a", note=f"dense: {d['error']}"))
        else:
            speed = d["median"] / g["median"]
            rows.append(row(name + " gram vs dense speedup", "gram_large", g["median"], "refnet dense", d["median"],
                            value=speed, value_str=f"{speed:.1f}x", target=10.0, op=">=",
                            note=f"dense peak RSS {_gb(d['peak_rss'])}; 1 dense run"))
        rows.append(row(name + " gram peak RSS", "gram_large", g["median"], value=g["peak_rss"] / 2**30,
                        value_str=_gb(g["peak_rss"]), target=1.0, op="<",
                        note=f"whole process; {_gb(g['rss_after_setup'])} after imports and setup"))
    print(f"  gram_large/1e6: gram {g.get('median', g.get('error'))}, dense {d.get('median', d.get('error'))}",
          flush=True)
    g7 = run_child("gram_1e7", quick)
    sizes, m = (PROJ_CHILD["gram_1e7"][2:4] if quick else PROJ_CHILD["gram_1e7"][:2])
    p = refnet.MLP(sizes).n_params
    name = f"gram_large/1e7 p={p} m={m}{label}"
    if "error" in g7:
        rows.append(row(name + " gram time", "gram_large", status="error", note=g7["error"]))
    else:
        rows.append(row(name + " gram time", "gram_large", g7["median"], value=g7["median"],
                        value_str=fmt_time(g7["median"]), target=30.0, op="<",
                        note=f"peak RSS {_gb(g7['peak_rss'])} (fits in {info['ram_gb']} GB: "
                             f"{'yes' if g7['peak_rss'] < info['ram_gb'] * 2**30 else 'no'}); "
                             f"dense J would need {_gb(m * p * 8)}"))
    print(f"  gram_large/1e7: {g7.get('median', g7.get('error'))}", flush=True)
    return rows


def case_memory(cfg, info):
    """Peak RSS of the large float64 training step, each contender in a fresh subprocess."""
    rows = []
    for c in ("refnet", "numpy", "torch"):
        if c == "torch" and _peer("torch") is None:
            rows.append(row("memory/train/large/float64 torch", "memory", status="n/a", note="torch absent"))
            continue
        r = run_child(f"train_large_{c}", cfg["quick"])
        if "error" in r:
            rows.append(row(f"memory/train/large/float64 {c}", "memory", status="error", note=r["error"]))
            continue
        rows.append(row(f"memory/train/large/float64 {c}", "memory", r["median"], value=r["peak_rss"] / 2**30,
                        value_str=_gb(r["peak_rss"]),
                        note=f"peak RSS of the whole process; {_gb(r['rss_after_setup'])} after setup "
                             f"(params {_gb(sum(W.nbytes + b.nbytes for W, b in make_problem('large', 'float64')[1]))})"))
    return rows


def case_gpu(cfg, info):
    """CuPy: medium and large training steps and the gram projection, vs NumPy and PyTorch CUDA."""
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no CUDA device")
    except Exception as e:          # ImportError, CUDA driver errors
        reason = f"skipped: CuPy/CUDA unavailable ({type(e).__name__}: {e})"
        print(f"  gpu: {reason}", flush=True)
        return [row("gpu", "gpu", status="skipped", note=reason)]
    sync = lambda: cupy.cuda.Device().synchronize()
    torch = _peer("torch")
    has_tc = torch is not None and torch.cuda.is_available()
    info["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    rows = []
    for size in ("medium", "large"):
        for dtype in ("float32", "float64"):
            net, params, X, T = make_problem(size, dtype)
            Xg, Tg = cupy.asarray(X), cupy.asarray(T)
            pg = net.init(seed=0, like=Xg)
            rg = refnet_trainer(net, pg, Xg, Tg, refnet.SGD(LR))
            cont = {"cupy": lambda rg=rg: (rg(), sync()), "numpy": refnet_trainer(net, params, X, T, refnet.SGD(LR))}
            if has_tc:
                model = torch_model(torch, net, params, dtype).cuda()
                Xt, Tt, lf = torch.from_numpy(X).cuda(), torch.from_numpy(T).cuda(), torch.nn.MSELoss()
                topt = torch.optim.SGD(model.parameters(), lr=LR)

                def tstep(model=model, Xt=Xt, Tt=Tt, topt=topt):
                    loss = lf(model(Xt), Tt)
                    topt.zero_grad()
                    loss.backward()
                    topt.step()
                    torch.cuda.synchronize()
                cont["torch_cuda"] = tstep
            t = interleaved(cont, cfg["repeats"], cfg["min_sample"])
            name = f"gpu/train/{size}/{dtype}"
            rows.append(row(f"{name} cupy vs refnet numpy", "gpu", t["cupy"]["median"], "refnet NumPy",
                            t["numpy"]["median"]))
            rows.append(row(f"{name} cupy vs torch cuda", "gpu", t["cupy"]["median"], "torch CUDA",
                            t.get("torch_cuda", {}).get("median"), status=None if has_tc else "n/a"))
    net, params, X, T = make_problem("medium", "float64")
    _, grads = net.loss_and_grads(params, X, T)
    Xg = cupy.asarray(X)
    pg = net.init(seed=0, like=Xg)
    gg = [(cupy.asarray(a), cupy.asarray(b)) for a, b in grads]
    cont = {"cupy": lambda: (refnet.project_out(net, pg, gg, Xg, outputs=[0]), sync()),
            "numpy": lambda: refnet.project_out(net, params, grads, X, outputs=[0])}
    t = interleaved(cont, cfg["repeats"], cfg["min_sample"])
    rows.append(row("gpu/projection/medium/float64 gram cupy vs numpy", "gpu", t["cupy"]["median"],
                    "refnet NumPy", t["numpy"]["median"]))
    return rows


CASES = {"train": case_train, "grad": case_grad, "momentum": case_momentum, "projection": case_projection,
         "gram_large": case_gram_large, "frozen": case_frozen, "flops": case_flops, "memory": case_memory,
         "gpu": case_gpu}


# ================================================================== report
def _load(v):
    return "?" if not v else " / ".join(f"{x:.1f}" for x in v)


def markdown(info, rows, cfg) -> str:
    """The Markdown report: a machine header and one table row per result."""
    head = [f"refnet benchmark, {info['date']}{' (--quick)' if cfg['quick'] else ''}",
            "",
            f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GB RAM, {info['platform']}; "
            f"load average (1, 5, 15 min) at start {_load(info['load_avg_1_5_15'])}, "
            f"at end {_load(info.get('load_avg_at_end'))}",
            f"Python {info['python']}, NumPy {info['numpy']} with {info['blas']}, BLAS threads {info['blas_threads']}; "
            f"torch {info['torch']} (threads {info['torch_threads']}); autograd {info['autograd']}",
            f"Repeats {cfg['repeats']} (large: {cfg['repeats_big']}), samples >= {cfg['min_sample'] * 1e3:.0f} ms, "
            f"interleaved; times are medians per call; ratio = refnet / peer (lower is better)",
            "",
            "| case | refnet | peer | peer time | ratio / value | target | status | notes |",
            "|---|---|---|---|---|---|---|---|"]
    lines = []
    for r in rows:
        if r["value_str"] is not None:
            val = r["value_str"]
        elif r["ratio"] is not None:
            val = f"{r['ratio']:.2f}"
        else:
            val = ""
        tgt = "" if r["target"] is None else f"{r['op']} {r['target']:g}"
        lines.append(f"| {r['case']} | {fmt_time(r['refnet_s']) if r['refnet_s'] is not None else ''} | "
                     f"{r['peer'] or ''} | {fmt_time(r['peer_s']) if r['peer'] else ''} | {val} | {tgt} | "
                     f"{r['status']} | {r['note']} |")
    return "\n".join(head + lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m refnet.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repeats, reduced 1e7 case (< ~1 minute)")
    parser.add_argument("--out", default="bench-results", help="output folder (default: bench-results/)")
    parser.add_argument("--cases", nargs="*", default=None, metavar="NAME",
                        help=f"case groups or prefixes/globs (default: all): {', '.join(GROUPS)}")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per case (default 15; quick 3)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS and torch threads (default: the BLAS's own count); 1 is steadier on a busy machine")
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        return child_main(args._child, args.quick)

    cfg = {"quick": args.quick,
           "repeats": args.repeats or (3 if args.quick else 15),
           "repeats_big": 1 if args.quick else max(3, (args.repeats or 15) // 3),
           "min_sample": 0.002 if args.quick else 0.02,
           "dense_timeout": 120 if args.quick else 300}
    selected = []
    for pat in (args.cases or GROUPS):
        hits = [g for g in GROUPS if fnmatch.fnmatch(g, pat) or g.startswith(pat)]
        if not hits:
            parser.error(f"unknown case {pat!r}; choose from {', '.join(GROUPS)}")
        selected += [g for g in hits if g not in selected]

    if args.threads:
        _limit_blas_threads(args.threads)
    info = machine_info()
    _set_torch_threads(_peer("torch"), info)
    print(f"refnet bench{' --quick' if args.quick else ''}: {info['cpu']}, {info['cores']} cores, "
          f"BLAS {info['blas']} x{info['blas_threads']}, torch {info['torch']} x{info['torch_threads']}", flush=True)
    rows, t0 = [], time.perf_counter()
    for g in selected:
        print(f"[{g}]", flush=True)
        rows += CASES[g](cfg, info)
    info["elapsed_s"] = round(time.perf_counter() - t0, 1)
    info["load_avg_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(info, rows, cfg)
    (out / "bench.md").write_text(md)
    (out / "bench.json").write_text(json.dumps({"machine": info, "config": cfg, "rows": rows}, indent=1))
    print("\n" + md)
    print(f"wrote {out / 'bench.md'} and {out / 'bench.json'} in {info['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
