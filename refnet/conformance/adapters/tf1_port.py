"""TensorFlow 1 adapter: ``tf.compat.v1.train.MomentumOptimizer`` (and
``GradientDescentOptimizer`` for plain SGD), run eagerly on float64 variables;
derivatives with ``tf.GradientTape`` (eager TensorFlow has no ``tf.gradients``).

Run it: ``python -m refnet conformance run --port tf1_port.py:PORT``.

Layout "refnet" (a TF kernel is (n_in, n_out), ``tf.matmul(x, W) + b``). The
Jacobian is ``tape.jacobian`` of ``Y[:, K]``: sample-major rows, columns W_1
row-major, b_1, W_2, ... (refnet's). Projections are ``g - pinv(J) (J g)`` with
``rcond`` = the kit's ``rtol``; ``frozen_step`` projects, steps and retracts
with Gauss-Newton corrections ``pinv(J) r``.

Documented differences (what a correct port does about them):

* TF1 optimizers turn a Python ``learning_rate`` and ``momentum`` into
  float32 tensors before casting them to the variable's dtype: lr = 0.1
  becomes 0.10000000149 and 0.9 becomes 0.89999997615, a ~1e-9 relative
  difference at step 1 that the kit rejects in float64. This port passes
  float64 tensors (``tf.constant(lr, tf.float64)``).
* ``tf.compat.v1.losses.mean_squared_error`` returns float32 for float64
  inputs (its weighted mean casts the losses to float32), so its value and
  the gradients through it are float32-rounded: off by ~1e-8, which the kit
  rejects in float64. This port takes ``tf.reduce_mean`` of the squares;
  ``TF1Port(mse=tf.compat.v1.losses.mean_squared_error)`` shows the failure
  (a float32 result; cast back to float64, its values are still ~1e-8 off).
* No incoming-averaged momentum (declared in ``optimizers``).
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # TF's start-up banner on stderr
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

PHI = {"identity": tf.identity, "sigmoid": tf.sigmoid, "tanh": tf.tanh, "relu": tf.nn.relu,
       "softplus": tf.nn.softplus}


def f64(x):
    return tf.constant(x, tf.float64)                                    # never a float32 round trip


def mean_squared_error(T, Y):
    return tf.reduce_mean(tf.square(Y - T))                              # mean of (Y - T)^2, float64


class TF1Port:
    name = f"TensorFlow {tf.__version__} (tf.compat.v1.train.MomentumOptimizer, tf.GradientTape)"
    layout = "refnet"
    jacobian_rows = "sample_major"      # tape.jacobian of Y[:, K] (n, K, ...) reshaped to (n K, p)
    optimizers = ("sgd", "momentum", "nesterov")

    def __init__(self, mse=None):
        self.mse = mse or mean_squared_error

    @staticmethod
    def f(spec, theta, X):
        """Y = A_L with A_l = phi_l(A_{l-1} W_l + b_l); theta = [W_1, b_1, W_2, ...] float64 tensors."""
        A, L = X, len(theta) // 2
        for l in range(L):
            phi = PHI[spec.activation if l < L - 1 else spec.output_activation]
            A = phi(tf.matmul(A, theta[2 * l]) + theta[2 * l + 1])
        return A

    @staticmethod
    def _theta(pairs):
        return [f64(x) for W, b in pairs for x in (W, b)]

    @staticmethod
    def _pairs(tensors):
        t = [np.asarray(x) for x in tensors]
        return list(zip(t[::2], t[1::2]))

    def forward(self, spec, params, X):
        return self.f(spec, self._theta(params), f64(X)).numpy()

    def _vjp(self, spec, theta, X, G):
        """G^T dY/dtheta as tensors like theta (X (n, n_0), G (n, n_L))."""
        with tf.GradientTape() as tape:
            tape.watch(theta)
            Y = self.f(spec, theta, f64(X))
        return tape.gradient(Y, theta, output_gradients=f64(G))          # G^T dY/dtheta

    def vjp(self, spec, params, X, G):
        return self._pairs(self._vjp(spec, self._theta(params), X, G))

    def loss_and_grads(self, spec, params, X, T, loss):
        theta = self._theta(params)
        with tf.GradientTape() as tape:
            tape.watch(theta)
            Y = self.f(spec, theta, f64(X))
            if loss == "mse":
                L = self.mse(f64(T), Y)
            else:                                                        # probability targets, mean over rows
                L = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=f64(T), logits=Y))
        return L.numpy(), self._pairs(tape.gradient(L, theta))

    def _jac(self, spec, theta, X, outputs):
        """J (n K, p): sample-major rows, columns W_1 row-major, b_1, W_2, ..."""
        with tf.GradientTape(persistent=True) as tape:                  # persistent: one gradient per row
            tape.watch(theta)
            Y = tf.gather(self.f(spec, theta, X), list(outputs), axis=1)  # (n, K)
        jac = tape.jacobian(Y, theta, experimental_use_pfor=False)       # pfor retraces a tf.function per shape
        return tf.concat([tf.reshape(j, (Y.shape[0] * Y.shape[1], -1)) for j in jac], axis=1)

    def jacobian(self, spec, params, X, outputs):
        return self._jac(spec, self._theta(params), f64(X), outputs).numpy()

    @staticmethod
    def _split(flat, like):
        """A flat (p,) vector as tensors shaped like ``like``."""
        return [tf.reshape(x, t.shape) for x, t in zip(tf.split(flat, [int(tf.size(t)) for t in like]), like)]

    def _project(self, spec, theta, v, anchors, outputs, rtol):
        """v - J^+ (J v) on flat vectors (J's columns and v share the parameter order)."""
        J = self._jac(spec, theta, anchors, outputs)                      # (m, p)
        flat = tf.concat([tf.reshape(x, (-1,)) for x in v], axis=0)[:, None]   # (p, 1)
        out = flat - tf.linalg.pinv(J, rcond=f64(rtol)) @ (J @ flat)      # g - J^+ J g
        return self._split(out[:, 0], v)

    def project_out(self, spec, params, grads, anchors, outputs, rtol):
        return self._pairs(self._project(spec, self._theta(params), self._theta(grads), f64(anchors), outputs, rtol))

    def frozen_step(self, spec, params, X, G, freeze, lr, anchors, rtol):
        theta, A, K = self._theta(params), f64(anchors), list(freeze)
        c = lambda th: tf.reshape(tf.gather(self.f(spec, th, A), K, axis=1), (-1,))   # (m,), in J's row order
        c0 = c(theta)
        g_perp = self._project(spec, theta, self._vjp(spec, theta, X, G), A, K, rtol)   # dL/dtheta, projected
        theta = [p - lr * d for p, d in zip(theta, g_perp)]              # theta - lr g_perp
        tol = 1e-12 * max(1.0, float(tf.reduce_max(tf.abs(c0))))
        for _ in range(20):                                               # Gauss-Newton retraction
            r = c(theta) - c0                                             # (m,)
            if float(tf.reduce_max(tf.abs(r))) <= tol:
                break
            J = self._jac(spec, theta, A, K)                              # (m, p), sample-major rows like r
            d = tf.linalg.pinv(J, rcond=f64(rtol)) @ r[:, None]           # J^+ r   (p, 1)
            theta = [p - x for p, x in zip(theta, self._split(d[:, 0], theta))]
        else:                                                             # an honest failure, not a wrong answer
            raise ArithmeticError(f"retraction did not converge: max |c - c0| = "
                                  f"{float(tf.reduce_max(tf.abs(r))):.1e} > {tol:.1e}")
        return self._pairs(theta)

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
