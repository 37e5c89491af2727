"""Online learning: ``partial_fit`` on consecutive 32-row chunks (one batch
per call) in fastsgd, scikit-learn and PyTorch, one benchmark group per
dtype.  What a stream of small calls costs is mostly each call's fixed cost:
input checks, set-up, and the hand-over to the compiled engine.

The first call (it initialises the model) is in ``setup``, outside the
timer; the timed round is every other call of the stream.  Each bench first
checks its framework once: the stream lowers the loss on the rows it saw.
"""

import math

import numpy as np
import pytest

from fastsgd._bench import (STREAM_CHUNK, STREAM_ROWS, TorchStreamRunner,
                            learning_rate_for)

HIDDEN = (128,)
ALPHA = 1e-4
DTYPES = ["float32", "float64"]

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _params():
    return [pytest.param(d, id=d, marks=pytest.mark.benchmark(group=f"stream {d}"))
            for d in DTYPES]


@pytest.fixture
def stream(train_data, bench_quick):
    """(X, y) of the stream: 4,000 rows (320 in smoke mode)."""
    data, y = train_data

    def case(dtype):
        n = min(data[dtype].shape[0], 320 if bench_quick else STREAM_ROWS)
        n -= n % STREAM_CHUNK
        return data[dtype][:n], y[:n]

    return case


def _chunks(X, y):
    return [(X[i:i + STREAM_CHUNK], y[i:i + STREAM_CHUNK])
            for i in range(0, X.shape[0], STREAM_CHUNK)]


def _estimator_case(cls, X, y, **extra):
    chunks = _chunks(X, y)

    def setup():
        est = cls(hidden_layer_sizes=HIDDEN, batch_size=STREAM_CHUNK,
                  learning_rate_init=learning_rate_for(STREAM_CHUNK), alpha=ALPHA,
                  momentum=0.9, nesterovs_momentum=True, random_state=0, **extra)
        est.partial_fit(*chunks[0], classes=np.arange(10))
        return (est,), {}

    def run(est):
        for Xc, yc in chunks[1:]:
            est.partial_fit(Xc, yc)

    # check once: the stream lowers the log-loss on the rows it saw
    from sklearn.metrics import log_loss
    (est,), _ = setup()
    before = log_loss(y, est.predict_proba(X), labels=np.arange(10))
    run(est)
    after = log_loss(y, est.predict_proba(X), labels=np.arange(10))
    assert after < before, (before, after)
    return setup, run


def _record(benchmark, X, dtype, threads):
    calls = X.shape[0] // STREAM_CHUNK - 1
    benchmark.extra_info.update(chunk_rows=STREAM_CHUNK, timed_calls=calls, dtype=dtype,
                                threads=threads)
    stats = getattr(benchmark, "stats", None)
    if stats:  # None with --benchmark-disable
        benchmark.extra_info["us_per_call"] = stats.stats.median / calls * 1e6


@pytest.mark.parametrize("dtype", _params())
def test_fastsgd_stream(benchmark, stream, blas_threads, dtype):
    from fastsgd import MLPClassifier
    X, y = stream(dtype)
    setup, run = _estimator_case(MLPClassifier, X, y, n_threads=blas_threads)
    benchmark.pedantic(run, setup=setup, rounds=5, warmup_rounds=1)
    _record(benchmark, X, dtype, blas_threads)


@pytest.mark.parametrize("dtype", _params())
def test_sklearn_stream(benchmark, stream, blas_threads, dtype):
    from sklearn.neural_network import MLPClassifier
    X, y = stream(dtype)
    setup, run = _estimator_case(MLPClassifier, X, y, solver="sgd")
    benchmark.pedantic(run, setup=setup, rounds=5, warmup_rounds=1)
    _record(benchmark, X, dtype, blas_threads)


@pytest.mark.parametrize("dtype", _params())
def test_torch_stream(benchmark, stream, blas_threads, dtype):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(blas_threads)
    X, y = stream(dtype)
    runner = TorchStreamRunner(HIDDEN, ALPHA, seed=0)
    lr = learning_rate_for(STREAM_CHUNK)

    def setup():
        return (runner.setup(X, y, STREAM_CHUNK, lr, 1, blas_threads),), {}

    def run(state):
        runner.run(state, X, y)

    (state,), _ = setup()
    before = runner.full_loss(state["model"], state["Xt"], state["yt"])
    run(state)
    after = runner.full_loss(state["model"], state["Xt"], state["yt"])
    assert math.isfinite(after) and after < before, (before, after)
    benchmark.pedantic(run, setup=setup, rounds=5, warmup_rounds=1)
    _record(benchmark, X, dtype, blas_threads)
