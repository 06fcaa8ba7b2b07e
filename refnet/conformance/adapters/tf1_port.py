"""TensorFlow 1 adapter: ``tf.compat.v1.train.MomentumOptimizer`` (and
``GradientDescentOptimizer`` for plain SGD), run eagerly on float64 variables.

Run it: ``python -m refnet conformance run --port tf1_port.py:PORT``.

Layout "refnet" (a TF kernel is (n_in, n_out), ``tf.matmul(x, W) + b``).

Documented differences (what a correct port does about them):

* TF1 optimizers turn a Python ``learning_rate`` and ``momentum`` into
  float32 tensors before casting them to the variable's dtype: lr = 0.1
  becomes 0.10000000149 and 0.9 becomes 0.89999997615, a ~1e-9 relative
  difference at step 1 that the kit rejects in float64. This port passes
  float64 tensors (``tf.constant(lr, tf.float64)``).
* No incoming-averaged momentum (declared in ``optimizers``).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # TF's start-up banner on stderr
import tensorflow as tf  # noqa: E402

PHI = {"identity": tf.identity, "sigmoid": tf.sigmoid, "tanh": tf.tanh, "relu": tf.nn.relu,
       "softplus": tf.nn.softplus}


def f64(x):
    return tf.constant(x, tf.float64)                                    # never a float32 round trip


class TF1Port:
    name = f"TensorFlow {tf.__version__} (tf.compat.v1.train.MomentumOptimizer)"
    layout = "refnet"
    optimizers = ("sgd", "momentum", "nesterov")

    def forward(self, spec, params, X):
        A, L = f64(X), len(params)
        for l, (W, b) in enumerate(params):
            A = PHI[spec.activation if l < L - 1 else spec.output_activation](tf.matmul(A, f64(W)) + f64(b))
        return A.numpy()

    @staticmethod
    def make_optimizer(name, hyper):
        if name == "sgd":
            return tf.compat.v1.train.GradientDescentOptimizer(f64(hyper["lr"]))
        if name == "momentum":
            return tf.compat.v1.train.MomentumOptimizer(f64(hyper["lr"]), f64(hyper["momentum"]),
                                                        use_nesterov=hyper["nesterov"])
        raise NotImplementedError(f"TF1 has no {name} optimizer")

    def optimizer_step(self, name, hyper, params, grads, state):
        """state: (the optimizer, its variables); step 2 assigns the kit's parameters to them."""
        flat = [x for W, b in params for x in (W, b)]
        if state is None:
            opt = self.make_optimizer(name, hyper)
            variables = [tf.Variable(f64(x)) for x in flat]
        else:
            opt, variables = state
            for v, x in zip(variables, flat):
                v.assign(f64(x))
        opt.apply_gradients(list(zip([f64(g) for gW, gb in grads for g in (gW, gb)], variables)))
        out = [v.numpy() for v in variables]
        return list(zip(out[::2], out[1::2])), (opt, variables)


PORT = TF1Port()
