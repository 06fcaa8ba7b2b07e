"""A JAX port of refnet, written the way a JAX user would (float64 via x64, CPU).

Layout "refnet" (a Flax-style ``{"kernel": W (n_in, n_out), "bias": b}`` per
layer); gradients by ``jax.vjp`` / ``jax.value_and_grad``; the Jacobian by
``jax.jacrev`` of the ``ravel_pytree`` flat vector, so its columns are bias
first (ravel_pytree sorts dict keys: "bias" < "kernel") and its rows
sample-major: the port declares both. Projections use the SVD with the cutoff
the kit passes (``rtol``: singular values at or below rtol s_max are dropped),
not ``jnp.linalg.pinv``'s default. It has no frozen_step (the runner skips it,
saying so). Every method runs inside ``jax.enable_x64(True)``, so the
process-wide x64 flag is left alone.

Compiling is nearly all of a run's time: XLA compiles a program for every new
shape and static argument, 0.1-0.3 s each for these tiny nets with XLA's
default optimizations. So, as a JAX user with many small programs would:

- the functions are ``jax.jit``-compiled per network shape and activations
  (eager JAX would compile every primitive for every shape), with XLA's fast
  compilation options (``FAST_COMPILE``: LLVM without optimization passes,
  XLA's elemental emitters; about 3.5x less compile time, and still XLA's own
  tanh, 8 ulps off where the default build is 6);
- what need not be a shape is not one: the optimizer's nesterov and
  include_bias flags are traced (selected with ``jnp.where``, which is exact),
  and the Jacobian is taken for every output, its rows for the frozen outputs
  picked on the host (``jacobian``) or the others zeroed before the SVD
  (``project_out``: zero rows change neither J's row space nor its nonzero
  singular values), so the number of frozen outputs is not a shape either.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

PHI = {"identity": lambda z: z, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu,
       "softplus": jax.nn.softplus}
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}


def x64(method):
    @functools.wraps(method)
    def wrapped(*args, **kw):
        _bound_caches()
        with jax.enable_x64(True):
            return jax.tree_util.tree_map(np.asarray, method(*args, **kw))
    return wrapped


def jit(static_argnums=()):
    return functools.partial(jax.jit, static_argnums=static_argnums, compiler_options=FAST_COMPILE)


def _bound_caches(limit=300):
    """XLA keeps every compiled program mapped in memory; a deep run (any shape) compiles thousands and
    reaches the kernel's limit on memory maps (vm.max_map_count, 65530: 'LLVM compilation error: Cannot
    allocate memory', then a crash). Past ``limit`` programs, start afresh (the quick profile needs ~100)."""
    if sum(getattr(f, "_cache_size", lambda: 0)() for f in _JITTED) > limit:
        jax.clear_caches()


def _net(acts, tree, X):
    """The MLP: acts = (hidden activation, output activation); tree = [{"kernel", "bias"}, ...]."""
    a = X
    for l, layer in enumerate(tree):
        a = PHI[acts[0] if l < len(tree) - 1 else acts[1]](a @ layer["kernel"] + layer["bias"])
    return a


@jit(static_argnums=0)
def _forward(acts, tree, X):
    return _net(acts, tree, X)


@jit(static_argnums=0)
def _vjp(acts, tree, X, G):
    _, pull = jax.vjp(lambda t: _net(acts, t, X), tree)
    return pull(G)[0]


@jit(static_argnums=(0, 1))
def _loss_and_grads(acts, loss, tree, X, T):
    def L(t):
        Y = _net(acts, t, X)
        if loss == "mse":
            return jnp.mean((Y - T) ** 2)
        return -jnp.mean(jnp.sum(T * jax.nn.log_softmax(Y, axis=1), axis=1))
    return jax.value_and_grad(L)(tree)


@jit(static_argnums=0)
def _jacobian(acts, tree, X):
    """d Y / d theta for every output, (n, n_L, p); columns in ravel_pytree's (bias-first) order."""
    flat, unravel = ravel_pytree(tree)
    return jax.jacrev(lambda v: _net(acts, unravel(v), X))(flat)


