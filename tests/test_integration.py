"""fastsgd in the scikit-learn ecosystem: pipelines, model selection,
cloning, persistence, streaming, user-edited weights, dtypes, feature names,
thread counts, multi-output targets, and one realistic fit (digits)."""

import copy
import io
import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.datasets import (load_diabetes, load_digits, load_iris, make_classification,
                              make_multilabel_classification, make_regression)
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from fastsgd import MLPClassifier, MLPRegressor
from fastsgd import _engine

no_convergence_warning = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning")

X_CLF, Y_CLF = make_classification(n_samples=200, n_features=6, n_informative=4,
                                   n_redundant=0, n_classes=3, random_state=0)
X_REG, _Y_REG = make_regression(n_samples=200, n_features=6, noise=1.0, random_state=0)
Y_REG = _Y_REG / 100.0
DATA = {"clf": (X_CLF, Y_CLF), "reg": (X_REG, Y_REG)}


def small(kind, **params):
    kw = dict(hidden_layer_sizes=(16,), batch_size=32, learning_rate_init=0.01,
              max_iter=5, random_state=0)
    kw.update(params)
    return MLPClassifier(**kw) if kind == "clf" else MLPRegressor(**kw)


def fit_quietly(est, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kw)


def outputs(est, X):
    """Everything a model outputs for X."""
    out = [est.predict(X)]
    if hasattr(est, "predict_proba"):
        out.append(est.predict_proba(X))
    return out


def assert_views_of_slab(est):
    for arr in est.coefs_ + est.intercepts_:
        assert arr.base is est._params


def assert_slabs_aligned(est):
    """The update kernels move 64-byte vectors: weights and velocities start
    on a 64-byte boundary (numpy's own allocations of this size do not)."""
    for slab in (est._params, est._optimizer.velocity):
        assert slab.ctypes.data % 64 == 0, slab.ctypes.data % 64
        assert slab.flags.writeable and slab.flags.c_contiguous


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weights_and_velocities_start_on_64_byte_boundaries(dtype):
    # sizes where numpy's allocations fall 16 and 32 bytes past a boundary
    X, y = make_classification(n_samples=120, n_features=40, n_informative=5,
                               n_classes=3, random_state=0)
    X = X.astype(dtype)
    for hidden in [(3,), (7, 5), (128,)]:
        est = fit_quietly(MLPClassifier(hidden_layer_sizes=hidden, max_iter=2,
                                        random_state=0), X, y)
        assert_slabs_aligned(est)
        assert_views_of_slab(est)
        # user-replaced weights are packed into a new slab, aligned as well
        est.coefs_ = [np.array(c) for c in est.coefs_]
        est.partial_fit(X, y)
        assert_slabs_aligned(est)
        assert_views_of_slab(est)
        # a deep copy goes through __setstate__, like pickle
        twin = copy.deepcopy(est)
        assert_slabs_aligned(twin)
        assert_views_of_slab(twin)


# ------------------------------------------------- pipelines, model selection


@no_convergence_warning
def test_pipeline_grid_search_and_cross_val_score_classifier():
    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", MLPClassifier(hidden_layer_sizes=(10,), learning_rate_init=0.05,
                                           max_iter=40, random_state=0))])
    grid = {"mlp__batch_size": [16, 64], "mlp__alpha": [1e-4, 1e-2]}
    search = GridSearchCV(pipe, grid, cv=3).fit(X, y)
    assert search.best_params_["mlp__batch_size"] in (16, 64)
    assert search.best_params_["mlp__alpha"] in (1e-4, 1e-2)
    assert len(search.cv_results_["mean_test_score"]) == 4
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_score_ > 0.8
    best = search.best_estimator_.named_steps["mlp"]
    check_is_fitted(best)
    assert best.batch_size == search.best_params_["mlp__batch_size"]
    assert search.predict(X).shape == (150,)
    assert search.predict_proba(X).shape == (150, 3)
    assert search.score(X, y) > 0.8

    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,)
    assert np.all(scores > 0.7)
    # the pipeline is cloned, never fitted in place
    with pytest.raises(NotFittedError):
        check_is_fitted(pipe.named_steps["mlp"])


