"""The shipped adapters (refnet/conformance/adapters/*_port.py) through the kit's command line.

Each adapter runs as a porter runs it: copied alone into an empty folder and
checked with ``python -m refnet conformance run --port FILE.py:ATTR`` there.
Correct adapters exit 0; the original answer's ``reduce_mean(axis=1)``
optimizer exits 1, naming ``optimizer_step``, step 2 and a weight entry.
An adapter whose library is missing is skipped, with the reason, except under
CI (``CI`` set), whose .ci/run installs every one of them: there a skip would
hide a broken install, so it fails.

Where TensorFlow is installed, the original answer's three TF1 train_ops (seed
question about freezing output 1) are rebuilt in a TF1 graph and compared with
refnet's masked gradients and ``frozen_step``.
"""
import ast
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

import refnet
from refnet.conformance.adapters import PATHS

ROOT = pathlib.Path(__file__).parents[1]
# adapter file -> the libraries it needs (all installed by .ci/run)
NEEDS = {"torch_port": ["torch"], "optax_port": ["optax", "jax"], "keras_port": ["keras", "jax"],
         "tf1_port": ["tensorflow"], "tf1_question_port": ["tensorflow"]}
# (adapter, attribute, profile, expected exit code); torch runs the default profile (core cases and
# hypothesis), the JAX-based ones compile per shape and TF is slow to start: core cases only
RUNS = [("torch_port", "PORT", "quick", 0), ("optax_port", "PORT", "core", 0), ("keras_port", "PORT", "core", 0),
        ("tf1_port", "PORT", "core", 0), ("tf1_question_port", "PORT", "core", 0),
        ("tf1_question_port", "FIXED_PORT", "core", 0), ("tf1_question_port", "BAD_PORT", "core", 1)]


def require(libraries):
    """Skip when a library is missing (fail under CI, which installs them all)."""
    missing = [m for m in libraries if importlib.util.find_spec(m) is None]
    if missing and os.environ.get("CI"):
        pytest.fail(f"{', '.join(missing)} missing under CI: .ci/run installs it")
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (pip install -e \".[adapters]\")")


def run_cli(adapter, attr, profile, tmp_path):
    """The kit's CLI on the adapter, from a folder that holds only the adapter file."""
    folder = tmp_path / "alone"
    folder.mkdir()
    shutil.copy(PATHS[adapter], folder)
    env = dict(os.environ, PYTHONPATH=str(ROOT))           # refnet from this checkout; nothing else on the path
    return subprocess.run([sys.executable, "-m", "refnet", "conformance", "run", "--port",
                           f"{adapter}.py:{attr}", "--profile", profile],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=900)


def _load(adapter):
    """The adapter file as a fresh module (not the package's import of it)."""
    spec = importlib.util.spec_from_file_location(f"{adapter}_under_test", PATHS[adapter])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_adapter_is_listed_and_self_contained():
    """Each *_port.py is tested here and has only absolute imports (it must run alone in a folder)."""
    assert set(PATHS) == set(NEEDS)
    for name, path in PATHS.items():
        tree = ast.parse(path.read_text())
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level], name
        assert any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "PORT" for t in n.targets)
                   for n in tree.body), f"{name} exposes no PORT"


