"""Demo section: SGD, Momentum, incoming-averaged momentum and the outgoing-averaged
variant (the widely copied answer's ``reduce_mean(axis=1)``) side by side on the
UCI 8x8 handwritten digits shipped with refnet. Tutorial 02 has the math, longer
runs over several seeds, learning-rate / momentum sweeps and a 2-D picture."""
from __future__ import annotations

import os

import numpy as np

import refnet
from refnet.data import digits_split, one_hot

TITLE = "Incoming-averaged momentum vs SGD and momentum (64-32-10 tanh, softmax cross-entropy)"
LR, MU, BATCH, EPOCHS, SEED = 0.05, 0.9, 32, 5, 0


class _SeedOutgoing:
    """The outgoing-averaged update (not refnet API): M_W <- dW + mu M_W P_out, the
    mean over axis 1 of an (n_in, n_out) kernel, i.e. a unit's outgoing connections;
    biases get standard momentum."""

    def __init__(self, lr, momentum):
        self.lr, self.momentum = lr, momentum

    def init(self, params):
        return refnet.MomentumState([(np.zeros_like(W), np.zeros_like(b)) for W, b in params])

    def step(self, params, grads, state):
        M = [(gW + self.momentum * refnet.average_incoming(mW, axis=1), gb + self.momentum * mb)  # M <- g + mu M P_out
             for (gW, gb), (mW, mb) in zip(grads, state.accumulation)]
        return ([(W - self.lr * mW, b - self.lr * mb) for (W, b), (mW, mb) in zip(params, M)],   # theta <- theta - lr M
                refnet.MomentumState(M))


OPTIMIZERS = {
    "SGD": lambda: refnet.SGD(LR),
    "Momentum": lambda: refnet.Momentum(LR, MU),
    "Averaged (incoming)": lambda: refnet.AveragedMomentum(LR, MU),
    "Averaged (outgoing)": lambda: _SeedOutgoing(LR, MU),
}


def _train(net, data, T, make_opt):
    """Per-epoch (train loss, test accuracy) for one optimizer, epoch 0 = initial."""
    rng = np.random.default_rng(SEED)                           # same weights and batches for everyone
    params, opt = net.init(seed=rng), make_opt()
    state, curve = opt.init(params), []
    for epoch in range(EPOCHS + 1):
        if epoch:
            order = rng.permutation(len(T))
            for start in range(0, len(order), BATCH):
                idx = order[start:start + BATCH]
                _, grads = net.loss_and_grads(params, data.X_train[idx], T[idx], loss="softmax_cross_entropy")
                params, state = opt.step(params, grads, state)
        loss, _ = net.loss_and_grads(params, data.X_train, T, loss="softmax_cross_entropy")
        acc = np.mean(np.argmax(net.forward(params, data.X_test), axis=1) == data.y_test)
        curve.append((float(loss), float(acc)))
    return np.array(curve)


def run(out, args):
    data = digits_split(seed=0)                                 # UCI digits, pixels in [0, 1], 75/25 split
    T = one_hot(data.y_train, data.n_classes)                   # (n_train, n_classes)
    net = refnet.MLP([data.X_train.shape[1], 32, data.n_classes], activation="tanh")
    curves = {name: _train(net, data, T, make) for name, make in OPTIMIZERS.items()}
    out.write(f"{data.name}; lr={LR}, mu={MU}, batch {BATCH}, seed {SEED}\n")
    out.write(f"{'train loss':<12}" + "".join(f"{name:>21}" for name in curves) + "\n")
    for epoch in range(EPOCHS + 1):
        out.write(f"{'epoch ' + str(epoch):<12}" + "".join(f"{c[epoch, 0]:>21.4f}" for c in curves.values()) + "\n")
    out.write(f"{'test acc':<12}" + "".join(f"{c[-1, 1]:>21.3f}" for c in curves.values()) + "\n")
    if getattr(args, "plot", None):
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            out.write("plot skipped: matplotlib is not installed\n")
            return curves
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, c in curves.items():
            ax.semilogy(np.arange(EPOCHS + 1), c[:, 0], label=name)
        ax.set(xlabel="epoch", ylabel="train softmax cross-entropy", title=data.name)
        ax.legend()
        path = os.path.join(args.plot, "momentum.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        out.write(f"plot: {path}\n")
    return curves