@no_convergence_warning
def test_pipeline_grid_search_and_cross_val_score_regressor():
    X, y = load_diabetes(return_X_y=True)
    y = (y - y.mean()) / y.std()
    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", MLPRegressor(hidden_layer_sizes=(10,), learning_rate_init=0.01,
                                          max_iter=30, random_state=0))])
    grid = {"mlp__batch_size": [16, 64], "mlp__hidden_layer_sizes": [(10,), (5, 5)]}
    search = GridSearchCV(pipe, grid, cv=3).fit(X, y)
    assert len(search.cv_results_["mean_test_score"]) == 4
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_score_ > 0.3
    assert search.best_estimator_.named_steps["mlp"].hidden_layer_sizes in ((10,), (5, 5))
    assert search.predict(X).shape == (X.shape[0],)
    assert search.score(X, y) > 0.3

    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,)
    assert np.all(scores > 0.2)


@pytest.mark.parametrize("kind", ["clf", "reg"])
def test_clone_keeps_params(kind):
    est = small(kind, alpha=0.01, momentum=0.5, nesterovs_momentum=False, n_threads=1,
                learning_rate="adaptive", hidden_layer_sizes=(7, 3), early_stopping=True,
                validation_fraction=0.25, n_iter_no_change=4, tol=1e-3, shuffle=False)
    if kind == "reg":
        est.set_params(loss="poisson")
    fit_quietly(est, *(DATA[kind] if kind == "clf" else (X_REG, np.abs(Y_REG))))
    cloned = clone(est)
    assert cloned.get_params() == est.get_params()
    assert cloned is not est
    with pytest.raises(NotFittedError):
        check_is_fitted(cloned)
    assert not hasattr(cloned, "coefs_")
    # same parameters, same random_state: the clone trains the same model
    fit_quietly(cloned, *(DATA[kind] if kind == "clf" else (X_REG, np.abs(Y_REG))))
    np.testing.assert_array_equal(cloned._params, est._params, strict=True)


# ------------------------------------------------------------- persistence


def _pickle(est):
    return pickle.loads(pickle.dumps(est))


