"""A plain NumPy float32 port of the three optimizers (SGD, momentum with and without Nesterov,
incoming-averaged momentum with and without the bias), written from the math alone.

Layout "refnet" (W is (n_in, n_out): a neuron's incoming weights are a column, so the
incoming average is the mean over axis 0); dtype "float32": every array it is handed is
cast to float32 and every result is float32. It must pass ``--profile deep``: where
refnet's float64 values leave float32's range the kit counts the case not comparable.
"""
import numpy as np

F32 = np.float32


class Float32Optimizers:
    name = "NumPy float32 optimizers"
    layout = "refnet"
    dtype = "float32"

    def optimizer_step(self, name, hyper, params, grads, state):
        assert name in ("sgd", "momentum", "averaged_momentum"), f"unknown optimizer {name!r}"
        for (W, b), (gW, gb) in zip(params, grads):                   # refnet layout: b_l (n_l,) = W_l's columns
            assert W.ndim == 2 and b.shape == (W.shape[1],), "the kit hands this port (n_in, n_out) weights"
            assert gW.shape == W.shape and gb.shape == b.shape, "gradients shaped like the params"
        lr, mu = F32(hyper["lr"]), F32(hyper.get("momentum", 0.0))
        params = [(W.astype(F32), b.astype(F32)) for W, b in params]
        grads = [(gW.astype(F32), gb.astype(F32)) for gW, gb in grads]
        if name == "sgd":
            return [(W - lr * gW, b - lr * gb) for (W, b), (gW, gb) in zip(params, grads)], None
        state = state or [(np.zeros_like(W), np.zeros_like(b)) for W, b in params]
        new, acc = [], []
        for (W, b), (gW, gb), (aW, ab) in zip(params, grads, state):
            if name == "averaged_momentum":
                if hyper["include_bias"]:                       # b_j: the weight of a constant-1 input
                    m = (aW.sum(axis=0) + ab) / F32(aW.shape[0] + 1)
                    aW, ab = np.broadcast_to(m, aW.shape), m
                else:                                           # mean over a neuron's incoming weights
                    aW = np.broadcast_to(aW.mean(axis=0), aW.shape)
            aW, ab = gW + mu * aW, gb + mu * ab                 # a <- g + mu a
            uW, ub = (gW + mu * aW, gb + mu * ab) if hyper.get("nesterov") else (aW, ab)
            new.append((W - lr * uW, b - lr * ub))
            acc.append((aW, ab))
        return new, acc
