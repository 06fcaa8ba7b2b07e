"""A catalogue of bad inputs to every public function (issue 7).

Each row: an id, a builder ``env -> (function, args, kwargs)``, the exception
type the contract documents (design.md section 5, tutorials/errors.md: ValueError
for bad values and shapes, TypeError for wrong kinds, FloatingPointError for a
result that would hold NaN/Inf) and a message fragment that names the argument.

Failures change nothing: before each call every array reachable from the
environment (params, grads, data, optimizer states, optimizer objects) and from
the call's own arguments is copied; afterwards each must be bit-identical and
every container must still hold the same objects.
"""
from __future__ import annotations

import types
import warnings
from typing import NamedTuple

import array_api_strict as xs
import numpy as np
import pytest

import refnet
from backends import ALL, jax_x64
from refnet.backend import is_array, to_numpy


# ------------------------------------------------------------------ environment
def make_env():
    """Fresh valid objects; a case breaks exactly one thing about them."""
    e = types.SimpleNamespace()
    e.net = refnet.MLP([3, 4, 2], activation="tanh")
    e.P = e.net.init(seed=0)
    rng = np.random.default_rng(1)
    e.X = rng.uniform(-1.0, 1.0, (5, 3))
    e.G = rng.standard_normal((5, 2))
    e.T = rng.standard_normal((5, 2))
    e.Tp = np.eye(2)[[0, 1, 1, 0, 1]]                                  # one-hot targets
    e.grads = e.net.vjp(e.P, e.X, e.G)
    e.sgd, e.mom, e.avg = refnet.SGD(0.1), refnet.Momentum(0.1, 0.9), refnet.AveragedMomentum(0.1, 0.9)
    e.s_sgd = e.sgd.init(e.P)
    _, e.s_mom = e.mom.step(e.P, e.grads, e.mom.init(e.P))                # non-zero accumulation
    e.s_avg = e.avg.init(e.P)
    e.proj = refnet.Projected(refnet.Momentum(0.1, 0.9), e.net, e.X, freeze=[0])
    _, e.s_proj = e.proj.step(e.P, e.grads, e.proj.init(e.P))
    e.net2 = refnet.MLP([3, 5, 2], activation="tanh")                   # another parameter structure
    e.P2 = e.net2.init(seed=1)
    e.P32 = [(W.astype(np.float32), b.astype(np.float32)) for W, b in e.P]
    e.Ps = [(xs.asarray(W), xs.asarray(b)) for W, b in e.P]                # array_api_strict copies
    return e


def call(f, *args, **kwargs):
    return f, args, kwargs


def with_value(a, value, index=(0, 0)):
    """A copy of ``a`` with one entry set to ``value`` (NaN, Inf, ...)."""
    a = np.array(a, copy=True)
    a[index[: a.ndim]] = value
    return a


def poison(params, l, j, value=np.nan):
    """A copy of the params list whose layer l entry j (0: W, 1: b) holds ``value``."""
    out = [list(layer) for layer in params]
    out[l][j] = with_value(out[l][j], value)
    return [tuple(layer) for layer in out]


def retype(params, l, j, dtype):
    out = [list(layer) for layer in params]
    out[l][j] = out[l][j].astype(dtype)
    return [tuple(layer) for layer in out]


class _Sub(np.ndarray):
    """An ndarray subclass of the user's own (refnet cannot know its arithmetic)."""


class Case(NamedTuple):
    id: str
    build: object          # env -> (f, args, kwargs)
    exc: type
    fragment: object       # str (or tuple of str) that must appear in the message; names the argument


V, T_, F = ValueError, TypeError, FloatingPointError
proj_opt = lambda e, **kw: refnet.Projected(e.sgd, e.net, e.X, **kw)

