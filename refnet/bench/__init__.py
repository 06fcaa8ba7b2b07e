"""Time refnet against a bare NumPy loop, PyTorch, autograd and torch.func.

Usage::

    python -m refnet.bench [--quick] [--out DIR] [--cases NAME ...] [--repeats N]

``--quick`` runs every case with few repeats (and the ~1e7-parameter gram case
at a smaller, labelled size) in under about a minute; it is what CI smoke-tests.
``--out`` (default ``bench-results/``, git-ignored) receives ``bench.md`` (a
Markdown table with the machine header) and ``bench.json`` (every number).
``--cases`` picks case groups by name or prefix: ``train``, ``grad``,
``momentum``, ``projection``, ``gram_large``, ``frozen``, ``flops``,
``memory``, ``gpu``. Peers come from the ``peers`` extra
(``pip install -e ".[peers]"``: torch 2.13.0, autograd, psutil); without them,
or with the environment variable ``REFNET_BENCH_NO_PEERS=1``, peer columns
read "n/a" and the refnet columns still run.

Method. Contenders of one case are timed in the same process, interleaved:
each round times one sample of every contender, in alternating order, so
slow drift (other jobs, frequency changes) hits all of them alike. A sample
is ``number`` back-to-back calls, with ``number`` calibrated after warm-up so
a sample lasts at least a few milliseconds; the reported time per call is the
median over rounds, and ``spread`` is the interquartile range over the median.
A case whose spread exceeds 30% is measured again (all its contenders, up to
twice more; the least spread measurement is kept); the row's note says so, and
says NOISY when it stayed above 30%.
Ratios are refnet / peer (lower is better). PyTorch runs with
``torch.set_num_threads`` equal to the BLAS thread count NumPy uses.

Memory is the peak resident set size (``VmHWM``; ``ru_maxrss`` elsewhere) of a fresh
``python -m refnet.bench --_child CASE`` subprocess that imports only what the
case needs, builds its inputs, and runs it; the whole process is counted
(interpreter and imports included), so it is an upper bound on the case.

Training step = forward, MSE loss, backward, SGD update, tanh hidden layers,
identity output, parameters replaced by new arrays each step (refnet's pure
semantics). The peers are ``nn.Sequential`` + ``MSELoss`` + ``optim.SGD``
(zero_grad/backward/step, in-place as PyTorch does) and a bare NumPy loop
written here (same math and the same pure semantics, in-place only on
temporaries).

Layout: ``harness`` (machine description, interleaved timing, BLAS/torch
threads, subprocess peak memory), ``peers`` (the bare NumPy loop, PyTorch,
torch.func, autograd, CuPy; each library imported only inside a function),
``cases`` (problem sizes and one ``case_<group>`` per group), ``report``
(result rows, the Markdown table, bench.md / bench.json), ``__main__`` (the
command line).
"""
from .cases import CASES, GROUPS, SIZES, make_problem, train_step_flops
from .harness import interleaved, machine_info
from .peers import numpy_train_step
from .report import markdown, row

__all__ = ["CASES", "GROUPS", "SIZES", "interleaved", "machine_info", "make_problem", "markdown",
           "numpy_train_step", "row", "train_step_flops"]
