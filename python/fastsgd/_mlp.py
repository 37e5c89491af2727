"""MLPClassifier and MLPRegressor: scikit-learn's MLP estimators with
``solver='sgd'``, trained by the compiled engine."""

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d

from fastsgd._base import BaseSGDMLP
from fastsgd._threads import effective_n_threads
from fastsgd._validation import assert_all_finite, validate_X_y

_SHARED_PARAMS_DOC = """
    hidden_layer_sizes : array-like of shape (n_layers - 2,) or int, default=(100,)
        The ith element is the number of neurons in the ith hidden layer.
        ``()`` gives a linear model.

    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation function of the hidden layers.

    alpha : float, default=0.0001
        Strength of the L2 penalty, divided by the batch size (or the batch's
        total sample weight), as in scikit-learn.

    batch_size : int or 'auto', default='auto'
        Rows per SGD step; 'auto' is ``min(200, n_samples)``.  1 is online
        SGD, ``n_samples`` full-batch gradient descent.

    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning-rate schedule, updated once per epoch.

    learning_rate_init : float, default=0.001
        The initial learning rate.

    power_t : float, default=0.5
        Exponent of the 'invscaling' schedule.

    max_iter : int, default=200
        Maximum number of epochs per ``fit``.

    shuffle : bool, default=True
        Whether to shuffle the rows every epoch.

    random_state : int, RandomState instance or None, default=None
        Weights initialisation, the early-stopping split and the shuffles.
        Draws are made exactly as scikit-learn makes them.

    tol : float, default=1e-4
        Tolerance of the no-improvement stopping rule.

    verbose : bool, default=False
        Print progress messages.

    warm_start : bool, default=False
        Reuse the previous solution as initialisation in ``fit``.

    momentum : float, default=0.9
        Momentum of the SGD update, in [0, 1].

    nesterovs_momentum : bool, default=True
        Whether to use Nesterov's momentum.

    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data and stop when its score
        stops improving; the best weights are kept.

    validation_fraction : float, default=0.1
        Fraction of the training data held out for early stopping.

    n_iter_no_change : int, default=10
        Epochs without ``tol`` improvement before stopping (or, with
        'adaptive', before dividing the learning rate by 5).

    n_threads : int or None, default=None
        Threads of the compiled engine.  None: every core the process may use
        (honouring ``OMP_NUM_THREADS`` and threadpoolctl limits); -1 likewise;
        k > 0: k threads; k < -1: all but |k| - 1.  Results are bitwise
        identical for any value.
"""

_SHARED_ATTRIBUTES_DOC = """
    loss_ : float
        The loss of the last epoch (batch losses averaged by row count).

    best_loss_ : float or None
        The minimum training loss, or None with early stopping.

    loss_curve_ : list of float
        The loss of every epoch since initialisation.

    validation_scores_ : list of float or None
        Validation scores per epoch (early stopping only).

    best_validation_score_ : float or None
        The best validation score (early stopping only).

    t_ : int
        Training samples seen since initialisation.

    coefs_ : list of ndarray
        ``coefs_[i]`` is the weight matrix of layer i, a view into the
        model's flat parameter buffer.

    intercepts_ : list of ndarray
        ``intercepts_[i]`` is the bias vector of layer i + 1, also a view.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names seen during fit (only when X had string column names).

    n_iter_ : int
        Epochs run by the last call.

    n_layers_ : int
        Number of layers, input and output included.

    n_outputs_ : int
        Number of outputs.

    out_activation_ : str
        Name of the output activation.
"""


def _unique_int_labels(y):
    """np.unique(y, return_inverse=True) for 1-D integer labels: by counting
    when they span a small range (20,000 labels: 40 us instead of a 380 us
    sort), else np.unique itself."""
    lo, hi = int(y.min()), int(y.max())
    info = np.iinfo(np.intp)
    if hi - lo > 4 * y.size + 1024 or lo < info.min or hi > info.max:
        return np.unique(y, return_inverse=True)
    offsets = y.astype(np.intp) - lo
    present = np.bincount(offsets) > 0
    classes = (np.flatnonzero(present) + lo).astype(y.dtype)
    return classes, (np.cumsum(present) - 1)[offsets]


