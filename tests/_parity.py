"""Helpers shared by the tests that compare fastsgd with scikit-learn."""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor

import fastsgd

# relative tolerance "to float rounding" after a few epochs
RTOL = {np.float64: 1e-6, np.float32: 2e-4}


def pair(kind, **params):
    """(fastsgd estimator, scikit-learn estimator with solver='sgd')."""
    if kind == "classifier":
        return fastsgd.MLPClassifier(**params), SkMLPClassifier(solver="sgd", **params)
    return fastsgd.MLPRegressor(**params), SkMLPRegressor(solver="sgd", **params)


def quiet(fn, *args, **kwargs):
    """Call fn with ConvergenceWarning (expected after few epochs) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fn(*args, **kwargs)


def relative_error(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(np.max(np.abs(a)), 1e-30) if a.size else 1.0
    return float(np.max(np.abs(a - b)) / scale) if a.size else 0.0


def assert_same_model(fast, ref, dtype, X=None):
    """fastsgd's fitted state equals scikit-learn's to float rounding."""
    rtol = RTOL[np.dtype(dtype).type]
    assert fast.n_iter_ == ref.n_iter_
    assert fast.t_ == ref.t_
    assert fast.n_layers_ == ref.n_layers_
    assert fast.n_outputs_ == ref.n_outputs_
    assert fast.out_activation_ == ref.out_activation_
    assert len(fast.coefs_) == len(ref.coefs_)
    for name in ("coefs_", "intercepts_"):
        for i, (a, b) in enumerate(zip(getattr(ref, name), getattr(fast, name))):
            assert a.shape == b.shape
            assert b.dtype == np.dtype(dtype)
            err = relative_error(a, b)
            assert err <= rtol, f"{name}[{i}] differs: relative error {err:.3g} > {rtol}"
    assert len(fast.loss_curve_) == len(ref.loss_curve_)
    err = relative_error(ref.loss_curve_, fast.loss_curve_)
    assert err <= rtol, f"loss_curve_ differs: relative error {err:.3g}"
    if ref.best_loss_ is None:
        assert fast.best_loss_ is None
    else:
        assert abs(fast.best_loss_ - ref.best_loss_) <= rtol * abs(ref.best_loss_)
    if ref.validation_scores_ is None:
        assert fast.validation_scores_ is None
    else:
        # scores are accuracies / R^2 of the same weights: equal to rounding
        np.testing.assert_allclose(fast.validation_scores_, ref.validation_scores_,
                                   rtol=rtol, atol=rtol)
        np.testing.assert_allclose(fast.best_validation_score_, ref.best_validation_score_,
                                   rtol=rtol, atol=rtol)
    assert fast._no_improvement_count == ref._no_improvement_count
    np.testing.assert_allclose(fast._optimizer.learning_rate, ref._optimizer.learning_rate,
                               rtol=1e-12)
    if X is not None:
        if hasattr(ref, "predict_proba"):
            err = relative_error(ref.predict_proba(X), fast.predict_proba(X))
            assert err <= 10 * rtol, f"predict_proba differs: {err:.3g}"
        pred_ref, pred_fast = ref.predict(X), fast.predict(X)
        if pred_ref.dtype.kind == "f":
            assert relative_error(pred_ref, pred_fast) <= 10 * rtol
        else:
            # class labels: may differ only where probabilities tie to rounding
            assert np.mean(pred_ref != pred_fast) <= 0.01
