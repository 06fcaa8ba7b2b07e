"""An independently written NumPy port in the PyTorch layout (W is (n_out, n_in)), and seeded wrong versions.

It does not import refnet: it is what a user would write from the math alone.
``MinimalPort`` implements only forward, vjp and optimizer_step (the smallest
port the kit accepts); ``FullPort`` implements every method of the protocol.
The ``Wrong*`` classes each plant one bug the conformance kit must catch.
"""
import numpy as np

ACT = {   # name -> (phi(Z), phi'(Z) given Z and A = phi(Z))
    "identity": (lambda Z: Z, lambda Z, A: np.ones_like(Z)),
    "sigmoid": (lambda Z: 0.5 * (1.0 + np.tanh(0.5 * Z)), lambda Z, A: A * (1.0 - A)),
    "tanh": (np.tanh, lambda Z, A: 1.0 / np.cosh(np.clip(Z, -350, 350)) ** 2),   # cosh(350)^2 < max float
    "relu": (lambda Z: np.where(Z > 0, Z, 0.0), lambda Z, A: (Z > 0).astype(Z.dtype)),
    "softplus": (lambda Z: np.logaddexp(0.0, Z), lambda Z, A: 0.5 * (1.0 + np.tanh(0.5 * Z))),
}


class MinimalPort:
    name = "numpy port, torch layout (forward, vjp, optimizer_step)"
    layout = "torch"

    def act(self, spec, l):
        """(phi, phi') of layer l = 1..L."""
        return ACT[spec.activation if l < len(spec.sizes) - 1 else spec.output_activation]

    def _forward(self, spec, params, X):
        As, Zs = [np.asarray(X)], []
        for l, (W, b) in enumerate(params, start=1):
            assert W.shape == (spec.sizes[l], spec.sizes[l - 1]), "the kit hands this port (n_out, n_in) weights"
            Zs.append(As[-1] @ W.T + b)                       # torch layout: Z = A W^T + b
            As.append(self.act(spec, l)[0](Zs[-1]))
        return As, Zs

    def forward(self, spec, params, X):
        return self._forward(spec, params, X)[0][-1]

    def vjp(self, spec, params, X, G):
        As, Zs = self._forward(spec, params, X)
        D = G * self.act(spec, len(params))[1](Zs[-1], As[-1])
        out = []
        for l in range(len(params), 0, -1):
            out.append((D.T @ As[l - 1], D.sum(axis=0)))     # dW (n_out, n_in) = D^T A
            if l > 1:
                D = (D @ params[l - 1][0]) * self.act(spec, l - 1)[1](Zs[l - 2], As[l - 1])
        return out[::-1]

    def average(self, aW, ab, include_bias):
        """Mean over the incoming connections of each neuron: the rows' mean in torch layout (dim=1)."""
        if include_bias:
            m = (aW.sum(axis=1) + ab) / (aW.shape[1] + 1)
            return np.repeat(m[:, None], aW.shape[1], axis=1), m
        return np.repeat(aW.mean(axis=1, keepdims=True), aW.shape[1], axis=1), ab

    def accumulate(self, g, a, mu):
        return g + mu * a                                     # a <- g + mu a (dampening 0)

    def optimizer_step(self, name, hyper, params, grads, state):
        lr, mu = hyper["lr"], hyper.get("momentum", 0.0)
        if name == "sgd":
            return [(W - lr * gW, b - lr * gb) for (W, b), (gW, gb) in zip(params, grads)], None
        state = state or [(np.zeros_like(W), np.zeros_like(b)) for W, b in params]
        new, acc = [], []
        for (W, b), (gW, gb), (aW, ab) in zip(params, grads, state):
            if name == "averaged_momentum":
                aW, ab = self.average(aW, ab, hyper["include_bias"])
            aW, ab = self.accumulate(gW, aW, mu), self.accumulate(gb, ab, mu)
            uW, ub = (gW + mu * aW, gb + mu * ab) if hyper.get("nesterov") else (aW, ab)
            new.append((W - lr * uW, b - lr * ub))
            acc.append((aW, ab))
        return new, acc


