"""Optimizer trajectories: check a whole training run of your optimizer against refnet.

Three pieces:

* :class:`Scenario` fixes everything a training run depends on: architecture,
  activations, seed (initial weights), data (made on the host with NumPy),
  loss, hyperparameters and the number of steps. Every step is a full-batch
  gradient step on the same ``X, T``, so no data order can differ.
* :func:`reference_trajectory` runs refnet on the scenario and returns the
  parameters after every step as NumPy float64 arrays (step 0 = initial).
* :func:`compare_trajectories` compares your trajectory with the reference and
  returns a :class:`Report` naming the first step and parameter entry where
  they diverge (e.g. ``step 2, W_1[3, 0]``) and the largest error.

Example with PyTorch (``nn.Linear.weight`` is (n_out, n_in), hence ``layout="torch"``)::

    sc = refnet.conformance.Scenario(sizes=(6, 4, 3), n_steps=10)
    X, T = sc.data()
    model = <your nn.Sequential built from sc.initial_params(), weight = W.T>
    traj = [[p.detach().numpy().copy() for p in model.parameters()]]
    for _ in range(sc.n_steps):
        <one step of your optimizer on sc.loss over (X, T)>
        traj.append([p.detach().numpy().copy() for p in model.parameters()])
    report = compare_trajectories(reference_trajectory(sc), traj, layout="torch")
    assert report.ok, str(report)

A candidate step is a list ``[W_1, b_1, W_2, b_2, ...]`` (or of ``(W, b)``
pairs) of arrays of any library (GPU arrays are copied to the host) or anything
``numpy.asarray`` accepts. With ``layout="torch"`` weights are (n_out, n_in)
and indices in the report are in that layout.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import optim
from .._checks import count
from ..backend import is_array, to_numpy
from ..mlp import MLP

OPTIMIZERS = ("averaged_momentum", "momentum", "sgd")


@dataclass(frozen=True)
class Scenario:
    """A deterministic training run (everything float64, full batch every step).

    Fields::

        sizes: layer widths [n_0, ..., n_L]; non-square layers by default, because a
            square layer cannot tell incoming (column) from outgoing (row) averaging.
        seed: initial weights are ``MLP(sizes, ...).init(seed)``; the data use
            ``numpy.random.default_rng([seed, 1])``.
        loss: "mse" (T is standard normal) or "softmax_cross_entropy" (T is one-hot
            of random classes).
        momentum, nesterov, include_bias: used by the optimizers that take them.
        n_steps: at least 1; momentum optimizers need at least 2, because the
            buffer is zero before step 1, so step 1 of every momentum variant
            (standard, incoming- or outgoing-averaged) is the same SGD step.
    """
    sizes: tuple = (6, 5, 3)
    activation: str = "tanh"
    output_activation: str = "identity"
    seed: int = 0
    n_samples: int = 16
    loss: str = "mse"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    include_bias: bool = False
    n_steps: int = 10

    def __post_init__(self):
        count(self.n_steps, "n_steps", 1)

    def network(self) -> MLP:
        return MLP(list(self.sizes), activation=self.activation, output_activation=self.output_activation)

    def initial_params(self):
        """[(W_1 (n_0, n_1), b_1 (n_1,)), ...] as NumPy float64 (refnet layout)."""
        return self.network().init(seed=self.seed, dtype="float64")

    def data(self):
        """X (n_samples, n_0) uniform in [-1, 1]; T (n_samples, n_L) as described by ``loss``."""
        rng = np.random.default_rng([self.seed, 1])
        n, n_out = self.n_samples, self.sizes[-1]
        X = rng.uniform(-1.0, 1.0, (n, self.sizes[0]))
        if self.loss == "softmax_cross_entropy":
            T = np.eye(n_out)[rng.integers(0, n_out, n)]          # one-hot rows   (n, n_L)
        else:
            T = rng.standard_normal((n, n_out))
        return X, T

    def optimizer(self, name: str = "averaged_momentum"):
        """The refnet optimizer ``name`` (one of OPTIMIZERS) with this scenario's hyperparameters."""
        if name == "averaged_momentum":
            return optim.AveragedMomentum(self.lr, self.momentum, include_bias=self.include_bias)
        if name == "momentum":
            return optim.Momentum(self.lr, self.momentum, nesterov=self.nesterov)
        if name == "sgd":
            return optim.SGD(self.lr)
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {name!r}")


def reference_trajectory(scenario: Scenario, optimizer: str = "averaged_momentum"):
    """refnet's parameters at steps 0..n_steps: a list of n_steps + 1 lists
    ``[(W_1, b_1), ...]`` of NumPy float64 arrays (refnet layout, W (n_in, n_out)).

    Raises ValueError for a momentum optimizer with ``n_steps < 2``: its first
    step is plain SGD whatever the averaging, so such a trajectory could not
    catch a wrong averaging axis."""
    if optimizer != "sgd" and scenario.n_steps < 2:
        raise ValueError(f"n_steps must be >= 2 for {optimizer!r}: the momentum buffer is zero before step 1, "
                         f"so a 1-step trajectory cannot tell incoming from outgoing (or no) averaging")
    net, opt = scenario.network(), scenario.optimizer(optimizer)
    X, T = scenario.data()
    params = scenario.initial_params()
    state = opt.init(params)
    out = [params]
    for _ in range(scenario.n_steps):
        _, grads = net.loss_and_grads(params, X, T, loss=scenario.loss)
        params, state = opt.step(params, grads, state)
        out.append(params)
    return out


