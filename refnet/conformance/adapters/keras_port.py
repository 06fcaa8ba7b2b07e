"""Keras 3 adapter on the JAX backend: a ``keras.Sequential`` of ``Dense`` layers and
``keras.optimizers.SGD``.

Run it: ``python -m refnet conformance run --port keras_port.py:PORT``.

Layout "refnet" (a ``Dense`` kernel is (n_in, n_out)). float64 throughout:
float64 layers and variables, and JAX's process-wide x64 flag set on import.

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
* No incoming-averaged momentum (declared in ``optimizers``).
"""
import os

os.environ["KERAS_BACKEND"] = "jax"         # before keras is imported (a port is its own process)
import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)   # float64 (Keras reads the global flag)
import keras  # noqa: E402
import numpy as np  # noqa: E402

if keras.backend.backend() != "jax":
    raise ImportError(f"keras_port needs the JAX backend; keras was imported with {keras.backend.backend()!r}")

FLOATX = "float64"
ACT = {"identity": None, "sigmoid": jax.nn.sigmoid, "tanh": jax.numpy.tanh, "relu": jax.nn.relu,
       "softplus": jax.nn.softplus}            # not keras's names: keras.activations.tanh is float32


class KerasPort:
    name = f"keras {keras.__version__} (keras.optimizers.SGD, JAX backend)"
    layout = "refnet"
    optimizers = ("sgd", "momentum", "nesterov")

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
