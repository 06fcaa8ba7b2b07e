"""Device-to-host transfers (syncs) per call.

On a GPU every value that comes back to the host (``float(x)``, ``if x``, a copy
to NumPy) waits for all queued work, so a call's cost is bound by its transfers.
They are counted here without a GPU: ``array_api_strict`` arrays stand in for
device arrays and ``backends.count_transfers`` records each conversion to a
Python scalar or a host array (see its docstring).

The contract pinned here, with every validation and finiteness check on:

* ``forward``, ``vjp``, ``loss_and_grads`` (both losses), ``jacobian`` and each
  optimizer's ``update`` and ``step`` make at most one transfer: all values that
  must be finite (inputs, the loss, the new params, softmax targets' rows) are
  reduced to one 0-d value on the device, and only that value comes back.
  The per-array search that names the culprit runs only when it is not finite.
* ``flatten``, ``unflatten``, ``init`` (params and optimizer state) make none.
* A training step makes one: ``opt.train_step(net, params, state, X, T)``
  validates once and reduces what must be finite (X, T, the loss, softmax
  targets' rows and the new params, which any NaN or Inf in params, grads or
  state reaches) to the one 0-d value that comes back. Written as two calls (``loss_and_grads`` then ``opt.step``)
  it makes two: each call raises its own errors, so each needs its own value
  back.
* None of these numbers depends on the size of the network.
* The frozen-output calls decide on the host (rank, route, the fast path's
  certificate, the retraction's residual), so they make a few transfers, but a
  fixed number for any depth and width (``FROZEN_COUNTS``): ``project_out`` 8,
  ``frozen_step`` 11 plus at most 6 per retraction correction, ``Projected.init``
  2 and ``Projected.step`` 13 plus the same per correction.
"""
from __future__ import annotations

import numpy as np
import pytest

import refnet
from backends import ALL, count_transfers

STRICT = ALL["strict"][0]()
NETS = [[3, 5, 4, 2], [7, 16, 16, 16, 5]]          # two depths and widths: counts must not change


def transfers(fn) -> int:
    """The number of device-to-host transfers ``fn()`` makes (array_api_strict inputs)."""
    with count_transfers() as log:
        fn()
    return len(log)


def _problem(sizes, n=6):
    net = refnet.MLP(sizes, activation="tanh")
    rng = np.random.default_rng(0)
    X = STRICT.asarray(rng.standard_normal((n, sizes[0])))
    T = STRICT.asarray(rng.standard_normal((n, sizes[-1])))
    P = STRICT.asarray(rng.dirichlet(np.ones(sizes[-1]), size=n))           # probability rows
    params = net.init(seed=0, like=X)
    return net, params, X, T, P


OPTIMIZERS = [refnet.SGD(0.1), refnet.Momentum(0.1, 0.9), refnet.Momentum(0.1, 0.9, nesterov=True),
              refnet.AveragedMomentum(0.1, 0.9), refnet.AveragedMomentum(0.1, 0.9, include_bias=True)]


def test_the_counter_counts_every_conversion():
    """The helper sees scalar conversions and whole-array copies, and nothing else."""
    import array_api_strict as xs
    a = xs.asarray([1.0, 2.0])
    with count_transfers() as log:
        s = xs.sum(a) * 2.0                       # device work only
        assert float(s) == 6.0 and bool(s > 0) and int(xs.astype(s, xs.int64)) == 6
        np.from_dlpack(a)
    assert log == ["__float__", "__bool__", "__int__", "__dlpack__"]
    assert float(xs.sum(a)) == 3.0                # restored on exit
    assert transfers(lambda: xs.sum(a) + 1.0) == 0


@pytest.mark.parametrize("sizes", NETS, ids=["3-5-4-2", "7-16-16-16-5"])
def test_each_call_makes_at_most_one_transfer(sizes):
    net, params, X, T, P = _problem(sizes)
    _, grads = net.loss_and_grads(params, X, T)
    assert transfers(lambda: net.forward(params, X)) == 1
    assert transfers(lambda: net.vjp(params, X, T)) == 1
    assert transfers(lambda: net.loss_and_grads(params, X, T)) == 1
    assert transfers(lambda: net.loss_and_grads(params, X, P, loss="softmax_cross_entropy")) == 1
    assert transfers(lambda: net.jacobian(params, X, outputs=[0])) == 1
    assert transfers(lambda: refnet.average_incoming(params[0][0])) == 1
    assert transfers(lambda: refnet.unflatten(refnet.flatten(params), like=params)) == 0
    assert transfers(lambda: net.init(seed=1, like=X)) == 0
    for opt in OPTIMIZERS:
        state = opt.init(params)
        assert transfers(lambda: opt.init(params)) == 0, opt
        assert transfers(lambda: opt.update(grads, state, params)) == 1, opt
        assert transfers(lambda: opt.step(params, grads, state)) == 1, opt


