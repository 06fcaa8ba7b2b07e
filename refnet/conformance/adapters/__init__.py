"""Adapters: ports of real libraries that the kit checks (and one known-bad port).

Each file is self-contained (absolute imports only) and exposes ``PORT``, so it
runs from a folder that holds only that file::

    python -m refnet conformance run --port torch_port.py:PORT

torch_port (nn.Sequential, torch.func, torch.optim.SGD, pinv with rtol,
frozen_step), optax_port (optax.sgd; jax.vjp, jax.grad, jax.jacrev, pinv with
rtol, frozen_step),
keras_port (keras.optimizers.SGD; derivatives of model.stateless_call on the
JAX backend), tf1_port (tf.compat.v1.train.MomentumOptimizer; tf.GradientTape
derivatives, pinv with rcond, frozen_step) and
tf1_question_port (the original question's TF1 ``SGDmomentum``; ``BAD_PORT``:
its answer's ``reduce_mean(accumulation, axis=1)``, outgoing averaging, which
the kit must fail). Importing this package imports none of the libraries;
``PATHS`` names the files.
"""
import pathlib

HERE = pathlib.Path(__file__).parent
PATHS = {p.stem: p for p in sorted(HERE.glob("*_port.py"))}
