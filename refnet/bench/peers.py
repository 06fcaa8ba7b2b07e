"""The peers refnet is measured against, each built the way its users would write it.

The bare NumPy loop (same math and pure semantics as refnet, no library around
it), PyTorch (``nn.Sequential`` + ``MSELoss`` + an optimizer), a
PyTorch port of ``AveragedMomentum``, ``torch.func`` (vmap of jacrev + SVD),
HIPS autograd and CuPy. Each peer library is imported only inside a function
(``harness.import_peer`` or a local import), so importing this module needs none of them.
"""
from __future__ import annotations

import numpy as np

from .harness import Stepper


# ================================================================ bare NumPy
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


def numpy_trainer(params, X, T, lr):
    """The bare NumPy loop as a ``Stepper`` holding its params."""
    return Stepper(lambda p: numpy_train_step(p, X, T, lr)[1], params)


# =================================================================== PyTorch
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


def torch_func_projection(torch, model, Xa, k):
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


# ================================================================== autograd
def autograd_grad(autograd):
    """``(params, X, T) -> grads`` of the same forward and mse loss, by HIPS autograd."""
    import autograd.numpy as anp

    def ag_loss(ps, X, T):
        A = X
        for W, b in ps[:-1]:
            A = anp.tanh(anp.dot(A, W) + b)
        W, b = ps[-1]
        R = anp.dot(A, W) + b - T
        return anp.sum(R * R) / R.size
    return autograd.grad(ag_loss)


# ====================================================================== CuPy
def cupy_with_device():
    """The CuPy module when it finds a CUDA device; raises (ImportError, CUDA errors, RuntimeError) otherwise."""
    import cupy
    if cupy.cuda.runtime.getDeviceCount() < 1:
        raise RuntimeError("no CUDA device")
    return cupy
