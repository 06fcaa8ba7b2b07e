"""refnet: a pure-NumPy (array-API) reference MLP with manual backpropagation,
incoming-averaged momentum and null-space projection that keeps chosen outputs
constant. The documentation's "Design and notation" page has the math;
README.md gives a tour."""
from .mlp import MLP, Trace, flatten, unflatten

__version__ = "0.1.0"
from .optim import SGD, Momentum, AveragedMomentum, SGDState, MomentumState, average_incoming, averaging_matrix
from .frozen import (FrozenInfo, Projected, ProjectedState, ProjectionAccuracyWarning, RetractionError, frozen_step,
                     masked_grads, project_out)
from . import conformance, data
from .io import save, load
