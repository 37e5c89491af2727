"""Shared fixtures of fastsgd's pytest-benchmark suite (see README.md).

The data and the network are those of ``python -m fastsgd bench``
(fastsgd._bench): 784 standardised features, 10 classes from a seeded teacher
network, a 784-128-10 ReLU MLP, SGD momentum 0.9 Nesterov, alpha 1e-4,
learning rate 0.01 from batch 32 up and 0.001 below.

Sizes: 20,000 training rows (batch 1 uses the first 2,000, batches below 32
the first 5,000) and 100,000 rows for prediction.  With
``--benchmark-disable`` (every bench then runs once, as a smoke test) or
``FASTSGD_BENCH_QUICK=1`` everything is shrunk to a few hundred rows.
``FASTSGD_BENCH_ROWS`` / ``FASTSGD_BENCH_PREDICT_ROWS`` override the sizes,
``FASTSGD_BENCH_THREADS`` the thread count (default: every usable core).
"""

import os

import numpy as np
import pytest

from fastsgd._bench import learning_rate_for, make_dataset, rows_for_batch

HIDDEN = (128,)
ALPHA = 1e-4
MOMENTUM = 0.9


def _quick(config):
    return bool(os.environ.get("FASTSGD_BENCH_QUICK")) or bool(
        config.getoption("benchmark_disable", default=False))


@pytest.fixture(scope="session")
def bench_quick(pytestconfig):
    """True in smoke mode (--benchmark-disable or FASTSGD_BENCH_QUICK)."""
    return _quick(pytestconfig)


@pytest.fixture(scope="session")
def n_threads():
    """Threads for every framework: fastsgd n_threads, the BLAS pool of
    numpy/scikit-learn, torch.set_num_threads."""
    if os.environ.get("FASTSGD_BENCH_THREADS"):
        return int(os.environ["FASTSGD_BENCH_THREADS"])
    from fastsgd._threads import effective_n_threads
    return effective_n_threads(None)


@pytest.fixture
def blas_threads(n_threads):
    """Hold numpy's / scikit-learn's BLAS to n_threads during the test."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(n_threads, "blas"):
        yield n_threads


@pytest.fixture(scope="session")
def train_data(bench_quick):
    """{'float64': X, 'float32': X32}, y -- generated once per session."""
    rows = int(os.environ.get("FASTSGD_BENCH_ROWS", 1100 if bench_quick else 20000))
    X, y = make_dataset(rows)
    return {"float64": X, "float32": X.astype(np.float32)}, y


@pytest.fixture(scope="session")
def predict_data(bench_quick):
    """Rows to predict, in both dtypes (100,000 unless in smoke mode)."""
    rows = int(os.environ.get("FASTSGD_BENCH_PREDICT_ROWS", 2000 if bench_quick else 100_000))
    X, _ = make_dataset(rows, seed=1)
    return {"float64": X, "float32": X.astype(np.float32)}


@pytest.fixture
def make_case(train_data, bench_quick):
    """make_case(batch, dtype) -> (X, y, batch_size, learning_rate): the
    same first-n rows as the CLI (fewer rows at small batches; batch None is
    full batch).  Skips when the batch does not fit in the rows."""
    data, y = train_data

    def case(batch, dtype):
        rows = data[dtype].shape[0]
        if bench_quick:  # smoke mode: keep the slow peers' small batches short
            n = rows if batch is None else min(rows, 200 if batch <= 1 else
                                               400 if batch < 32 else rows)
        else:
            n = rows_for_batch(batch, rows)
        b = n if batch is None else batch
        if b > n:
            pytest.skip(f"batch {b} > {n} rows")
        return data[dtype][:n], y[:n], b, learning_rate_for(b)

    return case