class FullPort(MinimalPort):
    name = "numpy port, torch layout (every method)"

    def loss_and_grads(self, spec, params, X, T, loss):
        Y = self.forward(spec, params, X)
        if loss == "mse":
            L, G = np.mean((Y - T) ** 2), 2.0 * (Y - T) / Y.size
        else:
            Zc = Y - Y.max(axis=1, keepdims=True)
            logP = Zc - np.log(np.exp(Zc).sum(axis=1, keepdims=True))
            L, G = -np.mean(np.sum(T * logP, axis=1)), (np.exp(logP) - T) / Y.shape[0]
        return L, self.vjp(spec, params, X, G)

    def jacobian(self, spec, params, X, outputs):
        rows = []
        for k in outputs:                                     # output-major rows
            for i in range(len(X)):
                G = np.zeros((1, spec.sizes[-1]))
                G[0, k] = 1.0
                g = self.vjp(spec, params, X[i:i + 1], G)     # torch-layout grads of Y[i, k]
                rows.append(self.flat([(gW.T, gb) for gW, gb in g]))   # refnet column order
        return np.array(rows)

    @staticmethod
    def flat(tree):
        return np.concatenate([x.ravel() for W, b in tree for x in (W, b)])

    def unflat(self, v, params):
        out, i = [], 0
        for W, b in params:
            n_out, n_in = W.shape
            out.append((v[i:i + n_in * n_out].reshape(n_in, n_out).T, v[i + n_in * n_out:i + (n_in + 1) * n_out]))
            i += (n_in + 1) * n_out
        return out

    def cutoff(self, s, J, rtol=None):
        """rtol s_1: the kit's rtol, else max(m, p) eps (numpy.linalg.pinv's relative default)."""
        return (max(J.shape) * np.finfo(float).eps if rtol is None else rtol) * s.max(initial=0.0)

    def basis(self, spec, params, anchors, outputs, rtol=None):
        """V_r (p, r): right singular vectors of J with s above the cutoff; and U_r S_r^-1 for corrections."""
        J = self.jacobian(spec, params, anchors, outputs)
        U, s, Vt = np.linalg.svd(J, full_matrices=False)
        keep = s > self.cutoff(s, J, rtol)
        return Vt[keep].T, U[:, keep] / s[keep]

    def project_out(self, spec, params, grads, anchors, outputs, rtol=None):
        V, _ = self.basis(spec, params, anchors, outputs, rtol)
        g = self.flat([(gW.T, gb) for gW, gb in grads])
        return self.unflat(g - V @ (V.T @ g), params)

    def c(self, spec, params, anchors, freeze):
        return self.forward(spec, params, anchors)[:, freeze].T.ravel()

    retract_rtol = 1e-12                                     # tol = retract_rtol max(1, max|c0|) (float64's)

    def retract(self, spec, params, anchors, freeze, c0, rtol=None):
        tol = self.retract_rtol * max(1.0, np.max(np.abs(c0)))
        for _ in range(20):
            r = self.c(spec, params, anchors, freeze) - c0
            if np.max(np.abs(r)) <= tol:
                return params
            V, US = self.basis(spec, params, anchors, freeze, rtol)
            d = self.unflat(V @ (US.T @ r), params)          # minimum-norm Gauss-Newton correction
            params = [(W - dW, b - db) for (W, b), (dW, db) in zip(params, d)]
        raise ArithmeticError(f"retraction did not converge: max |c - c0| = {np.max(np.abs(r)):.1e} > {tol:.1e}")

    def frozen_step(self, spec, params, X, G, freeze, lr, anchors, rtol=None):
        c0 = self.c(spec, params, anchors, freeze)
        g = self.project_out(spec, params, self.vjp(spec, params, X, G), anchors, freeze, rtol)
        new = [(W - lr * gW, b - lr * gb) for (W, b), (gW, gb) in zip(params, g)]
        return self.retract(spec, new, anchors, freeze, c0, rtol)


