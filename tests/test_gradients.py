"""Finite-difference checks of the engine's backprop.

The gradient is read off the production code path: one engine step with
learning rate 1 and no momentum turns w into w - g exactly (up to one
rounding of w), so g = w_before - w_after.  The loss is the engine's own
batch loss.  Central differences of that loss must match g, for every hidden
activation, every output loss, with and without sample weights, and for
batch sizes that take each kernel path (small kernels, fused update, BLAS).
"""

import numpy as np
import pytest

from fastsgd import _engine
from fastsgd._params import ACTIVATION_CODES, OUTPUT_CODES, ParamLayout

OUTPUTS = ["identity", "exp", "logistic", "softmax"]


def _problem(output, n_rows, rng, n_out=3):
    X = rng.normal(size=(n_rows, 5))
    if output == "softmax":
        Y = np.eye(n_out)[rng.randint(n_out, size=n_rows)]
    elif output == "logistic":
        Y = (rng.uniform(size=(n_rows, n_out)) > 0.5).astype(float)
    elif output == "exp":
        Y = rng.poisson(2.0, size=(n_rows, n_out)).astype(float)
    else:
        Y = rng.normal(size=(n_rows, n_out))
    return X, Y


def _engine_step(layout, activation, output, params, X, Y, sw, alpha):
    """(loss, gradient) at params, through one real engine step."""
    engine = _engine.Engine(layout.units, layout.coef_offsets, layout.intercept_offsets,
                            ACTIVATION_CODES[activation], OUTPUT_CODES[output])
    w = params.copy()
    v = np.zeros_like(w)
    losses = np.empty(1)
    status, done, _ = engine.train_epoch(
        w, v, X, Y, sw, np.empty(0, dtype=np.int64), X.shape[0], 1.0, 0.0, False, alpha,
        1, losses)
    assert status == 0 and done == 1
    return losses[0], params - w


# engine paths: default knobs, then every layer split by weights with the
# small kernels, then BLAS for everything except the fused B=1 update, then
# the large-batch gradient groups
PATHS = {
    "default": {},
    "split-small-kernels": dict(split_min_weights=1, small_rows=100, fused_rows=100),
    "blas": dict(small_rows=1, fused_rows=1, split_rows=1),
    # only the first layer (5 x 41) split by weights, its partials summed in
    # row chunks of 5 (B=12: 5, 5, 2), also at B=70
    "split-first-5-row-sums": dict(split_min_weights=200, sum_rows=5, split_rows=100),
    # large-batch path: gradients formed slice by slice into group buffers
    # (B=70: 12 slices of 6 rows in 4 groups of 3; float64 slices are at
    # most slice_rows / 2 = 8 rows)
    "accumulate-groups": dict(split_rows=1, accumulate_rows=2, slice_rows=16, max_groups=4),
    # batches that could accumulate (B > accumulate_rows) but are small
    # enough to split by weights, which needs whole-batch row buffers
    "split-above-accumulate-rows": dict(split_min_weights=200, split_rows=100,
                                        accumulate_rows=2, slice_rows=16, max_groups=4),
}


@pytest.fixture(params=list(PATHS))
def engine_path(request):
    saved = _engine.get_tuning()
    _engine.set_tuning(**PATHS[request.param])
    yield request.param
    _engine.set_tuning(**saved)


@pytest.mark.parametrize("n_rows", [1, 3, 12, 70], ids=lambda n: f"B{n}")
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_backprop_matches_finite_differences(activation, output, n_rows, engine_path):
    rng = np.random.RandomState(0)
    # one output for squared error: with more, scikit-learn's reported loss
    # is 1/n_outputs of the objective its gradient descends (checked below)
    n_out = 1 if output == "identity" else 3
    X, Y = _problem(output, n_rows, rng, n_out)
    # 41 units: four 64-byte vectors of doubles (the fused small-batch
    # update's block) plus one vector plus a remainder, so every vector
    # kernel and its tails are exercised
    layout = ParamLayout([5, 41, 3, n_out])
    params = layout.glorot_init(rng, activation, np.float64)
    alpha = 0.3
    for sw in (np.empty(0), rng.uniform(0.5, 2.0, size=n_rows)):
        loss, grad = _engine_step(layout, activation, output, params, X, Y, sw, alpha)
        eps = 1e-6
        numeric = np.empty_like(params)
        for k in range(params.size):
            step = np.zeros_like(params)
            step[k] = eps
            up, _ = _engine_step(layout, activation, output, params + step, X, Y, sw, alpha)
            down, _ = _engine_step(layout, activation, output, params - step, X, Y, sw, alpha)
            numeric[k] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)
        assert np.isfinite(loss) and loss > 0


def test_multioutput_squared_error_keeps_sklearn_inconsistency():
    """scikit-learn #8349: squared error averages the loss over outputs but
    its gradient is that of the sum; we reproduce both on purpose."""
    rng = np.random.RandomState(2)
    X, Y = _problem("identity", 6, rng, n_out=3)
    layout = ParamLayout([5, 4, 3])
    params = layout.glorot_init(rng, "relu", np.float64)
    _, grad = _engine_step(layout, "relu", "identity", params, X, Y, np.empty(0), 0.0)
    eps = 1e-6
    numeric = np.empty_like(params)
    for k in range(params.size):
        step = np.zeros_like(params)
        step[k] = eps
        up, _ = _engine_step(layout, "relu", "identity", params + step, X, Y, np.empty(0), 0.0)
        down, _ = _engine_step(layout, "relu", "identity", params - step, X, Y, np.empty(0), 0.0)
        numeric[k] = (up - down) / (2 * eps)
    np.testing.assert_allclose(grad, 3 * numeric, rtol=1e-5, atol=1e-7)


def test_loss_matches_sklearn_formulas():
    """The engine's batch loss is scikit-learn's LOSS_FUNCTIONS value plus
    its L2 term, for each output kind."""
    from sklearn.neural_network._base import LOSS_FUNCTIONS

    rng = np.random.RandomState(1)
    layout = ParamLayout([5, 4, 3])
    names = {"identity": "squared_error", "exp": "poisson", "logistic": "binary_log_loss",
             "softmax": "log_loss"}
    for output in OUTPUTS:
        X, Y = _problem(output, 9, rng)
        params = layout.glorot_init(rng, "tanh", np.float64)
        coefs, intercepts = layout.views(params)
        sw = rng.uniform(0.5, 2.0, size=9)
        loss, _ = _engine_step(layout, "tanh", output, params, X, Y, sw, 0.2)
        hidden = np.tanh(X @ coefs[0] + intercepts[0])
        z = hidden @ coefs[1] + intercepts[1]
        out = {"identity": z, "exp": np.exp(z), "logistic": 1 / (1 + np.exp(-z)),
               "softmax": np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)}[output]
        expected = LOSS_FUNCTIONS[names[output]](Y, out, sw)
        expected += 0.5 * 0.2 * sum((c ** 2).sum() for c in coefs) / sw.sum()
        np.testing.assert_allclose(loss, expected, rtol=1e-12)
