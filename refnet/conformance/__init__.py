"""The verification kit: prove that your own implementation (PyTorch, JAX, C, Julia, ...) computes what refnet computes.

**Port protocol** (the full contract, with every ``hyper`` key, is the "port
protocol" section of the design page). A port is any object with ``name``
(str), ``layout`` ("refnet": W is (n_in, n_out); "torch": (n_out, n_in),
``nn.Linear.weight``) and any subset of these methods (what it lacks is
skipped, with the reason)::

    forward(spec, params, X) -> Y                                   (n, n_L)
    vjp(spec, params, X, G) -> [(dW, db), ...]                      backprop of G = dL/dY
    loss_and_grads(spec, params, X, T, loss) -> (L, [(dW, db), ...])
    jacobian(spec, params, X, outputs) -> J                         (len(outputs) n, p)
    project_out(spec, params, grads, anchors, outputs, rtol) -> [(dW, db), ...]
    frozen_step(spec, params, X, G, freeze, lr, anchors, rtol) -> params
    optimizer_step(name, hyper, params, grads, state) -> (params, state)

``spec`` is a ``refnet.MLP`` (read ``spec.sizes``, ``spec.activation``,
``spec.output_activation``); ``params`` and ``grads`` are lists of ``(W, b)``
NumPy float64 arrays in the port's layout, copies the port may modify; results
may be anything ``numpy.asarray`` accepts (tensors of any library are copied to
the host), in the same layout and the port's dtype (complex values or another
dtype fail). ``rtol`` (``refnet.frozen.default_rtol``: singular values at or
below rtol s_1 are not constraints) is passed only when the signature has a
place for it. ``optimizer_step``: name "sgd" | "momentum" | "averaged_momentum";
hyper holds lr and, where they apply, momentum, nesterov, include_bias; state
is the port's own opaque value (None before the first step). A method that
raises ``NotImplementedError`` for a case is SKIP for that case, with its
message (never FAIL); a call longer than ``timeout`` seconds fails.
Optional attributes: ``optimizers`` (the variants the port has, among
"sgd", "momentum", "nesterov", "averaged_momentum", "averaged_momentum_bias";
no case is generated for the others), ``jacobian_rows`` ("output_major",
refnet's: row k n + i = d Y[i, outputs[k]]; or "sample_major", row i K + k,
what jacrev of Y[:, K] gives), ``jacobian_columns`` ("refnet": W_1 row-major
(n_in, n_out), b_1, W_2, ...; "torch"; "bias_first": JAX ``ravel_pytree`` of
{"bias", "kernel"} dicts) and ``dtype`` ("float64", or "float32": inputs are
rounded to float32 values, the tolerances use float32's eps, and where
refnet's values leave float32's range the case is not comparable).
:mod:`refnet.conformance.layout` has the conversions (``to_layout``,
``jacobian_to_refnet``, ``column_name`` ...).

**Quantities**, checked in computation order; one that fails marks the ones
built on it "blocked by ..." instead of cascading: forward, loss, vjp, grads
(of loss_and_grads), jacobian, project_out, frozen_step, optimizer_step (steps
1 and 2, step 2 from refnet's parameters after step 1 and the port's own
state: step 1 alone cannot see any averaging, the buffer starts at zero),
trajectory (n_steps steps with the state carried over, each compared with
refnet's step from the port's own parameters and refnet's gradients there, so
the dynamics cannot amplify rounding) and projected_trajectory
(``refnet.Projected(..., retract=False)``
against the port's project_out + optimizer_step + project_out).

**Cases** (:class:`Case`): plain data from which every array is made; a fixed
core set (every activation, square and non-square layers, widths of 1, both
losses, every optimizer variant, and the hard cases: small magnitudes,
saturated units, near-duplicate anchors, widely scaled layers, m close to p,
softplus above 20) always runs, then hypothesis
(``refnet.strategies.conformance_cases``) with profile "quick" (25 examples per
quantity, derandomized, on the core cases' architectures and sample counts,
so that a port that compiles per shape, such as JAX, compiles little more than
the core cases need), "deep" (1000, any architecture) or "core" (none). The
first failure found is the one reported and shrunk (by hypothesis, then
greedily; only cases that fail the same way are accepted), with the quantity,
the first diverging entry in the port's own layout, reference and candidate
values, the tolerance, the shrunk case as JSON, a one-line replay command and a
hint when the kit recognises the slip; ``all_failures`` lists every distinct
failure. Cases without a well-defined answer are counted as not comparable,
with the reason. A port with no forward, vjp, loss_and_grads or jacobian has a
layout the kit cannot verify: the report says so, and ``strict`` fails it.

**Tolerances** are derived per quantity and dtype (see
:mod:`refnet.conformance.tolerances` for the formulas): forward and gradients
from running rounding-error bounds of the terms that make up each entry;
projections from the perturbation bound ``SAFETY (cutoff + |E_J|_F) / s_r |g|`` of
the pseudo-inverse projector (about ``eps cond_r(J) max(m, p) |g|``); frozen steps
by invariants first (frozen outputs within refnet's retraction tolerance on
the anchors, at least half of refnet's first-order progress on the trained
outputs) and then parameters within about tol / s_r. Cases whose rank is
ambiguous at the dtype's precision (a singular value within a factor 10 of the
cutoff, or within J's own rounding-error bound of it) are not compared
entrywise, nor frozen steps whose retraction is ill-conditioned; the report
says why. Golden files: :mod:`refnet.conformance.golden` documents the format.

**Commands**::

    python -m refnet conformance run --port MODULE:ATTR [--profile quick|deep|core] [--save-failures DIR]
                                    [--timeout SECONDS] [--strict] [--all-failures]
    python -m refnet conformance export DIR        # golden files for any language
    python -m refnet conformance check DIR         # verify results written next to them

(exit 0 when nothing failed and something was compared, 1 on any failure, 2
on an unusable argument, with one line naming it), and from pytest:
``refnet.conformance.assert_conforms(MyPort())``.

**Trajectories** of a whole training run (the original kit) stay available:
:class:`Scenario`, :func:`reference_trajectory`, :func:`compare_trajectories`, :class:`Report`.
"""
from . import layout
from .cases import Case, core_cases
from .checks import QUANTITIES, Mismatch, NotComparable
from .runner import PROFILES, QuantityResult, RunReport, assert_conforms, load_port, run
from .trajectory import OPTIMIZERS, Report, Scenario, compare_trajectories, reference_trajectory

__all__ = ["Case", "Mismatch", "NotComparable", "OPTIMIZERS", "PROFILES", "QUANTITIES", "QuantityResult", "Report",
           "RunReport", "Scenario", "assert_conforms", "compare_trajectories", "core_cases", "layout", "load_port",
           "reference_trajectory", "run"]
