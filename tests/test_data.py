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


# ---------------------------------------------------------------------- inputs checked
def test_data_is_reachable_after_import_refnet():
    import subprocess
    code = "import refnet; d = refnet.data.digits_split(seed=0); print(d.X_train.shape)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1348, 64)"


def test_one_hot_is_the_identity_rows():
    from refnet.data import one_hot
    T = one_hot([2, 0, 1, 2], 3)
    assert T.dtype == np.float64 and T.tolist() == [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert one_hot(np.array([1.0, 0.0]), 2).tolist() == [[0, 1], [1, 0]]       # integral floats are labels
    assert one_hot(np.array([], dtype=np.int64), 4).shape == (0, 4)


BAD_LABELS = [
    ([-1], 3, ValueError, r"labels 0\.\.2 .*y\[0\] = -1"),                   # would silently be class 2
    ([0, 3], 3, ValueError, r"y\[1\] = 3"),                                  # out of range
    ([0, 5, 7], 3, ValueError, r"y\[1\] = 5 and 1 more"),
    ([0.5, 1], 2, ValueError, r"y\[0\] = 0\.5"),                             # non-integral
    ([float("nan")], 2, ValueError, r"y\[0\] = nan"),
    ([True, False], 2, TypeError, r"y must hold integer class labels, got an array of dtype bool"),
    (["1"], 2, TypeError, r"y must hold integer class labels.*<U1"),
    ([[0, 1]], 2, ValueError, r"y must be a 1-D array .*shape \(1, 2\)"),
    (1, 2, ValueError, r"y must be a 1-D array .*shape \(\)"),
    ([0], 0, ValueError, r"n_classes must be an integer >= 1"),
    ([0], 2.0, TypeError, r"n_classes must be an integer"),
]


@pytest.mark.parametrize("y, n_classes, error, message", BAD_LABELS)
def test_one_hot_refuses_bad_labels(y, n_classes, error, message):
    from refnet.data import one_hot
    with pytest.raises(error, match=message):
        one_hot(y, n_classes)


@pytest.mark.parametrize("f, fragment", [(0.9999, "which leaves the training set empty"),
                                         (0.0002, "which leaves the test set empty"),
                                         (float("nan"), "got nan")])
def test_split_refuses_a_fraction_that_leaves_a_set_empty(f, fragment):
    with pytest.raises(ValueError, match=r"test_fraction .* between 1/1797 and 1796/1797") as info:
        digits_split(test_fraction=f)
    assert fragment in str(info.value)


def test_split_accepts_the_extreme_fractions():
    assert len(digits_split(test_fraction=1 / 1797).y_test) == 1
    assert len(digits_split(test_fraction=1796 / 1797).y_train) == 1


def test_split_refuses_a_fraction_that_is_not_a_number():
    with pytest.raises(TypeError, match="test_fraction must be a real number, got str"):
        digits_split(test_fraction="0.25")


BAD_SEEDS = [(-1, ValueError, "got -1"), (1.5, TypeError, "got float"), (None, TypeError, "got NoneType"),
             (True, TypeError, "got bool"), ("0", TypeError, "got str")]


@pytest.mark.parametrize("seed, error, fragment", BAD_SEEDS)
def test_bad_seeds_are_named(seed, error, fragment):
    from refnet.data import seed_regression
    for call in (lambda: digits_split(seed=seed), lambda: seed_regression(seed=seed)):
        with pytest.raises(error, match=r"seed must be an int >= 0 or a numpy\.random\.Generator") as info:
            call()
        assert fragment in str(info.value)


def test_seed_regression_checks_n_and_noise():
    from refnet.data import seed_regression
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        seed_regression(n=0)
    for noise in (-0.1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
            seed_regression(noise=noise)
    X, Y = seed_regression(n=5, seed=np.int64(3), noise=0.0)              # NumPy ints are seeds too
    assert np.allclose(Y, np.stack([X.sum(axis=1), (X ** 2).sum(axis=1)], axis=1), rtol=0, atol=1e-15)