CASES = [
    # ---- MLP(...) -------------------------------------------------------------------------
    Case("mlp-sizes-zero", lambda e: call(refnet.MLP, [3, 0, 2]), V, "sizes[1] must be an integer >= 1"),
    Case("mlp-sizes-negative", lambda e: call(refnet.MLP, [3, -4, 2]), V, "sizes[1]"),
    Case("mlp-sizes-single", lambda e: call(refnet.MLP, [3]), V, "sizes must list at least two"),
    Case("mlp-sizes-empty", lambda e: call(refnet.MLP, []), V, "sizes must list at least two"),
    Case("mlp-sizes-string", lambda e: call(refnet.MLP, "342"), T_, "sizes must be a list"),
    Case("mlp-sizes-float", lambda e: call(refnet.MLP, [3, 2.5]), T_, "sizes[1] must be an integer"),
    Case("mlp-sizes-bool", lambda e: call(refnet.MLP, [3, True]), T_, "sizes[1] must be an integer"),
    Case("mlp-activation-unknown", lambda e: call(refnet.MLP, [3, 2], activation="gelu"), V, "activation must be one of"),
    Case("mlp-output-activation-unknown", lambda e: call(refnet.MLP, [3, 2], output_activation="softmax"), V,
         "output_activation must be one of"),
    # ---- init ------------------------------------------------------------------------------
    Case("init-dtype-int", lambda e: call(e.net.init, seed=0, dtype="int32"), V, "dtype must be 'float32' or 'float64'"),
    Case("init-seed-negative", lambda e: call(e.net.init, seed=-1), V, "seed must be an integer >= 0"),
    Case("init-seed-float", lambda e: call(e.net.init, seed=0.5), T_, "seed must be an integer"),
    Case("init-like-int", lambda e: call(e.net.init, seed=0, like=np.arange(3)), T_, "like must have a real floating dtype"),
    # ---- unsupported floating dtypes: float16 (and complex) params are refused up front -----
    Case("init-like-float16", lambda e: call(e.net.init, seed=0, like=np.zeros(3, np.float16)), T_,
         "like must have a real floating dtype (float32 or float64), got float16"),
    Case("forward-params-float16", lambda e: call(e.net.forward, [(W.astype(np.float16), b.astype(np.float16))
                                                                  for W, b in e.P], e.X.astype(np.float16)), T_,
         "params[0][0] must have a real floating dtype (float32 or float64), got float16"),
    Case("loss-params-complex", lambda e: call(e.net.loss_and_grads, [(W.astype(np.complex128), b.astype(np.complex128))
                                                                      for W, b in e.P], e.X, e.T), T_,
         "params[0][0] must have a real floating dtype (float32 or float64), got complex128"),
    Case("opt-init-params-float16", lambda e: call(e.mom.init, retype(e.P, 1, 0, np.float16)), T_,
         "params[1][0] must have a real floating dtype (float32 or float64), got float16"),
    Case("step-grads-float16", lambda e: call(e.sgd.step, e.P, retype(e.grads, 0, 1, np.float16), e.s_sgd), T_,
         "grads[0][1] must have a real floating dtype (float32 or float64), got float16"),
    Case("average-incoming-float16", lambda e: call(refnet.average_incoming, np.ones((3, 2), np.float16)), T_,
         "A must have a real floating dtype (float32 or float64), got float16"),
    Case("init-like-list", lambda e: call(e.net.init, seed=0, like=[1.0]), T_, "like must be an array"),
    # ---- forward: X ------------------------------------------------------------------------
    Case("forward-X-1d", lambda e: call(e.net.forward, e.P, e.X[0]), V, "X must be 2-D"),
    Case("forward-X-3d", lambda e: call(e.net.forward, e.P, e.X[None]), V, "X must be 2-D"),
    Case("forward-X-width", lambda e: call(e.net.forward, e.P, e.X[:, :2]), V, "X must have shape (n, 3), got (5, 2)"),
    Case("forward-X-int", lambda e: call(e.net.forward, e.P, e.X.astype(np.int64)), T_, "X must have a real floating dtype"),
    Case("forward-X-bool", lambda e: call(e.net.forward, e.P, e.X > 0), T_, "X must have a real floating dtype"),
    Case("forward-X-complex", lambda e: call(e.net.forward, e.P, e.X.astype(np.complex128)), T_,
         "X must have a real floating dtype"),
    Case("forward-X-float32-params-float64", lambda e: call(e.net.forward, e.P, e.X.astype(np.float32)), T_,
         "X has dtype float32 but params have dtype float64"),
    Case("forward-X-float64-params-float32", lambda e: call(e.net.forward, e.P32, e.X), T_,
         "X has dtype float64 but params have dtype float32"),
    Case("forward-X-nan", lambda e: call(e.net.forward, e.P, with_value(e.X, np.nan, (3, 1))), V, "X contains NaN or Inf"),
    Case("forward-X-inf", lambda e: call(e.net.forward, e.P, with_value(e.X, -np.inf)), V, "X contains NaN or Inf"),
    Case("forward-X-empty", lambda e: call(e.net.forward, e.P, e.X[:0]), V, "X is empty"),
    Case("forward-X-list", lambda e: call(e.net.forward, e.P, e.X.tolist()), T_, "X must be an array"),
    Case("forward-X-matrix", lambda e: call(e.net.forward, e.P, e.X.view(np.matrix)), T_,
         ("X is a numpy.matrix, a NumPy subclass (its * is a matrix product", "numpy.asarray(X)")),
    Case("forward-X-masked", lambda e: call(e.net.forward, e.P, np.ma.masked_array(e.X, mask=e.X > 0)), T_,
         ("X is a numpy.ma.MaskedArray", "would not honour its mask")),
    Case("forward-X-subclass", lambda e: call(e.net.forward, e.P, e.X.view(_Sub)), T_,
         ("_Sub, a NumPy subclass (its arithmetic may not be an ndarray's)", "numpy.asarray(X)")),
    Case("forward-X-strict-params-numpy", lambda e: call(e.net.forward, e.P, xs.asarray(e.X)), T_,
         "X is an array_api_strict array but params[0][0] is a NumPy array"),
    Case("forward-X-numpy-params-strict", lambda e: call(e.net.forward, e.Ps, e.X), T_, "X is a NumPy array"),
    Case("forward-X-other-device", lambda e: call(e.net.forward, e.Ps, xs.asarray(e.X, device=xs.Device("device1"))),
         T_, "X is on device"),
    # ---- forward: params -------------------------------------------------------------------
    Case("params-nan-W", lambda e: call(e.net.forward, poison(e.P, 0, 0), e.X), V, "params[0][0] contains NaN or Inf"),
    Case("params-inf-b", lambda e: call(e.net.forward, poison(e.P, 1, 1, np.inf), e.X), V, "params[1][1] contains NaN or Inf"),
    Case("params-dict", lambda e: call(e.net.forward, {"W": e.P[0][0]}, e.X), T_, "params must be a non-empty list"),
    Case("params-empty", lambda e: call(e.net.forward, [], e.X), T_, "params must be a non-empty list"),
    Case("params-triple", lambda e: call(e.net.forward, [e.P[0] + (e.P[0][1],), e.P[1]], e.X), T_,
         "params[0] must be a (W, b) pair"),
    Case("params-too-few-layers", lambda e: call(e.net.forward, e.P[:1], e.X), V,
         "params have layer sizes [3, 4] but the network has sizes [3, 4, 2]"),
    Case("params-other-network", lambda e: call(e.net.forward, e.P2, e.X), V, "but the network has sizes [3, 4, 2]"),
    Case("params-chain-broken", lambda e: call(e.net.forward, [e.P[0], e.P2[1]], e.X), V,
         ("params[1][0]", "has 5 rows but layer 1 has 4 outputs")),
    Case("params-bias-shape", lambda e: call(e.net.forward, [(e.P[0][0], e.P[1][1]), e.P[1]], e.X), V,
         ("params[0][1]", "must have shape (4,), got (2,)")),
    Case("params-flat-list", lambda e: call(e.net.forward, [x for pair in e.P for x in pair], e.X), T_,
         ("params[0] must be a (W, b) pair, got ndarray", "list(zip(params[::2], params[1::2]))")),
    Case("params-W-transposed", lambda e: call(e.net.forward, [(e.P[0][0].T, e.P[0][1]), e.P[1]], e.X), V,
         ("params[0][0] (W_1) must have shape (3, 4) (n_in, n_out), got (4, 3): it is transposed", "weight.T")),
    Case("params-W-1d", lambda e: call(e.net.forward, [(e.P[0][1], e.P[0][1]), e.P[1]], e.X), V,
         ("params[0][0]", "must be 2-D")),
    Case("params-int", lambda e: call(e.net.forward, retype(e.P, 0, 0, np.int64), e.X), T_,
         "params[0][0] must have a real floating dtype"),
    Case("params-mixed-float32-float64", lambda e: call(e.net.forward, retype(e.P, 1, 1, np.float32), e.X), T_,
         "params[1][1] has dtype float32 but params have dtype float64"),
    Case("params-matrix", lambda e: call(e.net.forward, [(e.P[0][0].view(np.matrix), e.P[0][1]), e.P[1]], e.X), T_,
         "params[0][0] is a numpy.matrix"),
    Case("params-mixed-libraries", lambda e: call(e.net.forward, [e.P[0], e.Ps[1]], e.X), T_, "array_api_strict"),
    # ---- vjp -------------------------------------------------------------------------------
    Case("vjp-G-rows", lambda e: call(e.net.vjp, e.P, e.X, e.G[:3]), V, "G must have shape (5, 2), got (3, 2)"),
    Case("vjp-G-cols", lambda e: call(e.net.vjp, e.P, e.X, np.ones((5, 3))), V, "G must have shape (5, 2), got (5, 3)"),
    Case("vjp-G-1d", lambda e: call(e.net.vjp, e.P, e.X, e.G[0]), V, "G must be 2-D"),
    Case("vjp-G-nan", lambda e: call(e.net.vjp, e.P, e.X, with_value(e.G, np.nan)), V, "G contains NaN or Inf"),
    Case("vjp-G-inf", lambda e: call(e.net.vjp, e.P, e.X, with_value(e.G, np.inf, (4, 1))), V, "G contains NaN or Inf"),
    Case("vjp-G-float32", lambda e: call(e.net.vjp, e.P, e.X, e.G.astype(np.float32)), T_, "G has dtype float32"),
    Case("vjp-G-int", lambda e: call(e.net.vjp, e.P, e.X, np.ones((5, 2), dtype=np.int32)), T_,
         "G must have a real floating dtype"),
    Case("vjp-X-nan", lambda e: call(e.net.vjp, e.P, with_value(e.X, np.nan), e.G), V, "X contains NaN or Inf"),
    # ---- loss_and_grads --------------------------------------------------------------------
    Case("loss-T-masked", lambda e: call(e.net.loss_and_grads, e.P, e.X, np.ma.masked_array(e.T, mask=e.T > 0)), T_,
         "T is a numpy.ma.MaskedArray"),
    Case("loss-unknown", lambda e: call(e.net.loss_and_grads, e.P, e.X, e.T, loss="hinge"), V, "loss must be one of"),
    Case("loss-T-shape", lambda e: call(e.net.loss_and_grads, e.P, e.X, e.T[:, :1]), V, "T must have shape (5, 2)"),
    Case("loss-T-nan", lambda e: call(e.net.loss_and_grads, e.P, e.X, with_value(e.T, np.nan)), V, "T contains NaN or Inf"),
    Case("loss-T-inf", lambda e: call(e.net.loss_and_grads, e.P, e.X, with_value(e.T, np.inf)), V, "T contains NaN or Inf"),
    Case("loss-T-bool", lambda e: call(e.net.loss_and_grads, e.P, e.X, e.Tp > 0, loss="softmax_cross_entropy"), T_,
         "T must have a real floating dtype"),
    Case("loss-sce-T-negative", lambda e: call(e.net.loss_and_grads, e.P, e.X, e.Tp - 0.5, loss="softmax_cross_entropy"),
         V, "T must hold probabilities"),
    Case("loss-sce-T-rows-not-1", lambda e: call(e.net.loss_and_grads, e.P, e.X, 2.0 * e.Tp, loss="softmax_cross_entropy"),
         V, "T rows must sum to 1"),
    Case("loss-mse-overflow", lambda e: call(e.net.loss_and_grads, e.P, e.X, e.T * 1e300), F, "mse loss overflowed"),
    Case("loss-sce-overflow",   # logits +-1e308 * 4 hidden units: Y = +-inf, the shifted logits are NaN
         lambda e: call(e.net.loss_and_grads, [e.P[0], (np.tile([1e308, -1e308], (4, 1)), e.P[1][1])], e.X, e.Tp,
                        loss="softmax_cross_entropy"), F, "softmax_cross_entropy loss overflowed"),
    # ---- jacobian --------------------------------------------------------------------------
    Case("jacobian-outputs-out-of-range", lambda e: call(e.net.jacobian, e.P, e.X, outputs=[2]), V,
         "outputs[0] = 2 is out of range"),
    Case("jacobian-outputs-negative", lambda e: call(e.net.jacobian, e.P, e.X, outputs=[0, -1]), V,
         "outputs[1] = -1 is out of range"),
    Case("jacobian-outputs-duplicated", lambda e: call(e.net.jacobian, e.P, e.X, outputs=[1, 1]), V,
         "outputs has duplicate indices"),
    Case("jacobian-outputs-int", lambda e: call(e.net.jacobian, e.P, e.X, outputs=0), T_, "outputs must be a list"),
    Case("jacobian-outputs-float", lambda e: call(e.net.jacobian, e.P, e.X, outputs=[0.0]), T_,
         "outputs[0] must be an integer"),
    Case("jacobian-X-width", lambda e: call(e.net.jacobian, e.P, e.X[:, :1]), V, "X must have shape (n, 3)"),
    # ---- flatten / unflatten ---------------------------------------------------------------
    Case("flatten-bias-shape", lambda e: call(refnet.flatten, [(e.P[0][0], e.P[1][1])]), V, "params[0][1]"),
    Case("flatten-int", lambda e: call(refnet.flatten, retype(e.P, 0, 1, np.int8)), T_, "params[0][1]"),
    Case("flatten-not-list", lambda e: call(refnet.flatten, e.P[0][0]), T_, "params must be a non-empty list"),
    Case("unflatten-length", lambda e: call(refnet.unflatten, np.zeros(25), e.P), V, "v must have shape (26,), got (25,)"),
    Case("unflatten-2d", lambda e: call(refnet.unflatten, np.zeros((26, 1)), e.P), V, "v must have shape (26,)"),
    Case("unflatten-int", lambda e: call(refnet.unflatten, np.zeros(26, dtype=np.int64), e.P), T_,
         "v must have a real floating dtype"),
    Case("unflatten-float32", lambda e: call(refnet.unflatten, np.zeros(26, dtype=np.float32), e.P), T_,
         "v has dtype float32"),
    Case("unflatten-mixed-libraries", lambda e: call(refnet.unflatten, xs.zeros(26, dtype=xs.float64), e.P), T_,
         "v is an array_api_strict array"),
    Case("unflatten-like-bad", lambda e: call(refnet.unflatten, np.zeros(26), [e.P[0]] * 2), V, ("like[1][0]", "has 3 rows")),
    # ---- optimizer constructors ------------------------------------------------------------
    Case("sgd-lr-zero", lambda e: call(refnet.SGD, 0.0), V, "lr must be a finite number > 0, got 0.0"),
    Case("sgd-lr-negative", lambda e: call(refnet.SGD, -0.1), V, "lr must be a finite number > 0"),
    Case("sgd-lr-nan", lambda e: call(refnet.SGD, float("nan")), V, "lr must be a finite number > 0, got nan"),
    Case("sgd-lr-inf", lambda e: call(refnet.SGD, float("inf")), V, "lr must be a finite number > 0, got inf"),
    Case("sgd-lr-string", lambda e: call(refnet.SGD, "0.1"), T_, "lr must be a real number"),
    Case("sgd-lr-array", lambda e: call(refnet.SGD, np.array([0.1, 0.2])), T_, "lr must be a real number"),
    Case("momentum-lr-zero", lambda e: call(refnet.Momentum, 0, 0.9), V, "lr must be a finite number > 0"),
    Case("momentum-one", lambda e: call(refnet.Momentum, 0.1, 1.0), V, "momentum must be in [0, 1), got 1.0"),
    Case("momentum-negative", lambda e: call(refnet.Momentum, 0.1, -0.1), V, "momentum must be in [0, 1)"),
    Case("momentum-nan", lambda e: call(refnet.Momentum, 0.1, float("nan")), V, "momentum must be in [0, 1)"),
    Case("momentum-bool", lambda e: call(refnet.Momentum, 0.1, True), T_, "momentum must be a real number"),
    Case("nesterov-without-momentum", lambda e: call(refnet.Momentum, 0.1, 0.0, nesterov=True), V,
         "nesterov=True needs momentum > 0"),
    Case("nesterov-not-bool", lambda e: call(refnet.Momentum, 0.1, 0.9, nesterov="yes"), T_,
         "nesterov must be True or False"),
    Case("averaged-momentum-above-one", lambda e: call(refnet.AveragedMomentum, 0.1, 1.5), V, "momentum must be in [0, 1)"),
    Case("averaged-lr-inf", lambda e: call(refnet.AveragedMomentum, float("inf"), 0.5), V, "lr must be a finite number"),
    Case("averaged-include-bias-int", lambda e: call(refnet.AveragedMomentum, 0.1, 0.5, include_bias=1), T_,
         "include_bias must be True or False"),
    # ---- optimizer steps -------------------------------------------------------------------
    Case("step-grads-shape", lambda e: call(e.sgd.step, e.P, [(e.grads[0][0][:2], e.grads[0][1]), e.grads[1]], e.s_sgd),
         V, "grads[0][0] must have shape (3, 4) like params[0][0], got (2, 4)"),
    Case("step-grads-matrix", lambda e: call(e.mom.step, e.P, [(e.grads[0][0].view(np.matrix), e.grads[0][1]), e.grads[1]],
                                             e.s_mom), T_, "grads[0][0] is a numpy.matrix"),
    Case("step-grads-too-few-layers", lambda e: call(e.mom.step, e.P, e.grads[:1], e.s_mom), V,
         "grads must be a list of 2 (W, b) pairs"),
    Case("step-grads-not-pairs", lambda e: call(e.mom.step, e.P, [e.grads[0][0], e.grads[1][0]], e.s_mom), V,
         "grads[0] must be a (W, b) pair"),
    Case("step-grads-nan", lambda e: call(e.mom.step, e.P, poison(e.grads, 1, 0), e.s_mom), V,
         "grads[1][0] contains NaN or Inf"),
    Case("step-grads-inf", lambda e: call(e.sgd.step, e.P, poison(e.grads, 0, 1, -np.inf), e.s_sgd), V,
         "grads[0][1] contains NaN or Inf"),
    # update (the inner call of Projected) checks grads like step does
    Case("update-grads-nan-momentum", lambda e: call(e.mom.update, poison(e.grads, 1, 0), e.s_mom, e.P), V,
         "grads[1][0] contains NaN or Inf"),
    Case("update-grads-inf-sgd", lambda e: call(e.sgd.update, poison(e.grads, 0, 1, np.inf), e.s_sgd, e.P), V,
         "grads[0][1] contains NaN or Inf"),
    Case("update-grads-nan-averaged", lambda e: call(e.avg.update, poison(e.grads, 0, 0), e.s_avg, e.P), V,
         "grads[0][0] contains NaN or Inf"),
    Case("step-grads-float32", lambda e: call(e.avg.step, e.P, retype(e.grads, 0, 0, np.float32), e.s_avg), T_,
         "grads[0][0] has dtype float32"),
    Case("step-grads-complex", lambda e: call(e.sgd.step, e.P, retype(e.grads, 1, 1, np.complex128), e.s_sgd), T_,
         "grads[1][1] must have a real floating dtype"),
    Case("step-grads-strict", lambda e: call(e.sgd.step, e.P, [(xs.asarray(a), xs.asarray(b)) for a, b in e.grads],
                                             e.s_sgd), T_, "array_api_strict"),
    Case("step-params-nan", lambda e: call(e.mom.step, poison(e.P, 0, 0), e.grads, e.s_mom), V,
         "params[0][0] contains NaN or Inf"),
    Case("step-state-wrong-kind", lambda e: call(e.mom.step, e.P, e.grads, e.s_sgd), T_,
         "state must be a MomentumState from Momentum.init, got SGDState"),
    Case("step-sgd-given-momentum-state", lambda e: call(e.sgd.step, e.P, e.grads, e.s_mom), T_,
         "state must be an SGDState"),
    Case("step-state-other-structure", lambda e: call(e.avg.step, e.P, e.grads, e.avg.init(e.P2)), V,
         "state.accumulation[0][0] must have shape (3, 4) like params[0][0], got (3, 5)"),
    Case("step-state-nan", lambda e: call(e.mom.step, e.P, e.grads,
                                          refnet.MomentumState(poison(e.s_mom.accumulation, 1, 1))), V,
         "state.accumulation[1][1] contains NaN or Inf"),
    Case("step-state-float32", lambda e: call(e.mom.step, e.P, e.grads, e.mom.init(e.P32)), T_,
         "state.accumulation[0][0] has dtype float32"),
    Case("step-sgd-overflow", lambda e: call(refnet.SGD(1e308).step, e.P, [(g * 1e10, gb * 1e10) for g, gb in e.grads],
                                             e.s_sgd), F, "new params would hold NaN or Inf"),
    Case("step-momentum-overflow", lambda e: call(refnet.Momentum(1e300, 0.9).step, e.P,
                                                  [(g + 1e10, gb + 1e10) for g, gb in e.grads], e.s_mom),
         F, "new params would hold NaN or Inf"),
    Case("init-params-bad", lambda e: call(e.mom.init, e.P[0]), T_, "params[0] must be a (W, b) pair"),
    # ---- average_incoming / averaging_matrix ------------------------------------------------
    Case("average-incoming-int", lambda e: call(refnet.average_incoming, np.ones((3, 2), dtype=int)), T_,
         "A must have a real floating dtype"),
    Case("average-incoming-list", lambda e: call(refnet.average_incoming, [[1.0, 2.0]]), T_, "A must be an array"),
    Case("average-incoming-axis-range", lambda e: call(refnet.average_incoming, e.P[0][0], axis=2), V,
         "axis must be an axis"),
    Case("average-incoming-axis-bool", lambda e: call(refnet.average_incoming, e.P[0][0], axis=True), T_,
         "axis must be an int or a tuple of ints"),
    Case("average-incoming-axis-duplicated", lambda e: call(refnet.average_incoming, e.P[0][0], axis=(0, -2)), V,
         "axis must name at least one axis, each once"),
    Case("average-incoming-axis-empty", lambda e: call(refnet.average_incoming, e.P[0][0], axis=()), V,
         "axis must name at least one axis"),
    Case("average-incoming-nan", lambda e: call(refnet.average_incoming, with_value(e.P[0][0], np.nan)), V,
         "A contains NaN or Inf"),
    Case("average-incoming-empty", lambda e: call(refnet.average_incoming, np.ones((0, 2))), V,
         "incoming axes (0,) must be non-empty"),
    Case("averaging-matrix-zero", lambda e: call(refnet.averaging_matrix, 0), V, "n must be an integer >= 1"),
    Case("averaging-matrix-float", lambda e: call(refnet.averaging_matrix, 3.0), T_, "n must be an integer"),
    Case("averaging-matrix-dtype", lambda e: call(refnet.averaging_matrix, 3, dtype="int32"), V, "dtype must be one of"),
    # ---- project_out -----------------------------------------------------------------------
    Case("project-anchors-width", lambda e: call(refnet.project_out, e.net, e.P, e.grads, e.X[:, :2]), V,
         "anchors must have shape (n, 3), got (5, 2)"),
    Case("project-anchors-1d", lambda e: call(refnet.project_out, e.net, e.P, e.grads, e.X[0]), V,
         "anchors must be 2-D"),
    Case("project-anchors-empty", lambda e: call(refnet.project_out, e.net, e.P, e.grads, e.X[:0]), V,
         "anchors is empty"),
    Case("project-anchors-nan", lambda e: call(refnet.project_out, e.net, e.P, e.grads, with_value(e.X, np.nan)), V,
         "anchors contains NaN or Inf"),
    Case("project-anchors-float32", lambda e: call(refnet.project_out, e.net, e.P, e.grads, e.X.astype(np.float32)), T_,
         "anchors has dtype float32"),
    Case("project-method-unknown", lambda e: call(refnet.project_out, e.net, e.P, e.grads, e.X, method="qr"), V,
         "method must be one of ['dense', 'gram']"),
    Case("project-outputs-out-of-range", lambda e: call(refnet.project_out, e.net, e.P, e.grads, e.X, outputs=[5]), V,
         "outputs[0] = 5 is out of range"),
    Case("project-grads-structure", lambda e: call(refnet.project_out, e.net, e.P, e.grads[:1], e.X), V,
         "grads must be a list of 2 (W, b) pairs"),
    Case("project-grads-nan", lambda e: call(refnet.project_out, e.net, e.P, poison(e.grads, 0, 0), e.X), V,
         "grads[0][0] contains NaN or Inf"),
    Case("project-params-other-network", lambda e: call(refnet.project_out, e.net, e.P2, e.grads, e.X), V,
         "network has sizes [3, 4, 2]"),
    Case("project-net-not-mlp", lambda e: call(refnet.project_out, "net", e.P, e.grads, e.X), T_,
         "net must be a refnet.MLP"),
    # ---- frozen_step -----------------------------------------------------------------------
    Case("frozen-lr-zero", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G, freeze=[0], lr=0.0), V,
         "lr must be a finite number > 0"),
    Case("frozen-lr-nan", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G, freeze=[0], lr=float("nan")), V,
         "lr must be a finite number > 0"),
    Case("frozen-tol-zero", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G, freeze=[0], lr=0.1, tol=0.0), V,
         "tol must be a finite number > 0"),
    Case("frozen-tol-negative", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G, freeze=[0], lr=0.1, tol=-1e-9),
         V, "tol must be a finite number > 0"),
    Case("frozen-tol-inf", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G, freeze=[0], lr=0.1, tol=np.inf),
         V, "tol must be a finite number > 0"),
    Case("frozen-max-iter-zero", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G, freeze=[0], lr=0.1, max_iter=0),
         V, "max_iter must be an integer >= 1, got 0"),
    Case("frozen-max-iter-float", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G, freeze=[0], lr=0.1,
                                                 max_iter=2.5), T_, "max_iter must be an integer"),
    Case("frozen-freeze-duplicated", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G, freeze=[0, 0], lr=0.1), V,
         "freeze has duplicate indices [0, 0]"),
    Case("frozen-freeze-negative", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G, freeze=[-1], lr=0.1), V,
         "freeze[0] = -1 is out of range; expected an output index in [0, 2)"),
    Case("frozen-freeze-out-of-range", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G, freeze=[1, 2], lr=0.1),
         V, "freeze[1] = 2 is out of range"),
    Case("frozen-freeze-not-list", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G, freeze=0, lr=0.1), T_,
         "freeze must be a list of output indices"),
    Case("frozen-freeze-mask", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G, freeze=np.array([True, False]),
                                              lr=0.1), T_, "got a boolean mask; pass numpy.flatnonzero(mask)"),
    Case("frozen-freeze-2d", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G, freeze=np.array([[0]]), lr=0.1),
         T_, "freeze must be a list of output indices (or a 1-D NumPy integer array), got ndarray of shape (1, 1)"),
    Case("frozen-freeze-float-array", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G, freeze=np.array([0.0]),
                                                     lr=0.1), T_, "freeze[0] must be an integer, got float"),
    Case("frozen-method-unknown", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G, freeze=[0], lr=0.1,
                                                 method="svd"), V, "method must be one of"),
    Case("frozen-anchors-width", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G, freeze=[0], lr=0.1,
                                                anchors=e.X[:, :1]), V, "anchors must have shape (n, 3), got (5, 1)"),
    Case("frozen-anchors-strict", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G, freeze=[0], lr=0.1,
                                                 anchors=xs.asarray(e.X)), T_, "anchors is an array_api_strict array"),
    Case("frozen-retract-not-bool", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G, freeze=[0], lr=0.1,
                                                   retract="yes"), T_, "retract must be True or False"),
    Case("frozen-G-shape", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G[:, :1], freeze=[0], lr=0.1), V,
         "G must have shape (5, 2), got (5, 1)"),
    Case("frozen-G-nan", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, with_value(e.G, np.nan), freeze=[0], lr=0.1),
         V, "G contains NaN or Inf"),
    Case("frozen-params-inf", lambda e: call(refnet.frozen_step, e.net, poison(e.P, 0, 1, np.inf), e.X, e.G, freeze=[0],
                                             lr=0.1), V, "params[0][1] contains NaN or Inf"),
    Case("frozen-step-overflow", lambda e: call(refnet.frozen_step, e.net, e.P, e.X, e.G * 1e300, freeze=[0], lr=1e10,
                                                retract=False), F, "new params would hold NaN or Inf"),
    # finite params whose linear net's outputs overflow (1e200 * 1e200): an error, not eigh's "did not converge"
    Case("frozen-step-outputs-overflow", lambda e: call(refnet.frozen_step, refnet.MLP([3, 4, 2], "identity"),
                                                        [(np.full((3, 4), 1e200), np.zeros(4)), (np.full((4, 2), 1e200), np.zeros(2))],
                                                        np.abs(e.X), e.G, freeze=[0], lr=0.1), F, "frozen outputs overflowed"),
    Case("project-out-outputs-overflow", lambda e: call(refnet.project_out, refnet.MLP([3, 4, 2], "identity"),
                                                        [(np.full((3, 4), 1e200), np.zeros(4)), (np.full((4, 2), 1e200), np.zeros(2))],
                                                        [(np.ones((3, 4)), np.ones(4)), (np.ones((4, 2)), np.ones(2))],
                                                        np.abs(e.X), [0], method="dense"), F, "frozen outputs overflowed"),
    Case("project-out-dense-norm-overflow", lambda e: call(refnet.project_out, refnet.MLP([1, 1, 1], "identity"),
                                                          [(np.array([[1e-300]]), np.zeros(1)), (np.array([[1.5e308]]), np.zeros(1))],
                                                          [(np.ones((1, 1)), np.ones(1))] * 2, np.array([[0.5], [1.0]]), [0],
                                                          method="dense"), F, "|J| overflows"),
    Case("project-out-gram-overflow", lambda e: call(refnet.project_out, e.net, e.P, e.grads, e.X * 1e200, [0]), F,
         ("J J^T overflowed", "method='dense'")),
    # ---- Projected -------------------------------------------------------------------------
    Case("projected-inner-not-optimizer", lambda e: call(refnet.Projected, "sgd", e.net, e.X), T_,
         "inner must be a refnet optimizer"),
    Case("projected-net-not-mlp", lambda e: call(refnet.Projected, e.sgd, [3, 4, 2], e.X), T_, "net must be a refnet.MLP"),
    Case("projected-anchors-width", lambda e: call(refnet.Projected, e.sgd, e.net, e.X[:, :2]), V,
         "anchors must have shape (n, 3), got (5, 2)"),
    Case("projected-anchors-list", lambda e: call(refnet.Projected, e.sgd, e.net, e.X.tolist()), T_,
         "anchors must be an array"),
    Case("projected-anchors-int", lambda e: call(refnet.Projected, e.sgd, e.net, np.ones((2, 3), dtype=int)), T_,
         "anchors must have a real floating dtype"),
    Case("projected-anchors-nan", lambda e: call(refnet.Projected, e.sgd, e.net, with_value(e.X, np.nan)), V,
         "anchors contains NaN or Inf"),
    Case("projected-freeze-out-of-range", lambda e: call(refnet.Projected, e.sgd, e.net, e.X, freeze=[3]), V,
         "freeze[0] = 3 is out of range"),
    Case("projected-freeze-duplicated", lambda e: call(refnet.Projected, e.sgd, e.net, e.X, freeze=(1, 1)), V,
         "freeze has duplicate indices"),
    Case("projected-tol-zero", lambda e: call(refnet.Projected, e.sgd, e.net, e.X, tol=0), V, "tol must be a finite number > 0"),
    Case("projected-max-iter-zero", lambda e: call(refnet.Projected, e.sgd, e.net, e.X, max_iter=0), V,
         "max_iter must be an integer >= 1"),
    Case("projected-method-unknown", lambda e: call(refnet.Projected, e.sgd, e.net, e.X, method="pinv"), V,
         "method must be one of"),
    Case("projected-retract-not-bool", lambda e: call(refnet.Projected, e.sgd, e.net, e.X, retract=None), T_,
         "retract must be True or False"),
    Case("projected-init-params-structure", lambda e: call(e.proj.init, e.P2), V, "network has sizes [3, 4, 2]"),
    Case("projected-init-params-float32", lambda e: call(e.proj.init, e.P32), T_,
         "anchors has dtype float64 but params have dtype float32"),
    Case("projected-step-state-wrong-kind", lambda e: call(e.proj.step, e.P, e.grads, e.s_mom), T_,
         "state must be a ProjectedState from Projected.init"),
    Case("projected-step-state-other-anchors", lambda e: call(e.proj.step, e.P, e.grads,
                                                              refnet.Projected(e.mom, e.net, e.X[:2]).init(e.P)), V,
         "state.frozen must have shape (5,), got (2,)"),
    Case("projected-step-inner-state-wrong-kind", lambda e: call(e.proj.step, e.P, e.grads, proj_opt(e).init(e.P)), T_,
         "state must be a MomentumState"),
    Case("projected-step-inner-state-other-structure",
         lambda e: call(e.proj.step, e.P, e.grads, e.s_proj._replace(inner=e.mom.init(e.P2))), V,
         "state.accumulation[0][0] must have shape (3, 4)"),
    Case("projected-step-frozen-nan", lambda e: call(e.proj.step, e.P, e.grads,
                                                     e.s_proj._replace(frozen=with_value(e.s_proj.frozen, np.nan))), V,
         "state.frozen contains NaN or Inf"),
    Case("projected-step-frozen-strict", lambda e: call(e.proj.step, e.P, e.grads,
                                                        e.s_proj._replace(frozen=xs.asarray(e.s_proj.frozen))), T_,
         "state.frozen is an array_api_strict array"),
    Case("projected-step-grads-nan", lambda e: call(e.proj.step, e.P, poison(e.grads, 1, 1), e.s_proj), V,
         "grads[1][1] contains NaN or Inf"),
    Case("projected-step-params-nan", lambda e: call(e.proj.step, poison(e.P, 1, 0), e.grads, e.s_proj), V,
         "params[1][0] contains NaN or Inf"),
    # ---- save / load -----------------------------------------------------------------------
    Case("save-params-structure", lambda e: call(refnet.save, e.path, e.P[0]), T_, "params[0] must be a (W, b) pair"),
    Case("save-params-int", lambda e: call(refnet.save, e.path, retype(e.P, 0, 0, np.int32)), T_,
         "params[0][0] must have a real floating dtype"),
    Case("save-meta-not-dict", lambda e: call(refnet.save, e.path, e.P, meta=["run", 1]), T_, "meta must be a dict"),
    Case("save-meta-tuple", lambda e: call(refnet.save, e.path, e.P, meta={"shape": (3, 4)}), V,
         "meta must survive a JSON round trip"),
    Case("save-meta-nan", lambda e: call(refnet.save, e.path, e.P, meta={"loss": float("nan")}), V,
         "meta must be JSON-serializable"),
    Case("save-meta-object", lambda e: call(refnet.save, e.path, e.P, meta={"net": e.net}), V,
         "meta must be JSON-serializable"),
    Case("save-state-unknown-type", lambda e: call(refnet.save, e.path, e.P, state=e.net), T_,
         "state is a MLP, which checkpoints cannot store"),
    Case("save-state-foreign-namedtuple", lambda e: call(refnet.save, e.path, e.P, state=Case("x", None, None, "")), T_,
         "which checkpoints cannot store"),
    Case("load-missing", lambda e: call(refnet.load, e.path), V, "does not exist"),
    Case("load-not-a-checkpoint", lambda e: call(refnet.load, e.text_file), V, "truncated, corrupted or not a refnet"),
    # ---- JAX (skipped without jax) ------------------------------------------------------------
    Case("forward-X-jax-params-numpy", lambda e: call(e.net.forward, e.P, jax_backend().asarray(e.X)), T_,
         "X is a JAX array but params[0][0] is a NumPy array"),
    Case("forward-X-numpy-params-jax", lambda e: call(e.net.forward, jax_backend().params(e.P), e.X), T_,
         "X is a NumPy array but params[0][0] is a JAX array"),
    Case("forward-jax-vmap", lambda e: call(jax().vmap(
        lambda x: e.net.forward(jax_backend().params(e.P), x[None, :])), jax_backend().asarray(e.X)), T_,
         ("X is a JAX tracer", "refnet cannot run inside jax.jit, jax.vmap, jax.grad")),
    Case("loss-jax-grad", lambda e: call(jax().grad(
        lambda q: e.net.loss_and_grads(q, jax_backend().asarray(e.X), jax_backend().asarray(e.T))[0]),
        jax_backend().params(e.P)), T_, "params[0][0] is a JAX tracer"),
    Case("init-like-jax-without-x64", lambda e: call(without_x64(e.net.init), seed=0,
                                                      like=jax_backend("jax-float32").asarray(e.X)), T_,
         ("like is a JAX array, and JAX has x64 disabled", 'jax.config.update("jax_enable_x64", True)')),
]


