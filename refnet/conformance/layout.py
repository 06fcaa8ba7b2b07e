"""Layouts and orders: convert once between your port's conventions and refnet's.

refnet's conventions (the reference every comparison is made in):

* weights ``W_l`` are (n_{l-1}, n_l) (``layout="refnet"``); PyTorch's
  ``nn.Linear.weight`` is the transpose (n_l, n_{l-1}) (``layout="torch"``);
* a flat parameter vector is W_1 (row-major), b_1, W_2, b_2, ... (``"refnet"``
  column order of a Jacobian). Other orders a port may use: ``"torch"``
  (W_l (n_l, n_{l-1}) row-major, then b_l: ``torch.cat([p.ravel() for p in
  model.parameters()])``) and ``"bias_first"`` (b_l, then W_l (n_{l-1}, n_l)
  row-major: JAX ``ravel_pytree`` of Flax-style ``{"bias", "kernel"}`` dicts,
  whose keys are sorted);
* Jacobian rows are output-major, row ``k * n + i`` = d Y[i, outputs[k]]
  (``"output_major"``); ``jax.jacrev`` / ``torch.func.jacrev`` of ``Y[:, K]``
  reshaped to (n K, p) gives sample-major rows, row ``i * K + k``
  (``"sample_major"``).

Every helper works on NumPy arrays and returns new arrays (inputs are not modified).
"""
from __future__ import annotations

import numpy as np

LAYOUTS = ("refnet", "torch")
COLUMN_ORDERS = ("refnet", "torch", "bias_first")
ROW_ORDERS = ("output_major", "sample_major")


def _choice(value, name, options):
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
    return value


def to_layout(params, layout):
    """Parameters in refnet's layout -> the same parameters in ``layout`` (float64 copies).

    Parameters
    ----------
    params : list of (W, b)
        ``W_l`` (n_{l-1}, n_l), ``b_l`` (n_l,): refnet's layout.
    layout : {"refnet", "torch"}
        "torch": ``W_l`` becomes (n_l, n_{l-1}), ``nn.Linear.weight``.

    Returns
    -------
    list of (W, b)
        New NumPy float64 arrays.

    Examples
    --------
    >>> import numpy as np
    >>> W, b = to_layout([(np.zeros((3, 2)), np.zeros(2))], "torch")[0]
    >>> W.shape, b.shape
    ((2, 3), (2,))
    """
    _choice(layout, "layout", LAYOUTS)
    return [(np.array(W.T if layout == "torch" else W, dtype=np.float64), np.array(b, dtype=np.float64))
            for W, b in params]


def from_layout(params, layout):
    """Parameters in ``layout`` -> refnet's layout (the inverse of :func:`to_layout`).

    Parameters
    ----------
    params : list of (W, b)
        Arrays (or anything ``numpy.asarray`` takes) in ``layout``.
    layout : {"refnet", "torch"}

    Returns
    -------
    list of (W, b)
        NumPy float64 copies, ``W_l`` (n_{l-1}, n_l).

    Examples
    --------
    >>> import numpy as np
    >>> from_layout([(np.zeros((2, 3)), np.zeros(2))], "torch")[0][0].shape
    (3, 2)
    """
    _choice(layout, "layout", LAYOUTS)
    out = []
    for W, b in params:
        W = np.array(W, dtype=np.float64)
        out.append((W.T.copy() if layout == "torch" else W, np.array(b, dtype=np.float64)))
    return out


def _blocks(sizes, order):
    """[(name, shape in the order's own layout, refnet flat indices (as that shape))] in the order's sequence."""
    _choice(order, "columns", COLUMN_ORDERS)
    blocks, start = [], 0
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        W = np.arange(start, start + n_in * n_out).reshape(n_in, n_out)     # refnet flat index of W_l[i, j]
        b = np.arange(start + n_in * n_out, start + (n_in + 1) * n_out)     # ... of b_l[j]
        start += (n_in + 1) * n_out
        Wb = [(f"W_{l}", W.T if order == "torch" else W), (f"b_{l}", b)]
        blocks += Wb[::-1] if order == "bias_first" else Wb
    return blocks


def column_index(sizes, columns):
    """refnet's flat index of each column of a Jacobian (or flat vector) in order ``columns``.

    Parameters
    ----------
    sizes : list of int
        Layer widths [n_0, ..., n_L].
    columns : {"refnet", "torch", "bias_first"}
        The column order (see the module docstring).

    Returns
    -------
    ndarray of int, shape (p,)
        ``J_port[:, j]`` is ``J_refnet[:, column_index(sizes, columns)[j]]``.

    Examples
    --------
    >>> column_index([2, 3], "torch").tolist()        # W (2, 3) row-major is 0..5, then b 6..8
    [0, 3, 1, 4, 2, 5, 6, 7, 8]
    >>> column_index([2, 3], "bias_first").tolist()
    [6, 7, 8, 0, 1, 2, 3, 4, 5]
    """
    return np.concatenate([idx.reshape(-1) for _, idx in _blocks(list(sizes), columns)])