def _binarizer_of_int_classes(classes):
    """LabelBinarizer().fit(classes) for two or more sorted distinct integer
    labels (np.unique's), set up directly: fit would re-derive the target
    type and the labels, 0.2-0.5 ms of every fit."""
    binarizer = LabelBinarizer()
    binarizer.y_type_ = "multiclass" if classes.size > 2 else "binary"
    binarizer.sparse_input_ = False
    binarizer.classes_ = classes
    return binarizer


def _labels_from_outputs(binarizer, y_pred):
    """binarizer.inverse_transform(y_pred): for one-label targets computed
    here as it computes them (argmax; or output > 0.5 for two classes),
    without its array-API dispatch, 40 us of a one-row predict."""
    if (not binarizer.sparse_input_ and binarizer.neg_label == 0
            and binarizer.pos_label == 1):
        if binarizer.y_type_ == "multiclass" and y_pred.ndim == 2:
            return binarizer.classes_[np.argmax(y_pred, axis=1)]
        if (binarizer.y_type_ == "binary" and y_pred.ndim == 1
                and binarizer.classes_.size == 2):
            return binarizer.classes_[(y_pred > 0.5).astype(np.intp)]
    return binarizer.inverse_transform(y_pred)


class MLPClassifier(ClassifierMixin, BaseSGDMLP):
    __doc__ = """Multi-layer perceptron classifier trained by SGD.

    A drop-in for ``sklearn.neural_network.MLPClassifier(solver='sgd')``:
    the same parameters (minus ``solver`` and the adam/lbfgs-only ones), the
    same fitted attributes, and for the same ``random_state`` the same model
    (to float rounding), trained by a compiled, multithreaded engine.

    Parameters
    ----------""" + _SHARED_PARAMS_DOC + """
    Attributes
    ----------
    classes_ : ndarray or list of ndarray of shape (n_classes,)
        Class labels.
""" + _SHARED_ATTRIBUTES_DOC + """
    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from fastsgd import MLPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MLPClassifier(learning_rate_init=0.01, max_iter=30, random_state=0)
    >>> clf.fit(X / 16, y).score(X / 16, y) > 0.9
    True
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001,
                 power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4,
                 verbose=False, warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 n_threads=None):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, alpha=alpha,
            batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            loss="log_loss", shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            n_threads=n_threads)

    def _validate_input(self, X, y, incremental, reset, dtype, check_finite=True):
        X, y = validate_X_y(self, X, y, reset=reset, dtype=dtype)
        if check_finite:
            assert_all_finite(X, effective_n_threads(self.n_threads), type(self).__name__)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)

        # integer class labels (the common case) are one-hot encoded from a
        # single np.unique, or on later partial_fit calls from a search in
        # classes_; scikit-learn's LabelBinarizer re-derives the target type
        # three times on the way (2 ms for 20,000 labels)
        fast = y.ndim == 1 and y.dtype.kind in "iu"
        index = None  # fast: each row's position in classes_

        # (incremental, warm_start, classes_ known) -> action, as scikit-learn
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            if fast:
                classes, index = _unique_int_labels(y)
            self._label_binarizer = (_binarizer_of_int_classes(classes)
                                     if fast and classes.size > 1 else LabelBinarizer().fit(y))
            self.classes_ = self._label_binarizer.classes_
        else:
            if fast and not self.warm_start and self.classes_.dtype.kind in "iu":
                index = np.searchsorted(self.classes_, y)
                np.minimum(index, self.classes_.size - 1, out=index)
                if not np.array_equal(self.classes_[index], y):
                    index = None  # an unseen label: the checks below name it
            if index is None:
                if fast:
                    classes, index = _unique_int_labels(y)
                else:
                    classes = unique_labels(y)
                if self.warm_start:
                    if set(classes) != set(self.classes_):
                        raise ValueError(
                            "warm_start can only be used where `y` has the same "
                            "classes as in the previous call to fit. Previously "
                            f"got {self.classes_}, `y` has {classes}")
                elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                    raise ValueError(
                        "`y` has classes not in `self.classes_`. "
                        f"`self.classes_` has {self.classes_}. 'y' has {classes}.")
                if fast:   # y's classes are among classes_ (checked above)
                    index = np.searchsorted(self.classes_, classes)[index]
        binarizer = self._label_binarizer
        if (fast and binarizer.y_type_ in ("binary", "multiclass")
                and binarizer.classes_.size > 1 and binarizer.classes_.dtype.kind in "iu"):
            if binarizer.y_type_ == "binary":
                return X, (index == 1).reshape(-1, 1)
            Y = np.zeros((y.shape[0], binarizer.classes_.size), dtype=bool)
            Y[np.arange(y.shape[0]), index] = True
            return X, Y
        return X, binarizer.transform(y).astype(bool)

    def _output_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _targets_for_scoring(self, Y):
        return self._label_binarizer.inverse_transform(Y.astype(bool))

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, accuracy_score)

    def predict(self, X):
        """Predict with the multi-layer perceptron classifier.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The predicted classes.
        """
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return _labels_from_outputs(self._label_binarizer, y_pred)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with one epoch over the given data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
        sample_weight : array-like of shape (n_samples,), default=None
        classes : array of shape (n_classes,), default=None
            Every class of the whole stream; required on the first call,
            optional (and checked) later.  ``y`` may hold a subset.

        Returns
        -------
        self : object
        """
        state = self.__dict__.copy()
        try:
            if _check_partial_fit_first_call(self, classes):
                self._label_binarizer = LabelBinarizer()
                if type_of_target(y).startswith("multilabel"):
                    self._label_binarizer.fit(y)
                else:
                    self._label_binarizer.fit(classes)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(state)
            raise
        try:
            return self._fit(X, y, sample_weight=sample_weight, incremental=True)
        except BaseException:
            # the first call's label set-up goes too: nothing half-done stays
            if "classes_" not in state:
                self.__dict__.clear()
                self.__dict__.update(state)
            raise

    def predict_log_proba(self, X):
        """Log of the probability estimates, shape (n_samples, n_classes)."""
        y_prob = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(y_prob, out=y_prob)

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
            Probability of each class, in the order of ``classes_``.
        """
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, BaseSGDMLP):
    __doc__ = """Multi-layer perceptron regressor trained by SGD.

    A drop-in for ``sklearn.neural_network.MLPRegressor(solver='sgd')``:
    same parameters (minus ``solver`` and the adam/lbfgs-only ones), same
    fitted attributes, same model for the same ``random_state``.

    Parameters
    ----------
    loss : {'squared_error', 'poisson'}, default='squared_error'
        'poisson' uses an exponential output and the half Poisson deviance;
        its targets must be non-negative.
