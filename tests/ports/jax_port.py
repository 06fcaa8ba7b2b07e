"""A JAX port of refnet, written the way a JAX user would (float64 via x64, CPU).

Layout "refnet" (a Flax-style ``{"kernel": W (n_in, n_out), "bias": b}`` per
layer); gradients by ``jax.vjp`` / ``jax.value_and_grad``; the Jacobian by
``jax.jacrev`` of the ``ravel_pytree`` flat vector, so its columns are bias
first (ravel_pytree sorts dict keys: "bias" < "kernel") and its rows
sample-major: the port declares both. Projections use the SVD with refnet's
cutoff max(m, p) eps s_max, not ``jnp.linalg.pinv``'s default (10 times larger:
singular values between the two would be dropped by one and kept by the other).
It has no frozen_step (the runner skips it, saying so). Every method runs inside
``jax.enable_x64(True)``, so the process-wide x64 flag is left alone.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

PHI = {"identity": lambda z: z, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu,
       "softplus": jax.nn.softplus}


def x64(method):
    @functools.wraps(method)
    def wrapped(*args, **kw):
        with jax.enable_x64(True):
            return jax.tree_util.tree_map(np.asarray, method(*args, **kw))
    return wrapped


class JaxPort:
    name = "JAX (jax.grad, jax.jacrev, x64)"
    layout = "refnet"
    jacobian_rows = "sample_major"          # jacrev of Y[:, K] (n, K) reshaped to (n K, p)
    jacobian_columns = "bias_first"         # ravel_pytree of [{"bias", "kernel"}, ...]

    @staticmethod
    def _tree(params):
        assert all(np.shape(W)[1] == len(b) for W, b in params), "refnet layout: W is (n_in, n_out)"
        return [{"kernel": jnp.asarray(W, jnp.float64), "bias": jnp.asarray(b, jnp.float64)} for W, b in params]

    @staticmethod
    def _pairs(tree):
        return [(layer["kernel"], layer["bias"]) for layer in tree]

    @staticmethod
    def _f(spec):
        L = len(spec.sizes) - 1

        def f(tree, X):
            a = X
            for l, layer in enumerate(tree):
                a = PHI[spec.activation if l < L - 1 else spec.output_activation](a @ layer["kernel"] + layer["bias"])
            return a
        return f

    @x64
    def forward(self, spec, params, X):
        return self._f(spec)(self._tree(params), jnp.asarray(X))

    @x64
    def vjp(self, spec, params, X, G):
        _, pull = jax.vjp(lambda t: self._f(spec)(t, jnp.asarray(X)), self._tree(params))
        return self._pairs(pull(jnp.asarray(G))[0])

    @x64
    def loss_and_grads(self, spec, params, X, T, loss):
        def L(tree):
            Y = self._f(spec)(tree, jnp.asarray(X))
            if loss == "mse":
                return jnp.mean((Y - T) ** 2)
            return -jnp.mean(jnp.sum(T * jax.nn.log_softmax(Y, axis=1), axis=1))
        value, g = jax.value_and_grad(L)(self._tree(params))
        return value, self._pairs(g)

    def _jac(self, spec, tree, X, outputs):
        flat, unravel = ravel_pytree(tree)
        J = jax.jacrev(lambda v: self._f(spec)(unravel(v), X)[:, jnp.asarray(outputs)])(flat)   # (n, K, p)
        return J.reshape(-1, flat.shape[0]), flat, unravel

    @x64
    def jacobian(self, spec, params, X, outputs):
        return self._jac(spec, self._tree(params), jnp.asarray(X), list(outputs))[0]

    @x64
    def project_out(self, spec, params, grads, anchors, outputs):
        J, _, unravel = self._jac(spec, self._tree(params), jnp.asarray(anchors), list(outputs))
        g, _ = ravel_pytree(self._tree(grads))                       # the same (bias-first) order as J's columns
        _, s, Vt = jnp.linalg.svd(J, full_matrices=False)
        V = Vt[s > max(J.shape) * jnp.finfo(J.dtype).eps * s.max()].T   # refnet's relative cutoff
        return self._pairs(unravel(g - V @ (V.T @ g)))

    @x64
    def optimizer_step(self, name, hyper, params, grads, state):
        lr, mu = hyper["lr"], hyper.get("momentum", 0.0)
        tree, g = self._tree(params), self._tree(grads)
        if name == "sgd":
            return self._pairs(jax.tree_util.tree_map(lambda p, d: p - lr * d, tree, g)), None
        acc = state if state is not None else jax.tree_util.tree_map(jnp.zeros_like, tree)
        if name == "averaged_momentum":
            def mean_in(a):                                          # kernel (n_in, n_out): mean over axis 0
                if hyper["include_bias"]:
                    m = (a["kernel"].sum(axis=0) + a["bias"]) / (a["kernel"].shape[0] + 1)
                    return {"kernel": jnp.broadcast_to(m, a["kernel"].shape), "bias": m}
                return {"kernel": jnp.broadcast_to(a["kernel"].mean(axis=0), a["kernel"].shape), "bias": a["bias"]}
            acc = [mean_in(a) for a in acc]
        acc = jax.tree_util.tree_map(lambda d, a: d + mu * a, g, acc)  # a <- g + mu a
        step = (jax.tree_util.tree_map(lambda d, a: d + mu * a, g, acc) if hyper.get("nesterov") else acc)
        return self._pairs(jax.tree_util.tree_map(lambda p, u: p - lr * u, tree, step)), acc
