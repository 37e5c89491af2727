"""fastsgd trains the same model as scikit-learn's MLP with solver='sgd'.

Same arguments and random_state must give the same coefs_, intercepts_,
loss_curve_, n_iter_, t_, validation scores, learning rate and predictions,
to float rounding (float64: relative 1e-6; float32: 2e-4), for fit,
warm-start refits and partial_fit sequences.  Data ships with scikit-learn.
"""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_digits, load_iris
from sklearn.preprocessing import StandardScaler

from _parity import assert_same_model, pair, quiet

DTYPES = [np.float64, np.float32]


def _digits(n=300):
    X, y = load_digits(return_X_y=True)
    return X[:n] / 16.0, y[:n]


def _diabetes(n=300):
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X[:n]), (y[:n] - y.mean()) / y.std()


# (name, estimator kind, data, parameters): a grid over the settings that
# change the algorithm, each varied from a common base
BASE = dict(hidden_layer_sizes=(16,), max_iter=5, random_state=0)
CLASSIFIER_CASES = [
    ("relu-default", {}),
    ("tanh", dict(activation="tanh")),
    ("logistic", dict(activation="logistic")),
    ("identity", dict(activation="identity")),
    ("two-hidden", dict(hidden_layer_sizes=(12, 7))),
    ("linear-model", dict(hidden_layer_sizes=())),
    ("batch-1", dict(batch_size=1, max_iter=2)),
    # one-row batches on narrow layers (10 classes; 3 and 7 units, whose
    # lane patterns repeat every 3 and 7 vectors): the narrow-layer kernel,
    # fused with the next row's product on a first layer
    ("linear-model-batch-1", dict(hidden_layer_sizes=(), batch_size=1, max_iter=2)),
    ("narrow-hidden-batch-1", dict(hidden_layer_sizes=(3, 7), batch_size=1, max_iter=2)),
    ("batch-odd-7", dict(batch_size=7)),
    ("batch-13-fused-edge", dict(batch_size=13)),
    ("batch-65", dict(batch_size=65)),
    ("batch-n", dict(batch_size=300, learning_rate_init=0.1)),
    ("batch-over-n", dict(batch_size=400, learning_rate_init=0.1)),
    # a first layer of >= 16384 weights: small batches split it by weight
    # blocks and phase 2 starts the next batch's forward
    ("wide-batch-1", dict(hidden_layer_sizes=(300,), batch_size=1, max_iter=1,
                          learning_rate_init=0.005)),
    ("wide-batch-6", dict(hidden_layer_sizes=(300,), batch_size=6, max_iter=2)),
    ("wide-batch-6-no-shuffle", dict(hidden_layer_sizes=(300,), batch_size=6, max_iter=2,
                                     shuffle=False)),
    ("wide-batch-45", dict(hidden_layer_sizes=(300, 60), batch_size=45)),
    # one hidden layer of >= 16384 weights, batches over 64 rows: blocks of
    # hidden units, in chunks of at most 128 float64 / 256 float32 rows
    # (300: three of 100 / two of 150)
    ("wide-batch-100-hidden-blocks", dict(hidden_layer_sizes=(300,), batch_size=100)),
    ("wide-batch-n-hidden-chunks", dict(hidden_layer_sizes=(300,), batch_size=300,
                                        learning_rate_init=0.1)),
    ("momentum-0", dict(momentum=0.0)),
    ("momentum-0.5-no-nesterov", dict(momentum=0.5, nesterovs_momentum=False)),
    ("momentum-0.9-no-nesterov", dict(nesterovs_momentum=False)),
    ("no-shuffle", dict(shuffle=False)),
    ("invscaling", dict(learning_rate="invscaling", learning_rate_init=0.05, power_t=0.3)),
    ("adaptive", dict(learning_rate="adaptive", learning_rate_init=0.05, tol=0.5,
                      n_iter_no_change=1, max_iter=8)),
    ("converges-by-tol", dict(tol=0.2, n_iter_no_change=2, max_iter=30,
                              learning_rate_init=0.05)),
    ("alpha-large", dict(alpha=0.5, learning_rate_init=0.05)),
    ("early-stopping-multiclass", dict(early_stopping=True, max_iter=8,
                                       learning_rate_init=0.05)),
    ("early-stopping-no-shuffle", dict(early_stopping=True, shuffle=False,
                                       validation_fraction=0.2, max_iter=6,
                                       learning_rate_init=0.05)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name,params", CLASSIFIER_CASES, ids=[c[0] for c in CLASSIFIER_CASES])
def test_classifier_fit_matches_sklearn(name, params, dtype):
    X, y = _digits()
    X = X.astype(dtype)
    fast, ref = pair("classifier", **{**BASE, "learning_rate_init": 0.02, **params})
    if params.get("batch_size") == 400:
        with pytest.warns(UserWarning, match="It is going to be clipped"):
            quiet(fast.fit, X, y)
        with pytest.warns(UserWarning, match="It is going to be clipped"):
            quiet(ref.fit, X, y)
    else:
        quiet(fast.fit, X, y)
        quiet(ref.fit, X, y)
    assert_same_model(fast, ref, dtype, X)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_binary_early_stopping_stratified_matches_sklearn(dtype):
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(dtype)
    y = (y == 2).astype(int)
    fast, ref = pair("classifier", hidden_layer_sizes=(8,), early_stopping=True,
                     validation_fraction=0.2, learning_rate_init=0.05, batch_size=10,
                     max_iter=15, random_state=3)
    quiet(fast.fit, X, y)
    quiet(ref.fit, X, y)
    assert_same_model(fast, ref, dtype, X)
    assert len(fast.validation_scores_) == fast.n_iter_


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_multilabel_matches_sklearn(dtype):
    X, y = _digits()
    Y = np.stack([y % 2 == 0, y > 4, y == 3], axis=1).astype(int)
    fast, ref = pair("classifier", **{**BASE, "learning_rate_init": 0.05, "batch_size": 20})
    quiet(fast.fit, X.astype(dtype), Y)
    quiet(ref.fit, X.astype(dtype), Y)
    assert fast.out_activation_ == "logistic" and fast.n_outputs_ == 3
    assert_same_model(fast, ref, dtype, X.astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_sample_weight_matches_sklearn(dtype):
    X, y = _digits()
    sw = np.random.RandomState(0).uniform(0.1, 3.0, size=len(y))
    for params in (dict(batch_size=16), dict(batch_size=16, shuffle=False),
                   dict(batch_size=32, early_stopping=True, max_iter=6)):
        fast, ref = pair("classifier", **{**BASE, "learning_rate_init": 0.02, **params})
        quiet(fast.fit, X.astype(dtype), y, sample_weight=sw)
        quiet(ref.fit, X.astype(dtype), y, sample_weight=sw)
        assert_same_model(fast, ref, dtype, X.astype(dtype))


REGRESSOR_CASES = [
    ("squared-error", {}),
    ("squared-error-batch-1", dict(batch_size=1, max_iter=2, learning_rate_init=0.001)),
    ("squared-error-batch-n", dict(batch_size=300, learning_rate_init=0.05)),
    ("tanh-nesterov-off", dict(activation="tanh", nesterovs_momentum=False)),
    ("invscaling-no-shuffle", dict(learning_rate="invscaling", shuffle=False,
                                   learning_rate_init=0.05)),
    ("early-stopping", dict(early_stopping=True, max_iter=10)),
    ("poisson", dict(loss="poisson", learning_rate_init=0.002)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name,params", REGRESSOR_CASES, ids=[c[0] for c in REGRESSOR_CASES])
def test_regressor_fit_matches_sklearn(name, params, dtype):
    X, y = _diabetes()
    if params.get("loss") == "poisson":
        y = np.exp(y / 2)  # positive counts-like targets
    # float32 y with float32 X: scikit-learn then computes in float32 too
    X, y = X.astype(dtype), y.astype(dtype)
    fast, ref = pair("regressor", **{**BASE, "batch_size": 16, "learning_rate_init": 0.01,
                                     **params})
    quiet(fast.fit, X, y)
    quiet(ref.fit, X, y)
    assert_same_model(fast, ref, dtype, X)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_multioutput_regression_matches_sklearn(dtype):
    X, y = _diabetes()
    Y = np.stack([y, y ** 2 / 3, -y], axis=1).astype(dtype)
    fast, ref = pair("regressor", **{**BASE, "batch_size": 32, "learning_rate_init": 0.01})
    quiet(fast.fit, X.astype(dtype), Y)
    quiet(ref.fit, X.astype(dtype), Y)
    assert_same_model(fast, ref, dtype, X.astype(dtype))


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_warm_start_refits_match_sklearn(kind, dtype):
    X, y = _digits() if kind == "classifier" else _diabetes()
    X = X.astype(dtype)
    y = y if kind == "classifier" else y.astype(dtype)
    for extra in ({}, dict(early_stopping=True), dict(learning_rate="invscaling")):
        fast, ref = pair(kind, **{**BASE, "batch_size": 25, "learning_rate_init": 0.02,
                                  "max_iter": 3, **extra})
        for est in (fast, ref):
            quiet(est.fit, X, y)
            est.set_params(warm_start=True, max_iter=2)
            quiet(est.fit, X, y)
            quiet(est.fit, X[:200], y[:200])
        assert_same_model(fast, ref, dtype, X)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("seed_kind", ["int", "RandomState"])
def test_partial_fit_sequence_matches_sklearn(kind, dtype, seed_kind):
    X, y = _digits(400) if kind == "classifier" else _diabetes(400)
    X = X.astype(dtype)
    y = y if kind == "classifier" else y.astype(dtype)
    models = []
    for make in (0, 1):
        seed = 7 if seed_kind == "int" else np.random.RandomState(7)
        est = pair(kind, hidden_layer_sizes=(16,), batch_size=9, learning_rate_init=0.02,
                   learning_rate="adaptive", random_state=seed)[make]
        for start in range(0, 400, 100):
            kw = {"classes": np.arange(10)} if kind == "classifier" else {}
            est.partial_fit(X[start:start + 100], y[start:start + 100], **kw)
        models.append(est)
    fast, ref = models
    assert fast.n_iter_ == 1 and fast.t_ == 400
    assert_same_model(fast, ref, dtype, X)


def test_fit_then_partial_fit_keeps_optimizer_like_sklearn():
    X, y = _digits()
    fast, ref = pair("classifier", **{**BASE, "learning_rate": "invscaling",
                                      "learning_rate_init": 0.05})
    for est in (fast, ref):
        quiet(est.fit, X, y)
        est.partial_fit(X[:150], y[:150])
        est.partial_fit(X[150:], y[150:])
    assert_same_model(fast, ref, np.float64, X)


def test_global_random_state_none_matches_sklearn():
    X, y = _digits()
    fast, ref = pair("classifier", **{**BASE, "random_state": None})
    np.random.seed(11)
    quiet(fast.fit, X, y)
    after_fast = np.random.random_sample()
    np.random.seed(11)
    quiet(ref.fit, X, y)
    after_ref = np.random.random_sample()
    assert_same_model(fast, ref, np.float64, X)
    # the same number of draws were taken from the global generator
    assert after_fast == after_ref


def test_float32_model_is_float32_and_close_to_float64():
    X, y = _digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f32 = pair("classifier", **BASE)[0].fit(X.astype(np.float32), y)
        f64 = pair("classifier", **BASE)[0].fit(X, y)
    assert all(c.dtype == np.float32 for c in f32.coefs_ + f32.intercepts_)
    assert f32._optimizer.velocity.dtype == np.float32
    assert f32.predict_proba(X.astype(np.float32)).dtype == np.float32
    np.testing.assert_allclose(f32.loss_curve_, f64.loss_curve_, rtol=1e-4)


def _wide_digits(n=160):
    """Digits with 256 features (each pixel four times, jittered): a first
    layer of 256 x 90 weights is big enough for the engine's small-batch
    paths (weight-split phases, the update fused with the next row's
    forward), and 90 columns leave a remainder after whole vectors."""
    X, y = _digits(n)
    rng = np.random.RandomState(0)
    X = np.hstack([X] * 4) + 0.01 * rng.normal(size=(X.shape[0], 4 * X.shape[1]))
    return X, y


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("batch_size", [1, 8, 40])
def test_small_batch_paths_on_a_wide_layer_match_sklearn(batch_size, nesterov, dtype):
    X, y = _wide_digits()
    X = X.astype(dtype)
    params = dict(hidden_layer_sizes=(90,), batch_size=batch_size, max_iter=2,
                  learning_rate_init=0.002, nesterovs_momentum=nesterov, random_state=0)
    fast, ref = pair("classifier", **params)
    quiet(fast.fit, X, y)
    quiet(ref.fit, X, y)
    assert_same_model(fast, ref, dtype, X)


# every output and loss through the hidden-unit blocks: small layers made to
# take them (blocks of 8 float64 / 16 float32 units of 40; chunks of 20
# float64 / 34 float32 rows)
HIDDEN_BLOCK_CASES = [
    ("classifier-logistic", "classifier", dict(activation="logistic")),
    ("classifier-tanh-no-nesterov", "classifier", dict(activation="tanh",
                                                       nesterovs_momentum=False)),
    ("classifier-sample-weight", "classifier", dict()),
    ("multilabel", "classifier", dict()),
    ("squared-error", "regressor", dict()),
    ("poisson", "regressor", dict(loss="poisson", learning_rate_init=0.002)),
]


@pytest.fixture
def hidden_blocks_on_small_layers():
    from fastsgd import _engine
    saved = _engine.get_tuning()
    _engine.set_tuning(split_min_weights=64, hidden_width=8, hidden_chunk_rows=48,
                       hidden_any_blas=1)
    yield
    _engine.set_tuning(**saved)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name,kind,params", HIDDEN_BLOCK_CASES,
                         ids=[c[0] for c in HIDDEN_BLOCK_CASES])
def test_hidden_unit_blocks_match_sklearn(hidden_blocks_on_small_layers, name, kind, params,
                                          dtype):
    sw = None
    if kind == "regressor":
        X, y = _diabetes()
        if params.get("loss") == "poisson":
            y = np.exp(y / 2)
        y = y.astype(dtype)
    else:
        X, y = _digits()
        if name == "multilabel":
            y = np.stack([y % 2, y > 4, y == 3], axis=1).astype(int)
        if name.endswith("sample-weight"):
            sw = np.random.RandomState(0).uniform(0.1, 3.0, size=len(y))
    X = X.astype(dtype)
    fast, ref = pair(kind, **{**BASE, "hidden_layer_sizes": (40,), "batch_size": 100,
                              "learning_rate_init": 0.02, **params})
    quiet(fast.fit, X, y, sample_weight=sw)
    quiet(ref.fit, X, y, sample_weight=sw)
    assert_same_model(fast, ref, dtype, X)
