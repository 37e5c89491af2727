"""fastsgd: scikit-learn's MLP with SGD, trained by a compiled engine.

>>> from fastsgd import MLPClassifier   # instead of sklearn.neural_network
"""

try:
    from fastsgd import _engine  # noqa: F401  (the compiled part)
except ImportError as exc:  # pragma: no cover - a broken or source-tree import
    raise ImportError(
        "fastsgd's compiled engine (fastsgd._engine) could not be imported: "
        f"{exc}. Install the package (pip install .) rather than importing it "
        "from the source tree; for development use an editable install "
        "(see the README)."
    ) from exc

from fastsgd._base import DivergenceError
from fastsgd._config import build_info, show_config
from fastsgd._mlp import MLPClassifier, MLPRegressor

__version__ = "0.1.0"

__all__ = [
    "DivergenceError",
    "MLPClassifier",
    "MLPRegressor",
    "__version__",
    "build_info",
    "show_config",
]
