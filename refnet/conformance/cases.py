"""Cases: plain data that fix every input of a comparison (a shrunk failure is printed as one).

A :class:`Case` is JSON-serialisable; :meth:`Case.arrays` turns it into NumPy
float64 arrays deterministically (a seeded ``numpy.random.Generator``), so the
same case gives the same numbers on every machine and replays exactly.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from ..mlp import MLP
from ..nn import ACTIVATIONS, LOSSES

ACTIVATION_NAMES = tuple(ACTIVATIONS)


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

KINDS = ("plain", "small_magnitude", "saturated", "near_duplicate_anchors", "wide_scale", "m_close_to_p")
OPTIMIZERS = ("sgd", "momentum", "averaged_momentum")
# the optimizer variants a port may declare (``port.optimizers``): variant -> (optimizer, nesterov, include_bias)
VARIANTS = {"sgd": ("sgd", False, False), "momentum": ("momentum", False, False),
            "nesterov": ("momentum", True, False), "averaged_momentum": ("averaged_momentum", False, False),
            "averaged_momentum_bias": ("averaged_momentum", False, True)}


@dataclass(frozen=True)
class Case:
    """Everything one comparison depends on.

    Fields::

        sizes, activation, output_activation: the network (``refnet.MLP``).
        seed: weights are ``MLP.init(seed)``; the data use ``default_rng([seed, 2])``.
        n: samples in X (also the anchors of the frozen quantities, m = len(freeze) n).
        kind: "plain" or a hard case where cutoff and ordering bugs live:
            "small_magnitude" (inputs scaled by 1e-12: singular values of J far
            below 1 but far above the relative cutoff), "saturated" (W_1 times 30:
            tanh/sigmoid units saturate), "near_duplicate_anchors" (sample 1 = sample
            0 + 1e-9 noise), "wide_scale" (layer l scaled by 1e3 or 1e-3 in turn),
            "m_close_to_p" (n chosen so that len(freeze) n is p - 1, p or p + 1).
        freeze: frozen outputs (project_out, frozen_step, projected trajectories).
        lr, loss: step size and "mse" | "softmax_cross_entropy".
        optimizer, momentum, nesterov, include_bias, n_steps: the optimizer quantities.
    """
    sizes: tuple = (3, 4, 2)
    activation: str = "tanh"
    output_activation: str = "identity"
    seed: int = 0
    n: int = 4
    kind: str = "plain"
    freeze: tuple = (0,)
    lr: float = 0.1
    loss: str = "mse"
    optimizer: str = "averaged_momentum"
    momentum: float = 0.9
    nesterov: bool = False
    include_bias: bool = False
    n_steps: int = 4

    def __post_init__(self):
        for name in ("sizes", "freeze"):                                   # JSON lists -> tuples of ints
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or not all(_is_int(v) for v in value):
                raise TypeError(f"{name} must be a list of integers, got {value!r}")
            object.__setattr__(self, name, tuple(int(v) for v in value))
        if len(self.sizes) < 2 or min(self.sizes) < 1:
            raise ValueError(f"sizes must list at least two layer widths, each >= 1, got {list(self.sizes)}")
        for name, options in (("activation", ACTIVATION_NAMES), ("output_activation", ACTIVATION_NAMES),
                              ("kind", KINDS), ("loss", LOSSES), ("optimizer", OPTIMIZERS)):
            if getattr(self, name) not in options:
                raise ValueError(f"{name} must be one of {list(options)}, got {getattr(self, name)!r}")
        for name, low in (("seed", 0), ("n", 1), ("n_steps", 1)):
            if not _is_int(getattr(self, name)) or getattr(self, name) < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {getattr(self, name)!r}")
        for name, ok, expected in (("lr", lambda v: 0 < v < float("inf"), "a number > 0"),
                                   ("momentum", lambda v: 0 <= v < 1, "a number in [0, 1)")):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not ok(v):
                raise ValueError(f"{name} must be {expected}, got {v!r}")
        for name in ("nesterov", "include_bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not self.freeze or any(not 0 <= k < self.sizes[-1] for k in self.freeze):
            raise ValueError(f"freeze must hold output indices in [0, {self.sizes[-1]}), got {list(self.freeze)}")

    # ---------------------------------------------------------------- data
    def to_json(self) -> str:
        """One line of JSON (what reports print and ``--case`` reads)."""
        d = asdict(self)
        d["sizes"], d["freeze"] = list(self.sizes), list(self.freeze)
        return json.dumps(d, separators=(", ", ": "))

    @classmethod
    def from_json(cls, text):
        """Inverse of :meth:`to_json` (also takes a dict); unknown keys and bad values raise ValueError."""
        d = json.loads(text) if isinstance(text, str) else text
        if not isinstance(d, dict):
            raise ValueError(f"case must be a JSON object (as printed in a failure report), got {type(d).__name__}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"case has unknown keys {sorted(unknown)}")
        return cls(**d)

    @property
    def variant(self) -> str:
        """The optimizer variant of :data:`VARIANTS` this case runs ("nesterov", "averaged_momentum_bias", ...)."""
        return next(v for v, spec in VARIANTS.items() if spec == self.optimizer_spec)

    @property
    def optimizer_spec(self):
        """(optimizer, nesterov, include_bias), the flags that apply to the optimizer only."""
        return (self.optimizer, self.optimizer == "momentum" and self.nesterov,
                self.optimizer == "averaged_momentum" and self.include_bias)

    def with_variant(self, variant) -> "Case":
        """This case with optimizer variant ``variant`` (a key of :data:`VARIANTS`)."""
        optimizer, nesterov, include_bias = VARIANTS[variant]
        return replace(self, optimizer=optimizer, nesterov=nesterov, include_bias=include_bias)

    def network(self) -> MLP:
        return MLP(list(self.sizes), activation=self.activation, output_activation=self.output_activation)

    @property
    def n_samples(self) -> int:
        """n, or for kind "m_close_to_p" the n that puts m = len(freeze) n next to p."""
        if self.kind != "m_close_to_p":
            return self.n
        K, p = max(len(self.freeze), 1), self.network().n_params
        return max(1, round(p / K) + (self.n % 3) - 1)                     # m in {p - K, p, p + K} (about)

    def hyper(self) -> dict:
        """The ``hyper`` dict a port's ``optimizer_step`` receives."""
        if self.optimizer == "sgd":
            return {"lr": self.lr}
        if self.optimizer == "momentum":
            return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov}
        return {"lr": self.lr, "momentum": self.momentum, "include_bias": self.include_bias}

    def arrays(self) -> dict:
        """NumPy float64 inputs (refnet layout), the same on every run.

        params [(W_l, b_l)], X (n, n_0), G (n, n_L) an output gradient, T (n, n_L)
        targets for ``loss``, grads / grads2 random gradient lists shaped like
        params (project_out input, optimizer steps 1 and 2).
        """
        net = self.network()
        params = net.init(seed=self.seed)
        rng = np.random.default_rng([self.seed, 2])
        n, n_0, n_L = self.n_samples, self.sizes[0], self.sizes[-1]
        X = rng.uniform(0.1, 2.0, (n, n_0)) * rng.choice([-1.0, 1.0], (n, n_0))   # |x| in [0.1, 2]
        params = [(W, b + 0.1 * rng.standard_normal(b.shape)) for W, b in params]  # nonzero biases
        if self.kind == "small_magnitude":
            X = X * 1e-12
        elif self.kind == "saturated":
            params = [(W * 30.0, b) if l == 0 else (W, b) for l, (W, b) in enumerate(params)]
        elif self.kind == "near_duplicate_anchors" and n >= 2:
            X[1] = X[0] + 1e-9 * rng.standard_normal(n_0)
        elif self.kind == "wide_scale":
            params = [(W * 10.0 ** (3 * (-1) ** l), b) for l, (W, b) in enumerate(params)]
        G = rng.standard_normal((n, n_L))
        if self.loss == "softmax_cross_entropy":
            T = np.eye(n_L)[rng.integers(0, n_L, n)]                       # one-hot rows (n, n_L)
        else:
            T = rng.standard_normal((n, n_L))
        like = lambda: [(rng.standard_normal(W.shape), rng.standard_normal(b.shape)) for W, b in params]
        return dict(params=params, X=X, G=G, T=T, grads=like(), grads2=like())


