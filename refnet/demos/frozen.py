"""Demo section: the frozen-output question. Push output 1 of the 3-4-2 sigmoid network up
(G = dL/dY = [0, -1] per sample) while output 0 must not change on the batch.
Compares the masking baselines of the question's accepted answer with null-space projection.
Outputs are numbered from 0 (the question's "output 1 / output 2" are outputs 0 / 1)."""
from __future__ import annotations

import os

import numpy as np

import refnet
from refnet.data import seed_regression

TITLE = "Frozen outputs (3-4-2 sigmoid network, G = [0, -1]: raise output 1, keep output 0 constant)"

METHODS = ["masked, all layers", "masked, head only", "projected", "projected + retraction"]


def compare(steps=200, lr=0.05, n=8, seed=0):
    """Train each method for ``steps`` SGD steps on G = [0, -1] / n per sample.

    Returns (method -> (drift (steps + 1,), gain (steps + 1,))): drift[t] = max_i |y0_i(t) - y0_i(0)|,
    gain[t] = mean_i (y1_i(t) - y1_i(0)), both on the batch X (n, 3), which is also the anchor set.
    """
    X, _ = seed_regression(n=n, seed=seed)
    net = refnet.MLP([3, 4, 2], activation="sigmoid", output_activation="identity")
    params0 = net.init(seed=seed)
    G = np.tile([0.0, -1.0], (n, 1)) / n                     # dL/dY of L = -mean(y1)   (n, 2)
    Y0 = net.forward(params0, X)
    out = {}
    for method in METHODS:
        params = params0
        if method.startswith("projected"):
            opt = refnet.Projected(refnet.SGD(lr), net, X, freeze=[0], retract=method.endswith("retraction"))
            state = opt.init(params)
        Ys = [Y0]
        for _ in range(steps):
            if method.startswith("masked"):
                g = refnet.masked_grads(net, params, X, G, freeze=[0], head_only=method.endswith("head only"))
                params = [(W - lr * gW, b - lr * gb) for (W, b), (gW, gb) in zip(params, g)]   # theta - lr g
            else:
                params, state = opt.step(params, net.vjp(params, X, G), state)
            Ys.append(net.forward(params, X))
        Ys = np.stack(Ys)                                    # (steps + 1, n, 2)
        out[method] = (np.abs(Ys[:, :, 0] - Y0[:, 0]).max(axis=1), (Ys[:, :, 1] - Y0[:, 1]).mean(axis=1))
    return out


def table(results, out):
    """Write the side-by-side table: max output-0 drift and mean output-1 gain after the last step."""
    steps = len(next(iter(results.values()))[0]) - 1
    out.write(f"{'method (' + str(steps) + ' SGD steps)':<26} {'max |dy0|':>11} {'mean dy1':>10}\n")
    for method, (drift, gain) in results.items():
        out.write(f"{method:<26} {drift.max():>11.2e} {gain[-1]:>10.4f}\n")


def plot(results, path=None):
    """Drift of output 0 (log scale) and gain of output 1 against the step; needs matplotlib.

    Returns the matplotlib Figure, saved to ``path`` when given. The figure is
    detached from pyplot, so no global figure stays open; a notebook shows it
    when it is a cell's last expression.
    """
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    plt.close(fig)                                           # the caller owns fig; pyplot keeps no reference
    from .style import color
    for method, (drift, gain) in results.items():
        a.semilogy(np.maximum(drift, 1e-17), color=color(method), label=method)   # zeros at 1e-17
        b.plot(gain, color=color(method), label=method)
    a.set(xlabel="step", ylabel="max |y0 - y0(0)|  (0 drawn at 1e-17)", title="output 0 (frozen)")
    b.set(xlabel="step", ylabel="mean (y1 - y1(0))", title="output 1 (trained)")
    a.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def run(out, args):
    results = compare()
    table(results, out)
    out.write("output 0 is held on the 8 batch inputs (the anchors); retraction tolerance 1e-12 max(1, S),\n"
              "S the magnitudes that cancel into y0 (refnet.frozen.default_tol)\n")
    if getattr(args, "plot", None):
        try:
            path = os.path.join(args.plot, "frozen.png")
            plot(results, path)
            out.write(f"plot: {path}\n")
        except ImportError:
            out.write("plot skipped: matplotlib is not installed\n")
    return results
