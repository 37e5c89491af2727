"""scikit-learn's own estimator checks over fastsgd's two estimators, with
their default parameters.

Every check must pass as is: none is skipped or marked as an expected
failure here.  (A few checks skip themselves inside scikit-learn when they do
not apply, e.g. check_array_api_input without SCIPY_ARRAY_API=1, or the
decision_function multilabel check for an estimator without
decision_function.)
"""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastsgd import MLPClassifier, MLPRegressor


# the checks fit with the default max_iter on tiny data sets: the optimizer
# does not converge there, which is expected
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks([MLPClassifier(), MLPRegressor()])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