def jax_backend(name="jax"):
    """A jax test backend, float64 by default (building one turns x64 on); skips without jax."""
    pytest.importorskip("jax")
    return ALL[name][0]()


def jax():
    jax_backend()
    import jax
    return jax


def without_x64(f):
    """f run with jax_enable_x64 off (restored afterwards)."""
    def call_without_x64(*args, **kwargs):
        with jax_x64(False):
            return f(*args, **kwargs)
    return call_without_x64


def _walk(obj, path="env", seen=None):
    """(path, object) for every container and array reachable from obj."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if is_array(obj):
        yield path, obj
    elif isinstance(obj, (list, tuple)):
        yield path, obj
        for i, x in enumerate(obj):
            yield from _walk(x, f"{path}[{i}]", seen)
    elif isinstance(obj, dict):
        for k, x in obj.items():
            yield from _walk(x, f"{path}.{k}", seen)
    elif hasattr(obj, "__dict__") and type(obj).__module__.startswith(("refnet", "types")):
        yield from _walk(vars(obj), path, seen)


def snapshot(*roots):
    """Host copies of every reachable array and the identities of every container's items."""
    snap = []
    for root in roots:
        for path, x in _walk(root):
            if is_array(x):
                snap.append((path, x, to_numpy(x)))
            else:
                snap.append((path, x, [id(item) for item in x]))
    return snap


