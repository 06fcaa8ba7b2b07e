"""Demo section: the 3-4-2 network of the frozen-outputs question (sigmoid hidden
layer, identity output) trained by plain gradient descent on gradients from
manual backprop (``loss_and_grads``). Tutorial 00 derives every line."""
from __future__ import annotations

import refnet
from refnet.data import seed_regression

TITLE = "Gradient descent with manual backprop (3-4-2 sigmoid network, 32 samples)"


def run(out, args):
    X, T = seed_regression(n=32, seed=0)
    net = refnet.MLP([3, 4, 2], activation="sigmoid")
    params = net.init(seed=0)
    opt = refnet.SGD(lr=0.5)
    state = opt.init(params)
    out.write(f"{'step':>6} {'mse':>12}\n")
    for step in range(2001):
        loss, grads = net.loss_and_grads(params, X, T, loss="mse")
        if step in (0, 10, 100, 500, 1000, 2000):
            out.write(f"{step:>6} {float(loss):>12.6f}\n")
        params, state = opt.step(params, grads, state)
    return params
