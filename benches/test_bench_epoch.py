"""Time per training epoch: fastsgd, scikit-learn's MLPClassifier(solver='sgd')
and PyTorch side by side, one benchmark group per (batch size, dtype).

Each bench first checks once that its framework trains (the loss after two
epochs is below the loss of the first), then times one-epoch fits with
``benchmark.pedantic(rounds=3, warmup_rounds=1)``; building the estimator /
model is in ``setup``, outside the timer.
"""

import math

import numpy as np
import pytest

from fastsgd._bench import TorchRunner

HIDDEN = (128,)
ALPHA = 1e-4
BATCHES = [1, 8, 32, 256, 1024, None]  # None: full batch
DTYPES = ["float32", "float64"]

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _params():
    return [
        pytest.param(b, d, id=f"B{'full' if b is None else b}-{d}",
                     marks=pytest.mark.benchmark(
                         group=f"epoch batch={'full' if b is None else b} {d}"))
        for b in BATCHES for d in DTYPES
    ]


def _sklearn_style(cls, batch_size, lr, epochs, **extra):
    return cls(hidden_layer_sizes=HIDDEN, batch_size=batch_size, learning_rate_init=lr,
               max_iter=epochs, alpha=ALPHA, momentum=0.9, nesterovs_momentum=True,
               tol=0.0, n_iter_no_change=math.inf, shuffle=True, random_state=0, **extra)


def _record(benchmark, X, b, dtype, threads):
    benchmark.extra_info.update(rows=int(X.shape[0]), batch_size=int(b), dtype=dtype,
                                threads=threads, epochs=1)


def _rows_per_s(benchmark, X):
    stats = getattr(benchmark, "stats", None)
    if stats:  # None with --benchmark-disable
        benchmark.extra_info["rows_per_s"] = X.shape[0] / stats.stats.median


def _check_trains(est, X, y):
    curve = est.fit(X, y).loss_curve_
    assert len(curve) == 2 and np.all(np.isfinite(curve)), curve
    assert curve[-1] < curve[0], f"loss did not fall: {curve}"


@pytest.mark.parametrize(("batch", "dtype"), _params())
def test_fastsgd(benchmark, make_case, blas_threads, batch, dtype):
    from fastsgd import MLPClassifier

    X, y, b, lr = make_case(batch, dtype)

    def make(epochs):
        return _sklearn_style(MLPClassifier, b, lr, epochs, n_threads=blas_threads)

    _check_trains(make(2), X, y)
    assert make(1).fit(X, y).coefs_[0].dtype == X.dtype
    _record(benchmark, X, b, dtype, blas_threads)
    benchmark.pedantic(lambda est: est.fit(X, y), setup=lambda: ((make(1),), {}),
                       rounds=3, warmup_rounds=1)
    _rows_per_s(benchmark, X)


@pytest.mark.parametrize(("batch", "dtype"), _params())
def test_sklearn(benchmark, make_case, blas_threads, batch, dtype):
    from sklearn.neural_network import MLPClassifier

    X, y, b, lr = make_case(batch, dtype)

    def make(epochs):
        return _sklearn_style(MLPClassifier, b, lr, epochs, solver="sgd")

    _check_trains(make(2), X, y)
    _record(benchmark, X, b, dtype, blas_threads)
    benchmark.pedantic(lambda est: est.fit(X, y), setup=lambda: ((make(1),), {}),
                       rounds=3, warmup_rounds=1)
    _rows_per_s(benchmark, X)


@pytest.mark.parametrize(("batch", "dtype"), _params())
def test_torch(benchmark, make_case, blas_threads, batch, dtype):
    torch = pytest.importorskip("torch")
    X, y, b, lr = make_case(batch, dtype)
    torch.set_num_threads(blas_threads)
    runner = TorchRunner(HIDDEN, ALPHA, seed=0)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def setup():
        model, opt = runner.build(X.shape[1], 10, b, lr, X.dtype)
        return (model, opt, torch.Generator().manual_seed(0)), {}

    # check once: two epochs bring the loss below the initial loss
    (model, opt, gen), _ = setup()
    before = runner.full_loss(model, Xt, yt)
    runner.train(model, opt, Xt, yt, b, 2, gen)
    after = runner.full_loss(model, Xt, yt)
    assert math.isfinite(after) and after < before, (before, after)

    _record(benchmark, X, b, dtype, blas_threads)
    benchmark.pedantic(lambda model, opt, gen: runner.train(model, opt, Xt, yt, b, 1, gen),
                       setup=setup, rounds=3, warmup_rounds=1)
    _rows_per_s(benchmark, X)