def assert_unchanged(snap):
    for path, x, before in snap:
        if isinstance(before, np.ndarray):
            after = to_numpy(x)
            assert after.dtype == before.dtype and after.shape == before.shape, path
            assert after.tobytes() == before.tobytes(), f"{path} was modified"
        else:
            assert [id(item) for item in x] == before, f"{path} had items replaced"


def test_catalogue_is_large_and_distinct():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, tmp_path):
    e = make_env()
    e.path = tmp_path / "missing.npz"
    e.text_file = tmp_path / "notes.npz"
    e.text_file.write_text("not a checkpoint\n")
    f, args, kwargs = case.build(e)
    snap = snapshot(e, args, kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # overflow cases: NumPy warns, refnet raises
        with pytest.raises(case.exc) as info:
            f(*args, **kwargs)
    assert type(info.value) is case.exc                    # not a subclass (e.g. RetractionError)
    for fragment in (case.fragment,) if isinstance(case.fragment, str) else case.fragment:
        assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"
    assert_unchanged(snap)
    assert not e.path.exists() and e.text_file.read_text() == "not a checkpoint\n"


def test_snapshot_detects_changes():
    """The unchanged-state check itself can fail: in-place edits and replaced items are caught."""
    e = make_env()
    snap = snapshot(e)
    a = e.s_mom.accumulation[0][0]
    a[1, 2] = np.nextafter(a[1, 2], np.inf)                    # a one-ulp change
    with pytest.raises(AssertionError, match="modified"):
        assert_unchanged(snap)
    e = make_env()
    snap = snapshot(e)
    e.P[1] = (e.P[1][0] + 0.0, e.P[1][1])                      # same values, new object
    with pytest.raises(AssertionError, match="replaced"):
        assert_unchanged(snap)
