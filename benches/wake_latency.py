"""How long this machine takes to bring the engine's second thread back
after a pause (the reason for the wake guard, csrc/fsg_wake.h).

    python benches/wake_latency.py

For each pause, the median time of a finite check of 84 x 784 float32 values
(two chunks, about 10 us of work) with 1 thread and with 2, the wake guard
off (it would run the 2-thread check alone), and then what the guard makes of
partial_fit calls of 32 rows after the same pauses.  On the build machine
(2 vCPUs): 2 threads took 5-50 us up to a 10 ms pause and 5.8 ms from 50 ms.
"""

import statistics
import time
import warnings

import numpy as np

from fastsgd import MLPClassifier, _engine
from fastsgd._bench import make_dataset

PAUSES_MS = (0, 2, 10, 50, 150)
REPEATS = 11


def _median_us(fn, pause_s):
    times = []
    for _ in range(REPEATS):
        time.sleep(pause_s)
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main():
    saved = _engine.get_tuning()
    X = np.random.default_rng(0).random((84, 784), dtype=np.float32)
    print("pause ms | check, 1 thread us | check, 2 threads, guard off us")
    _engine.set_tuning(wake_guard=0)
    try:
        for ms in PAUSES_MS:
            one = _median_us(lambda: _engine.all_finite_rows(X, 1), ms / 1e3)
            two = _median_us(lambda: _engine.all_finite_rows(X, 2), ms / 1e3)
            print(f"{ms:8} | {one:18.0f} | {two:30.0f}")
    finally:
        _engine.set_tuning(**saved)

    Xd, y = make_dataset(32 * (REPEATS + 2))
    Xd = Xd.astype(np.float32)
    print("\npause ms | partial_fit 32 rows us: 1 thread | 2 threads, guard off | 2 threads")
    warnings.simplefilter("ignore")
    for ms in PAUSES_MS:
        cells = []
        for n_threads, guard in ((1, 1), (2, 0), (2, 1)):
            _engine.set_tuning(wake_guard=guard)
            est = MLPClassifier(hidden_layer_sizes=(128,), batch_size=32, random_state=0,
                                n_threads=n_threads)
            est.partial_fit(Xd[:32], y[:32], classes=np.arange(10))
            chunks = iter(range(32, Xd.shape[0], 32))

            def call():
                i = next(chunks)
                est.partial_fit(Xd[i:i + 32], y[i:i + 32])
            cells.append(_median_us(call, ms / 1e3))
        _engine.set_tuning(**saved)
        print(f"{ms:8} | {cells[0]:31.0f} | {cells[1]:20.0f} | {cells[2]:9.0f}")
    print("\nwake record:", _engine.wake_stats())


if __name__ == "__main__":
    main()
