"""The shortcuts that keep a call's fixed cost low (a stream of small
partial_fit calls, single-row predictions) behave exactly as the long way:
the input-check shortcut, the label search, the kept engine, the re-seeded
random state, the parameter-validation memo, the BLAS limiter and the CPU
count memo."""

import os
import pickle
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import validate_data
from threadpoolctl import threadpool_info

from fastsgd import MLPClassifier, MLPRegressor, _snapshots, _threads
from fastsgd._validation import validate_X, validate_X_y

RNG = np.random.RandomState(0)
X = RNG.normal(size=(60, 5))
Y_CLASS = RNG.randint(3, size=60)
Y_REAL = RNG.normal(size=60)


def _stream(est, chunks, **first_kw):
    """partial_fit over the chunks; returns the model's weights after each."""
    out = []
    for i, (Xc, yc) in enumerate(chunks):
        est.partial_fit(Xc, yc, **(first_kw if i == 0 else {}))
        out.append(est._params.copy())
    return out


def _chunks(X, y, size=8):
    return [(X[i:i + size], y[i:i + size]) for i in range(0, len(X), size)]


# ----------------------------------------------------- input-check shortcut
@pytest.mark.parametrize("X_in, y_in", [
    (X, Y_CLASS), (X.astype(np.float32), Y_CLASS.astype(np.int32)),
    (X, Y_REAL), (X, np.c_[Y_REAL, Y_REAL]), (X, Y_CLASS.astype(bool)),
], ids=["f64-int", "f32-int32", "f64-real", "f64-2d", "f64-bool"])
def test_validate_X_y_returns_what_validate_data_returns(X_in, y_in):
    fast_est, slow_est = MLPRegressor(), MLPRegressor()
    Xf, yf = validate_X_y(fast_est, X_in, y_in, reset=True, dtype=(np.float64, np.float32))
    Xs, ys = validate_data(slow_est, X_in, y_in, multi_output=True, reset=True,
                           dtype=(np.float64, np.float32), ensure_all_finite=False)
    assert Xf is X_in  # a plain array is used as it is
    np.testing.assert_array_equal(Xf, Xs)
    np.testing.assert_array_equal(yf, ys)
    assert Xf.dtype == Xs.dtype and yf.dtype == ys.dtype
    assert fast_est.n_features_in_ == slow_est.n_features_in_ == X_in.shape[1]


@pytest.mark.parametrize("y_bad, message", [
    (Y_REAL[:-1], "Found input variables with inconsistent numbers of samples: [60, 59]"),
    (np.where(np.arange(60) == 7, np.nan, Y_REAL), "Input y contains NaN."),
    (np.where(np.arange(60) == 7, np.inf, Y_REAL), "Input y contains infinity"),
    (Y_REAL.reshape(60, 1, 1), "Found array with dim 3"),
])
def test_inputs_outside_the_shortcut_get_scikit_learns_messages(y_bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_X_y(MLPRegressor(), X, y_bad, reset=True, dtype=np.float64)
    with pytest.raises(ValueError, match=re.escape(message)):
        MLPRegressor(max_iter=1).fit(X, y_bad)


def test_shortcut_keeps_the_feature_name_checks():
    columns = [f"c{i}" for i in range(X.shape[1])]
    est = MLPClassifier(hidden_layer_sizes=(4,), random_state=0)
    est.partial_fit(pd.DataFrame(X, columns=columns), Y_CLASS, classes=[0, 1, 2])
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        est.partial_fit(X, Y_CLASS)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        validate_X(est, X, dtype=np.float64)
    # a full fit on a plain array forgets the names, as scikit-learn's does
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, Y_CLASS)
    assert not hasattr(est, "feature_names_in_")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.predict(X)
    with pytest.raises(ValueError, match=re.escape(
            "X has 4 features, but MLPClassifier is expecting 5 features as input.")):
        validate_X(est, X[:, :4], dtype=np.float64)


def test_non_contiguous_and_other_dtype_input_still_works():
    est = MLPClassifier(hidden_layer_sizes=(4,), random_state=0)
    est.partial_fit(X, Y_CLASS, classes=[0, 1, 2])
    Xf = np.asfortranarray(X)
    np.testing.assert_array_equal(est.predict_proba(Xf), est.predict_proba(X))
    np.testing.assert_array_equal(est.predict_proba(X[:, :].tolist()), est.predict_proba(X))