@pytest.mark.parametrize("sizes", NETS, ids=["3-5-4-2", "7-16-16-16-5"])
def test_a_fused_training_step_makes_one_transfer(sizes):
    net, params, X, T, P = _problem(sizes)
    for opt in OPTIMIZERS:
        state = opt.init(params)
        assert transfers(lambda: opt.train_step(net, params, state, X, T)) == 1, opt
        assert transfers(lambda: opt.train_step(net, params, state, X, P, loss="softmax_cross_entropy")) == 1, opt


def _fused_step(net, opt, params, state, X, T):
    return opt.train_step(net, params, state, X, T)


def _two_call_step(net, opt, params, state, X, T):
    loss, grads = net.loss_and_grads(params, X, T)
    return (loss, *opt.step(params, grads, state))


@pytest.mark.parametrize("step, per_step", [(_fused_step, 1), (_two_call_step, 2)], ids=["train_step", "two calls"])
def test_a_training_loop_makes_one_transfer_per_step_fused_two_in_two_calls(step, per_step):
    """5 steps: 5 transfers with train_step, 10 with loss_and_grads + step; the loop trains (the loss falls)."""
    net, params, X, T, _ = _problem(NETS[1])
    opt = refnet.Momentum(0.05, 0.9)
    state, losses = opt.init(params), []
    with count_transfers() as log:
        for _ in range(5):
            loss, params, state = step(net, opt, params, state, X, T)
            losses.append(loss)
    assert len(log) == 5 * per_step, log
    assert float(losses[-1]) < float(losses[0])


def test_errors_are_still_found_and_named():
    """The fused check diagnoses: NaN in T names T, a non-probability row names T's rows,
    an overflowing step is a FloatingPointError, also in the fused training step (more
    transfers are fine on failure)."""
    net, params, X, T, P = _problem(NETS[0])
    bad = STRICT.asarray(np.where(np.arange(T.shape[1]) == 1, np.nan, STRICT.numpy(T)))
    with pytest.raises(ValueError, match="T contains NaN or Inf"):
        net.loss_and_grads(params, X, bad)
    with pytest.raises(ValueError, match="T rows must sum to 1"):
        net.loss_and_grads(params, X, P * 2.0, loss="softmax_cross_entropy")
    _, grads = net.loss_and_grads(params, X, T)
    with pytest.raises(FloatingPointError, match="the step overflowed"):
        refnet.SGD(1e308).step(params, [(g * 1e300, gb * 1e300) for g, gb in grads], refnet.SGD(1.0).init(params))
    with pytest.raises(FloatingPointError, match="the step overflowed"):
        refnet.SGD(1e308).train_step(net, params, refnet.SGD(1.0).init(params), X, T * 1e150)


# --------------------------------------------------------------------------- frozen outputs
FROZEN_COUNTS = {"project_out": 8, "frozen_step(retract=False)": 11, "frozen_step(freeze=[])": 4,
                 "Projected.init": 2, "Projected.step(retract=False)": 13}
PER_CORRECTION = 6                  # each retraction correction: residual, its norm, a re-factored J


@pytest.mark.parametrize("method", ["gram", "dense"])
@pytest.mark.parametrize("sizes", NETS, ids=["small", "deep"])
def test_frozen_outputs_make_a_fixed_number_of_transfers(sizes, method):
    """The projection decides on the host (rank, route, certificate), so it needs a few values back,
    but a fixed number, whatever the depth and width: per-layer reductions are stacked first. Each
    retraction correction adds at most PER_CORRECTION (its residual, its norm, the re-factored J)."""
    net, params, X, T, _ = _problem(sizes)
    anchors = X[:3, ...]
    grads = net.vjp(params, X, T)
    opt = refnet.Projected(refnet.Momentum(0.01, 0.9), net, anchors, freeze=[0], retract=False, method=method)
    state = opt.init(params)
    counts = {
        "project_out": transfers(lambda: refnet.project_out(net, params, grads, anchors, [0], method=method)),
        "frozen_step(retract=False)": transfers(lambda: refnet.frozen_step(
            net, params, X, T, freeze=[0], lr=0.01, anchors=anchors, retract=False, method=method)),
        "frozen_step(freeze=[])": transfers(lambda: refnet.frozen_step(net, params, X, T, freeze=[], lr=0.01)),
        "Projected.init": transfers(lambda: opt.init(params)),
        "Projected.step(retract=False)": transfers(lambda: opt.step(params, grads, state)),
    }
    assert counts == FROZEN_COUNTS
    out = []
    n = transfers(lambda: out.append(refnet.frozen_step(net, params, X, T, freeze=[0], lr=0.01, anchors=anchors,
                                                        method=method)[1]))
    its = out[0].iterations
    assert its >= 1 and n <= FROZEN_COUNTS["frozen_step(retract=False)"] + PER_CORRECTION * its, (n, its)
