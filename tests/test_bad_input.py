"""Bad input: every failing call raises a clear error and loses nothing.

A fitted model handed bad input (to fit, partial_fit or predict) must come
out of the failing call exactly as it went in: same weights, same optimizer
state (learning rate and velocities), same books (loss curve, t_, n_iter_,
classes_, ...), same predictions, and it must go on training exactly as if
the failing call had never happened.  A *first* partial_fit that fails must
leave the estimator unfitted.

Expected messages are scikit-learn 1.9.1's (shared/reference/
sklearn-mlp-sgd-spec.md, sections 5 and 6.3).
"""

import copy
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted

import fastsgd._base
from fastsgd import DivergenceError, MLPClassifier, MLPRegressor

# --------------------------------------------------------------------- data
# 3 features, so that a 2-feature X is "the wrong number of features"
X_CLF, Y_CLF = make_classification(n_samples=60, n_features=3, n_informative=3,
                                   n_redundant=0, n_classes=3, random_state=0)
X_REG, _Y_REG_RAW = make_regression(n_samples=60, n_features=3, noise=0.1, random_state=0)
Y_REG = _Y_REG_RAW / 100.0
Y_POISSON = np.exp(X_REG[:, 0] / 2)  # non-negative targets
N = X_CLF.shape[0]
CLASSES = np.unique(Y_CLF)

TRAIN = {
    "clf": (X_CLF, Y_CLF),
    "reg": (X_REG, Y_REG),
    "poisson": (X_REG, Y_POISSON),
    "clf_es": (X_CLF, Y_CLF),
    "reg_es": (X_REG, Y_REG),
}
NAME = {"clf": "MLPClassifier", "reg": "MLPRegressor"}

# small network, few epochs; invscaling so that the optimizer's learning rate
# is part of the state that changes with training
SMALL = dict(hidden_layer_sizes=(5,), batch_size=16, max_iter=3, random_state=0,
             learning_rate="invscaling", power_t=0.25, learning_rate_init=0.01)

DIVERGED = r"[Ss]maller learning[_ ]rate"


def make_estimator(kind, **params):
    """An unfitted estimator of the given kind."""
    kw = dict(SMALL, **params)
    if kind.startswith("clf"):
        est = MLPClassifier(**kw)
    elif kind == "poisson":
        est = MLPRegressor(loss="poisson", **kw)
    else:
        est = MLPRegressor(**kw)
    if kind.endswith("_es"):
        est.set_params(early_stopping=True, validation_fraction=0.2)
    return est


