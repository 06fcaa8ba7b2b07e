"""Independent oracles: the same forward pass written in ``autograd.numpy``
(HIPS autograd differentiates it), and central finite differences."""
from __future__ import annotations

import autograd.numpy as anp
import numpy as np

ANP_ACTIVATIONS = {
    "identity": lambda z: z,
    "sigmoid": lambda z: 1.0 / (1.0 + anp.exp(-z)),
    "tanh": anp.tanh,
    "relu": lambda z: anp.where(z > 0, z, 0.0 * z),
    "softplus": lambda z: anp.logaddexp(0.0, z),
}


def forward(net, flat, X):
    """Y for a flat parameter vector (flatten order), written independently of refnet."""
    A, start = X, 0
    L = len(net.sizes) - 1
    for l, (n_in, n_out) in enumerate(zip(net.sizes[:-1], net.sizes[1:]), start=1):
        W = anp.reshape(flat[start:start + n_in * n_out], (n_in, n_out))
        start += n_in * n_out
        b = flat[start:start + n_out]
        start += n_out
        phi = ANP_ACTIVATIONS[net.activation if l < L else net.output_activation]
        A = phi(anp.dot(A, W) + b)
    assert start == flat.shape[0], f"flat has {flat.shape[0]} entries, the layout uses {start}"
    return A


def mse(Y, T):
    return anp.mean((Y - T) ** 2)


def softmax_cross_entropy(Y, T):
    Z = Y - anp.max(Y, axis=1, keepdims=True)
    logP = Z - anp.log(anp.sum(anp.exp(Z), axis=1, keepdims=True))
    return -anp.sum(T * logP) / Y.shape[0]


def central_difference(f, x, v, h=1e-5):
    """(f(x + h v) - f(x - h v)) / (2 h): the directional derivative of f at x along v."""
    return (f(x + h * v) - f(x - h * v)) / (2 * h)
