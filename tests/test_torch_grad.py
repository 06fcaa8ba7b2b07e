"""PyTorch tensors that require grad: refnet computes values, never autograd graphs.

Tensors with ``requires_grad=True`` (an ``nn.Module``'s parameters, say) go in;
results, gradients and optimizer buffers come out with no ``grad_fn`` and no
``requires_grad``, nothing refnet returns keeps an older step's tensors alive (a
graph would: memory growing with the steps), and torch does not warn
(``filterwarnings=error``: "Converting a tensor with requires_grad=True to a
scalar" would fail the test). The caller's tensors keep their flag and values.
"""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest

import refnet

torch = pytest.importorskip("torch")

SIZES, N, STEPS = [4, 8, 8, 3], 16, 150


def _requiring_grad(params):
    """Leaf copies of params that require grad (as nn.Parameter would)."""
    return [(W.detach().clone().requires_grad_(True), b.detach().clone().requires_grad_(True)) for W, b in params]


def _assert_plain(tree, what):
    """Every tensor in a nested structure has no history and does not require grad."""
    if isinstance(tree, torch.Tensor):
        assert tree.grad_fn is None and not tree.requires_grad, f"{what}: grad_fn {tree.grad_fn}"
    elif isinstance(tree, (list, tuple)):
        for i, x in enumerate(tree):
            _assert_plain(x, f"{what}[{i}]")


def _data(dtype=torch.float64):
    rng = np.random.default_rng(0)
    X = torch.asarray(rng.standard_normal((N, SIZES[0])), dtype=dtype).requires_grad_(True)
    T = torch.asarray(rng.standard_normal((N, SIZES[-1])), dtype=dtype).requires_grad_(True)
    return X, T


@pytest.mark.parametrize("opt", [refnet.Momentum(0.05, 0.9), refnet.AveragedMomentum(0.05, 0.9)], ids=repr)
def test_a_training_loop_on_tensors_that_require_grad_records_no_graph(opt):
    """150 steps, each on params that require grad (re-flagged every step, as a module's
    parameters would be): every result is plain, and the tensors of earlier steps die."""
    net = refnet.MLP(SIZES, activation="tanh")
    X, T = _data()
    params = _requiring_grad(net.init(seed=0, like=X))
    state = opt.init(params)
    _assert_plain(state, "init state")
    alive, losses = [], []
    for step in range(STEPS):
        loss, grads = net.loss_and_grads(params, X, T)
        Y = net.forward(params, X)
        new, state = opt.step(params, grads, state)
        _assert_plain([loss, grads, Y, new, state.accumulation], f"step {step}")
        alive += [weakref.ref(x) for layer in new for x in layer]
        losses.append(float(loss))
        params = _requiring_grad(new)
        del new, grads, loss, Y
    gc.collect()
    live = sum(r() is not None for r in alive)
    assert live == 0, f"{live} tensors of earlier steps are still referenced (an autograd graph keeps them)"
    assert losses[-1] < 0.5 * losses[0]                    # it trained
    assert X.requires_grad and T.requires_grad and X.grad is None


def test_results_are_plain_and_inputs_untouched():
    """Every public array function of mlp and optim: plain results; the caller's tensors keep
    requires_grad, get no .grad, and keep their values."""
    net = refnet.MLP(SIZES, activation="tanh")
    X, T = _data()
    params = _requiring_grad(net.init(seed=0, like=X))
    before = [x.detach().clone() for layer in params for x in layer]
    P = torch.softmax(T.detach(), dim=1).requires_grad_(True)
    grads = net.vjp(params, X, T)
    results = [net.forward(params, X), grads, net.loss_and_grads(params, X, P, loss="softmax_cross_entropy"),
               net.jacobian(params, X, outputs=[0]), refnet.flatten(params),
               refnet.average_incoming(params[0][0]), refnet.AveragedMomentum(0.1, 0.9).update(
                   _requiring_grad(grads), refnet.AveragedMomentum(0.1, 0.9).init(params), params)]
    _assert_plain(results, "results")
    v = refnet.flatten(params).requires_grad_(True)
    views = refnet.unflatten(v, like=params)          # views of v: its memory and its requires_grad, no history
    assert all(x.grad_fn is None and x.data_ptr() >= v.data_ptr() for layer in views for x in layer)
    for x, b in zip((x for layer in params for x in layer), before):
        assert x.requires_grad and x.grad is None and torch.equal(x.detach(), b)