""" + _SHARED_PARAMS_DOC + """
    Attributes
    ----------""" + _SHARED_ATTRIBUTES_DOC + """
    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from fastsgd import MLPRegressor
    >>> X, y = make_regression(n_samples=200, n_features=5, noise=0.1, random_state=0)
    >>> reg = MLPRegressor(learning_rate_init=0.01, max_iter=200, random_state=0)
    >>> reg.fit(X, y / 100).score(X, y / 100) > 0.9
    True
    """

    _parameter_constraints: dict = {
        **BaseSGDMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, n_threads=None):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, alpha=alpha,
            batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            loss=loss, shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            n_threads=n_threads)

    def _validate_input(self, X, y, incremental, reset, dtype, check_finite=True):
        X, y = validate_X_y(self, X, y, reset=reset, dtype=dtype, y_numeric=True)
        if check_finite:
            assert_all_finite(X, effective_n_threads(self.n_threads), type(self).__name__)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError(
                "Some value(s) of y are negative which is not allowed for "
                "Poisson regression (loss='poisson').")
        return X, y.reshape(-1, 1) if y.ndim == 1 else y

    def _output_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _targets_for_scoring(self, Y):
        return Y.ravel() if Y.shape[1] == 1 else Y

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, r2_score)

    def predict(self, X):
        """Predict with the multi-layer perceptron regressor.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Update the model with one epoch over the given data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)