def continue_training(est, kind):
    """One more round of training on good data, in place."""
    X, y = TRAIN[kind]
    if kind.endswith("_es"):
        # early-stopping models cannot partial_fit: a short warm-start fit
        est.set_params(warm_start=True, max_iter=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
    else:
        est.partial_fit(X, y)
    return est


_FITTED = {}


def fitted(kind):
    """A fitted model (a fresh deep copy each call): a few epochs of fit,
    then one more training round, so the optimizer has moved on from its
    initial learning rate and has non-zero velocities."""
    if kind not in _FITTED:
        X, y = TRAIN[kind]
        est = make_estimator(kind)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
        continue_training(est, kind)
        est.set_params(**make_estimator(kind).get_params())
        _FITTED[kind] = est
    return copy.deepcopy(_FITTED[kind])


def _copy(value):
    return value.copy() if isinstance(value, np.ndarray) else copy.deepcopy(value)


class Snapshot:
    """Deep copies of everything a failing call must leave as it was."""

    ATTRIBUTES = ("coefs_", "intercepts_", "loss_curve_", "loss_", "best_loss_", "t_",
                  "n_iter_", "classes_", "n_features_in_", "feature_names_in_",
                  "n_layers_", "n_outputs_", "out_activation_", "validation_scores_",
                  "best_validation_score_",
                  # private books the spec (section 7) lists as training state
                  "_no_improvement_count")

    def __init__(self, est, X_probe):
        self.X_probe = X_probe
        self.params = est.get_params()
        self.attributes = {name: _copy(getattr(est, name)) for name in self.ATTRIBUTES
                           if hasattr(est, name)}
        self.attribute_names = sorted(vars(est))
        self.learning_rate = est._optimizer.learning_rate
        self.velocity = est._optimizer.velocity.copy()
        self.predict = est.predict(X_probe)
        self.predict_proba = (est.predict_proba(X_probe)
                              if hasattr(est, "predict_proba") else None)
        self.twin = copy.deepcopy(est)  # to compare further training with

    def assert_unchanged(self, est, kind):
        # the failing call may have come after a set_params: parameters are
        # the user's, not the model's state; put them back first
        est.set_params(**self.params)
        assert sorted(vars(est)) == self.attribute_names
        for name, before in self.attributes.items():
            after = getattr(est, name)
            if isinstance(before, list) and before and isinstance(before[0], np.ndarray):
                assert len(after) == len(before), name
                for a, b in zip(after, before):
                    np.testing.assert_array_equal(a, b, strict=True, err_msg=name)
            elif isinstance(before, np.ndarray):
                np.testing.assert_array_equal(after, before, strict=True, err_msg=name)
            else:
                assert type(after) is type(before), name
                assert after == before, name
        for arr in est.coefs_ + est.intercepts_:  # still views of the slab
            assert arr.base is est._params
        assert est._optimizer.learning_rate == self.learning_rate
        np.testing.assert_array_equal(est._optimizer.velocity, self.velocity, strict=True)
        np.testing.assert_array_equal(est.predict(self.X_probe), self.predict, strict=True)
        if self.predict_proba is not None:
            np.testing.assert_array_equal(est.predict_proba(self.X_probe),
                                          self.predict_proba, strict=True)
        # nothing hidden changed: further training gives bitwise what the
        # untouched twin gets
        resumed = continue_training(copy.deepcopy(est), kind)
        twin = continue_training(copy.deepcopy(self.twin), kind)
        np.testing.assert_array_equal(resumed._params, twin._params, strict=True)
        np.testing.assert_array_equal(resumed._optimizer.velocity, twin._optimizer.velocity,
                                      strict=True)
        assert resumed.loss_curve_ == twin.loss_curve_
        assert resumed.t_ == twin.t_


def with_value(a, value, index=(1, 2)):
    a = np.array(a, dtype=float, copy=True)
    a[index] = value
    return a


# ------------------------------------------------------------ a failing call


@dataclass
class Call:
    """``est.set_params(**params)``, then ``est.<method>(*args, **kwargs)``."""

    method: str
    args: tuple
    kwargs: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)

    def __call__(self, est):
        est.set_params(**self.params)
        return getattr(est, self.method)(*self.args, **self.kwargs)


def case(kind, id_, call, exc, match):
    return pytest.param(kind, call, exc, match, id=f"{kind}-{id_}")


