"""The benchmark cases: problem sizes, the contenders of each case, and their result rows.

Each ``case_<group>(cfg, info)`` returns a list of ``report.row`` dicts; the
memory and large projection cases run their work through ``CHILD_CASES`` in
fresh subprocesses (``harness.run_child``).
"""
from __future__ import annotations

import numpy as np

import refnet

from .harness import Stepper, blas_info, import_peer, interleaved, mem_available, run_child
from .peers import (autograd_grad, cupy_with_device, numpy_train_step, numpy_trainer, torch_averaged_sgd,
                    torch_func_projection, torch_model, torch_trainer)
from .report import fmt_time, gb, row

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


def _check_same_step(net, params, X, T):
    """The bare loop must compute refnet's step (fairness): compare one step's new params."""
    _, g = net.loss_and_grads(params, X, T)
    ref, _ = refnet.SGD(LR).step(params, g, refnet.SGD(LR).init(params))
    _, new = numpy_train_step(params, X, T, LR)
    tol = 1e-4 if X.dtype == np.float32 else 1e-10
    for (W, b), (W2, b2) in zip(ref, new):
        if W2.dtype != W.dtype or not (np.allclose(W, W2, rtol=tol, atol=tol) and np.allclose(b, b2, rtol=tol, atol=tol)):
            raise AssertionError("bare NumPy step differs from refnet's step")


def refnet_trainer(net, params, X, T, opt):
    """refnet's training step (mse loss, ``opt``) written as two calls, ``loss_and_grads`` then
    ``opt.step``, as a ``Stepper`` holding (params, optimizer state)."""
    state = (params, opt.init(params))

    def step(s):
        p, st = s
        _, g = net.loss_and_grads(p, X, T, loss="mse")
        return opt.step(p, g, st)
    return Stepper(step, state)


def refnet_fused_trainer(net, params, X, T, opt):
    """refnet's training step as one call, ``opt.train_step`` (the same arithmetic, validated once)."""
    return Stepper(lambda s: opt.train_step(net, s[0], s[1], X, T, loss="mse")[1:], (params, opt.init(params)))


# =================================================================== cases
def case_train(cfg, info):
    """Training step at four sizes and two dtypes vs PyTorch CPU and the bare NumPy loop."""
    torch = import_peer("torch")
    rows = []
    for size in SIZES:
        for dtype in ("float32", "float64"):
            net, params, X, T = make_problem(size, dtype)
            _check_same_step(net, params, X, T)
            cont = {"refnet": refnet_trainer(net, params, X, T, refnet.SGD(LR)),
                    "train_step": refnet_fused_trainer(net, params, X, T, refnet.SGD(LR)),
                    "numpy": numpy_trainer(params, X, T, LR)}
            if torch is not None:
                model = torch_model(torch, net, params, dtype)
                cont["torch"] = torch_trainer(torch, model, X, T, torch.optim.SGD(model.parameters(), lr=LR))
            big = size == "large"
            if big:                                       # the machine's matmul peak, in the same rounds
                cont["matmul_peak"] = _peak_matmul_fn(dtype)
            t = interleaved(cont, cfg["repeats_big"] if big else cfg["repeats"], cfg["min_sample"],
                            warmup=1 if big else 2, clock=cfg["clock"])
            r = t["refnet"]["median"]
            if big:
                _LARGE_STEP[dtype] = t                    # reused by the flops case
            name = f"train/{size}/{dtype}"
            rows.append(row(f"{name} vs torch", "train", r, "torch SGD", t.get("torch", {}).get("median"),
                            target=TRAIN_TARGET_TORCH[size], spread=t["refnet"]["spread"],
                            note=f"spread refnet {t['refnet']['spread']:.0%}"
                                 + (f", torch {t['torch']['spread']:.0%}" if "torch" in t else ""), timing=t))
            rows.append(row(f"{name} vs numpy", "train", r, "bare NumPy", t["numpy"]["median"],
                            target=TRAIN_TARGET_NUMPY, spread=t["refnet"]["spread"],
                            note=f"spread numpy {t['numpy']['spread']:.0%}", timing=t))
            f = t["train_step"]["median"]
            rows.append(row(f"{name} train_step vs numpy", "train", f, "bare NumPy", t["numpy"]["median"],
                            target=TRAIN_TARGET_NUMPY, spread=t["train_step"]["spread"],
                            note=f"opt.train_step (one call); spread numpy {t['numpy']['spread']:.0%}", timing=t))
            print(f"  {name}: refnet {fmt_time(r)}, train_step {fmt_time(f)}, numpy {fmt_time(t['numpy']['median'])}, "
                  f"torch {fmt_time(t['torch']['median']) if 'torch' in t else 'n/a'}", flush=True)
    return rows


