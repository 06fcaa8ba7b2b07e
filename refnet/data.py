"""Built-in data sets (no downloads). Host-side NumPy: data is made, then moved."""
from __future__ import annotations

import gzip
from importlib import resources
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


def digits():
    """The UCI 8x8 handwritten digits, shipped with refnet (no download, NumPy only).

    1797 images of the digits 0..9 written by 13 people: the test split of
    "Optical Recognition of Handwritten Digits" (E. Alpaydin, C. Kaynak, 1998; UCI
    Machine Learning Repository, CC BY 4.0, https://doi.org/10.24432/C50P49);
    provenance and attribution in ``refnet/datasets/README.md``. Each image is a
    32x32 bitmap cut into 4x4 blocks, each pixel of the 8x8 image counting the
    "on" pixels of its block.

    Returns
    -------
    X : ndarray, shape (1797, 64), float64
        Pixel counts 0..16; row i is image i in row-major order (``X[i].reshape(8, 8)``).
    y : ndarray, shape (1797,), int64
        The digit shown, 0..9 (174 to 183 images each).

    New arrays on every call: the caller may change them.
    """
    path = resources.files("refnet") / "datasets" / "digits.csv.gz"
    with path.open("rb") as raw, gzip.open(raw, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.int64)      # (1797, 65): 64 pixels, then the label
    return table[:, :64].astype(np.float64), table[:, 64]


def digits_split(test_fraction: float = 0.25, seed=0) -> Classification:
    """A random train/test split of :func:`digits`, pixels scaled to [0, 1].

    The split is a permutation drawn from ``seed`` (an int or a
    ``numpy.random.Generator``): the first ``round(test_fraction * 1797)``
    images of it are the test set, the rest the training set.

    Returns
    -------
    Classification
        name "UCI 8x8 handwritten digits"; X_train (1348, 64) and X_test (449, 64)
        float64 in [0, 1] for the default 0.25; y_train, y_test int64 in 0..9; n_classes 10.

    Raises
    ------
    ValueError
        If ``test_fraction`` is not strictly between 0 and 1.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    X, y = digits()
    X = X / 16.0                                                # pixel counts 0..16 -> [0, 1]
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    order = rng.permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    return Classification("UCI 8x8 handwritten digits", X[train], y[train], X[test], y[test], 10)


# The former name, from when this fell back to synthetic classes without scikit-learn; kept for callers.
digits_or_synthetic = digits_split
