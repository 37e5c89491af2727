"""Fast input checks that keep scikit-learn's error messages.

scikit-learn's finite check sums X in one thread, which costs about as much
as a whole training epoch at mid-size batches (3.4 ms for 20,000 x 784
float32, measured).  The engine checks a C-contiguous float matrix with all
threads; when it finds a bad value, scikit-learn's own check runs so that
the message is exactly scikit-learn's.
"""

import numpy as np
from sklearn import get_config
from sklearn.utils.validation import _assert_all_finite

from fastsgd import _engine


def assert_all_finite(X, n_threads, estimator_name=None, input_name="X"):
    """Raise scikit-learn's ValueError when X holds NaN or infinity, unless
    scikit-learn's ``assume_finite`` config is set."""
    if get_config()["assume_finite"]:
        return
    if (isinstance(X, np.ndarray) and X.ndim == 2 and X.flags.c_contiguous
            and X.dtype in (np.float32, np.float64)):
        if _engine.all_finite_rows(X, n_threads):
            return
    _assert_all_finite(X, input_name=input_name, estimator_name=estimator_name)