def _joblib_file(est, tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    return joblib.load(path)


def _joblib_compressed(est, tmp_path):
    path = tmp_path / "model.joblib.gz"
    joblib.dump(est, path, compress=3)
    return joblib.load(path)


def _joblib_stream(est, tmp_path):
    buf = io.BytesIO()
    joblib.dump(est, buf)
    buf.seek(0)
    return joblib.load(buf)


ROUND_TRIPS = {
    "pickle": lambda est, tmp_path: _pickle(est),
    "joblib-file": _joblib_file,
    "joblib-compressed": _joblib_compressed,
    "joblib-stream": _joblib_stream,
    "deepcopy": lambda est, tmp_path: copy.deepcopy(est),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["clf", "reg"])
@pytest.mark.parametrize("how", list(ROUND_TRIPS))
def test_round_trip_predicts_identically_and_keeps_learning(how, kind, dtype, tmp_path):
    X, y = DATA[kind]
    X = X.astype(dtype)
    est = fit_quietly(small(kind, max_iter=3), X, y)
    loaded = ROUND_TRIPS[how](est, tmp_path)

    assert type(loaded) is type(est)
    assert loaded.get_params() == est.get_params()
    for a, b in zip(outputs(loaded, X), outputs(est, X)):
        np.testing.assert_array_equal(a, b, strict=True)
    assert loaded.loss_curve_ == est.loss_curve_
    assert loaded.t_ == est.t_ and loaded.n_iter_ == est.n_iter_
    assert loaded._params.dtype == dtype
    assert not np.shares_memory(loaded._params, est._params)
    # coefs_ / intercepts_ are views of the loaded model's own slab (checked
    # at the end, so that a failure here still runs the checks below)
    views_after_load = [a.base is loaded._params for a in loaded.coefs_ + loaded.intercepts_]
    assert_slabs_aligned(loaded)
    np.testing.assert_array_equal(loaded._optimizer.velocity, est._optimizer.velocity,
                                  strict=True)
    assert loaded._optimizer.learning_rate == est._optimizer.learning_rate

    # partial_fit keeps learning, on the same trajectory as the original
    for _ in range(6):
        est.partial_fit(X, y)
        loaded.partial_fit(X, y)
        np.testing.assert_array_equal(loaded._params, est._params, strict=True)
        np.testing.assert_array_equal(loaded._optimizer.velocity, est._optimizer.velocity,
                                      strict=True)
    assert loaded.loss_curve_ == est.loss_curve_
    new_losses = loaded.loss_curve_[-6:]
    assert new_losses[-1] < new_losses[0]
    assert_views_of_slab(loaded)
    # training the copy never touched the original's weights (or vice versa)
    loaded.partial_fit(X, y)
    assert not np.array_equal(loaded._params, est._params)
    assert all(views_after_load), (
        "after loading, coefs_/intercepts_ are not views of _params (c.base is not "
        f"est._params): {views_after_load}")


@no_convergence_warning
def test_pickle_of_early_stopping_model_keeps_best_weights():
    X, y = DATA["clf"]
    est = small("clf", early_stopping=True, max_iter=15).fit(X, y)
    loaded = _pickle(est)
    for a, b in zip(outputs(loaded, X), outputs(est, X)):
        np.testing.assert_array_equal(a, b, strict=True)
    assert loaded.validation_scores_ == est.validation_scores_
    assert loaded.best_validation_score_ == est.best_validation_score_
    assert_views_of_slab(loaded)
    # a warm start goes on identically
    for m in (est, loaded):
        m.set_params(warm_start=True, max_iter=3)
        m.fit(X, y)
    np.testing.assert_array_equal(loaded._params, est._params, strict=True)


# ----------------------------------------------------- user-assigned weights


def _forward(est, X):
    """The network's output, in plain numpy, from est.coefs_/intercepts_."""
    act = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "identity": lambda z: z,
           "logistic": lambda z: 1 / (1 + np.exp(-z))}[est.activation]
    a = X
    for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        a = a @ W + b
        if i < len(est.coefs_) - 1:
            a = act(a)
    if est.out_activation_ == "softmax":
        a = np.exp(a - a.max(axis=1, keepdims=True))
        a /= a.sum(axis=1, keepdims=True)
    elif est.out_activation_ == "logistic":
        a = 1 / (1 + np.exp(-a))
    elif est.out_activation_ == "exp":
        a = np.exp(a)
    return a


