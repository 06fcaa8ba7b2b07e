"""optax adapter: a JAX MLP trained the optax way, ``optax.sgd`` for the optimizers.

Run it: ``python -m refnet conformance run --port optax_port.py:PORT``.

Layout "refnet" (kernels (n_in, n_out)); float64 through ``jax.enable_x64``
around every call (the process-wide flag is left alone). Derivatives are
``jax.vjp``, ``jax.value_and_grad`` and ``jax.jacrev`` (rows sample-major,
columns W_1 row-major, b_1, W_2, ...: refnet's). The state is the
optax state pytree: ``optax.sgd`` is rebuilt from ``hyper`` each step, as the
transformation itself holds no arrays.

Documented differences: ``optax.sgd`` has no incoming-averaged momentum
(declared in ``optimizers``). optax applies ``-lr m`` as ``p + (-lr m)``, the
same rounding as refnet's ``p - lr m``.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax

PHI = {"identity": lambda z: z, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu,
       "softplus": jax.nn.softplus}


def _tree(pairs):
    return [(jnp.asarray(W, jnp.float64), jnp.asarray(b, jnp.float64)) for W, b in pairs]


def _np(tree):
    return jax.tree_util.tree_map(np.asarray, tree)


class OptaxPort:
    name = f"optax {optax.__version__} (optax.sgd; JAX {jax.__version__} model)"
    layout = "refnet"
    jacobian_rows = "sample_major"      # jacrev of Y[:, K] (n, K, ...) reshaped to (n K, p)
    optimizers = ("sgd", "momentum", "nesterov")

    @staticmethod
    def f(spec, params, X):
        """Y = A_L with A_l = phi_l(A_{l-1} W_l + b_l)."""
        A, L = X, len(params)
        for l, (W, b) in enumerate(params):
            A = PHI[spec.activation if l < L - 1 else spec.output_activation](A @ W + b)
        return A

    def forward(self, spec, params, X):
        with jax.enable_x64(True):
            return np.asarray(self.f(spec, _tree(params), jnp.asarray(X)))

    def vjp(self, spec, params, X, G):
        with jax.enable_x64(True):
            _, pull = jax.vjp(lambda p: self.f(spec, p, jnp.asarray(X)), _tree(params))
            return _np(pull(jnp.asarray(G))[0])                         # G^T dY/dtheta

    def jacobian(self, spec, params, X, outputs):
        with jax.enable_x64(True):
            jac = jax.jacrev(lambda p: self.f(spec, p, jnp.asarray(X))[:, list(outputs)])(_tree(params))
            leaves = [np.asarray(j) for pair in jac for j in pair]        # each (n, K, *shape), W_1, b_1, ...
            return np.concatenate([j.reshape(j.shape[0] * j.shape[1], -1) for j in leaves], axis=1)

    def loss_and_grads(self, spec, params, X, T, loss):
        def L(p):
            Y = self.f(spec, p, jnp.asarray(X))
            if loss == "mse":
                return jnp.mean((Y - T) ** 2)
            return optax.softmax_cross_entropy(Y, jnp.asarray(T)).mean()   # mean over rows
        with jax.enable_x64(True):
            value, g = jax.value_and_grad(L)(_tree(params))
            return float(value), _np(g)

    def optimizer_step(self, name, hyper, params, grads, state):
        if name not in ("sgd", "momentum"):
            raise NotImplementedError(f"optax.sgd has no {name}")
        tx = optax.sgd(hyper["lr"], momentum=hyper.get("momentum"), nesterov=hyper.get("nesterov", False))
        with jax.enable_x64(True):
            p = _tree(params)
            state = tx.init(p) if state is None else state
            updates, state = tx.update(_tree(grads), state, p)           # -lr (g + mu m)
            return _np(optax.apply_updates(p, updates)), state


PORT = OptaxPort()
