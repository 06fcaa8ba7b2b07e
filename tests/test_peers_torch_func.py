"""refnet's backprop and Jacobian against PyTorch's ``torch.func`` (an independent
autodiff), float64, on random architectures: the use of refnet as ground truth
for a framework, in reverse."""
import numpy as np
import pytest
from hypothesis import given

torch = pytest.importorskip("torch")
from torch.func import jacrev, vjp, vmap  # noqa: E402

import refnet  # noqa: E402
from refnet.strategies import problems  # noqa: E402

pytestmark = pytest.mark.peers

PHI = {"identity": lambda z: z, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
       "softplus": torch.nn.functional.softplus}


def torch_forward(net, flat, x):
    """Y for one sample x (n_0,) and a flat parameter vector in refnet's flatten order."""
    a, start, L = x, 0, len(net.sizes) - 1
    for l, (n_in, n_out) in enumerate(zip(net.sizes[:-1], net.sizes[1:]), start=1):
        W = flat[start:start + n_in * n_out].reshape(n_in, n_out)        # refnet layout (n_in, n_out)
        b = flat[start + n_in * n_out:start + n_in * n_out + n_out]
        start += n_in * n_out + n_out
        a = PHI[net.activation if l < L else net.output_activation](a @ W + b)
    assert start == flat.shape[0]
    return a


@given(problems())
def test_jacobian_and_vjp_equal_torch_func(prob):
    net, params, X, G = prob
    flat = torch.from_numpy(np.asarray(refnet.flatten(params)))
    Xt, Gt = torch.from_numpy(X), torch.from_numpy(G)
    # per-sample Jacobians (n, n_L, p) by vmap(jacrev); refnet rows are output-major (k, i)
    Jt = vmap(jacrev(torch_forward, argnums=1), in_dims=(None, None, 0))(net, flat, Xt)
    Jt = Jt.permute(1, 0, 2).reshape(-1, flat.shape[0]).numpy()
    J = net.jacobian(params, X)
    np.testing.assert_allclose(J, Jt, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(Jt).max()))
    # vjp of the whole batch: sum_i G_i^T dY_i/dtheta
    _, pullback = vjp(lambda t: vmap(torch_forward, in_dims=(None, None, 0))(net, t, Xt), flat)
    gt = pullback(Gt)[0].numpy()
    g = np.asarray(refnet.flatten(net.vjp(params, X, G)))
    np.testing.assert_allclose(g, gt, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(gt).max()))