def _fitted_model_cases():
    cases = []
    for kind in ("clf", "reg"):
        X, y = TRAIN[kind]
        name = NAME[kind]
        predictors = ("predict", "predict_proba") if kind == "clf" else ("predict",)

        # non-finite X
        for bad, value, match in (("nan", np.nan, "^Input X contains NaN"),
                                  ("inf", np.inf, "^Input X contains infinity"),
                                  ("-inf", -np.inf, "^Input X contains infinity")):
            Xb = with_value(X, value)
            cases += [
                case(kind, f"fit-{bad}-X", Call("fit", (Xb, y)), ValueError, match),
                case(kind, f"warm-fit-{bad}-X",
                     Call("fit", (Xb, y), params=dict(warm_start=True)), ValueError, match),
                case(kind, f"partial_fit-{bad}-X", Call("partial_fit", (Xb, y)),
                     ValueError, match),
            ] + [case(kind, f"{m}-{bad}-X", Call(m, (Xb,)), ValueError, match)
                 for m in predictors]

        # non-finite y
        for bad, value, match in (("nan", np.nan, "^Input y contains NaN"),
                                  ("inf", np.inf, "^Input y contains infinity"),
                                  ("-inf", -np.inf, "^Input y contains infinity")):
            yb = with_value(y, value, 3)
            cases += [case(kind, f"{m}-{bad}-y", Call(m, (X, yb)), ValueError, match)
                      for m in ("fit", "partial_fit")]

        # wrong number of features
        msg = "^" + re.escape(f"X has 2 features, but {name} is expecting 3 features as input.")
        cases += [
            case(kind, "partial_fit-2-features", Call("partial_fit", (X[:, :2], y)),
                 ValueError, msg),
            case(kind, "warm-fit-2-features",
                 Call("fit", (X[:, :2], y), params=dict(warm_start=True)), ValueError, msg),
        ] + [case(kind, f"{m}-2-features", Call(m, (X[:, :2],)), ValueError, msg)
             for m in predictors]

        # no samples
        empty = "^" + re.escape("Found array with 0 sample(s) (shape=(0, 3)) while a minimum "
                                f"of 1 is required by {name}.")
        cases += [case(kind, f"{m}-empty", Call(m, (X[:0], y[:0])), ValueError, empty)
                  for m in ("fit", "partial_fit")]
        cases += [case(kind, f"{m}-empty", Call(m, (X[:0],)), ValueError, empty)
                  for m in predictors]

        # sample weights
        for sw_id, sw, match in (
                ("all-zero", np.zeros(N), "Sample weights must contain at least one non-zero"),
                ("wrong-length", np.ones(N - 1),
                 re.escape(f"sample_weight.shape == ({N - 1},), expected ({N},)!")),
                ("2d", np.ones((N, 1)), "Sample weights must be 1D array or scalar"),
                ("nan", with_value(np.ones(N), np.nan, 4), "sample_weight contains NaN")):
            cases += [case(kind, f"{m}-sample_weight-{sw_id}",
                           Call(m, (X, y), dict(sample_weight=sw)), ValueError, match)
                      for m in ("fit", "partial_fit")]
        # a batch whose weights are all zero: found only while training, here
        # in the last batch (batches of 16 rows, not shuffled), after three
        # updates that must be undone
        sw = np.ones(N)
        sw[48:] = 0.0
        cases.append(case(kind, "partial_fit-zero-weight-last-batch",
                          Call("partial_fit", (X, y), dict(sample_weight=sw),
                               params=dict(shuffle=False)),
                          ValueError, "sample weights"))

        # sparse input (dense only for now): scikit-learn's TypeError asking
        # for dense data
        for fmt in ("csr_matrix", "csc_matrix", "csr_array", "coo_array"):
            Xs = getattr(sp, fmt)(X)
            cases += [case(kind, f"{m}-sparse-{fmt}", Call(m, (Xs, y)), TypeError,
                           "dense data") for m in ("fit", "partial_fit")]
            cases += [case(kind, f"{m}-sparse-{fmt}", Call(m, (Xs,)), TypeError, "dense data")
                      for m in predictors]

        # invalid parameters, set on the fitted model
        invalid = [
            (dict(momentum=1.5), "^" + re.escape(
                f"The 'momentum' parameter of {name} must be a float in the range "
                "[0.0, 1.0]. Got 1.5 instead.")),
            (dict(learning_rate_init=0), "The 'learning_rate_init' parameter"),
            (dict(batch_size=0), "The 'batch_size' parameter"),
            (dict(activation="bad"), "The 'activation' parameter"),
            (dict(n_threads=0), "The 'n_threads' parameter"),
            (dict(alpha=-1.0), "The 'alpha' parameter"),
            (dict(hidden_layer_sizes=[5, 0]),
             "^" + re.escape("hidden_layer_sizes must be > 0, got [5, 0].")),
        ]
        for params, match in invalid:
            pid = ",".join(f"{k}={v}" for k, v in params.items())
            cases += [case(kind, f"fit-{pid}", Call("fit", (X, y), params=params),
                           ValueError, match),
                      case(kind, f"warm-fit-{pid}",
                           Call("fit", (X, y), params=dict(params, warm_start=True)),
                           ValueError, match)]
        # partial_fit on a fitted model: scikit-learn skips parameter
        # validation there, but a parameter partial_fit reads must be valid
        # or give a clear error.  (learning_rate_init and momentum belong to
        # the optimizer, which persists: see test_partial_fit_ignores_or_
        # rejects_invalid_momentum; batch_size is clipped with a warning.)
        for params, match in (
                (dict(activation="bad"), "activation"),
                (dict(n_threads=0), "n_threads"),
                (dict(alpha=-1.0), "alpha"),
                (dict(hidden_layer_sizes=[5, 0]),
                 "^" + re.escape("hidden_layer_sizes must be > 0, got [5, 0]."))):
            pid = ",".join(f"{k}={v}" for k, v in params.items())
            cases.append(case(kind, f"partial_fit-{pid}",
                              Call("partial_fit", (X, y), params=params), ValueError, match))

        # partial_fit with early stopping
        cases.append(case(kind, "partial_fit-early_stopping",
                          Call("partial_fit", (X, y), params=dict(early_stopping=True)),
                          ValueError, "^partial_fit does not support early_stopping=True$"))

        # warm start / partial_fit with another network
        cases += [case(kind, "warm-fit-other-hidden_layer_sizes",
                       Call("fit", (X, y), params=dict(warm_start=True,
                                                       hidden_layer_sizes=(4,))),
                       ValueError, "hidden_layer_sizes"),
                  case(kind, "partial_fit-other-hidden_layer_sizes",
                       Call("partial_fit", (X, y), params=dict(hidden_layer_sizes=(4, 2))),
                       ValueError, "hidden_layer_sizes")]

    # classifier labels
    X, y = TRAIN["clf"]
    cases += [
        case("clf", "partial_fit-unknown-label", Call("partial_fit", (X, y + 1)), ValueError,
             "^" + re.escape("`y` has classes not in `self.classes_`. `self.classes_` has "
                             "[0 1 2]. 'y' has [1 2 3].")),
        case("clf", "partial_fit-string-label", Call("partial_fit", (X, np.where(y, "a", "b"))),
             ValueError, "^" + re.escape("`y` has classes not in `self.classes_`")),
        case("clf", "partial_fit-changed-classes",
             Call("partial_fit", (X, y), dict(classes=[0, 1, 2, 3])), ValueError,
             "^" + re.escape("`classes=[0, 1, 2, 3]` is not the same as on last call to "
                             "partial_fit, was: array([0, 1, 2])")),
        case("clf", "partial_fit-fewer-classes",
             Call("partial_fit", (X, y), dict(classes=[0, 1])), ValueError,
             "is not the same as on last call to partial_fit"),
        case("clf", "warm-fit-other-classes",
             Call("fit", (X, y + 1), params=dict(warm_start=True)), ValueError,
             "^" + re.escape("warm_start can only be used where `y` has the same classes as "
                             "in the previous call to fit. Previously got [0 1 2], `y` has "
                             "[1 2 3]")),
        case("clf", "warm-fit-fewer-classes",
             Call("fit", (X[y < 2], y[y < 2]), params=dict(warm_start=True)), ValueError,
             "^warm_start can only be used where `y` has the same classes"),
        case("clf", "partial_fit-diverging-huge-X", Call("partial_fit", (X * 1e300, y)),
             DivergenceError, DIVERGED),
        case("clf", "partial_fit-diverging-in-last-batch",
             Call("partial_fit", (with_value(X, 1e308, np.s_[48:]), y),
                  params=dict(shuffle=False)),
             DivergenceError, DIVERGED),
    ]

    # regressor outputs and divergence
    X, y = TRAIN["reg"]
    cases += [
        case("reg", "partial_fit-two-outputs", Call("partial_fit", (X, np.c_[y, y])),
             ValueError, "number of outputs"),
        case("reg", "partial_fit-diverging-huge-y", Call("partial_fit", (X, y * 1e200)),
             DivergenceError, DIVERGED),
        case("reg", "partial_fit-diverging-huge-X", Call("partial_fit", (X * 1e300, y)),
             DivergenceError, DIVERGED),
        case("reg", "partial_fit-diverging-in-last-batch",
             Call("partial_fit", (X, with_value(y, 1e200, np.s_[48:])),
                  params=dict(shuffle=False)),
             DivergenceError, DIVERGED),
    ]

    # Poisson regression with negative targets
    X, y = TRAIN["poisson"]
    yneg = with_value(y, -1.0, 5)
    cases += [
        case("poisson", "fit-negative-y", Call("fit", (X, yneg)), ValueError, "negative"),
        case("poisson", "warm-fit-negative-y",
             Call("fit", (X, yneg), params=dict(warm_start=True)), ValueError, "negative"),
        case("poisson", "partial_fit-negative-y", Call("partial_fit", (X, yneg)), ValueError,
             "negative"),
    ]

    # early stopping with a validation set that is too small
    too_small = "^" + re.escape("The validation set is too small. Increase "
                                "'validation_fraction' or the size of your dataset.")
    for kind in ("clf_es", "reg_es"):
        X, y = TRAIN[kind]
        cases += [
            case(kind, "fit-validation_fraction-too-small",
                 Call("fit", (X, y), params=dict(validation_fraction=0.01)),
                 ValueError, too_small),
            case(kind, "fit-too-few-rows", Call("fit", (X[:5], y[:5])), ValueError, too_small),
            case(kind, "warm-fit-validation_fraction-too-small",
                 Call("fit", (X, y), params=dict(warm_start=True, validation_fraction=0.01)),
                 ValueError, too_small),
        ]
    return cases