# ------------------------------------------------------------ label search
@pytest.mark.parametrize("classes, y_dtype", [
    ([3, 7, 11], np.int64), ([3, 7, 11], np.int32), (np.array([1, 4, 8], np.uint8), np.int64)])
def test_later_partial_fit_labels_found_by_search(classes, y_dtype):
    classes = np.asarray(classes)
    est = MLPClassifier(hidden_layer_sizes=(4,), random_state=0)
    est.partial_fit(X, classes[Y_CLASS], classes=classes)
    later = classes[Y_CLASS[:20]].astype(y_dtype)
    _, Y = est._validate_input(X[:20], later, incremental=True, reset=False, dtype=np.float64)
    np.testing.assert_array_equal(Y, later[:, None] == classes[None, :])
    # unseen labels: between known ones, below, above, beyond the dtype
    for bad in (classes[0] + 1, classes[0] - 1 if classes[0] > 0 else classes[-1] + 1,
                classes[-1] + 1, 300):
        y_bad = later.astype(np.int64)
        y_bad[5] = bad
        with pytest.raises(ValueError, match=re.escape("`y` has classes not in `self.classes_`")):
            est.partial_fit(X[:20], y_bad)


# ------------------------------------------------------------- kept engine
@pytest.mark.parametrize("n_threads", [1, 2])
def test_kept_engine_gives_the_same_stream_as_a_fresh_one(n_threads):
    chunks = _chunks(X, Y_CLASS)
    kw = dict(hidden_layer_sizes=(7,), batch_size=3, random_state=1, n_threads=n_threads)
    kept = _stream(MLPClassifier(**kw), chunks, classes=[0, 1, 2])
    fresh_est, fresh = MLPClassifier(**kw), []
    for i, (Xc, yc) in enumerate(chunks):
        fresh_est.partial_fit(Xc, yc, **({"classes": [0, 1, 2]} if i == 0 else {}))
        fresh_est.__dict__.pop("_engine_cache")   # every call builds its engine
        fresh.append(fresh_est._params.copy())
    for a, b in zip(kept, fresh):
        np.testing.assert_array_equal(a, b)


def test_engine_is_kept_only_while_small_and_never_pickled():
    est = MLPRegressor(hidden_layer_sizes=(4,), random_state=0, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, Y_REAL)
    assert "_engine_cache" in est.__dict__
    assert "_engine_cache" not in pickle.loads(pickle.dumps(est)).__dict__
    # a full batch of 20,000 x 200 rows accumulates its gradient slice by
    # slice: the workspace is a slice per thread, far smaller than the batch
    big = np.random.RandomState(1).normal(size=(20000, 200))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.set_params(batch_size=20000, n_threads=2).fit(big, big[:, 0])
    assert est._engine_cache[1].workspace_nbytes < big.nbytes // 16
    # ... but 8 gradient buffers of a 200-2000-1 network are over the limit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.set_params(hidden_layer_sizes=(2000,), batch_size=4000).fit(big[:4000], big[:4000, 0])
    assert "_engine_cache" not in est.__dict__


def test_changing_the_network_builds_a_new_engine():
    est = MLPClassifier(hidden_layer_sizes=(4,), random_state=0, max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, Y_CLASS)
        first = est._engine_cache[1]
        est.set_params(activation="tanh").fit(X, Y_CLASS)
    assert est._engine_cache[1] is not first
    assert est._engine_cache[1].activation != first.activation


# ------------------------------------------------------ random state reuse
def test_int_seed_draws_anew_on_every_call_as_scikit_learn():
    est = MLPClassifier(random_state=5)
    draws = []
    for _ in range(3):
        draws.append(est._fresh_random_state().randint(1 << 30, size=4))
    expected = np.random.RandomState(5).randint(1 << 30, size=4)
    for d in draws:
        np.testing.assert_array_equal(d, expected)


def test_user_random_state_object_is_never_reseeded():
    user = np.random.RandomState(3)
    est = MLPClassifier(hidden_layer_sizes=(4,), random_state=user)
    est.partial_fit(X, Y_CLASS, classes=[0, 1, 2])
    assert est._fresh_random_state() is user
    state = user.get_state()[1].copy()
    est.set_params(random_state=3).partial_fit(X, Y_CLASS)
    np.testing.assert_array_equal(user.get_state()[1], state)


