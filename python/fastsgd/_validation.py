"""Fast input checks that keep scikit-learn's behaviour and error messages.

scikit-learn's ``validate_data`` looks up the estimator's tags and probes for
dataframe libraries on every call (about 80 us), and its finite check sums X
in one thread (3.4 ms for 20,000 x 784 float32, measured).  Both matter in a
stream of small ``partial_fit`` calls or single-row predictions.  Here:

* a plain 2-D float ndarray X (and a plain numeric ndarray y) passes the same
  feature-name and feature-count checks scikit-learn runs, without the rest,
  which could not fail for such input; anything else goes to
  ``validate_data`` itself;
* the engine checks a C-contiguous float matrix for NaN/inf with all
  threads; when it finds a bad value, scikit-learn's own check runs so that
  the message is exactly scikit-learn's.  A fit whose first epoch gathers
  every row of a large X leaves the check to those gathers instead
  (BaseSGDMLP._x_check_in_first_epoch).
"""

import numpy as np
from sklearn import get_config
from sklearn.utils.validation import _assert_all_finite, validate_data

from fastsgd import _engine

try:  # private since scikit-learn 1.6; without them, every call takes validate_data
    from sklearn.utils.validation import _check_feature_names, _check_n_features
except ImportError:  # pragma: no cover
    _check_feature_names = _check_n_features = None


# Below this many values one thread checks X (under 0.5 ms).  A second
# thread would save little, and on a virtual machine whose other vCPU has
# idled for 50 ms or more, waking it took 5.8 ms (measured here: a 2-thread
# OpenMP region of 10 us of work after a 50 ms pause).
PARALLEL_CHECK_VALUES = 1 << 22


def _dtypes(dtype):
    return dtype if isinstance(dtype, (tuple, list)) else (dtype,)


def _plain_X(X, dtype):
    """X needs no conversion and no check_array verdict: a 2-D ndarray (not
    a subclass) of an accepted float dtype with a row and a column."""
    return (type(X) is np.ndarray and X.ndim == 2 and X.shape[0] >= 1 and X.shape[1] >= 1
            and X.dtype in _dtypes(dtype) and _check_n_features is not None)


def _plain_y(y, n_rows):
    """y that check_X_y(multi_output=True) would return unchanged: a 1-D or
    2-D numeric ndarray of n_rows rows, finite if it is float."""
    if not (type(y) is np.ndarray and y.shape[:1] == (n_rows,) and y.ndim in (1, 2)):
        return False
    if y.ndim == 2 and y.shape[1] < 1:
        return False
    if y.dtype.kind in "iub":
        return True
    return y.dtype.kind == "f" and bool(np.isfinite(y).all())


def _check_names_and_count(est, X, reset):
    # a plain ndarray has no feature names: the name check can only act
    # (warn, or forget old names) when the estimator holds some
    if "feature_names_in_" in est.__dict__:
        _check_feature_names(est, X, reset=reset)
    _check_n_features(est, X, reset=reset)


def validate_X_y(est, X, y, *, reset, dtype, y_numeric=False):
    """``validate_data(est, X, y, multi_output=True, dtype=dtype, reset=reset,
    ensure_all_finite=False, y_numeric=y_numeric)``, fast for plain arrays."""
    if _plain_X(X, dtype) and _plain_y(y, X.shape[0]):
        _check_names_and_count(est, X, reset)
        return X, y
    return validate_data(est, X, y, multi_output=True, y_numeric=y_numeric, dtype=dtype,
                         reset=reset, ensure_all_finite=False)


def validate_X(est, X, *, dtype):
    """``validate_data(est, X, dtype=dtype, reset=False, ensure_all_finite=False)``
    (prediction), fast for a plain array."""
    if _plain_X(X, dtype):
        _check_names_and_count(est, X, False)
        return X
    return validate_data(est, X, dtype=dtype, reset=False, ensure_all_finite=False)


def assert_all_finite(X, n_threads, estimator_name=None, input_name="X"):
    """Raise scikit-learn's ValueError when X holds NaN or infinity, unless
    scikit-learn's ``assume_finite`` config is set."""
    if get_config()["assume_finite"]:
        return
    if (isinstance(X, np.ndarray) and X.ndim == 2 and X.flags.c_contiguous
            and X.dtype in (np.float32, np.float64)):
        if X.size < PARALLEL_CHECK_VALUES:
            n_threads = 1
        if _engine.all_finite_rows(X, n_threads):
            return
    _assert_all_finite(X, input_name=input_name, estimator_name=estimator_name)
