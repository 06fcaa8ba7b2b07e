"""The original question's TF1 optimizer, its answer's change, and the fix.

Run them: ``python -m refnet conformance run --port tf1_question_port.py:PORT``
(and ``:BAD_PORT``, ``:FIXED_PORT``).

``SGDmomentum`` is the question's code as posted (a ``tf.compat.v1`` optimizer:
``a <- g + mu a``, ``W <- W - lr a``), run eagerly on float64 variables; it is
standard momentum and passes. ``AnswerSGDmomentum`` is the answer's
``_apply_dense``: ``reduce_mean(accumulation, axis=1)`` on a TF kernel of shape
(n_in, n_out) averages each input unit's *outgoing* connections, not the
incoming ones the question asked for, and leaves biases un-averaged. The kit
must fail it (``BAD_PORT``) at ``optimizer_step``, step 2 (step 1 starts from a
zero buffer, where every averaging agrees), on a weight entry. ``FIXED_PORT``
changes only the axis (``axis=0``: a neuron's incoming connections) and passes.

Changes to the posted code, each what a porter must do on TensorFlow 2:
``_resource_apply_dense = _apply_dense`` (TF2 variables are resource variables);
``tf.compat.v1.reduce_mean(..., keep_dims=True)`` for the answer's ``tf.reduce_mean``;
lr and momentum passed as float64 tensors (a Python float becomes a float32
tensor in ``_prepare``: 0.1 -> 0.10000000149, a ~1e-9 difference at step 1).
Layout "refnet" (kernels (n_in, n_out)); a ``forward`` lets the kit verify it.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # TF's start-up banner on stderr
import tensorflow as tf  # noqa: E402
from tensorflow.python.framework import ops  # noqa: E402
from tensorflow.python.ops import control_flow_ops, math_ops, state_ops  # noqa: E402
from tensorflow.python.training import optimizer  # noqa: E402


class SGDmomentum(optimizer.Optimizer):
    """The question's optimizer, as posted."""

    def __init__(self, learning_rate=0.001, momentum_term=0.9, use_locking=False, name="SGDmomentum"):
        super(SGDmomentum, self).__init__(use_locking, name)
        self._lr = learning_rate
        self._mu = momentum_term
        self._lr_t = None
        self._mu_t = None

    def _create_slots(self, var_list):
        for v in var_list:
            self._zeros_slot(v, "a", self._name)

    def _apply_dense(self, grad, var):
        lr_t = math_ops.cast(self._lr_t, var.dtype.base_dtype)
        mu_t = math_ops.cast(self._mu_t, var.dtype.base_dtype)
        accumulation = self.get_slot(var, "a")
        accumulation_update = grad + (mu_t * accumulation)
        accumulation_t = state_ops.assign(accumulation, accumulation_update, use_locking=self._use_locking)
        var_update = lr_t * accumulation_t
        var_t = state_ops.assign_sub(var, var_update, use_locking=self._use_locking)
        return control_flow_ops.group(*[var_t, accumulation_t])

    _resource_apply_dense = _apply_dense                 # TF2: variables are resource variables

    def _prepare(self):
        self._lr_t = ops.convert_to_tensor(self._lr, name="learning_rate")
        self._mu_t = ops.convert_to_tensor(self._mu, name="momentum_term")


class AnswerSGDmomentum(SGDmomentum):
    """The answer's change: average the accumulation before the update."""
    axis = 1                                             # the answer's axis: outgoing connections

    def _apply_dense(self, grad, var):
        lr_t = math_ops.cast(self._lr_t, var.dtype.base_dtype)
        mu_t = math_ops.cast(self._mu_t, var.dtype.base_dtype)
        accumulation = self.get_slot(var, "a")
        param_dims = len(accumulation.get_shape().as_list())
        if param_dims == 2:  # fc layer weights
            accumulation_mean = tf.compat.v1.reduce_mean(accumulation, axis=self.axis, keep_dims=True)
        elif param_dims == 1:  # biases
            accumulation_mean = accumulation
        else:  # cnn? or others
            accumulation_mean = accumulation
        accumulation_update = grad + (mu_t * accumulation_mean)  # broadcasting is supported by tf.add()
        accumulation_t = state_ops.assign(accumulation, accumulation_update, use_locking=self._use_locking)
        var_update = lr_t * accumulation_t
        var_t = state_ops.assign_sub(var, var_update, use_locking=self._use_locking)
        return control_flow_ops.group(*[var_t, accumulation_t])

    _resource_apply_dense = _apply_dense


class FixedSGDmomentum(AnswerSGDmomentum):
    axis = 0                                             # (n_in, n_out) kernel: a neuron's incoming connections


PHI = {"identity": tf.identity, "sigmoid": tf.sigmoid, "tanh": tf.tanh, "relu": tf.nn.relu,
       "softplus": tf.nn.softplus}


def f64(x):
    return tf.constant(x, tf.float64)                    # never a float32 round trip


class QuestionPort:
    """optimizer_step runs ``optimizer_class``; ``variant`` is the one optimizer name it serves."""

    layout = "refnet"

    def __init__(self, name, optimizer_class, optimizers):
        self.name, self.optimizer_class, self.optimizers = name, optimizer_class, optimizers

    def forward(self, spec, params, X):
        A, L = f64(X), len(params)
        for l, (W, b) in enumerate(params):
            A = PHI[spec.activation if l < L - 1 else spec.output_activation](tf.matmul(A, f64(W)) + f64(b))
        return A.numpy()

    def optimizer_step(self, name, hyper, params, grads, state):
        """state: (the optimizer, its variables); step 2 assigns the kit's parameters to them."""
        if name not in self.optimizers or hyper.get("nesterov") or hyper.get("include_bias"):
            raise NotImplementedError(f"{self.optimizer_class.__name__} has no {name} {hyper}")
        flat = [x for W, b in params for x in (W, b)]
        if state is None:
            opt = self.optimizer_class(f64(hyper["lr"]), f64(hyper.get("momentum", 0.0)))   # sgd: mu = 0
            variables = [tf.Variable(f64(x)) for x in flat]
        else:
            opt, variables = state
            for v, x in zip(variables, flat):
                v.assign(f64(x))
        opt.apply_gradients(list(zip([f64(g) for gW, gb in grads for g in (gW, gb)], variables)))
        out = [v.numpy() for v in variables]
        return list(zip(out[::2], out[1::2])), (opt, variables)


PORT = QuestionPort("the question's TF1 SGDmomentum", SGDmomentum, ("sgd", "momentum"))
BAD_PORT = QuestionPort("the answer's SGDmomentum, reduce_mean(axis=1)", AnswerSGDmomentum,
                        ("averaged_momentum",))
FIXED_PORT = QuestionPort("the answer's SGDmomentum fixed: reduce_mean(axis=0)", FixedSGDmomentum,
                          ("averaged_momentum",))