@pytest.mark.parametrize("kind", ["clf", "reg"])
def test_assigned_coefs_are_used(kind):
    X, y = DATA[kind]
    est = fit_quietly(small(kind, hidden_layer_sizes=(8, 4), max_iter=3), X, y)
    twin = copy.deepcopy(est)
    out_before = est.predict_proba(X) if kind == "clf" else est.predict(X)
    np.testing.assert_allclose(out_before, _forward(est, X).squeeze(), rtol=1e-10, atol=1e-12)

    rng = np.random.RandomState(1)
    new_W0 = rng.normal(scale=0.5, size=est.coefs_[0].shape)
    new_b1 = rng.normal(size=est.intercepts_[1].shape)
    est.coefs_[0] = new_W0                 # user assignment (a new array)
    est.intercepts_[1] = new_b1
    assert est.coefs_[0] is new_W0
    out_after = est.predict_proba(X) if kind == "clf" else est.predict(X)
    assert not np.allclose(out_after, out_before)
    np.testing.assert_allclose(out_after, _forward(est, X).squeeze(), rtol=1e-10, atol=1e-12)
    # prediction does not change state: the user's arrays stay in place
    assert est.coefs_[0] is new_W0
    np.testing.assert_array_equal(est.predict(X), est.predict(X))

    # the same weights written into the slab in place give the same model...
    twin.coefs_[0][...] = new_W0
    twin.intercepts_[1][...] = new_b1
    for a, b in zip(outputs(est, X), outputs(twin, X)):
        np.testing.assert_array_equal(a, b)
    # ... which trains on from the assigned weights identically
    est.partial_fit(X, y)
    twin.partial_fit(X, y)
    np.testing.assert_array_equal(est._params, twin._params, strict=True)
    assert_views_of_slab(est)
    for a, b in zip(outputs(est, X), outputs(twin, X)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("which", ["coefs_", "intercepts_"])
def test_assigned_weights_given_as_lists_are_used(which):
    """scikit-learn's forward pass takes whatever array-likes coefs_ and
    intercepts_ hold; a nested list assigned by the user must be used too
    (or rejected with a clear error), never silently ignored."""
    X, y = DATA["clf"]
    est = fit_quietly(small("clf", max_iter=3), X, y)
    before = est.predict_proba(X)
    if which == "coefs_":
        new = est.coefs_[1] * np.array([3.0, -1.0, 0.5])
        est.coefs_[1] = new.tolist()
    else:
        new = est.intercepts_[1] + np.array([5.0, 0.0, -5.0])
        est.intercepts_[1] = new.tolist()
    expected = _forward(est, X)
    assert not np.allclose(expected, before)
    try:
        after = est.predict_proba(X)
    except (TypeError, ValueError) as exc:  # a clear rejection is fine too
        assert which in str(exc) or "array" in str(exc)
    else:
        np.testing.assert_allclose(after, expected, rtol=1e-10, atol=1e-12)


def test_assigned_coefs_list_survives_pickle():
    X, y = DATA["clf"]
    est = fit_quietly(small("clf", max_iter=2), X, y)
    est.coefs_ = [c * 2.0 for c in est.coefs_]
    expected = est.predict_proba(X)
    loaded = _pickle(est)
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)
    assert_views_of_slab(loaded)


# ------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("kind", ["clf", "reg"])
@pytest.mark.parametrize("in_dtype, model_dtype", [
    (np.float32, np.float32), (np.float64, np.float64), (np.int64, np.float64),
    (np.int32, np.float64)])
def test_dtype_follows_input(kind, in_dtype, model_dtype):
    X, y = DATA[kind]
    Xt = np.round(X * 3).astype(in_dtype)
    est = fit_quietly(small(kind, max_iter=2), Xt, y)
    for arr in est.coefs_ + est.intercepts_:
        assert arr.dtype == model_dtype
    assert est._optimizer.velocity.dtype == model_dtype
    if kind == "clf":
        proba = est.predict_proba(Xt)
        assert proba.dtype == model_dtype
        np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
        assert est.predict(Xt).dtype == Y_CLF.dtype
    else:
        assert est.predict(Xt).dtype == model_dtype
    # partial_fit with data of another dtype keeps the model's dtype
    est.partial_fit(Xt.astype(np.float64), y)
    assert all(a.dtype == model_dtype for a in est.coefs_ + est.intercepts_)


def test_float32_and_float64_models_agree():
    X, y = DATA["clf"]
    m64 = fit_quietly(small("clf", max_iter=3), X, y)
    m32 = fit_quietly(small("clf", max_iter=3), X.astype(np.float32), y)
    np.testing.assert_allclose(m32.coefs_[0], m64.coefs_[0], rtol=1e-3, atol=1e-4)
    assert np.mean(m32.predict(X.astype(np.float32)) == m64.predict(X)) > 0.97


# -------------------------------------------------------- network and data shapes