@pytest.mark.parametrize("kind, call, exc, match", _fitted_model_cases())
def test_bad_call_leaves_fitted_model_unchanged(kind, call, exc, match):
    est = fitted(kind)
    snapshot = Snapshot(est, TRAIN[kind][0][::7])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(exc, match=match):
            call(est)
    snapshot.assert_unchanged(est, kind)


@pytest.mark.parametrize("kind", ["clf", "reg"])
@pytest.mark.parametrize("params", [dict(momentum=1.5), dict(momentum=-0.5)],
                         ids=["momentum=1.5", "momentum=-0.5"])
def test_partial_fit_ignores_or_rejects_invalid_momentum(kind, params):
    """partial_fit on a fitted model skips parameter validation (as
    scikit-learn), and the momentum is the persisting optimizer's, fixed when
    it was created (spec section 5.1): an invalid momentum set in between
    must either be rejected with a clear error, leaving the model unchanged,
    or be ignored: the model then trains exactly as with the old momentum."""
    est = fitted(kind)
    snapshot = Snapshot(est, TRAIN[kind][0][::7])
    X, y = TRAIN[kind]
    est.set_params(**params)
    try:
        est.partial_fit(X, y)
    except ValueError as exc:
        assert "momentum" in str(exc)
        snapshot.assert_unchanged(est, kind)
    else:
        twin = copy.deepcopy(snapshot.twin).partial_fit(X, y)
        np.testing.assert_array_equal(est._params, twin._params, strict=True)
        assert est.loss_curve_ == twin.loss_curve_


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
@pytest.mark.parametrize("params", [
    dict(momentum=1.5), dict(momentum=-0.1), dict(learning_rate_init=0), dict(batch_size=0),
    dict(activation="bad"), dict(n_threads=0), dict(alpha=-1.0), dict(max_iter=0),
    dict(validation_fraction=1.0), dict(learning_rate="bad"), dict(power_t=-1.0),
    dict(hidden_layer_sizes=0),
], ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_invalid_parameter_is_invalid_parameter_error(Estimator, params):
    X, y = TRAIN["clf"]
    est = Estimator(**params)
    name = next(iter(params))
    with pytest.raises(InvalidParameterError,
                       match=f"^The '{name}' parameter of {Estimator.__name__} must be"):
        est.fit(X, y)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)