def case_grad(cfg, info):
    """Loss and gradient only (no update) vs HIPS autograd on the same forward, float64."""
    autograd = import_peer("autograd")
    rows = []
    for size in SIZES:
        net, params, X, T = make_problem(size, "float64")
        cont = {"refnet": lambda: net.loss_and_grads(params, X, T, loss="mse")}
        if autograd is not None:
            ag_grad = autograd_grad(autograd)
            cont["autograd"] = lambda: ag_grad(params, X, T)
        t = interleaved(cont, cfg["repeats_big"] if size == "large" else cfg["repeats"], cfg["min_sample"],
                        warmup=1 if size == "large" else 2, clock=cfg["clock"])
        rows.append(row(f"grad/{size}/float64 vs autograd", "grad", t["refnet"]["median"], "autograd.grad",
                        t.get("autograd", {}).get("median"), target=0.4, spread=t["refnet"]["spread"],
                        note="refnet loss_and_grads vs autograd.grad", timing=t))
        print(f"  grad/{size}: refnet {fmt_time(t['refnet']['median'])}", flush=True)
    return rows


def case_momentum(cfg, info):
    """Whole training step with Momentum / AveragedMomentum on the medium net vs torch."""
    torch = import_peer("torch")
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
            t = interleaved(cont, cfg["repeats"], cfg["min_sample"], clock=cfg["clock"])
            peer = "torch SGD(momentum)" if kind == "momentum" else "torch averaged-SGD port"
            rows.append(row(f"{kind}/medium/{dtype} vs torch", "momentum", t["refnet"]["median"], peer,
                            t.get("torch", {}).get("median"), target=1.0, spread=t["refnet"]["spread"],
                            note="whole training step (fwd, bwd, optimizer step)", timing=t))
            print(f"  {kind}/{dtype}: refnet {fmt_time(t['refnet']['median'])}", flush=True)
    return rows