# ------------------------------------------------- parameter validation memo
def test_a_parameter_broken_between_partial_fit_calls_is_reported():
    est = MLPClassifier(hidden_layer_sizes=(4,), random_state=0)
    est.partial_fit(X, Y_CLASS, classes=[0, 1, 2])
    est.partial_fit(X, Y_CLASS)   # memo now holds the valid parameters
    est.momentum = 2.0
    with pytest.raises(InvalidParameterError, match="'momentum' parameter"):
        est.partial_fit(X, Y_CLASS)
    est.momentum = 0.5
    est.partial_fit(X, Y_CLASS)
    est.hidden_layer_sizes = [4]
    est.partial_fit(X, Y_CLASS)   # an equal list: still the same network
    est.hidden_layer_sizes[0] = -4   # edited in place
    with pytest.raises((InvalidParameterError, ValueError), match="hidden_layer_sizes"):
        est.partial_fit(X, Y_CLASS)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_remembered_valid_parameters_never_let_a_bad_value_through():
    # values that passed once are not checked again, for any estimator of
    # the class; a new bad value, or a value of another type, still is
    MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, Y_CLASS)
    bad = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0,
                        momentum=1.5)
    with pytest.raises(InvalidParameterError, match="'momentum' parameter"):
        bad.fit(X, Y_CLASS)
    with pytest.raises(InvalidParameterError, match="'momentum' parameter"):
        bad.fit(X, Y_CLASS)   # a failure is never remembered
    with pytest.raises(InvalidParameterError, match="'max_iter' parameter"):
        MLPClassifier(hidden_layer_sizes=(4,), max_iter="3", random_state=0).fit(X, Y_CLASS)
    with pytest.raises(InvalidParameterError, match="'max_iter' parameter"):
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=3.0, random_state=0).fit(X, Y_CLASS)


# ------------------------------------------------------------ BLAS limiter
def _blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_single_threaded_blas_limits_and_restores():
    before = _blas_threads()
    with _threads.single_threaded_blas():
        assert all(n == 1 for n in _blas_threads())
    assert _blas_threads() == before
    with pytest.raises(RuntimeError):
        with _threads.single_threaded_blas():
            raise RuntimeError
    assert _blas_threads() == before


# ---------------------------------------------------------- CPU count memo
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity")
def test_cpu_count_follows_the_affinity_mask():
    mask = os.sched_getaffinity(0)
    usable = _threads._usable_cpus()
    assert 1 <= usable <= len(mask)
    try:
        os.sched_setaffinity(0, {min(mask)})
        assert _threads._usable_cpus() == 1
        assert _threads.effective_n_threads(None) == 1
        assert _threads.effective_n_threads(-1) == 1
    finally:
        os.sched_setaffinity(0, mask)
    assert _threads._usable_cpus() == usable


# ------------------------------------------------- labels from the outputs
@pytest.mark.parametrize("labels", [[0, 1], ["no", "yes"], [2, 5, 9], ["a", "b", "c", "d"]])
def test_labels_from_outputs_match_inverse_transform(labels):
    from sklearn.preprocessing import LabelBinarizer

    from fastsgd._mlp import _labels_from_outputs
    binarizer = LabelBinarizer().fit(labels)
    rng = np.random.RandomState(0)
    if len(labels) == 2:
        out = rng.uniform(size=200)
        out[:3] = [0.5, np.nextafter(0.5, 1), np.nextafter(0.5, 0)]  # the threshold
    else:
        out = rng.uniform(size=(200, len(labels)))
        out[:5] = 0.25  # ties: the first class wins
        out[5, 1:] = out[5, 0]
    for dtype in (np.float64, np.float32):
        got = _labels_from_outputs(binarizer, out.astype(dtype))
        expected = binarizer.inverse_transform(out.astype(dtype))
        np.testing.assert_array_equal(got, expected)
        assert got.dtype == expected.dtype


@pytest.mark.parametrize("labels", [[0, 1], [7, 3], [0, 1, 2], np.array([4, 1, 8], np.uint8),
                                    np.arange(-3, 12, dtype=np.int32)])
