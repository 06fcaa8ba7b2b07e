"""Built-in data sets (no downloads). Host-side NumPy: data is made, then moved."""
from __future__ import annotations

import numpy as np


def seed_regression(n: int = 8, seed=0, noise: float = 0.01):
    """The seed-1 data set: x in [0, 1]^3, y1 = x1 + x2 + x3, y2 = x1^2 + x2^2 + x3^2,
    plus ``noise`` * Uniform[0, 1) on each target. Returns X (n, 3), Y (n, 2), float64."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    X = rng.random((n, 3))
    Y = np.stack([X.sum(axis=1), (X ** 2).sum(axis=1)], axis=1)
    return X, Y + noise * rng.random((n, 2))