def case_projection(cfg, info):
    """project_out: gram vs dense vs torch.func (vmap(jacrev) + SVD), sizes where all fit."""
    torch = import_peer("torch")
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
            proj = torch_func_projection(torch, model, X, 0)
            cont["torch.func"] = lambda: proj(g)
        t = interleaved(cont, min(3, cfg["repeats_big"]) if big else cfg["repeats"], cfg["min_sample"],
                        warmup=1 if big else 2, clock=cfg["clock"])
        m = X.shape[0]
        desc = f"p={net.n_params}, m={m}"
        rows.append(row(f"projection/{size}/float64 gram vs dense", "projection", t["gram"]["median"],
                        "refnet dense", t["dense"]["median"], note=desc, timing=t))
        ts = t.get("torch.func", {}).get("median")
        rows.append(row(f"projection/{size}/float64 gram vs torch.func", "projection", t["gram"]["median"],
                        "torch.func", ts, note=desc, status=None if ts else "n/a", timing=t))
        rows.append(row(f"projection/{size}/float64 dense vs torch.func", "projection", t["dense"]["median"],
                        "torch.func", ts, note=desc, status=None if ts else "n/a", timing=t))
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
    t = interleaved(cont, cfg["repeats"], cfg["min_sample"], clock=cfg["clock"])
    rows.append(row("frozen/medium/float64 vs unprojected step", "frozen", t["frozen"]["median"],
                    "unprojected step", t["plain"]["median"], target=3.0,
                    note=f"retraction {info_.iterations} iteration(s), residual {info_.residual:.1e}; "
                         f"unprojected = frozen_step(freeze=[]) (vjp + SGD update)", timing=t))
    rows.append(row("frozen/medium/float64 no retraction vs unprojected step", "frozen",
                    t["frozen_noretract"]["median"], "unprojected step", t["plain"]["median"],
                    note="retract=False (projection only)", timing=t))
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
    torch = import_peer("torch")
    rows = []
    sizes, n = SIZES["large"]
    flops = train_step_flops(sizes, n)
    for dtype in ("float32", "float64"):
        t = _LARGE_STEP.get(dtype)                   # the train case's timings of this run, when it ran
        if t is None:
            net, params, X, T = make_problem("large", dtype)
            cont = {"refnet": refnet_trainer(net, params, X, T, refnet.SGD(LR)),
                    "numpy": numpy_trainer(params, X, T, LR),
                    "matmul_peak": _peak_matmul_fn(dtype)}
            if torch is not None:
                model = torch_model(torch, net, params, dtype)
                cont["torch"] = torch_trainer(torch, model, X, T, torch.optim.SGD(model.parameters(), lr=LR))
            t = interleaved(cont, cfg["repeats_big"], cfg["min_sample"], warmup=1, clock=cfg["clock"])
        peak = 2.0 * PEAK_N ** 3 / t["matmul_peak"]["median"]        # flop/s, measured in the same rounds
        frac = {k: flops / v["median"] / peak for k, v in t.items() if k != "matmul_peak"}
        rows.append(row(f"flops/large/{dtype} fraction of matmul peak", "flops", t["refnet"]["median"],
                        value=frac["refnet"], value_str=f"{frac['refnet']:.2f}", target=0.8, op=">=",
                        note=f"{flops / 1e9:.2f} GFLOP/step; peak {peak / 1e9:.1f} GFLOP/s (2048^3 matmul, "
                             f"interleaved with the steps); "
                             f"refnet {flops / t['refnet']['median'] / 1e9:.1f} GFLOP/s; bare numpy {frac['numpy']:.2f}"
                             + (f"; torch {frac['torch']:.2f}" if "torch" in frac else ""),
                        flops=flops, peak_flops=peak, timing=t))
        print(f"  flops/{dtype}: fraction {frac['refnet']:.2f} (peak {peak / 1e9:.1f} GF/s)", flush=True)
    return rows


# =========================================== memory (fresh subprocesses)
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
        fn = numpy_trainer(params, X, T, LR)
    else:
        torch = import_peer("torch")
        if torch is None:
            raise SystemExit(3)
        torch.set_num_threads(blas_info()[0])
        model = torch_model(torch, net, params, "float64")
        fn = torch_trainer(torch, model, X, T, torch.optim.SGD(model.parameters(), lr=LR))
    return fn, 1 if quick else 3, {"sizes": SIZES["large"][0], "batch": SIZES["large"][1], "contender": contender}


CHILD_CASES = {**{k: _child_projection for k in PROJ_CHILD},
               **{f"train_large_{c}": _child_train for c in ("refnet", "numpy", "torch")}}


