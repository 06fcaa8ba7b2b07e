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

from . import _checks as check


def _rng(seed) -> np.random.Generator:
    """``seed`` as a Generator: a Generator is used as given, an int >= 0 seeds a new one."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int >= 0 or a numpy.random.Generator, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be an int >= 0 or a numpy.random.Generator, got {seed}")
    return np.random.default_rng(int(seed))


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

    Raises
    ------
    TypeError
        If ``n`` is not an int, ``noise`` not a real number, or ``seed`` neither an
        int nor a Generator.
    ValueError
        If ``n < 1``, ``noise`` is negative or not finite, or ``seed`` is negative.

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
    n = check.count(n, "n", 1)
    noise_ = check.real(noise, "noise")
    if not 0.0 <= noise_ < float("inf"):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    rng = _rng(seed)
    X = rng.random((n, 3))
    Y = np.stack([X.sum(axis=1), (X ** 2).sum(axis=1)], axis=1)
    return X, Y + noise_ * rng.random((n, 2))


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

    Raises
    ------
    TypeError
        If ``y`` does not hold numbers (booleans are refused: a mask is not labels).
    ValueError
        If ``y`` is not 1-D, or holds a label that is negative, fractional, NaN or
        ``>= n_classes`` (a negative label would otherwise index from the end), or
        ``n_classes < 1``.

    Examples
    --------
    >>> from refnet.data import one_hot
    >>> one_hot([2, 0, 1], 3)
    array([[0., 0., 1.],
           [1., 0., 0.],
           [0., 1., 0.]])
    """
    n_classes = check.count(n_classes, "n_classes", 1)
    labels = np.asarray(y)
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):   # bool is neither
        raise TypeError(f"y must hold integer class labels, got an array of dtype {labels.dtype}")
    if labels.ndim != 1:
        raise ValueError(f"y must be a 1-D array of class labels (n,), got shape {labels.shape}")
    bad = np.flatnonzero(~np.isin(labels, np.arange(n_classes)))   # fractions, NaN, < 0, >= n_classes
    if bad.size:
        more = f" and {bad.size - 1} more" if bad.size > 1 else ""
        raise ValueError(f"y must hold integer class labels 0..{n_classes - 1} (n_classes = {n_classes}), "
                         f"got y[{bad[0]}] = {labels[bad[0]].item()!r}{more}")
    return np.eye(n_classes)[labels.astype(np.int64)]          # T[i] = e_{y_i}


_N_DIGITS = 1797                                                 # images in the shipped file


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
        If ``test_fraction`` leaves the test or the training set empty (it must
        lie in [1/1797, 1796/1797]), or ``seed`` is a negative int.
    TypeError
        If ``test_fraction`` is not a real number, or ``seed`` is neither an int nor a Generator.

    Examples
    --------
    >>> from refnet.data import digits_split, one_hot
    >>> data = digits_split(test_fraction=0.25, seed=0)
    >>> data.X_train.shape, data.X_test.shape
    ((1348, 64), (449, 64))
    >>> one_hot(data.y_train, data.n_classes).shape       # targets for softmax_cross_entropy
    (1348, 10)
    """
    f = check.real(test_fraction, "test_fraction")
    n = _N_DIGITS
    n_test = int(round(f * n)) if 0.0 < f < 1.0 else None
    if n_test is None or not 1 <= n_test < n:
        why = {0: ", which leaves the test set empty", n: ", which leaves the training set empty"}.get(n_test, "")
        raise ValueError(f"test_fraction (the share of the {n} images that goes to the test set) must be "
                         f"between 1/{n} and {n - 1}/{n} (about 0.00056 to 0.99944), got {test_fraction!r}{why}")
    rng = _rng(seed)
    X, y = digits()
    X = X / 16.0                                                # pixel counts 0..16 -> [0, 1]
    order = rng.permutation(len(y))
    test, train = order[:n_test], order[n_test:]
    return Classification("UCI 8x8 handwritten digits", X[train], y[train], X[test], y[test], 10)


# The former name, from when this fell back to synthetic classes without scikit-learn; kept for callers.
digits_or_synthetic = digits_split