def column_name(sizes, columns, j, layout="refnet"):
    """The parameter entry of column ``j`` in order ``columns``.

    Parameters
    ----------
    sizes : list of int
        Layer widths [n_0, ..., n_L].
    columns : {"refnet", "torch", "bias_first"}
    j : int
        A column index, 0 <= j < p (ValueError otherwise).
    layout : {"refnet", "torch"}, default "refnet"
        How W's indices are written ("torch": [out, in]).

    Returns
    -------
    str
        e.g. "b_1[2]" or "W_2[0, 3]".

    Examples
    --------
    >>> column_name([2, 3], "torch", 1, layout="torch")
    'W_1[0, 1]'
    >>> column_name([2, 3], "bias_first", 0)
    'b_1[0]'
    """
    refnet_j = int(column_index(sizes, columns)[j])
    for name, idx in _blocks(list(sizes), "refnet"):
        hit = np.argwhere(idx == refnet_j)
        if hit.size:
            i = tuple(int(v) for v in hit[0])
            if name[0] == "W" and layout == "torch":
                i = i[::-1]
            return f"{name}[{', '.join(map(str, i))}]"
    raise ValueError(f"column {j} is outside the {sum(idx.size for _, idx in _blocks(list(sizes), 'refnet'))} parameters")


def row_index(n, K, rows):
    """The output-major row (k n + i) of each row of a Jacobian whose rows are in order ``rows``.

    Parameters
    ----------
    n : int
        Samples.
    K : int
        Outputs (``len(outputs)``).
    rows : {"output_major", "sample_major"}

    Returns
    -------
    ndarray of int, shape (n K,)

    Examples
    --------
    >>> row_index(2, 3, "sample_major").tolist()      # row i K + k holds d Y[i, outputs[k]]
    [0, 2, 4, 1, 3, 5]
    """
    _choice(rows, "rows", ROW_ORDERS)
    k, i = np.meshgrid(np.arange(K), np.arange(n), indexing="ij" if rows == "output_major" else "xy")
    return (k * n + i).reshape(-1)                                          # sample-major: i varies slowest


def jacobian_to_refnet(J, sizes, n, K, rows="output_major", columns="refnet"):
    """A Jacobian in the port's row and column orders -> refnet's (output-major rows, refnet columns).

    Parameters
    ----------
    J : array_like, shape (n K, p)
    sizes : list of int
        Layer widths [n_0, ..., n_L].
    n, K : int
        Samples and outputs.
    rows : {"output_major", "sample_major"}, default "output_major"
    columns : {"refnet", "torch", "bias_first"}, default "refnet"

    Returns
    -------
    ndarray, shape (n K, p)
        A float64 copy.

    Examples
    --------
    >>> import numpy as np                             # sizes [1, 2]: W (1, 2), b (2,); one sample, two outputs
    >>> jacobian_to_refnet(np.arange(8.0).reshape(2, 4), [1, 2], 1, 2, columns="bias_first")
    array([[2., 3., 0., 1.],
           [6., 7., 4., 5.]])
    """
    J = np.asarray(J, dtype=np.float64)
    out = np.empty_like(J)
    out[np.ix_(row_index(n, K, rows), column_index(sizes, columns))] = J   # J_ref[r(i), c(j)] = J[i, j]
    return out


def jacobian_from_refnet(J, sizes, n, K, rows="output_major", columns="refnet"):
    """refnet's Jacobian -> the port's row and column orders (the inverse of :func:`jacobian_to_refnet`).

    Parameters
    ----------
    J : array_like, shape (n K, p)
        Output-major rows, refnet columns.
    sizes, n, K, rows, columns
        As in :func:`jacobian_to_refnet`.

    Returns
    -------
    ndarray, shape (n K, p)

    Examples
    --------
    >>> import numpy as np
    >>> jacobian_from_refnet(np.arange(4.0)[None], [1, 2], 1, 1, columns="bias_first")
    array([[2., 3., 0., 1.]])
    """
    return np.asarray(J, dtype=np.float64)[np.ix_(row_index(n, K, rows), column_index(sizes, columns))]


def flatten(params, columns="refnet", layout="refnet"):
    """Parameters given in ``layout`` -> one vector in order ``columns``.

    Parameters
    ----------
    params : list of (W, b)
    columns : {"refnet", "torch", "bias_first"}, default "refnet"
    layout : {"refnet", "torch"}, default "refnet"

    Returns
    -------
    ndarray, shape (p,)

    Examples
    --------
    >>> import numpy as np
    >>> flatten([(np.array([[1.0, 2.0]]), np.array([3.0, 4.0]))], columns="bias_first").tolist()
    [3.0, 4.0, 1.0, 2.0]
    """
    ref = from_layout(params, layout)
    v = np.concatenate([x.reshape(-1) for W, b in ref for x in (W, b)])    # refnet flatten order
    return v[column_index([W.shape[0] for W, _ in ref] + [ref[-1][0].shape[1]], columns)]


def unflatten(v, sizes, columns="refnet", layout="refnet"):
    """A vector in order ``columns`` -> parameters in ``layout`` (the inverse of :func:`flatten`).

    Parameters
    ----------
    v : array_like, shape (p,)
    sizes : list of int
        Layer widths [n_0, ..., n_L].
    columns : {"refnet", "torch", "bias_first"}, default "refnet"
    layout : {"refnet", "torch"}, default "refnet"

    Returns
    -------
    list of (W, b)
        NumPy float64 arrays.

    Examples
    --------
    >>> [(W.tolist(), b.tolist()) for W, b in unflatten([3.0, 4.0, 1.0, 2.0], [1, 2], columns="bias_first")]
    [([[1.0, 2.0]], [3.0, 4.0])]
    """
    v = np.asarray(v, dtype=np.float64)
    flat = np.empty_like(v)
    flat[column_index(sizes, columns)] = v                                  # back to refnet flatten order
    out, start = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        W = flat[start:start + n_in * n_out].reshape(n_in, n_out)
        out.append((W, flat[start + n_in * n_out:start + (n_in + 1) * n_out].copy()))
        start += (n_in + 1) * n_out
    return to_layout(out, layout)