@pytest.mark.parametrize("adapter, attr, profile, code", RUNS, ids=[f"{a}:{t}" for a, t, _, _ in RUNS])
def test_adapter_through_the_cli(adapter, attr, profile, code, tmp_path):
    require(NEEDS[adapter])
    done = run_cli(adapter, attr, profile, tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == code, out[-4000:]
    if code == 0:
        assert "OK: every quantity that ran agrees with refnet" in done.stdout, out[-4000:]
        assert "FAIL" not in done.stdout
    else:                                   # the answer's outgoing averaging: caught at step 2, on a weight
        fail = [line for line in done.stdout.splitlines() if line.startswith("FAIL ")]
        assert fail and fail[0].startswith("FAIL optimizer_step: step 2, W_"), out[-4000:]
        assert "FAILED: optimizer_step" in done.stdout


def test_torch_adapter_softplus_is_exact_where_nn_softplus_is_not():
    """nn.Softplus returns z above threshold 20; the adapter's logaddexp passes the case where that
    shows (a saturated softplus case, hidden z in (20, 37)) and nn.Softplus fails it."""
    require(["torch"])
    import torch
    from refnet.conformance import Case, checks
    mod = _load("torch_port")
    case = Case(sizes=(3, 4, 2), activation="softplus", kind="saturated", seed=1)
    assert checks.check_forward(mod.TorchPort(), case) is None
    mis = checks.check_forward(mod.TorchPort(softplus=torch.nn.Softplus), case)
    assert mis is not None and mis.where.startswith("Y[")


def test_tf1_adapter_mse_is_float64_where_tf1s_loss_is_not():
    """tf.compat.v1.losses.mean_squared_error returns float32 for float64 inputs: the kit refuses the
    float32 result, and the same loss cast back to float64 fails on its value and its gradients
    (float32 rounding, ~1e-8); the adapter's reduce_mean of the squares passes both."""
    require(["tensorflow"])
    import tensorflow as tf
    from refnet.conformance import Case, checks
    mod = _load("tf1_port")
    case = Case()                                                       # mse, 3-4-2 tanh
    assert checks.check_loss(mod.TF1Port(), case) is None and checks.check_grads(mod.TF1Port(), case) is None
    with pytest.raises(checks.PortFailure, match="loss_and_grads returned dtype float32"):
        checks.check_loss(mod.TF1Port(mse=tf.compat.v1.losses.mean_squared_error), case)
    cast = mod.TF1Port(mse=lambda T, Y: tf.cast(tf.compat.v1.losses.mean_squared_error(T, Y), tf.float64))
    assert str(checks.check_loss(cast, case)).startswith("loss: L (mse)")
    assert str(checks.check_grads(cast, case)).startswith("grads: dW_")


KERAS_MSE = """
import importlib.util
from refnet.conformance import Case, checks
from refnet.conformance.adapters import PATHS
spec = importlib.util.spec_from_file_location("keras_port_under_test", PATHS["keras_port"])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
case = Case(sizes=(3, 5, 4), seed=3, n=7)                                 # mse, tanh
print("adapter:", checks.check_loss(mod.KerasPort(), case), checks.check_grads(mod.KerasPort(), case))
keras_mse = mod.KerasPort(mse=mod.keras.losses.MeanSquaredError(dtype="float64"))
print("keras loss:", checks.check_loss(keras_mse, case))
print("keras grads:", checks.check_grads(keras_mse, case))
"""


def test_keras_adapter_mse_is_float64_where_keras_loss_is_not():
    """keras.ops.mean of float64 values works in float32 (Keras 3's promotion rules), so the float64
    keras.losses.MeanSquaredError is ~1e-8 off in its value, and in its gradients where 1 / (n n_L)
    is not exact in float32 (7 x 4 entries here); the adapter's jnp.mean of the squares passes both.
    In a fresh process: Keras fixes its backend at import, and TensorFlow imports it with its own."""
    require(["keras", "jax"])
    done = subprocess.run([sys.executable, "-c", KERAS_MSE], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.splitlines()
    assert "adapter: None None" in lines, done.stdout
    assert any(line.startswith("keras loss: loss: L (mse)") for line in lines), done.stdout
    assert any(line.startswith("keras grads: grads: dW_") for line in lines), done.stdout


def test_torch_adapter_says_when_its_retraction_does_not_converge():
    """A deep run found this case: J turns by more than s_r over the step and the adapter's Gauss-Newton
    retraction does not converge. It must say so (the kit: not comparable), not return parameters that
    move the frozen outputs (it did: frozen output 0 moved by 0.33)."""
    require(["torch"])
    from refnet.conformance import Case, checks
    mod = _load("torch_port")
    with pytest.raises(checks.NotComparable, match="retraction did not converge"):
        checks.check_frozen_step(mod.TorchPort(), Case(sizes=(2, 1, 3, 3), seed=2, n=4, lr=0.5))


# ------------------------------------------------------------------ the seed answer's train_ops in TF1
def _seed_data():
    """The answer's toy problem: 8 samples, x in [0, 1)^3, y1 = sum x, y2 = sum x^2 (+ noise), a 3-4-2
    sigmoid net with N(0, 0.1^2) weights; float64 here (the answer used float32) so that refnet and
    TF can be compared to rounding."""
    rng = np.random.default_rng(0)
    x = rng.random((8, 3))
    y = np.stack([x.sum(axis=1), (x ** 2).sum(axis=1)], axis=1) + 0.01 * rng.random((8, 2))
    params = [(0.1 * rng.standard_normal((3, 4)), 0.1 * rng.standard_normal(4)),
              (0.1 * rng.standard_normal((4, 2)), 0.1 * rng.standard_normal(2))]
    return x, y, params


def _tf1_train_ops(x, y, params):
    """The answer's graph, verbatim up to float64 and numpy initial values: run each train_op once from
    the same start and return {name: new params}."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                       # TF's own deprecation noise on import
        import tensorflow as tf
    g = tf.Graph()
    with g.as_default():
        X = tf.compat.v1.placeholder(tf.float64, shape=[None, 3], name="x")
        Yt = tf.compat.v1.placeholder(tf.float64, shape=[None, 2], name="y")
        mask = tf.compat.v1.placeholder(tf.float64, shape=[None, 2], name="mask")
        (W1_0, b1_0), (W2_0, b2_0) = params
        W1, b1 = tf.Variable(W1_0, name="W1"), tf.Variable(b1_0, name="b1")
        hidden = tf.nn.sigmoid(tf.matmul(X, W1) + b1)
        W2, b2 = tf.Variable(W2_0, name="W2"), tf.Variable(b2_0, name="b2")
        out = tf.matmul(hidden, W2) + b2
        loss = tf.reduce_mean(tf.square(out - Yt))
        masked_out = mask * out
        loss2 = tf.reduce_mean(tf.square(masked_out - Yt))
        optimizer = tf.compat.v1.train.GradientDescentOptimizer(tf.constant(0.1, tf.float64))
        ops = {"train_op_all": optimizer.minimize(loss),                       # update all variables
               "train_op12": optimizer.minimize(loss, var_list=[W2, b2]),     # hidden -> output layer
               "train_op2": optimizer.minimize(loss2, var_list=[W2, b2]),     # hidden -> second output unit
               "masked_all": optimizer.minimize(loss2)}                       # mask, train every layer
        init = tf.compat.v1.global_variables_initializer()
        mask_out1 = np.zeros((len(x), 2))
        mask_out1[:, 1] += 1.0
        feed = {X: x, Yt: y, mask: mask_out1}
        result = {}
        with tf.compat.v1.Session(graph=g) as sess:
            for name, op in ops.items():
                sess.run(init)
                sess.run(op, feed_dict=feed)
                w1, c1, w2, c2 = sess.run([W1, b1, W2, b2])
                result[name] = [(w1, c1), (w2, c2)]
    return result


def test_seed_answer_train_ops_against_refnet():
    """train_op2 (masked loss, last layer) = refnet.masked_grads(head_only=True) and keeps output 1;
    train_op12, train_op_all and masking with every layer trained (= refnet.masked_grads) move it;
    refnet.frozen_step trains every layer and keeps it to rounding."""
    require(["tensorflow"])
    x, y, params = _seed_data()
    tf_params = _tf1_train_ops(x, y, params)
    net = refnet.MLP([3, 4, 2], activation="sigmoid")
    Y0 = np.asarray(net.forward(params, x))
    G = 2.0 * (Y0 - y) / Y0.size                                           # dL/dY of reduce_mean(square(.))
    step = lambda grads: [(W - 0.1 * dW, b - 0.1 * db) for (W, b), (dW, db) in zip(params, grads)]
    ref = {"train_op_all": step(net.vjp(params, x, G)),
           "train_op12": step([(0 * dW, 0 * db) for dW, db in net.vjp(params, x, G)[:-1]]
                              + net.vjp(params, x, G)[-1:]),
           "train_op2": step(refnet.masked_grads(net, params, x, G, freeze=[0], head_only=True)),
           "masked_all": step(refnet.masked_grads(net, params, x, G, freeze=[0]))}
    for name, theta in ref.items():
        for (W, b), (tW, tb) in zip(theta, tf_params[name]):
            np.testing.assert_allclose(tW, W, rtol=0, atol=1e-15, err_msg=name)
            np.testing.assert_allclose(tb, b, rtol=0, atol=1e-15, err_msg=name)
    drift = {name: float(np.max(np.abs(np.asarray(net.forward(t, x))[:, 0] - Y0[:, 0])))
             for name, t in tf_params.items()}
    frozen, info = refnet.frozen_step(net, params, x, G, freeze=[0], lr=0.1)
    drift["frozen_step"] = float(np.max(np.abs(np.asarray(net.forward(frozen, x))[:, 0] - Y0[:, 0])))
    print("output-1 drift after one step:", {k: f"{v:.2e}" for k, v in drift.items()})
    assert drift["train_op2"] == 0.0                          # hidden layer and W2[:, 0], b2[0] untouched
    for name in ("train_op_all", "train_op12", "masked_all"):
        assert drift[name] > 1e3 * max(drift["frozen_step"], 1e-16), (name, drift)
    assert drift["frozen_step"] <= info.tol
    loss2 = lambda t: float(np.mean((np.asarray(net.forward(t, x))[:, 1] - y[:, 1]) ** 2))
    assert loss2(frozen) < loss2(params)                      # output 2 still learns, through every layer
    assert all(not np.array_equal(W, W0) for (W, _), (W0, _) in zip(frozen, params))


# ------------------------------------------------------------------ the conformance matrix page
def test_matrix_page_is_a_dated_run_of_every_adapter():
    """tutorials/conformance_matrix.md: written by the generator (dated), every adapter and quantity
    in it, every line within 88 characters (nothing clipped on the site)."""
    from refnet.conformance.checks import QUANTITIES
    text = (ROOT / "tutorials" / "conformance_matrix.md").read_text()
    assert "A committed run of `python -m refnet.conformance.adapters.matrix` on 20" in text
    for name in PATHS:
        assert f"`{name}.py:PORT`" in text, name
    for q in QUANTITIES:
        assert any(line.startswith(f"| {q} ") for line in text.splitlines()), q
    assert "`tf1_question_port.py:BAD_PORT`" in text
    long = [line for line in text.splitlines() if len(line) > 88]
    assert not long, long[:3]


def test_projection_study_shows_what_each_basis_gets_wrong():
    """The page's reading of the projection table, on fresh numbers: classical Gram-Schmidt leaks on
    redundant anchors and is NaN on J = 0; QR keeping min(m, p) vectors over-projects when m > p and
    on redundant anchors; pinv with rtol does neither in float64."""
    from refnet.conformance.adapters.matrix import projection_study
    r = {(dt, kind, name): (leak, over, nan) for dt, kind, name, _, _, _, leak, over, nan, _
         in projection_study()}
    pinv = [v for (dt, _, name), v in r.items() if dt == "float64" and name == "pinv rtol"]
    assert all(leak <= 1e-7 and over <= 1e-7 and not nan for leak, over, nan in pinv), pinv
    assert r["float64", "redundant", "Gram-Schmidt"][0] > 1e-3
    assert r["float64", "zero row", "Gram-Schmidt"][2] and not r["float64", "zero row", "pinv rtol"][2]
    assert r["float64", "m > p", "QR min(m, p)"][1] > 0.1
    assert r["float64", "redundant", "QR min(m, p)"][1] > 1e-2
    assert r["float32", "near-duplicate", "Gram-Schmidt"][0] > 1e3 * r["float32", "near-duplicate", "QR min(m, p)"][0]
