"""optax adapter: a JAX MLP trained the optax way, ``optax.sgd`` for the optimizers.

Run it: ``python -m refnet conformance run --port optax_port.py:PORT``.

Layout "refnet" (kernels (n_in, n_out)); float64 through ``jax.enable_x64``
around every call (the process-wide flag is left alone). Derivatives are
``jax.vjp``, ``jax.value_and_grad`` and ``jax.jacrev`` (rows sample-major,
columns W_1 row-major, b_1, W_2, ...: refnet's). Projections are
``g - pinv(J, rtol=rtol) (J g)`` on ``ravel_pytree`` vectors; ``frozen_step``
projects, steps and retracts with Gauss-Newton corrections ``pinv(J) r``. The state is the
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
from jax.flatten_util import ravel_pytree

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

    def _vjp(self, spec, tree, X, G):
        """G^T dY/dtheta, a pytree shaped like tree (X (n, n_0), G (n, n_L))."""
        _, pull = jax.vjp(lambda t: self.f(spec, t, jnp.asarray(X)), tree)
        return pull(jnp.asarray(G))[0]                                   # G^T dY/dtheta

    def vjp(self, spec, params, X, G):
        with jax.enable_x64(True):
            return _np(self._vjp(spec, _tree(params), X, G))

    def jacobian(self, spec, params, X, outputs):
        with jax.enable_x64(True):
            return np.asarray(self._jac(spec, _tree(params), jnp.asarray(X), outputs))

    def _jac(self, spec, tree, X, outputs):
        """J (n K, p): sample-major rows, columns in ravel_pytree order (W_1 row-major, b_1, ...)."""
        flat, unravel = ravel_pytree(tree)
        J = jax.jacrev(lambda v: self.f(spec, unravel(v), X)[:, list(outputs)])(flat)   # (n, K, p)
        return J.reshape(-1, flat.shape[0])

    def _project(self, spec, tree, v, anchors, outputs, rtol):
        """v - J^+ (J v), v a pytree shaped like tree."""
        J = self._jac(spec, tree, anchors, outputs)                       # (m, p)
        flat, unravel = ravel_pytree(v)
        return unravel(flat - jnp.linalg.pinv(J, rtol=rtol) @ (J @ flat))   # g - J^+ J g

    def project_out(self, spec, params, grads, anchors, outputs, rtol):
        with jax.enable_x64(True):
            return _np(self._project(spec, _tree(params), _tree(grads), jnp.asarray(anchors), outputs, rtol))

    def frozen_step(self, spec, params, X, G, freeze, lr, anchors, rtol):
        with jax.enable_x64(True):
            tree, A, K = _tree(params), jnp.asarray(anchors), list(freeze)
            c = lambda t: self.f(spec, t, A)[:, K].reshape(-1)            # frozen outputs (m,), in J's row order
            c0 = c(tree)
            g_perp = self._project(spec, tree, self._vjp(spec, tree, X, G), A, K, rtol)   # dL/dtheta, projected
            tree = jax.tree_util.tree_map(lambda p, d: p - lr * d, tree, g_perp)   # theta - lr g_perp
            tol = 1e-12 * max(1.0, float(jnp.abs(c0).max()))
            for _ in range(20):                                           # Gauss-Newton retraction
                r = c(tree) - c0                                          # (m,)
                if float(jnp.abs(r).max()) <= tol:
                    break
                J = self._jac(spec, tree, A, K)                           # (m, p), sample-major rows like r
                flat, unravel = ravel_pytree(tree)
                tree = unravel(flat - jnp.linalg.pinv(J, rtol=rtol) @ r)   # theta - J^+ r
            else:                                                         # an honest failure, not a wrong answer
                raise ArithmeticError(f"retraction did not converge: max |c - c0| = "
                                      f"{float(jnp.abs(r).max()):.1e} > {tol:.1e}")
            return _np(tree)

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
