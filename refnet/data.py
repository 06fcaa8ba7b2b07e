"""Built-in data sets (no downloads). Host-side NumPy: data is made, then moved.

:func:`digits` and :func:`digits_split` give the UCI 8x8 handwritten digits
that ship with refnet; :func:`seed_regression` the small two-output regression
problem of the tutorials; :func:`one_hot` turns labels into targets.
"""
from __future__ import annotations

import gzip
from importlib import resources
from typing import NamedTuple

import numpy as np


def seed_regression(n: int = 8, seed=0, noise: float = 0.01):
    r"""The two-output regression problem of the tutorials on frozen outputs.

    Inputs :math:`x \in [0, 1)^3` and targets

    .. math::

        y_0 = x_0 + x_1 + x_2 + \epsilon_0, \qquad
        y_1 = x_0^2 + x_1^2 + x_2^2 + \epsilon_1, \qquad
        \epsilon_k \sim \text{noise} \cdot \mathcal{U}[0, 1).

    Parameters
    ----------
    n : int, default 8
        The number of samples.
    seed : int or numpy.random.Generator, default 0
    noise : float, default 0.01
        The scale of the uniform noise added to each target.

    Returns
    -------
    X : ndarray, shape (n, 3), float64
    Y : ndarray, shape (n, 2), float64

    Examples
    --------
    >>> import numpy as np
    >>> from refnet.data import seed_regression
    >>> X, Y = seed_regression(n=4, seed=0, noise=0.0)
    >>> X.shape, Y.shape
    ((4, 3), (4, 2))
    >>> bool(np.allclose(Y[:, 0], X.sum(axis=1))), bool(np.allclose(Y[:, 1], (X ** 2).sum(axis=1)))
    (True, True)
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    X = rng.random((n, 3))
    Y = np.stack([X.sum(axis=1), (X ** 2).sum(axis=1)], axis=1)
    return X, Y + noise * rng.random((n, 2))


class Classification(NamedTuple):
    """A train/test split of a classification data set (a NamedTuple).

    Attributes
    ----------
    name : str
    X_train : ndarray, shape (n_train, d), float64
    y_train : ndarray, shape (n_train,), int64
        Labels in ``[0, n_classes)``.
    X_test : ndarray, shape (n_test, d), float64
    y_test : ndarray, shape (n_test,), int64
    n_classes : int

    Examples
    --------
    >>> from refnet.data import digits_split
    >>> data = digits_split()
    >>> data.X_train.shape, data.y_test.shape, data.n_classes
    ((1348, 64), (449,), 10)
    """
    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int


def one_hot(y, n_classes: int) -> np.ndarray:
    """One-hot targets from integer labels: ``T[i, k] = 1`` if ``y[i] == k``, else 0.

    Parameters
    ----------
    y : array_like of int, shape (n,)
        Labels in ``[0, n_classes)``.
    n_classes : int

    Returns
    -------
    T : ndarray, shape (n, n_classes), float64

    Examples
    --------
    >>> from refnet.data import one_hot
    >>> one_hot([2, 0, 1], 3)
    array([[0., 0., 1.],
           [1., 0., 0.],
           [0., 1., 0.]])
    """
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

    Examples
    --------
    >>> import numpy as np
    >>> from refnet.data import digits
    >>> X, y = digits()
    >>> X.shape, y.shape, float(X.max())
    ((1797, 64), (1797,), 16.0)
    >>> np.bincount(y)
    array([178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
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

    Parameters
    ----------
    test_fraction : float, default 0.25
        Strictly between 0 and 1.
    seed : int or numpy.random.Generator, default 0

    Returns
    -------
    Classification
        name "UCI 8x8 handwritten digits"; X_train (1348, 64) and X_test (449, 64)
        float64 in [0, 1] for the default 0.25; y_train, y_test int64 in 0..9; n_classes 10.

    Raises
    ------
    ValueError
        If ``test_fraction`` is not strictly between 0 and 1.

    Examples
    --------
    >>> from refnet.data import digits_split, one_hot
    >>> data = digits_split(test_fraction=0.25, seed=0)
    >>> data.X_train.shape, data.X_test.shape
    ((1348, 64), (449, 64))
    >>> one_hot(data.y_train, data.n_classes).shape       # targets for softmax_cross_entropy
    (1348, 10)
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
