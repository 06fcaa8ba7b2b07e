"""PyTorch adapter: ``nn.Sequential``, ``torch.func`` derivatives, ``torch.optim.SGD``.

Run it: ``python -m refnet conformance run --port torch_port.py:PORT``.

Layout "torch" (``nn.Linear.weight`` is (n_out, n_in)), float64 on the CPU.
The Jacobian is ``torch.func.jacrev`` over the parameter dict, so its rows are
sample-major and its columns in ``model.named_parameters()`` order: declared,
not permuted. Projections are ``g - pinv(J, rtol=rtol) (J g)`` with the kit's
``rtol`` passed explicitly (``pinv``'s own default differs). ``frozen_step``
projects, steps and retracts with Gauss-Newton corrections ``pinv(J) r``.

Documented differences (what a correct port does about them):

* ``nn.Softplus`` returns z itself above ``threshold=20``, dropping
  log(1 + e^-z) (3.8e-11 at z = 24, over the forward tolerance): this port
  uses ``logaddexp(z, 0)``. ``SOFTPLUS = nn.Softplus`` shows the failure.
* ``torch.optim.SGD`` has no incoming-averaged momentum: declared in
  ``optimizers``, so the kit generates no such case.
"""
import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jacrev, vjp

EPS = float(np.finfo(np.float64).eps)


class LogAddExpSoftplus(nn.Module):
    def forward(self, z):
        return torch.logaddexp(z, torch.zeros_like(z))                # log(1 + e^z), exact


SOFTPLUS = LogAddExpSoftplus
ACT = {"identity": nn.Identity, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}


def _t(x):
    return torch.tensor(np.asarray(x), dtype=torch.float64)              # a copy