def _flat_step(step, where):
    """[W_1, b_1, ...] or [(W_1, b_1), ...] -> [("W_1", float64 array), ("b_1", ...), ...]."""
    arrays = [x for item in step for x in (item if isinstance(item, (list, tuple)) else (item,))]
    if len(arrays) % 2:
        raise ValueError(f"{where} must hold W_1, b_1, W_2, b_2, ...; got {len(arrays)} arrays")
    named = []
    for i, x in enumerate(arrays):
        kind = "W" if i % 2 == 0 else "b"
        host = to_numpy(x) if is_array(x) else x                  # CuPy/GPU tensors: copied to the host
        named.append((f"{kind}_{i // 2 + 1}", np.asarray(host, dtype=np.float64)))
    return named


@dataclass(frozen=True)
class Report:
    """Outcome of :func:`compare_trajectories`.

    Fields::

        ok: every entry of every compared step satisfies |c - r| <= atol + rtol |r|.
        step, parameter, index: the first divergence (None when ok), with the
            reference and candidate values there; index is in the candidate's layout.
        max_abs_error: max |c - r| over all compared steps and entries.
        n_steps: steps compared (excluding step 0).
    """
    ok: bool
    n_steps: int
    max_abs_error: float
    rtol: float
    atol: float
    layout: str
    step: int | None = None
    parameter: str | None = None
    index: tuple | None = None
    reference_value: float | None = None
    candidate_value: float | None = None
    message: str = ""

    def __bool__(self):
        return self.ok

    @property
    def where(self) -> str:
        """E.g. "step 2, W_1[3, 0]" ("" when ok)."""
        if self.step is None:
            return ""
        return f"step {self.step}, {self.parameter}[{', '.join(map(str, self.index))}]"

    def __str__(self):
        head = (f"trajectories agree over {self.n_steps} steps" if self.ok
                else f"trajectories diverge at {self.where}" if self.step is not None
                else "trajectories cannot be compared")
        tol = f"(rtol={self.rtol:g}, atol={self.atol:g}, layout={self.layout!r})"
        lines = [f"{head} {tol}; max |candidate - reference| = {self.max_abs_error:.3e}"]
        if self.step is not None:
            lines.append(f"  reference {self.reference_value!r}, candidate {self.candidate_value!r}")
        if self.message:
            lines.append(f"  {self.message}")
        return "\n".join(lines)


def compare_trajectories(reference, candidate, rtol: float = 1e-10, atol: float = 1e-12, layout: str = "refnet"):
    """Compare a candidate trajectory with a reference one, step by step.

    Arguments::

        reference: from :func:`reference_trajectory` (refnet layout).
        candidate: a list of steps, step 0 = the initial parameters; each step is
            ``[W_1, b_1, ...]`` or ``[(W_1, b_1), ...]``. ``layout="torch"``: the
            W's are (n_out, n_in) (``nn.Linear.weight``); "refnet": (n_in, n_out).

    An entry diverges when ``|c - r| > atol + rtol |r|`` (numpy.isclose). Returns a
    :class:`Report`; the first divergence is the lowest step, then parameter
    order, then the largest excess over the tolerance within that parameter.
    """
    if layout not in ("refnet", "torch"):
        raise ValueError(f"layout must be 'refnet' or 'torch', got {layout!r}")
    for name, traj in (("reference", reference), ("candidate", candidate)):
        if len(traj) < 2:
            raise ValueError(f"{name} must hold step 0 (the initial parameters) and at least one step, "
                             f"got {len(traj)} entr{'y' if len(traj) == 1 else 'ies'}: nothing to compare")
    n = min(len(reference), len(candidate))
    first = None
    max_err = 0.0
    for s in range(n):
        ref = _flat_step(reference[s], f"reference[{s}]")
        cand = _flat_step(candidate[s], f"candidate[{s}]")
        if len(cand) != len(ref):
            raise ValueError(f"candidate[{s}] has {len(cand)} arrays, expected {len(ref)} (W_1, b_1, ...)")
        for (name, r), (_, c) in zip(ref, cand):
            if layout == "torch" and name[0] == "W":
                r = r.T                                           # refnet (n_in, n_out) -> torch (n_out, n_in)
            if c.shape != r.shape:
                raise ValueError(f"candidate[{s}] {name} has shape {c.shape}, expected {r.shape} "
                                 f"in layout {layout!r}")
            err = np.where(np.isnan(c - r), np.inf, np.abs(c - r))   # |c - r|, NaN counts as infinite
            max_err = max(max_err, float(np.max(err, initial=0.0)))
            excess = err - (atol + rtol * np.abs(r))              # > 0: outside the tolerance
            if first is None and np.any(excess > 0):
                idx = np.unravel_index(int(np.argmax(excess)), excess.shape)
                first = (s, name, tuple(int(i) for i in idx), float(r[idx]), float(c[idx]))
    msg = "" if len(candidate) == len(reference) else (
        f"candidate has {len(candidate) - 1} steps, reference {len(reference) - 1}; compared {n - 1}")
    ok = first is None and len(candidate) == len(reference)
    kw = dict(n_steps=n - 1, max_abs_error=max_err, rtol=rtol, atol=atol, layout=layout, message=msg)
    if first is None:
        return Report(ok=ok, **kw)
    s, name, idx, rv, cv = first
    return Report(ok=False, step=s, parameter=name, index=idx, reference_value=rv, candidate_value=cv, **kw)
