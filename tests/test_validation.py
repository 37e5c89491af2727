"""The fast input checks (fastsgd._validation, the engine's parallel finite
check, the one-hot encoding of integer labels) against scikit-learn's own:
the same answers, the same messages, the same encoded targets."""

import re
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import LabelBinarizer

from fastsgd import MLPClassifier, MLPRegressor, _engine
from fastsgd._validation import assert_all_finite


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_all_finite_rows_finds_a_bad_value_anywhere(dtype, n_threads, bad):
    # 700 x 300 = 210,000 values: several 65,536-value chunks and a short one
    X = np.random.RandomState(0).normal(size=(700, 300)).astype(dtype)
    assert _engine.all_finite_rows(X, n_threads)
    for flat in [0, 65535, 65536, 131071, 196608, X.size - 1]:
        Y = X.copy()
        Y.flat[flat] = bad
        assert not _engine.all_finite_rows(Y, n_threads), flat


def test_all_finite_rows_edge_cases():
    assert _engine.all_finite_rows(np.empty((0, 5), np.float32), 2)
    assert _engine.all_finite_rows(np.empty((4, 0)), 2)
    assert not _engine.all_finite_rows(np.array([[np.float32(np.inf)]]), 1)
    assert _engine.all_finite_rows(np.finfo(np.float64).max * np.ones((3, 3)), 2)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("bad, message", [(np.nan, "Input X contains NaN"),
                                          (np.inf, "Input X contains infinity")])
def test_messages_are_scikit_learns(order, bad, message):
    X = np.ones((20, 3), order=order)
    X[7, 2] = bad
    with pytest.raises(ValueError) as ours:
        assert_all_finite(X, 2, "MLPClassifier")
    with pytest.raises(ValueError) as theirs:
        sklearn.utils.check_array(X, estimator="MLPClassifier", input_name="X")
    assert str(ours.value) == str(theirs.value)
    assert str(ours.value).startswith(message)


def test_threads_check_only_a_large_X(monkeypatch):
    import fastsgd._validation as validation
    calls = []

    def spy(X, n_threads):
        calls.append((X.size, n_threads))
        return _engine.all_finite_rows(X, n_threads)

    monkeypatch.setattr(validation, "_engine", type("E", (), {"all_finite_rows": staticmethod(spy)}))
    big = np.zeros((validation.PARALLEL_CHECK_VALUES // 1000 + 1, 1000), np.float32)
    small = big[:-2]
    assert_all_finite(small, 2)
    assert_all_finite(big, 2)
    assert calls == [(small.size, 1), (big.size, 2)]
    big[-1, -1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        assert_all_finite(big, 2)


def test_assume_finite_config_is_honoured():
    X = np.full((4, 2), np.nan)
    with sklearn.config_context(assume_finite=True):
        assert_all_finite(X, 2)            # not checked, as scikit-learn
    with pytest.raises(ValueError, match="NaN"):
        assert_all_finite(X, 2)


@pytest.mark.parametrize("estimator", [MLPClassifier, MLPRegressor])
def test_fit_and_predict_report_non_finite_X(estimator):
    rng = np.random.RandomState(0)
    X, y = rng.normal(size=(30, 4)), rng.randint(3, size=30)
    model = estimator(hidden_layer_sizes=(5,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    bad = X.astype(np.float32)
    bad[29, 3] = np.inf
    for call in (lambda: model.fit(bad, y), lambda: model.predict(bad),
                 lambda: model.partial_fit(bad, y)):
        with pytest.raises(ValueError, match=re.escape("Input X contains infinity")):
            call()


# ------------------------------------------------ integer labels, one-hot
def _encoded(model, X, y, **kw):
    """The targets the classifier trains on (its _validate_input)."""
    return model._validate_input(X, y, **kw, dtype=np.float64)[1]


@pytest.mark.parametrize("labels", [[0, 1], [3, 7], [0, 1, 2], [5, 2, 9, 100],
                                    np.array([4, 1, 8], dtype=np.uint8)])
def test_integer_labels_encode_as_label_binarizer(labels):
    rng = np.random.RandomState(1)
    labels = np.asarray(labels)
    y = labels[rng.randint(len(labels), size=50)]
    y[: len(labels)] = labels
    X = rng.normal(size=(50, 3))
    model = MLPClassifier()
    Y = _encoded(model, X, y, incremental=False, reset=True)
    reference = LabelBinarizer().fit(y)
    assert Y.dtype == bool
    np.testing.assert_array_equal(Y, reference.transform(y).astype(bool))
    np.testing.assert_array_equal(model.classes_, reference.classes_)
    assert model._label_binarizer.y_type_ == reference.y_type_
    # a later partial_fit batch holding only some of the classes
    part = y[y != labels[0]]
    Y_part = _encoded(model, X[: part.size], part, incremental=True, reset=False)
    np.testing.assert_array_equal(Y_part, reference.transform(part).astype(bool))


def test_integer_labels_unseen_class_and_string_labels():
    rng = np.random.RandomState(2)
    X, y = rng.normal(size=(40, 3)), rng.randint(3, size=40)
    model = MLPClassifier(hidden_layer_sizes=(4,), random_state=0)
    model.partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="`y` has classes not in `self.classes_`"):
        model.partial_fit(X, np.where(y == 2, 5, y))
    # string labels take scikit-learn's own path and give the same encoding
    names = np.array(["cat", "dog", "eel"])[y]
    Y = _encoded(MLPClassifier(), X, names, incremental=False, reset=True)
    np.testing.assert_array_equal(Y, LabelBinarizer().fit_transform(names).astype(bool))
