"""A PyTorch port of refnet, written the way a PyTorch user would (float64, CPU).

Layout "torch" (W is ``nn.Linear.weight``, (n_out, n_in)); gradients by
autograd (``torch.func.vjp`` / ``grad_and_value``); the Jacobian by
``torch.func.jacrev`` over the parameter tuple, so its rows are sample-major
and its columns are in ``model.parameters()`` order (W_1 (n_out, n_in)
row-major, b_1, ...): the port declares both instead of permuting.
Momentum and SGD are ``torch.optim.SGD`` (dampening 0); incoming-averaged
momentum is written out (the mean over ``dim=1``, a neuron's incoming weights).
Projections use ``torch.linalg.pinv`` with the kit's ``rtol`` (refnet's
relative cutoff; without one, pinv's default max(m, p) eps s_max is the same).
"""
import numpy as np
import torch
from torch.func import grad_and_value, jacrev, vjp

# Not torch.nn.functional.softplus: above its threshold (20) it returns z itself, dropping
# log1p(e^-z) ~ 4e-11 at z = 24, and the kit's forward check rejects that (found on a wide_scale case).
PHI = {"identity": lambda z: z, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
       "softplus": lambda z: torch.logaddexp(z, torch.zeros_like(z))}


def _t(x):
    return torch.tensor(np.asarray(x), dtype=torch.float64)            # a copy: optimizers update in place


class TorchPort:
    name = "PyTorch (torch.func, torch.optim)"
    layout = "torch"
    jacobian_rows = "sample_major"          # jacrev of Y[:, K] (n, K) reshaped to (n K, p)
    jacobian_columns = "torch"              # torch.cat of p.ravel() over model.parameters()

    @staticmethod
    def _tensors(params):
        assert all(np.shape(W) == (len(b), np.shape(W)[1]) for W, b in params), "torch layout: W is (n_out, n_in)"
        return tuple(_t(x) for W, b in params for x in (W, b))

    @staticmethod
    def _pairs(flat):
        return [(flat[i].detach().numpy(), flat[i + 1].detach().numpy()) for i in range(0, len(flat), 2)]

    def _f(self, spec):
        L = len(spec.sizes) - 1

        def f(ps, X):
            a = X
            for l in range(L):
                a = PHI[spec.activation if l < L - 1 else spec.output_activation](
                    torch.nn.functional.linear(a, ps[2 * l], ps[2 * l + 1]))   # a W^T + b
            return a
        return f

    def forward(self, spec, params, X):
        return self._f(spec)(self._tensors(params), _t(X)).numpy()

    def vjp(self, spec, params, X, G):
        _, pull = vjp(lambda ps: self._f(spec)(ps, _t(X)), self._tensors(params))
        return self._pairs(pull(_t(G))[0])

    def loss_and_grads(self, spec, params, X, T, loss):
        def L(ps):
            Y = self._f(spec)(ps, _t(X))
            if loss == "mse":
                return torch.nn.functional.mse_loss(Y, _t(T))
            return torch.nn.functional.cross_entropy(Y, _t(T))      # probability targets, mean over samples
        g, value = grad_and_value(L)(self._tensors(params))
        return float(value), self._pairs(g)

    def _jac(self, spec, ps, X, outputs):
        """J (n K, p): sample-major rows, columns in parameter order."""
        jac = jacrev(lambda ps: self._f(spec)(ps, X)[:, list(outputs)])(ps)    # each (n, K, *shape)
        return torch.cat([j.reshape(j.shape[0] * j.shape[1], -1) for j in jac], dim=1)

    def jacobian(self, spec, params, X, outputs):
        return self._jac(spec, self._tensors(params), _t(X), outputs).numpy()

    def _project(self, spec, ps, v, anchors, outputs, rtol=None):
        """v - J^+ J v on the flat vector (column order does not matter: J and v share it)."""
        J = self._jac(spec, ps, anchors, outputs)
        flat = torch.cat([x.reshape(-1) for x in v])
        out = flat - torch.linalg.pinv(J, rtol=rtol) @ (J @ flat)   # v - J^+ J v
        return list(torch.split(out, [x.numel() for x in v])), J

    def project_out(self, spec, params, grads, anchors, outputs, rtol=None):
        ps = self._tensors(params)
        parts, _ = self._project(spec, ps, self._tensors(grads), _t(anchors), outputs, rtol)
        return self._pairs([p.reshape(x.shape) for p, x in zip(parts, ps)])

    def frozen_step(self, spec, params, X, G, freeze, lr, anchors, rtol=None):
        ps, A = self._tensors(params), _t(anchors)
        f = self._f(spec)
        c = lambda ps: f(ps, A)[:, list(freeze)].T.reshape(-1)      # frozen outputs, output-major
        c0 = c(ps)
        g = [_t(x) for pair in self.vjp(spec, params, X, G) for x in pair]
        parts, _ = self._project(spec, ps, g, A, freeze, rtol)
        ps = tuple(p - lr * d.reshape(p.shape) for p, d in zip(ps, parts))
        tol = 1e-12 * max(1.0, float(c0.abs().max()))
        for _ in range(20):                                          # Gauss-Newton retraction
            r = c(ps) - c0
            if float(r.abs().max()) <= tol:
                break
            J = self._jac(spec, ps, A, freeze)                      # sample-major rows: reorder r to match
            r_rows = r.reshape(len(freeze), -1).T.reshape(-1)
            d = torch.linalg.pinv(J, rtol=rtol) @ r_rows
            ps = tuple(p - x.reshape(p.shape) for p, x in zip(ps, torch.split(d, [p.numel() for p in ps])))
        return self._pairs(ps)

    def optimizer_step(self, name, hyper, params, grads, state):
        ps = [_t(x).requires_grad_(False) for W, b in params for x in (W, b)]
        gs = [_t(x) for W, b in grads for x in (W, b)]
        lr, mu = hyper["lr"], hyper.get("momentum", 0.0)
        if name in ("sgd", "momentum"):
            opt = torch.optim.SGD(ps, lr=lr, momentum=mu, nesterov=hyper.get("nesterov", False))
            if state is not None:
                opt.load_state_dict(state)
            for p, g in zip(ps, gs):
                p.grad = g
            opt.step()
            return self._pairs(ps), opt.state_dict()
        bufs = state or [torch.zeros_like(p) for p in ps]
        new_bufs = []
        for i in range(0, len(ps), 2):
            aW, ab = bufs[i], bufs[i + 1]
            if hyper["include_bias"]:                                # b_j: weight of a constant-1 input
                m = (aW.sum(dim=1) + ab) / (aW.shape[1] + 1)
                mW, mb = m[:, None].expand_as(aW), m
            else:
                mW, mb = aW.mean(dim=1, keepdim=True).expand_as(aW), ab
            new_bufs += [gs[i] + mu * mW, gs[i + 1] + mu * mb]
        return self._pairs([p - lr * a for p, a in zip(ps, new_bufs)]), new_bufs
