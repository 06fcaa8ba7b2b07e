"""The hard-case strategies (refnet.strategies.hard_problems) really produce their hard cases: a property test
that passes on a strategy that silently stopped drawing them would prove nothing."""
import numpy as np
from hypothesis import given

from refnet.strategies import hard_problems


@given(hard_problems(kinds=["near_duplicate"]))
def test_near_duplicate_anchors_are_near_duplicates(prob):
    """Anchors in two halves: row i + n is row i moved by one gap in [1e-10, 1e-6] (a power of 10), every pair."""
    A = prob.anchors
    n = A.shape[0] // 2
    assert A.shape[0] == 2 * n and n >= 1
    dist = np.linalg.norm(A[n:] - A[:n], axis=1)
    gap = dist.max()
    assert 0.9e-10 <= gap <= 1.1e-6 and np.allclose(dist, gap, rtol=1e-4, atol=0)
    assert abs(np.log10(gap) - round(np.log10(gap))) < 1e-3
    base = np.linalg.norm(A[:n, None, :] - A[None, :n, :], axis=2) + np.eye(n)
    assert base.min() > 1e3 * gap                                                  # the bases are not duplicates


@given(hard_problems(kinds=["small_inputs", "huge_inputs"]))
def test_small_and_huge_inputs_scale_the_anchors_and_the_batch(prob):
    """abs(x) in [0.1, 2] x 1e-6 or x 1e3, for the batch X and for the anchors."""
    lo, hi = (1e-7, 2e-6) if prob.kind == "small_inputs" else (1e2, 2e3)
    for x in (prob.X, prob.anchors):
        assert lo * (1 - 1e-12) <= np.abs(x).min() and np.abs(x).max() <= hi * (1 + 1e-12)


@given(hard_problems(kinds=["m_close_to_p", "square", "width_one"]))
def test_the_other_kinds_are_what_they_say(prob):
    net = prob.net
    sizes = net.sizes
    if prob.kind == "square":
        assert len(set(sizes)) == 1
    elif prob.kind == "width_one":
        assert 1 in sizes[1:-1]
    elif prob.kind == "m_close_to_p":
        m = len(prob.freeze) * prob.anchors.shape[0]
        assert sorted(prob.freeze) == list(range(sizes[-1])) and abs(m - net.n_params) <= 2 * sizes[-1]
