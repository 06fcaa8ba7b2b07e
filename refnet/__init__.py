"""refnet: a pure-NumPy (array-API) reference MLP with manual backpropagation,
incoming-averaged momentum and null-space projection that keeps chosen outputs
constant.

Everything public is importable from here: the network (``MLP``, ``Trace``,
``flatten``, ``unflatten``), the optimizers (``SGD``, ``Momentum``,
``AveragedMomentum``, their states, ``average_incoming``, ``averaging_matrix``),
frozen outputs (``project_out``, ``frozen_step``, ``Projected``,
``masked_grads``, ``FrozenInfo``, ``RetractionError``,
``ProjectionAccuracyWarning``), checkpoints (``save``, ``load``) and the
verification kit (``refnet.conformance``). ``refnet.data`` has the shipped
digits; ``refnet.strategies`` (needs hypothesis) the property-test strategies.
The documentation's "Design and notation" page has the math; README.md gives a tour.

Examples
--------
>>> import numpy as np, refnet
>>> net = refnet.MLP([3, 4, 2], activation="tanh")
>>> params = net.init(seed=0)
>>> X, T = np.ones((8, 3)), np.zeros((8, 2))
>>> opt = refnet.AveragedMomentum(lr=0.1, momentum=0.9)
>>> state = opt.init(params)
>>> loss0, grads = net.loss_and_grads(params, X, T)
>>> for _ in range(20):
...     loss, grads = net.loss_and_grads(params, X, T)
...     params, state = opt.step(params, grads, state)
>>> bool(loss < loss0)
True
"""
from .mlp import MLP, Trace, flatten, unflatten

__version__ = "0.1.0"
from .optim import SGD, Momentum, AveragedMomentum, SGDState, MomentumState, average_incoming, averaging_matrix
from .frozen import (FrozenInfo, Projected, ProjectedState, ProjectionAccuracyWarning, RetractionError, frozen_step,
                     masked_grads, project_out)
from . import conformance, data
from .io import save, load