@pytest.mark.parametrize("n_threads", [None, 1, 3, -1, -2, -100])
def test_valid_n_threads_accepted(n_threads):
    X, y = TRAIN["reg"]
    est = make_estimator("reg", n_threads=n_threads, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert est.n_iter_ == 1
    assert np.isfinite(est.predict(X)).all()


def test_divergence_error_is_value_error():
    assert issubclass(DivergenceError, ValueError)


# ------------------------------------------------------ failing first partial_fit


def _first_call_cases():
    X, y = TRAIN["clf"]
    cases = [
        case("clf", "no-classes", Call("partial_fit", (X, y)), ValueError,
             "^" + re.escape("classes must be passed on the first call to partial_fit.")),
        case("clf", "label-not-in-classes",
             Call("partial_fit", (X, y), dict(classes=[0, 1])), ValueError,
             "^" + re.escape("`y` has classes not in `self.classes_`")),
        case("clf", "nan-y",
             Call("partial_fit", (X, with_value(y, np.nan, 3)), dict(classes=CLASSES)),
             ValueError, "contains NaN"),
        case("clf", "diverging", Call("partial_fit", (X * 1e300, y), dict(classes=CLASSES)),
             DivergenceError, DIVERGED),
    ]
    for kind in ("clf", "reg"):
        X, y = TRAIN[kind]
        kw = {"classes": CLASSES} if kind == "clf" else {}
        sw = np.ones(N)
        sw[:16] = 0.0
        cases += [
            case(kind, "nan-X", Call("partial_fit", (with_value(X, np.nan), y), kw),
                 ValueError, "^Input X contains NaN"),
            case(kind, "inf-X", Call("partial_fit", (with_value(X, np.inf), y), kw),
                 ValueError, "^Input X contains infinity"),
            case(kind, "empty-X", Call("partial_fit", (X[:0], y[:0]), kw),
                 ValueError, r"^Found array with 0 sample\(s\)"),
            case(kind, "sparse-X", Call("partial_fit", (sp.csr_matrix(X), y), kw),
                 TypeError, "dense data"),
            case(kind, "sample_weight-all-zero",
                 Call("partial_fit", (X, y), dict(kw, sample_weight=np.zeros(N))),
                 ValueError, "at least one non-zero"),
            case(kind, "sample_weight-wrong-length",
                 Call("partial_fit", (X, y), dict(kw, sample_weight=np.ones(N + 1))),
                 ValueError, re.escape(f"sample_weight.shape == ({N + 1},), expected ({N},)!")),
            case(kind, "sample_weight-2d",
                 Call("partial_fit", (X, y), dict(kw, sample_weight=np.ones((N, 2)))),
                 ValueError, "Sample weights must be 1D array or scalar"),
            case(kind, "zero-weight-batch",
                 Call("partial_fit", (X, y), dict(kw, sample_weight=sw),
                      params=dict(shuffle=False)),
                 ValueError, "sample weights"),
            case(kind, "early_stopping",
                 Call("partial_fit", (X, y), kw, params=dict(early_stopping=True)),
                 ValueError, "^partial_fit does not support early_stopping=True$"),
            case(kind, "momentum=1.5",
                 Call("partial_fit", (X, y), kw, params=dict(momentum=1.5)),
                 ValueError, "^The 'momentum' parameter"),
            case(kind, "learning_rate_init=0",
                 Call("partial_fit", (X, y), kw, params=dict(learning_rate_init=0)),
                 ValueError, "^The 'learning_rate_init' parameter"),
            case(kind, "batch_size=0",
                 Call("partial_fit", (X, y), kw, params=dict(batch_size=0)),
                 ValueError, "^The 'batch_size' parameter"),
            case(kind, "activation=bad",
                 Call("partial_fit", (X, y), kw, params=dict(activation="bad")),
                 ValueError, "^The 'activation' parameter"),
            case(kind, "n_threads=0",
                 Call("partial_fit", (X, y), kw, params=dict(n_threads=0)),
                 ValueError, "^The 'n_threads' parameter"),
            case(kind, "hidden_layer_sizes=[5, 0]",
                 Call("partial_fit", (X, y), kw, params=dict(hidden_layer_sizes=[5, 0])),
                 ValueError, "^" + re.escape("hidden_layer_sizes must be > 0, got [5, 0].")),
        ]
    X, y = TRAIN["reg"]
    cases += [
        case("reg", "nan-y", Call("partial_fit", (X, with_value(y, np.nan, 3))),
             ValueError, "^Input y contains NaN"),
        case("reg", "inf-y", Call("partial_fit", (X, with_value(y, np.inf, 3))),
             ValueError, "^Input y contains infinity"),
        case("reg", "diverging", Call("partial_fit", (X, y * 1e200)), DivergenceError,
             DIVERGED),
    ]
    X, y = TRAIN["poisson"]
    cases.append(case("poisson", "negative-y", Call("partial_fit", (X, y - 10.0)),
                      ValueError, "negative"))
    return cases


@pytest.mark.parametrize("kind, call, exc, match", _first_call_cases())
def test_failing_first_partial_fit_leaves_estimator_unfitted(kind, call, exc, match):
    est = make_estimator(kind)
    pristine = copy.deepcopy(est)
    with warnings.catch_warnings():
        # scikit-learn's label checks cast a NaN label (its own warning)
        warnings.filterwarnings("ignore", "invalid value encountered in cast", RuntimeWarning,
                                module="sklearn")
        with pytest.raises(exc, match=match):
            call(est)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    for attr in ("classes_", "coefs_", "n_features_in_", "t_", "_optimizer", "_params"):
        assert not hasattr(est, attr), attr
    assert sorted(vars(est)) == sorted(vars(pristine))

    # nothing half-done stays behind: once the parameters are valid again,
    # a good first call gives bitwise the model a fresh estimator gets
    est.set_params(**pristine.get_params())
    X, y = TRAIN[kind]
    kw = {"classes": CLASSES} if kind == "clf" else {}
    est.partial_fit(X, y, **kw)
    pristine.partial_fit(X, y, **kw)
    np.testing.assert_array_equal(est._params, pristine._params, strict=True)
    assert est.loss_curve_ == pristine.loss_curve_


# -------------------------------------------------------------- divergence in fit


@pytest.mark.parametrize("how", ["huge-learning-rate", "huge-targets"])
def test_diverging_fit_raises_divergence_error(how):
    X, y = make_regression(n_samples=60, n_features=3, random_state=0)
    est = MLPRegressor(hidden_layer_sizes=(5,), max_iter=20, random_state=0)
    if how == "huge-learning-rate":
        est.set_params(learning_rate_init=1e6)
    else:
        y = y * 1e30
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(DivergenceError, match=DIVERGED) as info:
            est.fit(X, y)
    assert isinstance(info.value, ValueError)
    # the weights from before the failing epoch are kept: finite
    assert est.n_iter_ < 20
    assert np.isfinite(est._params).all()
    assert all(np.isfinite(c).all() for c in est.coefs_ + est.intercepts_)
    assert np.isfinite(est.predict(X)).all()


def test_diverging_warm_start_fit_keeps_weights_of_last_good_epoch():
    X, y = make_regression(n_samples=60, n_features=3, random_state=0)
    est = fitted("reg")
    n_before, t_before = len(est.loss_curve_), est.t_
    before = copy.deepcopy(est)
    diverging = dict(warm_start=True, max_iter=30, learning_rate_init=1e6,
                     learning_rate="constant")
    est.set_params(**diverging)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(DivergenceError, match=DIVERGED):
            est.fit(X, y)
    n_good = est.n_iter_
    assert n_good < 30
    assert np.isfinite(est._params).all()
    assert all(np.isfinite(c).all() for c in est.coefs_ + est.intercepts_)
    for arr in est.coefs_ + est.intercepts_:
        assert arr.base is est._params
    assert np.isfinite(est._optimizer.velocity).all()
    assert np.isfinite(est.predict(X)).all()
    # the books record exactly the epochs that completed
    assert len(est.loss_curve_) == n_before + n_good
    assert np.isfinite(est.loss_curve_).all()
    assert est.t_ == t_before + n_good * X.shape[0]

    # the weights are those after the last good epoch: the same warm start
    # stopped after n_good epochs gives them bitwise
    if n_good == 0:
        np.testing.assert_array_equal(est._params, before._params, strict=True)
    else:
        replay = copy.deepcopy(before).set_params(**dict(diverging, max_iter=n_good))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            replay.fit(X, y)
        np.testing.assert_array_equal(est._params, replay._params, strict=True)
        assert est.loss_curve_ == replay.loss_curve_


# ------------------------------------------------------------- dtype overflow


@pytest.mark.parametrize("what", ["X", "y", "sample_weight"])
def test_float32_model_given_values_beyond_float32_range(what):
    """A float32 model fed float64 data that is finite but too large for
    float32.  X or y: a clear ValueError (not a RuntimeWarning from a cast,
    which the project's pytest configuration turns into an error), and the
    model unchanged.  A huge sample weight only sets the relative weights, so
    training on may also succeed, with finite weights."""
    X, y = TRAIN["reg"]
    est = make_estimator("reg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X.astype(np.float32), y.astype(np.float32))
    assert est.coefs_[0].dtype == np.float32
    snapshot = Snapshot(est, X[::7].astype(np.float32))
    Xb, yb, sw = X.copy(), y.copy(), np.ones(N)
    {"X": Xb, "y": yb, "sample_weight": sw}[what][2] = 1e300
    if what != "sample_weight":
        with pytest.raises(ValueError):
            est.partial_fit(Xb, yb, sample_weight=sw)
        snapshot.assert_unchanged(est, "reg")
        return
    try:
        est.partial_fit(Xb, yb, sample_weight=sw)
    except ValueError:
        snapshot.assert_unchanged(est, "reg")
    else:
        assert est.coefs_[0].dtype == np.float32
        assert np.isfinite(est._params).all()
        assert np.isfinite(est.predict(X)).all()


# ------------------------------------------- X checked by the first epoch
# A large X is checked for NaN/inf by the engine as the first epoch gathers
# its rows (BaseSGDMLP._x_check_in_first_epoch), not in a pass of its own.
# The same promises hold: scikit-learn's message, nothing lost.


def _record_check_x(monkeypatch):
    """Record the check_x of every epoch run (a list, returned)."""
    seen = []
    run_epoch = fastsgd._base.BaseSGDMLP._run_epoch

    def spy(self, *args, check_x=False, **kwargs):
        seen.append(check_x)
        return run_epoch(self, *args, check_x=check_x, **kwargs)

    monkeypatch.setattr(fastsgd._base.BaseSGDMLP, "_run_epoch", spy)
    return seen


@pytest.fixture
def epoch_checks_X(monkeypatch):
    """Every X, however small, is left to the first epoch's gathers when
    that epoch gathers every row; returns the check_x of each epoch run."""
    monkeypatch.setattr(fastsgd._base, "_EPOCH_CHECK_VALUES", 0)
    return _record_check_x(monkeypatch)


def _non_finite_X(cases):
    return [c for c in cases if re.search(r"-(nan|inf)-X$", c.id) and
            c.values[1].method in ("fit", "partial_fit")]


@pytest.mark.parametrize("kind, call, exc, match", _non_finite_X(_fitted_model_cases()))
def test_bad_X_found_by_first_epoch_leaves_fitted_model_unchanged(epoch_checks_X, kind, call,
                                                                  exc, match):
    est = fitted(kind)
    snapshot = Snapshot(est, TRAIN[kind][0][::7])
    epoch_checks_X.clear()
    with pytest.raises(exc, match=match):
        call(est)
    assert epoch_checks_X == [True]   # found by the engine, in the first epoch
    snapshot.assert_unchanged(est, kind)


@pytest.mark.parametrize("kind, call, exc, match", _non_finite_X(_first_call_cases()))
def test_bad_X_found_by_first_epoch_leaves_estimator_unfitted(epoch_checks_X, kind, call, exc,
                                                              match):
    test_failing_first_partial_fit_leaves_estimator_unfitted(kind, call, exc, match)
    assert epoch_checks_X[0] is True


@pytest.mark.parametrize("kind", ["clf", "reg"])
@pytest.mark.parametrize("how", ["diverging", "zero-weight-batch"])
def test_bad_X_reported_even_when_the_first_epoch_fails_before_it(epoch_checks_X, kind, how):
    # the epoch stops at an earlier failure, before its gathers reach the
    # bad row; the error is still the bad X's, as with a check up front
    X, y = TRAIN[kind]
    est = fitted(kind)
    snapshot = Snapshot(est, X[::7])
    kwargs = {}
    if how == "diverging":
        X = X * 1e300
    else:
        kwargs["sample_weight"] = np.zeros(N)
        kwargs["sample_weight"][-1] = 1.0   # (a batch of zero weights comes first)
    epoch_checks_X.clear()
    with pytest.raises(ValueError, match="^Input X contains NaN"):
        est.fit(with_value(X, np.nan, (N - 1, 0)), y, **kwargs)
    assert epoch_checks_X == [True]
    snapshot.assert_unchanged(est, kind)


@pytest.mark.parametrize("kind", ["clf_es", "reg_es"])
def test_bad_X_in_training_or_validation_rows_with_early_stopping(epoch_checks_X, kind):
    # the validation rows are never gathered for training: they are checked
    # before it; the training rows by the engine
    X, y = TRAIN[kind]
    found_by_engine = []
    for row in range(0, N, 3):
        est = fitted(kind)
        snapshot = Snapshot(est, X[::7])
        epoch_checks_X.clear()
        with pytest.raises(ValueError, match="^Input X contains NaN"):
            est.fit(with_value(X, np.nan, (row, 0)), y)
        found_by_engine.append(epoch_checks_X == [True])
        snapshot.assert_unchanged(est, kind)
    assert any(found_by_engine) and not all(found_by_engine)


@pytest.mark.parametrize("batch_size, shuffle, rows, expected", [
    (32, True, 300, True),
    ("auto", True, 300, True),      # 200 rows a batch
    ("auto", True, 200, False),     # one batch of every row: X is used in place
    (32, False, 300, False),        # rows in storage order, used in place
    (32, True, 100, False),         # 25,600 values: checked up front
])
def test_which_fits_leave_the_X_check_to_the_first_epoch(monkeypatch, batch_size, shuffle,
                                                         rows, expected):
    seen = _record_check_x(monkeypatch)
    X, y = make_classification(n_samples=rows, n_features=256, random_state=0)
    est = MLPClassifier(hidden_layer_sizes=(8,), batch_size=batch_size, shuffle=shuffle,
                        max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        assert seen == [expected, False]
        # the check changes no number
        with sklearn.config_context(assume_finite=True):
            unchecked = clone(est).fit(X, y)
    assert seen[2:] == [False, False]
    np.testing.assert_array_equal(est._params, unchecked._params, strict=True)
    with pytest.raises(ValueError, match="^Input X contains NaN"):
        est.fit(with_value(X, np.nan, (rows - 1, 255)), y)
