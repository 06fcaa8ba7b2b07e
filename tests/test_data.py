"""The shipped digits data (refnet/datasets/digits.csv.gz) and its loaders.

Oracles: the file's sha256 (recorded in refnet/datasets/README.md when it was
copied from scikit-learn 1.9.1), the class counts that UCI documents for the
test split (optdigits.names), and the first and last images, read off the file (``zcat | head -1``, ``tail -1``).
"""
import hashlib
import sys
from importlib import resources

import numpy as np
import pytest

from refnet.data import digits, digits_or_synthetic, digits_split

SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
UCI_TEST_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]   # digits 0..9 in optdigits.tes
FIRST_IMAGE = [[0, 0, 5, 13, 9, 1, 0, 0],                              # a 0
               [0, 0, 13, 15, 10, 15, 5, 0],
               [0, 3, 15, 2, 0, 11, 8, 0],
               [0, 4, 12, 0, 0, 8, 8, 0],
               [0, 5, 8, 0, 0, 9, 8, 0],
               [0, 4, 11, 0, 1, 12, 7, 0],
               [0, 2, 14, 5, 10, 12, 0, 0],
               [0, 0, 6, 13, 10, 0, 0, 0]]
LAST_IMAGE = [[0, 0, 10, 14, 8, 1, 0, 0],                              # an 8
              [0, 2, 16, 14, 6, 1, 0, 0],
              [0, 0, 15, 15, 8, 15, 0, 0],
              [0, 0, 5, 16, 16, 10, 0, 0],
              [0, 0, 12, 15, 15, 12, 0, 0],
              [0, 4, 16, 6, 4, 16, 6, 0],
              [0, 8, 16, 10, 8, 16, 8, 0],
              [0, 1, 8, 12, 14, 12, 1, 0]]


def test_shipped_file_is_the_recorded_one():
    data = (resources.files("refnet") / "datasets" / "digits.csv.gz").read_bytes()
    assert hashlib.sha256(data).hexdigest() == SHA256


def test_attribution_ships_next_to_the_data():
    text = (resources.files("refnet") / "datasets" / "README.md").read_text()
    for fact in ("Alpaydin", "Kaynak", "UCI Machine Learning Repository", "CC BY 4.0", "10.24432/C50P49", SHA256):
        assert fact in text


def test_digits_shape_dtype_values():
    X, y = digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert np.array_equal(X, np.round(X)) and X.min() == 0 and X.max() == 16
    assert np.bincount(y, minlength=10).tolist() == UCI_TEST_COUNTS


def test_digits_first_and_last_sample():
    X, y = digits()
    assert X[0].reshape(8, 8).tolist() == FIRST_IMAGE and y[0] == 0
    assert y[:10].tolist() == list(range(10))           # the file starts with one image of each digit, in order
    assert X[-1].reshape(8, 8).tolist() == LAST_IMAGE and y[-1] == 8


def test_digits_returns_new_arrays():
    X, y = digits()
    X[0] = -1.0
    y[0] = 9
    X2, y2 = digits()
    assert X2[0].reshape(8, 8).tolist() == FIRST_IMAGE and y2[0] == 0


def test_split_partitions_the_scaled_digits():
    X, y = digits()
    d = digits_split(seed=0)
    assert d.name == "UCI 8x8 handwritten digits" and d.n_classes == 10
    assert d.X_train.shape == (1348, 64) and d.X_test.shape == (449, 64)
    assert d.y_train.dtype == d.y_test.dtype == np.int64
    Xs = np.concatenate([d.X_train, d.X_test]) * 16.0   # back to pixel counts
    ys = np.concatenate([d.y_train, d.y_test])
    assert d.X_train.min() == 0.0 and max(d.X_train.max(), d.X_test.max()) == 1.0
    # every image exactly once: same rows as the file, in some order
    key = lambda A, b: sorted(map(tuple, np.column_stack([A, b]).tolist()))
    assert key(Xs, ys) == key(X, y)


def test_split_is_seeded():
    a, b, c = digits_split(seed=0), digits_split(seed=0), digits_split(seed=1)
    assert np.array_equal(a.y_test, b.y_test) and np.array_equal(a.X_train, b.X_train)
    assert not np.array_equal(a.y_test, c.y_test)
    g = digits_split(seed=np.random.default_rng(0))
    assert np.array_equal(g.X_test, a.X_test)


@pytest.mark.parametrize("f", [0.0, 1.0, -0.25, 1.5])
def test_split_rejects_a_test_fraction_outside_0_1(f):
    with pytest.raises(ValueError, match="test_fraction"):
        digits_split(test_fraction=f)


def test_real_digits_without_scikit_learn(monkeypatch):
    """The old loader fell back to synthetic classes when scikit-learn was absent."""
    monkeypatch.setitem(sys.modules, "sklearn", None)               # import sklearn -> ImportError
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    d = digits_or_synthetic(seed=0)
    assert d.name == "UCI 8x8 handwritten digits"
    assert np.array_equal(d.X_test, digits_split(seed=0).X_test)
