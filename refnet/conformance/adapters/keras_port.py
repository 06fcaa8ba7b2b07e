"""Keras 3 adapter on the JAX backend: a ``keras.Sequential`` of ``Dense`` layers and
``keras.optimizers.SGD``; derivatives with ``jax.grad`` / ``jax.vjp`` / ``jax.jacrev``
of ``model.stateless_call`` (the Keras 3 way to differentiate a model on JAX).

Run it: ``python -m refnet conformance run --port keras_port.py:PORT``.

Layout "refnet" (a ``Dense`` kernel is (n_in, n_out)). float64 throughout:
float64 layers and variables, and JAX's process-wide x64 flag set on import.
The Jacobian's rows are sample-major (jacrev of ``Y[:, K]``), its columns
``model.trainable_variables``' order: kernel_1 row-major, bias_1, ... (refnet's).

Documented differences (what a correct port does about them):

* Keras keeps the learning rate in a variable of ``keras.config.floatx()``,
  float32 by default: lr = 0.1 becomes 0.10000000149, a ~1e-9 relative
  difference at step 1 that the kit rejects in float64. This port sets
  ``floatx`` to float64 while it builds the optimizer (``FLOATX``).
* Keras's SGD keeps ``m = mu m - lr g`` and adds it (``W + m``) where refnet
  keeps ``M = g + mu M`` and subtracts ``lr M``: the same update, rounded
  differently, well inside the kit's tolerance.
* On the TensorFlow backend ``ops.cast(momentum, float64)`` converts the
  Python float to a float32 tensor first (0.9 -> 0.89999997615); the JAX
  backend used here converts it exactly.
* Keras's promotion rules turn 64-bit results into 32-bit ones ("to be
  aligned with JAX's default"): ``keras.backend.result_type("float64",
  "float64")`` is "float32", so ``activation="tanh"`` on a float64 Dense
  layer returns float32 (forward off by 2.8e-9 on a 1-1-1 net). This port
  passes JAX's own functions as the activations (``ACT``).
* For the same reason ``keras.ops.mean`` of float64 values sums in float32
  (and returns float64), so ``keras.losses.MeanSquaredError(dtype="float64")``
  is ~1e-8 off, which the kit rejects. This port takes ``jnp.mean`` of the
  squares; ``KerasPort(mse=keras.losses.MeanSquaredError(dtype="float64"))``
  shows the failure. ``keras.losses.categorical_crossentropy`` (from logits)
  is float64 throughout and is used as is.
* No incoming-averaged momentum (declared in ``optimizers``).
"""
import os

os.environ["KERAS_BACKEND"] = "jax"         # before keras is imported (a port is its own process)
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)   # float64 (Keras reads the global flag)
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

if keras.backend.backend() != "jax":
    raise ImportError(f"keras_port needs the JAX backend; keras was imported with {keras.backend.backend()!r}")

FLOATX = "float64"
ACT = {"identity": None, "sigmoid": jax.nn.sigmoid, "tanh": jax.numpy.tanh, "relu": jax.nn.relu,
       "softplus": jax.nn.softplus}            # not keras's names: keras.activations.tanh is float32


def mean_squared_error(T, Y):
    return jnp.mean(jnp.square(Y - T))                                   # mean of (Y - T)^2, float64


class KerasPort:
    name = f"keras {keras.__version__} (keras.optimizers.SGD, stateless_call, JAX backend)"
    layout = "refnet"
    jacobian_rows = "sample_major"      # jacrev of Y[:, K] (n, K, ...) reshaped to (n K, p)
    optimizers = ("sgd", "momentum", "nesterov")

    def __init__(self, mse=None):
        self.mse = mse or mean_squared_error

    @staticmethod
    def model(spec, params):
        """keras.Sequential of float64 Dense layers holding ``params``."""
        L = len(params)
        model = keras.Sequential([keras.Input((spec.sizes[0],), dtype="float64")] + [
            keras.layers.Dense(spec.sizes[l + 1], dtype="float64",
                               activation=ACT[spec.activation if l < L - 1 else spec.output_activation])
            for l in range(L)])
        for layer, (W, b) in zip(model.layers, params):
            layer.set_weights([np.asarray(W), np.asarray(b)])
        return model

    def forward(self, spec, params, X):
        return np.asarray(self.model(spec, params)(np.asarray(X)))

    def _call(self, spec, params):
        """(f(theta, X) -> Y, theta = [kernel_1, bias_1, kernel_2, ...] as JAX arrays)."""
        model = self.model(spec, params)
        return (lambda theta, X: model.stateless_call(theta, [], X)[0]), [v.value for v in model.trainable_variables]

    @staticmethod
    def _pairs(arrays):
        t = [np.asarray(x) for x in arrays]
        return list(zip(t[::2], t[1::2]))

    def vjp(self, spec, params, X, G):
        f, theta = self._call(spec, params)
        _, pull = jax.vjp(lambda th: f(th, jnp.asarray(X)), theta)
        return self._pairs(pull(jnp.asarray(G))[0])                     # G^T dY/dtheta

    def loss_and_grads(self, spec, params, X, T, loss):
        f, theta = self._call(spec, params)

        def L(th):
            Y = f(th, jnp.asarray(X))
            if loss == "mse":
                return self.mse(jnp.asarray(T), Y)
            return jnp.mean(keras.losses.categorical_crossentropy(jnp.asarray(T), Y, from_logits=True))
        value, g = jax.value_and_grad(L)(theta)
        return np.asarray(value), self._pairs(g)

    def jacobian(self, spec, params, X, outputs):
        f, theta = self._call(spec, params)
        jac = jax.jacrev(lambda th: f(th, jnp.asarray(X))[:, list(outputs)])(theta)   # each (n, K, *shape)
        return np.concatenate([np.asarray(j).reshape(j.shape[0] * j.shape[1], -1) for j in jac], axis=1)

    def optimizer_step(self, name, hyper, params, grads, state):
        """state: (the optimizer, its variables); step 2 assigns the kit's parameters to them."""
        if name not in ("sgd", "momentum"):
            raise NotImplementedError(f"keras.optimizers.SGD has no {name}")
        if state is None:
            old = keras.config.floatx()
            keras.config.set_floatx(FLOATX)                              # lr is a floatx variable
            try:
                opt = keras.optimizers.SGD(hyper["lr"], momentum=hyper.get("momentum", 0.0),
                                           nesterov=hyper.get("nesterov", False))
            finally:
                keras.config.set_floatx(old)
            variables = [keras.Variable(np.asarray(x), dtype="float64") for W, b in params for x in (W, b)]
            opt.build(variables)
        else:
            opt, variables = state
            for v, x in zip(variables, (x for W, b in params for x in (W, b))):
                v.assign(np.asarray(x))                                  # the kit's parameters
        opt.apply_gradients(zip([np.asarray(g) for gW, gb in grads for g in (gW, gb)], variables))
        out = [np.asarray(v.value) for v in variables]
        return list(zip(out[::2], out[1::2])), (opt, variables)


PORT = KerasPort()
