"""The compiled engine alone, epoch after epoch: rows/s of Engine.train_epoch
on one network, batch size and thread count, without the estimator around it
(no input checks, no initialisation, no pause before the epoch).

    python benches/engine_loop.py float64 32 2
    python benches/engine_loop.py float32 1 2 --epochs 2 --tune task_bytes_one=32768

This is how changes to the engine were judged on the shared build machine,
where 2-thread speed swings by up to 30% for minutes at a time: install the
build before a change elsewhere (pip install --target DIR .), then alternate
`PYTHONPATH=DIR python benches/engine_loop.py ...` with the current build,
several rounds, and compare the ranges.  One-thread rows move by about 5%.
"""

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from fastsgd import _engine
from fastsgd._params import ACTIVATION_CODES, OUTPUT_CODES, ParamLayout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dtype", choices=["float32", "float64"])
    parser.add_argument("batch_size", type=int)
    parser.add_argument("threads", type=int)
    parser.add_argument("--hidden", default="128", help="hidden layer sizes, comma list "
                        "('' for none)")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs, one line each")
    parser.add_argument("--tune", action="append", default=[], metavar="KNOB=VALUE",
                        help="an engine tuning knob (see fastsgd._engine.get_tuning())")
    args = parser.parse_args()
    _engine.set_tuning(**{k: int(v) for k, v in (t.split("=") for t in args.tune)})

    dtype = np.dtype(args.dtype)
    rng = np.random.RandomState(0)
    X = rng.standard_normal((args.rows, 784)).astype(dtype)
    Y = np.eye(10, dtype=dtype)[rng.randint(10, size=args.rows)]
    hidden = [int(h) for h in args.hidden.split(",") if h]
    layout = ParamLayout([784, *hidden, 10])
    params = layout.glorot_init(rng, "relu", dtype)
    velocity = np.zeros_like(params)
    engine = _engine.Engine(layout.units, layout.coef_offsets, layout.intercept_offsets,
                            ACTIVATION_CODES["relu"], OUTPUT_CODES["softmax"])
    losses = np.empty(args.rows)
    lr = 0.01 if args.batch_size >= 32 else 0.001
    with threadpool_limits(1, "blas"):
        for _ in range(args.epochs):
            order = rng.permutation(args.rows).astype(np.int64)
            start = time.perf_counter()
            engine.train_epoch(params, velocity, X, Y, np.empty(0, dtype), order,
                               args.batch_size, lr, 0.9, True, 1e-4, args.threads, losses)
            seconds = time.perf_counter() - start
            print(f"{args.dtype} batch {args.batch_size} threads {args.threads}: "
                  f"{args.rows / seconds / 1e3:.0f}k rows/s", flush=True)


if __name__ == "__main__":
    main()