# ----------------------------------------------------------------- seeded bugs
class WrongOutgoingAveraging(MinimalPort):
    """Averages a neuron's outgoing connections (torch dim=0) instead of its incoming ones."""
    name = "bug: outgoing averaging"

    def average(self, aW, ab, include_bias):
        return np.repeat(aW.mean(axis=0, keepdims=True), aW.shape[0], axis=0), ab


class WrongActivation(MinimalPort):
    """Uses sigmoid where the spec says tanh."""
    name = "bug: wrong activation"

    def act(self, spec, l):
        phi = super().act(spec, l)
        return ACT["sigmoid"] if phi is ACT["tanh"] else phi


class WrongUnaveragedBias(FullPort):
    """include_bias=True, but the bias keeps standard momentum and W is averaged without it."""
    name = "bug: unaveraged bias with include_bias=True"

    def average(self, aW, ab, include_bias):
        return super().average(aW, ab, False)


class WrongDampenedMomentum(FullPort):
    """torch.optim.SGD with dampening=momentum: a <- mu a + (1 - mu) g."""
    name = "bug: dampened momentum"

    def accumulate(self, g, a, mu):
        return mu * a + (1.0 - mu) * g


class WrongActivationDerivative(FullPort):
    """tanh' written as 1 - Z^2 (Z where A = tanh(Z) belongs)."""
    name = "bug: wrong activation derivative"

    def act(self, spec, l):
        phi = super().act(spec, l)
        return (phi[0], lambda Z, A: 1.0 - Z * Z) if phi is ACT["tanh"] else phi


class WrongJacobianColumns(FullPort):
    """Jacobian columns b_l before W_l (a ravel_pytree order) without declaring jacobian_columns."""
    name = "bug: Jacobian columns bias-first, undeclared"

    def jacobian(self, spec, params, X, outputs):
        J, cols, i = super().jacobian(spec, params, X, outputs), [], 0
        for n_in, n_out in zip(spec.sizes[:-1], spec.sizes[1:]):
            w, b = list(range(i, i + n_in * n_out)), list(range(i + n_in * n_out, i + (n_in + 1) * n_out))
            cols += b + w
            i += (n_in + 1) * n_out
        return J[:, cols]


class WrongNoRetraction(FullPort):
    """Frozen step without the Gauss-Newton retraction: frozen outputs move by O(lr^2)."""
    name = "bug: frozen step without retraction"

    def retract(self, spec, params, anchors, freeze, c0, rtol=None):
        return params


class WrongAbsoluteCutoff(FullPort):
    """Singular values below an absolute 1e-10 dropped (instead of refnet's relative rtol s_max)."""
    name = "bug: absolute singular-value cutoff"

    def cutoff(self, s, J, rtol=None):
        return 1e-10


# ----------------------------------------------------------------- partial ports (what real libraries are)
class SgdMomentumOnly(MinimalPort):
    """A library with SGD and heavy-ball momentum only (torch.optim.SGD without nesterov, say): it declares
    so, and records every variant it is asked for (an undeclared one is an error, not a skip)."""
    name = "numpy port, sgd and momentum only"
    optimizers = ("sgd", "momentum")

    def __init__(self):
        self.asked = set()

    def optimizer_step(self, name, hyper, params, grads, state):
        variant = "nesterov" if hyper.get("nesterov") else name
        self.asked.add(variant)
        assert variant in self.optimizers, f"asked for {variant}, which the port does not declare"
        return super().optimizer_step(name, hyper, params, grads, state)


class NoAveragedMomentum(MinimalPort):
    """Declares nothing, and raises NotImplementedError for averaged momentum (as an adapter of a library
    without it would)."""
    name = "numpy port, no averaged momentum"

    def optimizer_step(self, name, hyper, params, grads, state):
        if name == "averaged_momentum":
            raise NotImplementedError("this library has no averaged momentum")
        return super().optimizer_step(name, hyper, params, grads, state)