def core_cases():
    """The fixed cases every run starts with: each activation, square and non-square layers,
    widths of 1, both losses, several frozen sets, every hard kind, and softplus far above 20
    (where torch.nn.Softplus returns z itself)."""
    return [
        Case(),
        Case(sizes=(4, 4, 4), activation="sigmoid", seed=1, n=3, freeze=(1, 2), optimizer="momentum"),
        Case(sizes=(2, 5, 1, 3), activation="softplus", output_activation="tanh", seed=2, n=5,
             loss="softmax_cross_entropy", optimizer="momentum", nesterov=True),
        Case(sizes=(1, 3, 2), activation="relu", seed=3, n=6, freeze=(1,), optimizer="sgd"),
        Case(sizes=(5, 3, 4), activation="identity", output_activation="sigmoid", seed=4, n=2, freeze=(0, 3),
             include_bias=True),
        Case(sizes=(3, 4, 2), seed=5, n=4, kind="small_magnitude", include_bias=True),
        Case(sizes=(3, 4, 2), seed=6, n=4, kind="saturated"),
        Case(sizes=(3, 4, 2), seed=7, n=4, kind="near_duplicate_anchors", freeze=(1,)),
        Case(sizes=(2, 3, 2), activation="sigmoid", seed=8, n=3, kind="wide_scale"),
        Case(sizes=(2, 2, 2), seed=9, n=1, kind="m_close_to_p", optimizer="momentum"),
        Case(sizes=(2, 3, 2), activation="softplus", seed=11, n=3, kind="saturated", optimizer="sgd"),  # 20 < z < 34
    ]
