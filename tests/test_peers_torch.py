"""refnet's optimizers against PyTorch, the "ground truth for other backends" use.

(a) Momentum (plain and nesterov) equals torch.optim.SGD(momentum=mu, dampening=0)
    step for step; gradients come from torch autograd, not from refnet.
(b) A PyTorch port of AveragedMomentum written the way a user would (torch
    (out, in) layout: the incoming connections of neuron j are row j, so the
    mean is over dim=1) matches refnet's trajectory via refnet.conformance.
(c) A wrong port (the seed's outgoing average: dim=0 in torch layout) is
    caught by the same comparison, at step 2 (step 1 starts from a = 0).
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import refnet  # noqa: E402
from refnet.conformance import Scenario, compare_trajectories, reference_trajectory  # noqa: E402

pytestmark = pytest.mark.peers

ACT = {"tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU, "softplus": torch.nn.Softplus}


def torch_model(sc: Scenario):
    """nn.Sequential with the scenario's initial weights (nn.Linear.weight = W.T)."""
    layers = []
    params = sc.initial_params()
    for l, (W, b) in enumerate(params, start=1):
        lin = torch.nn.Linear(W.shape[0], W.shape[1], dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W.T.copy()))    # torch weight (n_out, n_in) = W^T
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if l < len(params):
            layers.append(ACT[sc.activation]())
    return torch.nn.Sequential(*layers)


def torch_loss(sc, Y, T):
    if sc.loss == "mse":
        return torch.mean((Y - T) ** 2)                        # mean over all entries
    return torch.nn.functional.cross_entropy(Y, T)             # probability targets, mean over samples


def torch_trajectory(sc: Scenario, make_opt):
    """[[W_1^T, b_1, W_2^T, b_2, ...] at steps 0..n_steps] (torch layout), as NumPy."""
    model = torch_model(sc)
    X, T = (torch.from_numpy(a) for a in sc.data())
    opt = make_opt(model.parameters())
    snap = lambda: [p.detach().numpy().copy() for p in model.parameters()]
    traj = [snap()]
    for _ in range(sc.n_steps):
        opt.zero_grad()
        torch_loss(sc, model(X), T).backward()
        opt.step()
        traj.append(snap())
    return traj


class TorchAveragedMomentum(torch.optim.Optimizer):
    """Incoming-averaged momentum as a PyTorch user writes it.

    a <- g + mu * mean_in(a);  p <- p - lr * a. nn.Linear.weight is (out, in):
    the incoming connections of neuron j are row j, so mean_in is a mean over
    dim=1. Biases get standard momentum. ``incoming_dim=0`` is the seed answer's
    bug (outgoing average) translated to torch layout.
    """

    def __init__(self, params, lr, momentum, incoming_dim=1):
        super().__init__(params, dict(lr=lr, momentum=momentum))
        self.incoming_dim = incoming_dim

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, mu = group["lr"], group["momentum"]
            for p in group["params"]:
                a = self.state[p].get("a", torch.zeros_like(p))
                if p.ndim == 2:
                    a = p.grad + mu * a.mean(dim=self.incoming_dim, keepdim=True)
                else:
                    a = p.grad + mu * a
                self.state[p]["a"] = a
                p.sub_(lr * a)


SCENARIOS = [
    Scenario(sizes=(6, 5, 3), activation="tanh", loss="mse", lr=0.1, momentum=0.9, n_steps=25, seed=0),
    Scenario(sizes=(4, 7, 3, 2), activation="sigmoid", loss="softmax_cross_entropy", lr=0.5, momentum=0.8,
             n_steps=25, seed=3),
]

@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("sc", SCENARIOS, ids=["tanh-mse", "sigmoid-xent"])
def test_momentum_equals_torch_sgd(sc, nesterov):
    # refnet's own loop (not the conformance kit): Momentum on refnet's manual-backprop grads
    net = sc.network()
    X, T = sc.data()
    params = sc.initial_params()
    opt = refnet.Momentum(sc.lr, sc.momentum, nesterov=nesterov)
    state = opt.init(params)
    traj = torch_trajectory(sc, lambda ps: torch.optim.SGD(ps, lr=sc.lr, momentum=sc.momentum, dampening=0.0,
                                                            nesterov=nesterov))
    for step in range(sc.n_steps + 1):
        if step:
            _, grads = net.loss_and_grads(params, X, T, loss=sc.loss)
            params, state = opt.step(params, grads, state)
        theirs = traj[step]
        # rtol for entries of the array's own size; an entry that passes near zero carries the absolute
        # rounding of the sums that made it, a few eps times the array's scale (seen: 7.5e-17)
        atol = lambda a: 16 * np.finfo(np.float64).eps * max(1.0, float(np.abs(a).max()))
        for l, (W, b) in enumerate(params):
            np.testing.assert_allclose(W, theirs[2 * l].T, rtol=1e-12, atol=atol(theirs[2 * l]),
                                       err_msg=f"step {step}, W_{l + 1}")
            np.testing.assert_allclose(b, theirs[2 * l + 1], rtol=1e-12, atol=atol(theirs[2 * l + 1]),
                                       err_msg=f"step {step}, b_{l + 1}")
    assert not np.array_equal(traj[-1][0], traj[0][0]), "the weights never moved"


@pytest.mark.parametrize("sc", SCENARIOS, ids=["tanh-mse", "sigmoid-xent"])
def test_torch_port_of_averaged_momentum_conforms(sc):
    ref = reference_trajectory(sc, "averaged_momentum")
    traj = torch_trajectory(sc, lambda ps: TorchAveragedMomentum(ps, lr=sc.lr, momentum=sc.momentum))
    report = compare_trajectories(ref, traj, rtol=1e-12, atol=0.0, layout="torch")
    assert report.ok, str(report)
    assert report.n_steps == sc.n_steps and report.max_abs_error < 1e-13
    # the comparison is not vacuous: averaged momentum leaves plain momentum's trajectory
    assert not compare_trajectories(reference_trajectory(sc, "momentum"), traj, rtol=1e-12, atol=0.0,
                                    layout="torch").ok


@pytest.mark.parametrize("sc", SCENARIOS, ids=["tanh-mse", "sigmoid-xent"])
def test_wrong_port_outgoing_average_is_caught(sc):
    ref = reference_trajectory(sc, "averaged_momentum")
    traj = torch_trajectory(sc, lambda ps: TorchAveragedMomentum(ps, lr=sc.lr, momentum=sc.momentum, incoming_dim=0))
    report = compare_trajectories(ref, traj, rtol=1e-12, atol=0.0, layout="torch")
    assert not report.ok
    # step 1 starts from a = 0, so both averages agree there; step 2 is the first that can differ
    assert report.step == 2, str(report)
    assert report.parameter.startswith("W_"), str(report)      # biases are not averaged by either port
    assert f"step 2, {report.parameter}[" in str(report)
    assert report.max_abs_error > 1e-6