@pytest.mark.parametrize("kind", ["clf", "reg"])
@pytest.mark.parametrize("hidden", [(), []])
def test_no_hidden_layer_is_a_linear_model(kind, hidden):
    X, y = DATA[kind]
    est = fit_quietly(small(kind, hidden_layer_sizes=hidden, max_iter=10), X, y)
    n_out = 3 if kind == "clf" else 1
    assert est.n_layers_ == 2
    assert [c.shape for c in est.coefs_] == [(X.shape[1], n_out)]
    assert [b.shape for b in est.intercepts_] == [(n_out,)]
    assert_views_of_slab(est)
    assert est.predict(X).shape == (X.shape[0],)
    # it is linear: the output before the activation is X @ W + b
    np.testing.assert_allclose(_forward(est, X).squeeze(),
                               est.predict_proba(X) if kind == "clf" else est.predict(X),
                               rtol=1e-10, atol=1e-12)
    assert est.score(X, y) > (0.6 if kind == "clf" else 0.5)


@pytest.mark.parametrize("kind", ["clf", "reg"])
def test_dataframe_sets_feature_names(kind):
    X, y = DATA[kind]
    columns = [f"f{i}" for i in range(X.shape[1])]
    df = pd.DataFrame(X, columns=columns)
    est = fit_quietly(small(kind, max_iter=2), df, pd.Series(y))
    np.testing.assert_array_equal(est.feature_names_in_, columns)
    assert est.n_features_in_ == X.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_df = est.predict(df)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        from_array = est.predict(X)
    np.testing.assert_array_equal(from_df, from_array)
    with pytest.raises(ValueError, match="feature names"):
        est.predict(df[columns[::-1]])
    est.partial_fit(df, y)
    # numpy input does not set feature names
    plain = fit_quietly(small(kind, max_iter=2), X, y)
    assert not hasattr(plain, "feature_names_in_")


@no_convergence_warning
def test_multilabel_classification():
    X, Y = make_multilabel_classification(n_samples=150, n_features=8, n_classes=4,
                                          random_state=0)
    est = small("clf", max_iter=20).fit(X, Y)
    assert est.n_outputs_ == 4
    assert est.out_activation_ == "logistic"
    pred = est.predict(X)
    assert pred.shape == Y.shape
    assert set(np.unique(pred)) <= {0, 1}
    proba = est.predict_proba(X)
    assert proba.shape == Y.shape
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(pred.dtype))
    assert est.score(X, Y) > 0.3  # subset accuracy, well above chance (1/16)
    est.partial_fit(X, Y)
    assert est.predict(X).shape == Y.shape


@no_convergence_warning
def test_multi_output_regression():
    X, Y = make_regression(n_samples=150, n_features=6, n_targets=3, noise=1.0,
                           random_state=0)
    Y = Y / 100
    est = small("reg", max_iter=30).fit(X, Y)
    assert est.n_outputs_ == 3
    assert est.coefs_[-1].shape == (16, 3)
    assert est.predict(X).shape == (150, 3)
    assert est.score(X, Y) > 0.5
    est.partial_fit(X, Y)
    assert est.predict(X[:5]).shape == (5, 3)


# -------------------------------------------------------------------- threads


@pytest.fixture
def fine_grained_engine():
    """Force the engine onto its parallel path with many slices and tasks,
    even for tiny batches; restore its tuning afterwards."""
    saved = _engine.get_tuning()
    _engine.set_tuning(parallel_min_work=1, slice_rows=8, task_weights=64, predict_rows=16)
    try:
        yield
    finally:
        _engine.set_tuning(**saved)