def case_gram_large(cfg, info):
    """gram at ~1e6 params / 512 constraints vs dense (fresh subprocesses), and gram at ~1e7 / 1000."""
    quick = cfg["quick"]
    label = " (quick: reduced size)" if quick else ""
    rows = []
    g = run_child("gram_1e6", quick)
    sizes, m = (PROJ_CHILD["dense_1e6"][2:4] if quick else PROJ_CHILD["dense_1e6"][:2])
    p = refnet.MLP(sizes).n_params
    need = 5 * m * p * 8                      # J, its blocks, LAPACK's copy, V^T, workspace (float64)
    avail = mem_available()
    if avail and avail < need:
        d = {"error": f"skipped: needs ~{gb(need)}, {gb(avail)} available"}
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
                            note=f"dense peak RSS {gb(d['peak_rss'])}; 1 dense run"))
        rows.append(row(name + " gram peak RSS", "gram_large", g["median"], value=g["peak_rss"] / 2**30,
                        value_str=gb(g["peak_rss"]), target=1.0, op="<",
                        note=f"whole process; {gb(g['rss_after_setup'])} after imports and setup"))
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
                        note=f"peak RSS {gb(g7['peak_rss'])} (fits in {info['ram_gb']} GB: "
                             f"{'yes' if g7['peak_rss'] < info['ram_gb'] * 2**30 else 'no'}); "
                             f"dense J would need {gb(m * p * 8)}"))
    print(f"  gram_large/1e7: {g7.get('median', g7.get('error'))}", flush=True)
    return rows


def case_memory(cfg, info):
    """Peak RSS of the large float64 training step, each contender in a fresh subprocess."""
    rows = []
    for c in ("refnet", "numpy", "torch"):
        if c == "torch" and import_peer("torch") is None:
            rows.append(row("memory/train/large/float64 torch", "memory", status="n/a", note="torch absent"))
            continue
        r = run_child(f"train_large_{c}", cfg["quick"])
        if "error" in r:
            rows.append(row(f"memory/train/large/float64 {c}", "memory", status="error", note=r["error"]))
            continue
        rows.append(row(f"memory/train/large/float64 {c}", "memory", r["median"], value=r["peak_rss"] / 2**30,
                        value_str=gb(r["peak_rss"]),
                        note=f"peak RSS of the whole process; {gb(r['rss_after_setup'])} after setup "
                             f"(params {gb(sum(W.nbytes + b.nbytes for W, b in make_problem('large', 'float64')[1]))})"))
    return rows


# ======================================================================= GPU
def case_gpu(cfg, info):
    """CuPy: medium and large training steps and the gram projection, vs NumPy and PyTorch CUDA."""
    try:
        cupy = cupy_with_device()
    except Exception as e:          # ImportError, CUDA driver errors
        reason = f"skipped: CuPy/CUDA unavailable ({type(e).__name__}: {e})"
        print(f"  gpu: {reason}", flush=True)
        return [row("gpu", "gpu", status="skipped", note=reason)]
    sync = lambda: cupy.cuda.Device().synchronize()
    torch = import_peer("torch")
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
            t = interleaved(cont, cfg["repeats"], cfg["min_sample"], clock=cfg["clock"])
            name = f"gpu/train/{size}/{dtype}"
            rows.append(row(f"{name} cupy vs refnet numpy", "gpu", t["cupy"]["median"], "refnet NumPy",
                            t["numpy"]["median"], timing=t))
            rows.append(row(f"{name} cupy vs torch cuda", "gpu", t["cupy"]["median"], "torch CUDA",
                            t.get("torch_cuda", {}).get("median"), status=None if has_tc else "n/a", timing=t))
    net, params, X, T = make_problem("medium", "float64")
    _, grads = net.loss_and_grads(params, X, T)
    Xg = cupy.asarray(X)
    pg = net.init(seed=0, like=Xg)
    gg = [(cupy.asarray(a), cupy.asarray(b)) for a, b in grads]
    cont = {"cupy": lambda: (refnet.project_out(net, pg, gg, Xg, outputs=[0]), sync()),
            "numpy": lambda: refnet.project_out(net, params, grads, X, outputs=[0])}
    t = interleaved(cont, cfg["repeats"], cfg["min_sample"], clock=cfg["clock"])
    rows.append(row("gpu/projection/medium/float64 gram cupy vs numpy", "gpu", t["cupy"]["median"],
                    "refnet NumPy", t["numpy"]["median"], timing=t))
    return rows


CASES = {"train": case_train, "grad": case_grad, "momentum": case_momentum, "projection": case_projection,
         "gram_large": case_gram_large, "frozen": case_frozen, "flops": case_flops, "memory": case_memory,
         "gpu": case_gpu}
