"""predict_proba on 100,000 rows, and predict on one row (what serving a
request costs: input checks included): fastsgd vs scikit-learn (and
PyTorch), the same 784-128-10 weights in each, one benchmark group per dtype.

The weights come from a short fastsgd fit and are copied into the
scikit-learn and PyTorch models; each bench first checks that its
probabilities match fastsgd's before timing.
"""

import math

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

DTYPES = ["float32", "float64"]
_MODELS = {}


def _params():
    return [pytest.param(d, id=d, marks=pytest.mark.benchmark(group=f"predict_proba {d}"))
            for d in DTYPES]


@pytest.fixture
def models(train_data, n_threads):
    """(fastsgd model, scikit-learn model with the same weights), per dtype."""
    data, y = train_data

    def get(dtype):
        if dtype not in _MODELS:
            from sklearn.neural_network import MLPClassifier as SklearnMLP

            from fastsgd import MLPClassifier
            X, yy = data[dtype][:2000], y[:2000]
            params = dict(hidden_layer_sizes=(128,), batch_size=32, learning_rate_init=0.01,
                          max_iter=1, random_state=0)
            fast = MLPClassifier(n_threads=n_threads, **params).fit(X, yy)
            ref = SklearnMLP(solver="sgd", **params).fit(X, yy)
            ref.coefs_ = [c.copy() for c in fast.coefs_]
            ref.intercepts_ = [b.copy() for b in fast.intercepts_]
            _MODELS[dtype] = fast, ref
        return _MODELS[dtype]

    return get


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)


def _record(benchmark, X, dtype, threads):
    benchmark.extra_info.update(rows=int(X.shape[0]), dtype=dtype, threads=threads)


def _rows_per_s(benchmark, X):
    stats = getattr(benchmark, "stats", None)
    if stats:
        benchmark.extra_info["rows_per_s"] = X.shape[0] / stats.stats.median


@pytest.mark.parametrize("dtype", _params())
def test_fastsgd_predict_proba(benchmark, models, predict_data, blas_threads, dtype):
    fast, ref = models(dtype)
    X = predict_data[dtype]
    proba = fast.predict_proba(X)
    assert proba.shape == (X.shape[0], 10) and proba.dtype == X.dtype
    np.testing.assert_allclose(proba[:1000], ref.predict_proba(X[:1000]), **_tol(dtype))
    _record(benchmark, X, dtype, blas_threads)
    benchmark.pedantic(fast.predict_proba, args=(X,), rounds=3, warmup_rounds=1)
    _rows_per_s(benchmark, X)


@pytest.mark.parametrize("dtype", _params())
def test_sklearn_predict_proba(benchmark, models, predict_data, blas_threads, dtype):
    fast, ref = models(dtype)
    X = predict_data[dtype]
    np.testing.assert_allclose(ref.predict_proba(X[:1000]), fast.predict_proba(X[:1000]),
                               **_tol(dtype))
    _record(benchmark, X, dtype, blas_threads)
    benchmark.pedantic(ref.predict_proba, args=(X,), rounds=3, warmup_rounds=1)
    _rows_per_s(benchmark, X)


@pytest.mark.parametrize("dtype", _params())
def test_torch_predict_proba(benchmark, models, predict_data, blas_threads, dtype):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(blas_threads)
    fast, _ = models(dtype)
    X = predict_data[dtype]
    tdtype = getattr(torch, dtype)
    layers = []
    for i, (W, b) in enumerate(zip(fast.coefs_, fast.intercepts_)):
        lin = torch.nn.Linear(W.shape[0], W.shape[1]).to(tdtype)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i < len(fast.coefs_) - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    Xt = torch.from_numpy(X)

    def predict_proba():
        with torch.no_grad():
            return torch.softmax(model(Xt), dim=1)

    got = predict_proba().numpy()
    np.testing.assert_allclose(got[:1000], fast.predict_proba(X[:1000]), **_tol(dtype))
    assert math.isclose(float(got.sum()), X.shape[0], rel_tol=1e-3)
    _record(benchmark, X, dtype, blas_threads)
    benchmark.pedantic(predict_proba, rounds=3, warmup_rounds=1)
    _rows_per_s(benchmark, X)


def _one_row_params():
    return [pytest.param(d, id=d, marks=pytest.mark.benchmark(group=f"predict one row {d}"))
            for d in DTYPES]


@pytest.mark.parametrize("dtype", _one_row_params())
def test_fastsgd_predict_one_row(benchmark, models, predict_data, blas_threads, dtype):
    fast, ref = models(dtype)
    row = predict_data[dtype][:1]
    assert fast.predict(row) == ref.predict(row)
    benchmark.extra_info.update(rows=1, dtype=dtype, threads=blas_threads)
    benchmark(fast.predict, row)


@pytest.mark.parametrize("dtype", _one_row_params())
def test_sklearn_predict_one_row(benchmark, models, predict_data, blas_threads, dtype):
    fast, ref = models(dtype)
    row = predict_data[dtype][:1]
    assert ref.predict(row) == fast.predict(row)
    benchmark.extra_info.update(rows=1, dtype=dtype, threads=blas_threads)
    benchmark(ref.predict, row)