def _thread_runs(kind):
    # 128 features x 32 hidden x 64 rows: over the engine's own threshold
    # for going parallel with its default tuning
    X, y = make_classification(n_samples=256, n_features=128, n_informative=10,
                               random_state=0)
    if kind == "reg":
        y = X[:, :5].sum(axis=1) / 5
    runs = {}
    for n_threads in (None, 1, 2, 3, -1, 64):
        est = fit_quietly(small(kind, hidden_layer_sizes=(32,), batch_size=64, max_iter=3,
                                n_threads=n_threads), X, y)
        runs[n_threads] = (est, outputs(est, X))
    return runs


def _assert_thread_runs_identical(runs):
    (ref, ref_out) = runs[1]
    for n_threads, (est, out) in runs.items():
        for a, b in zip(est.coefs_ + est.intercepts_, ref.coefs_ + ref.intercepts_):
            np.testing.assert_array_equal(a, b, strict=True, err_msg=f"n_threads={n_threads}")
        assert est.loss_curve_ == ref.loss_curve_, n_threads
        for a, b in zip(out, ref_out):
            np.testing.assert_array_equal(a, b, strict=True)


@pytest.mark.parametrize("kind", ["clf", "reg"])
def test_n_threads_bitwise_identical(kind):
    _assert_thread_runs_identical(_thread_runs(kind))


@pytest.mark.parametrize("kind", ["clf", "reg"])
def test_n_threads_bitwise_identical_fine_grained(kind, fine_grained_engine):
    _assert_thread_runs_identical(_thread_runs(kind))


# ------------------------------------------------------------------ streaming


@pytest.mark.parametrize("kind", ["clf", "reg"])
@pytest.mark.parametrize("start, change", [
    ({}, dict(learning_rate_init=0.5)),
    ({}, dict(momentum=0.0)),
    ({}, dict(nesterovs_momentum=False)),
    ({}, dict(learning_rate="invscaling")),
    (dict(learning_rate="invscaling"), dict(power_t=0.9)),
], ids=["learning_rate_init", "momentum", "nesterovs_momentum", "learning_rate", "power_t"])
def test_optimizer_parameters_persist_across_partial_fit(kind, start, change):
    """As in scikit-learn (spec section 5.1), the optimizer made by the first
    training call persists: changing learning_rate_init, momentum,
    nesterovs_momentum, learning_rate or power_t with set_params between
    partial_fit calls has no effect on the model."""
    X, y = DATA[kind]
    kw = {"classes": np.unique(y)} if kind == "clf" else {}
    a = small(kind, **start).partial_fit(X, y, **kw)
    b = copy.deepcopy(a).set_params(**change)
    for _ in range(3):
        a.partial_fit(X, y)
        b.partial_fit(X, y)
    np.testing.assert_array_equal(a._params, b._params, strict=True)
    assert a.loss_curve_ == b.loss_curve_
    # whereas the parameters read on every call do take effect
    c = copy.deepcopy(a).set_params(alpha=0.5)
    a.partial_fit(X, y)
    c.partial_fit(X, y)
    assert not np.array_equal(a._params, c._params)


@pytest.mark.parametrize("kind", ["clf", "reg"])
def test_partial_fit_streaming_chunks(kind):
    X, y = DATA[kind]
    kw = {"classes": np.unique(y)} if kind == "clf" else {}
    est = small(kind)
    for epoch in range(5):
        for start in range(0, X.shape[0], 50):
            est.partial_fit(X[start:start + 50], y[start:start + 50], **kw)
    assert est.n_iter_ == 1
    assert len(est.loss_curve_) == 20
    assert est.t_ == 5 * X.shape[0]
    assert est.score(X, y) > (0.7 if kind == "clf" else 0.5)


# ---------------------------------------------------------------- the README


def test_digits_readme_accuracy():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16, y, test_size=0.25, random_state=0, stratify=y)
    clf = MLPClassifier(hidden_layer_sizes=(100,), batch_size=32, learning_rate_init=0.01,
                        max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    assert clf.n_iter_ <= 50
    assert len(clf.loss_curve_) == clf.n_iter_
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.score(X_test, y_test) >= 0.9