@jit()
def _project(J, frozen, grads, rtol):
    """g - V_r V_r^T g: V_r the right singular vectors of J's rows for the frozen outputs (frozen: (n_L,),
    1 for a frozen output, else 0) with s > rtol s_max."""
    n, n_L, p = J.shape
    g, unravel = ravel_pytree(grads)                               # the same (bias-first) order as J's columns
    _, s, Vt = jnp.linalg.svd((J * frozen[:, None]).reshape(n * n_L, p), full_matrices=False)
    V = jnp.where(s > rtol * s.max(), Vt.T, 0.0)                   # V_r (p, r), dropped columns zeroed
    return unravel(g - V @ (V.T @ g))


@jit(static_argnums=0)
def _optimizer_step(name, nesterov, include_bias, lr, mu, tree, g, acc):
    """One step of sgd / momentum / averaged momentum; acc: the buffer (zeros before the first step)."""
    if name == "sgd":
        return jax.tree_util.tree_map(lambda p, d: p - lr * d, tree, g), acc
    if name == "averaged_momentum":
        def mean_in(a):                                            # kernel (n_in, n_out): mean over axis 0
            with_bias = (a["kernel"].sum(axis=0) + a["bias"]) / (a["kernel"].shape[0] + 1)
            m = jnp.where(include_bias, with_bias, a["kernel"].mean(axis=0))
            return {"kernel": jnp.broadcast_to(m, a["kernel"].shape), "bias": jnp.where(include_bias, m, a["bias"])}
        acc = [mean_in(a) for a in acc]
    acc = jax.tree_util.tree_map(lambda d, a: d + mu * a, g, acc)  # a <- g + mu a
    step = jax.tree_util.tree_map(lambda d, a: jnp.where(nesterov, d + mu * a, a), g, acc)
    return jax.tree_util.tree_map(lambda p, u: p - lr * u, tree, step), acc


_JITTED = (_forward, _vjp, _loss_and_grads, _jacobian, _project, _optimizer_step)


class JaxPort:
    name = "JAX (jax.grad, jax.jacrev, x64, jit)"
    layout = "refnet"
    jacobian_rows = "sample_major"          # jacrev of Y (n, n_L): rows Y[:, K] reshaped to (n K, p)
    jacobian_columns = "bias_first"         # ravel_pytree of [{"bias", "kernel"}, ...]

    @staticmethod
    def _tree(params):
        assert all(np.shape(W)[1] == len(b) for W, b in params), "refnet layout: W is (n_in, n_out)"
        return [{"kernel": jnp.asarray(W, jnp.float64), "bias": jnp.asarray(b, jnp.float64)} for W, b in params]

    @staticmethod
    def _pairs(tree):
        return [(layer["kernel"], layer["bias"]) for layer in tree]

    @x64
    def forward(self, spec, params, X):
        return _forward((spec.activation, spec.output_activation), self._tree(params), jnp.asarray(X))

    @x64
    def vjp(self, spec, params, X, G):
        return self._pairs(_vjp((spec.activation, spec.output_activation), self._tree(params), jnp.asarray(X),
                                jnp.asarray(G)))

    @x64
    def loss_and_grads(self, spec, params, X, T, loss):
        value, g = _loss_and_grads((spec.activation, spec.output_activation), loss, self._tree(params),
                                   jnp.asarray(X), jnp.asarray(T))
        return value, self._pairs(g)

    @x64
    def jacobian(self, spec, params, X, outputs):
        J = np.asarray(_jacobian((spec.activation, spec.output_activation), self._tree(params), jnp.asarray(X)))
        return J[:, list(outputs)].reshape(-1, J.shape[2])                 # (n K, p), sample-major rows

    @x64
    def project_out(self, spec, params, grads, anchors, outputs, rtol):
        J = _jacobian((spec.activation, spec.output_activation), self._tree(params), jnp.asarray(anchors))
        frozen = np.isin(np.arange(J.shape[1]), list(outputs)).astype(np.float64)
        return self._pairs(_project(J, frozen, self._tree(grads), rtol))

    @x64
    def optimizer_step(self, name, hyper, params, grads, state):
        tree = self._tree(params)
        acc = state if state is not None else jax.tree_util.tree_map(np.zeros_like, tree)
        new, acc = _optimizer_step(name, bool(hyper.get("nesterov")), bool(hyper.get("include_bias")),
                                   hyper["lr"], hyper.get("momentum", 0.0), tree, self._tree(grads), acc)
        return self._pairs(new), acc