class TorchPort:
    name = f"torch {torch.__version__} (nn.Sequential, torch.func, torch.optim.SGD)"
    layout = "torch"
    jacobian_rows = "sample_major"      # jacrev of Y[:, K] (n, K, ...) reshaped to (n K, p)
    jacobian_columns = "torch"          # W_1 (n_out, n_in) row-major, b_1, W_2, ...
    optimizers = ("sgd", "momentum", "nesterov")

    def __init__(self, softplus=None):
        self.softplus = softplus or SOFTPLUS

    def model(self, spec):
        """nn.Sequential of Linear and activation modules, float64."""
        layers, L = [], len(spec.sizes) - 1
        for l, (n_in, n_out) in enumerate(zip(spec.sizes[:-1], spec.sizes[1:])):
            name = spec.activation if l < L - 1 else spec.output_activation
            act = self.softplus if name == "softplus" else ACT[name]
            layers += [nn.Linear(n_in, n_out, dtype=torch.float64), act()]
        return nn.Sequential(*layers)

    def _call(self, spec, params):
        """(f(theta, X) -> Y, theta as a dict name -> tensor) for functional calls."""
        model = self.model(spec)
        names = [n for n, _ in model.named_parameters()]                 # 0.weight, 0.bias, 2.weight, ...
        theta = dict(zip(names, (_t(x) for W, b in params for x in (W, b))))
        return (lambda th, X: functional_call(model, th, (X,))), theta

    @staticmethod
    def _pairs(tensors):
        t = [x.detach().numpy() for x in tensors]
        return list(zip(t[::2], t[1::2]))

    def forward(self, spec, params, X):
        f, theta = self._call(spec, params)
        return f(theta, _t(X)).detach().numpy()

    def vjp(self, spec, params, X, G):
        f, theta = self._call(spec, params)
        _, pull = vjp(lambda th: f(th, _t(X)), theta)
        return self._pairs(pull(_t(G))[0].values())

    def loss_and_grads(self, spec, params, X, T, loss):
        f, theta = self._call(spec, params)
        for p in theta.values():
            p.requires_grad_(True)
        Y = f(theta, _t(X))
        if loss == "mse":
            L = nn.functional.mse_loss(Y, _t(T))                        # mean of (Y - T)^2
        else:
            L = nn.functional.cross_entropy(Y, _t(T))                   # probability targets, mean over rows
        grads = torch.autograd.grad(L, list(theta.values()))
        return float(L.detach()), self._pairs(grads)

    @staticmethod
    def _jac(f, theta, X, outputs):
        """J (n K, p): sample-major rows, columns in parameter order."""
        jac = jacrev(lambda th: f(th, X)[:, list(outputs)])(theta)      # name -> (n, K, *shape)
        return torch.cat([j.reshape(j.shape[0] * j.shape[1], -1) for j in jac.values()], dim=1)

    def jacobian(self, spec, params, X, outputs):
        f, theta = self._call(spec, params)
        return self._jac(f, theta, _t(X), outputs).numpy()

    @staticmethod
    def _rtol(J, rtol):
        # ports written before the kit passed rtol: the array-API pinv default max(m, p) eps
        return max(J.shape) * EPS if rtol is None else rtol

    def _project(self, f, theta, v, anchors, outputs, rtol):
        """v - J^+ (J v) on flat vectors (J's columns and v share the parameter order)."""
        J = self._jac(f, theta, anchors, outputs)                        # (m, p)
        flat = torch.cat([x.reshape(-1) for x in v])                     # (p,)
        out = flat - torch.linalg.pinv(J, rtol=self._rtol(J, rtol)) @ (J @ flat)   # g - J^+ J g
        return [o.reshape(x.shape) for o, x in zip(torch.split(out, [x.numel() for x in v]), v)]

    def project_out(self, spec, params, grads, anchors, outputs, rtol=None):
        f, theta = self._call(spec, params)
        g = [_t(x) for W, b in grads for x in (W, b)]
        return self._pairs(self._project(f, theta, g, _t(anchors), outputs, rtol))

    def frozen_step(self, spec, params, X, G, freeze, lr, anchors, rtol=None):
        f, theta = self._call(spec, params)
        A, K = _t(anchors), list(freeze)
        c = lambda th: f(th, A)[:, K].T.reshape(-1)                     # frozen outputs, output-major (m,)
        c0 = c(theta).detach()
        _, pull = vjp(lambda th: f(th, _t(X)), theta)
        g = list(pull(_t(G))[0].values())                               # dL/dtheta for dL/dY = G
        g_perp = self._project(f, theta, g, A, K, rtol)
        theta = {k: p - lr * d for (k, p), d in zip(theta.items(), g_perp)}   # theta - lr g_perp
        tol = 1e-12 * max(1.0, float(c0.abs().max()))
        for _ in range(20):                                              # Gauss-Newton retraction
            r = c(theta).detach() - c0                                   # (m,) output-major
            if float(r.abs().max()) <= tol:
                break
            J = self._jac(f, theta, A, K)                                # sample-major rows
            r_rows = r.reshape(len(K), -1).T.reshape(-1)                 # r in J's row order
            d = torch.linalg.pinv(J, rtol=self._rtol(J, rtol)) @ r_rows   # J^+ r
            parts = torch.split(d, [p.numel() for p in theta.values()])
            theta = {k: p - x.reshape(p.shape) for (k, p), x in zip(theta.items(), parts)}
        else:                                                            # an honest failure, not a wrong answer
            raise ArithmeticError(f"retraction did not converge: max |c - c0| = {float(r.abs().max()):.1e} > {tol:.1e}")
        return self._pairs(theta.values())

    def optimizer_step(self, name, hyper, params, grads, state):
        """torch.optim.SGD (dampening 0); state: (the optimizer, its parameter tensors)."""
        if name not in ("sgd", "momentum"):
            raise NotImplementedError(f"torch.optim.SGD has no {name}")
        if state is None:
            ps = [_t(x) for W, b in params for x in (W, b)]
            opt = torch.optim.SGD(ps, lr=hyper["lr"], momentum=hyper.get("momentum", 0.0),
                                  nesterov=hyper.get("nesterov", False))
        else:
            opt, ps = state
            with torch.no_grad():
                for p, x in zip(ps, (x for W, b in params for x in (W, b))):
                    p.copy_(_t(x))                                       # the kit's parameters
        for p, g in zip(ps, (g for gW, gb in grads for g in (gW, gb))):
            p.grad = _t(g)
        opt.step()
        return self._pairs(ps), (opt, ps)


PORT = TorchPort()