def test_binarizer_of_int_classes_is_a_fitted_label_binarizer(labels):
    from sklearn.preprocessing import LabelBinarizer

    from fastsgd._mlp import _binarizer_of_int_classes
    classes = np.unique(labels)
    built, fitted = _binarizer_of_int_classes(classes), LabelBinarizer().fit(labels)
    assert sorted(vars(built)) == sorted(vars(fitted))
    for name, value in vars(fitted).items():
        np.testing.assert_array_equal(getattr(built, name), value)
        assert np.asarray(getattr(built, name)).dtype == np.asarray(value).dtype


@pytest.mark.parametrize("y", [
    np.array([3, 1, 3, 2, 1]), np.array([0]), np.array([-5, 7, -5, 0]),
    np.array([0, 255, 7, 255], np.uint8), np.array([-128, 127, 0, -128], np.int8),
    np.array([2**63 + 5, 2**63 + 1, 2**63 + 5], np.uint64),    # beyond intp: np.unique
    np.array([0, 10**9, 5, 0]),                                 # a wide range: np.unique
    np.random.RandomState(0).randint(-3, 40, size=5000).astype(np.int16),
])
def test_unique_int_labels_is_np_unique(y):
    from fastsgd._mlp import _unique_int_labels
    classes, index = _unique_int_labels(y)
    ref_classes, ref_index = np.unique(y, return_inverse=True)
    np.testing.assert_array_equal(classes, ref_classes)
    assert classes.dtype == ref_classes.dtype
    np.testing.assert_array_equal(index, ref_index.reshape(-1))


# ------------------------------------------------------ kept snapshot memory
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fits_reuse_the_snapshot_memory_and_never_share_it_with_a_model():
    _snapshots.forget()
    kw = dict(hidden_layer_sizes=(7,), max_iter=3, random_state=0)
    first = MLPClassifier(**kw).fit(X, Y_CLASS)
    kept = list(_snapshots._kept)
    # the epoch snapshots (weights, velocities) are kept after the fit
    assert len(kept) == 2 and all(a.shape == first._params.shape for a in kept)
    second = MLPClassifier(**kw).fit(X, Y_CLASS)
    # ... and the next fit of that size takes the same arrays again
    assert {id(a) for a in _snapshots._kept} == {id(a) for a in kept}
    for est in (first, second):
        for a in _snapshots._kept:
            assert not np.shares_memory(a, est._params)
            assert not np.shares_memory(a, est._optimizer.velocity)
    np.testing.assert_array_equal(first._params, second._params)


def test_interleaved_estimators_train_as_each_alone():
    # every call hands its copies back for the next: were one still in use
    # (or shared with a model), interleaving would mix the streams up
    chunks = _chunks(X, Y_CLASS)
    kw = dict(hidden_layer_sizes=(7,), random_state=0)
    alone = [_stream(MLPClassifier(**kw, momentum=m), chunks, classes=[0, 1, 2])
             for m in (0.9, 0.5)]
    a, b = MLPClassifier(**kw, momentum=0.9), MLPClassifier(**kw, momentum=0.5)
    together = ([], [])
    for i, (Xc, yc) in enumerate(chunks):
        for est, out in zip((a, b), together):
            est.partial_fit(Xc, yc, **({"classes": [0, 1, 2]} if i == 0 else {}))
            out.append(est._params.copy())
        if i % 3 == 0:   # a whole fit in between, of the same size, takes
            with warnings.catch_warnings():       # and gives back too
                warnings.simplefilter("ignore")
                MLPClassifier(**kw, max_iter=2).fit(Xc, yc)
    for got, want in zip(together, alone):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w, strict=True)


def test_only_small_snapshots_are_kept_and_only_a_few():
    _snapshots.forget()
    small = [np.zeros(10) for _ in range(_snapshots.MAX_KEPT + 2)]
    _snapshots.give_back(np.zeros(_snapshots.KEEP_BYTES // 8 + 1), None, *small)
    assert [id(a) for a in _snapshots._kept] == [id(a) for a in small[-_snapshots.MAX_KEPT:]]
    src = np.arange(10.0)
    got = _snapshots.copy_of(src)
    assert got is small[-1] and np.array_equal(got, src)
    assert _snapshots.copy_of(np.arange(3.0)).base is None   # no kept one fits: a new copy
    _snapshots.forget()
