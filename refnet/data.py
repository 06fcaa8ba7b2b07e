"""Built-in data sets (no downloads). Host-side NumPy: data is made, then moved."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


def seed_regression(n: int = 8, seed=0, noise: float = 0.01):
    """The seed-1 data set: x in [0, 1]^3, y1 = x1 + x2 + x3, y2 = x1^2 + x2^2 + x3^2,
    plus ``noise`` * Uniform[0, 1) on each target. Returns X (n, 3), Y (n, 2), float64."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    X = rng.random((n, 3))
    Y = np.stack([X.sum(axis=1), (X ** 2).sum(axis=1)], axis=1)
    return X, Y + noise * rng.random((n, 2))


class Classification(NamedTuple):
    """A train/test split: X (n, d) float64 features, y (n,) int64 labels in [0, n_classes)."""
    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int


def one_hot(y, n_classes: int) -> np.ndarray:
    """Labels (n,) -> one-hot targets T (n, n_classes), float64."""
    return np.eye(n_classes)[np.asarray(y)]                     # T[i] = e_{y_i}


def synthetic_classification(n: int = 1797, n_features: int = 64, n_classes: int = 10, seed=0,
                             noise: float = 3.0):
    """Gaussian classes: y uniform, x = mu_y + noise * N(0, I) with class means mu_k ~ N(0, I).

    The built-in stand-in for the digits data when scikit-learn is absent (same
    default shape: 1797 samples, 64 features, 10 classes). Returns X (n, n_features)
    float64 and y (n,) int64.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    means = rng.standard_normal((n_classes, n_features))       # mu_k, one row per class
    y = rng.integers(0, n_classes, n)
    return means[y] + noise * rng.standard_normal((n, n_features)), y


def digits_or_synthetic(test_fraction: float = 0.25, seed=0) -> Classification:
    """scikit-learn's bundled 8x8 digits (no download; pixels scaled to [0, 1]) when
    scikit-learn is installed, else :func:`synthetic_classification`. The split is a
    random permutation drawn from ``seed``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        X, y = synthetic_classification(seed=np.random.default_rng([0, 2]))
        name = "synthetic Gaussian classes (scikit-learn not installed)"
    else:
        digits = load_digits()
        X, y = digits.data / 16.0, digits.target                # pixel intensities 0..16 -> [0, 1]
        name = "scikit-learn digits (8x8)"
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    return Classification(name, X[train], y[train].astype(np.int64), X[test], y[test].astype(np.int64),
                          int(y.max()) + 1)