def test_outside_refnet_autograd_still_records():
    """refnet switches recording off only while it runs: the caller's own graph still works."""
    net = refnet.MLP(SIZES, activation="tanh")
    X, _ = _data()
    params = _requiring_grad(net.init(seed=0, like=X))
    net.forward(params, X)
    assert torch.is_grad_enabled()
    (params[0][0] ** 2).sum().backward()
    assert params[0][0].grad is not None


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.complex64])
def test_unsupported_torch_dtypes_are_refused(dtype):
    net = refnet.MLP(SIZES)
    params = [(W.to(dtype), b.to(dtype)) for W, b in net.init(seed=0, like=torch.zeros(1, dtype=torch.float64))]
    X = torch.zeros((2, SIZES[0]), dtype=dtype)
    for call in (lambda: net.forward(params, X), lambda: refnet.SGD(0.1).init(params),
                 lambda: refnet.flatten(params)):
        with pytest.raises(TypeError, match=r"params\[0\]\[0\] must have a real floating dtype \(float32 or float64\)"):
            call()
    with pytest.raises(TypeError, match=r"like must have a real floating dtype \(float32 or float64\)"):
        net.init(like=X)


def test_no_torch_warning_in_a_fresh_process():
    """torch warns once per process ("Converting a tensor with requires_grad=True to a scalar"),
    so a fresh interpreter with warnings as errors runs a step on tensors that require grad."""
    code = ("import torch, refnet\n"
            "net = refnet.MLP([2, 3, 1])\n"
            "X = torch.ones((4, 2), dtype=torch.float64, requires_grad=True)\n"
            "p = [(W.requires_grad_(), b.requires_grad_()) for W, b in net.init(like=X.detach())]\n"
            "opt = refnet.Momentum(0.1, 0.9)\n"
            "loss, g = net.loss_and_grads(p, X, X[:, :1] * 2.0)\n"
            "opt.step(p, g, opt.init(p))\n")
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, cwd=root,
                       env={**os.environ, "PYTHONPATH": str(root)}, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_frozen_outputs_on_tensors_that_require_grad_record_no_graph():
    net = refnet.MLP(SIZES, activation="tanh")
    X, T = _data()
    params = _requiring_grad(net.init(seed=0, like=X))
    grads = _requiring_grad(net.vjp(params, X, T))
    opt = refnet.Projected(refnet.Momentum(0.05, 0.9), net, X[:4], freeze=[0])
    state = opt.init(params)
    results = [refnet.project_out(net, params, grads, X[:4], outputs=[0]),
               refnet.frozen_step(net, params, X, T, freeze=[0], lr=0.01)[0], state, opt.step(params, grads, state)]
    _assert_plain(results, "frozen results")


def test_torch_func_transformations_are_refused():
    """With recording off, torch.func.grad through refnet would silently return zeros: refused,
    with a TypeError that says why and what to use."""
    net = refnet.MLP(SIZES, activation="tanh")
    X, T = _data()
    X = X.detach()
    params = net.init(seed=0, like=X)
    replace_W1 = lambda W: [(W, params[0][1])] + params[1:]
    calls = {"grad": lambda: torch.func.grad(lambda W: net.forward(replace_W1(W), X).sum())(params[0][0]),
             "vmap": lambda: torch.func.vmap(lambda x: net.forward(params, x[None]))(X),
             "jacrev": lambda: torch.func.jacrev(lambda W: net.loss_and_grads(replace_W1(W), X, T.detach())[0])(
                 params[0][0])}
    for what, call in calls.items():
        with pytest.raises(TypeError, match="refnet was called inside torch.func.grad") as err:
            call()
        assert "MLP.vjp" in str(err.value), what
    net.forward(params, X)                                   # outside a transformation: fine again
