"""The compiled engine alone, epoch after epoch: rows/s of Engine.train_epoch
on one network, batch size and thread count, without the estimator around it
(no input checks, no initialisation, no pause before the epoch).

    python benches/engine_loop.py float64 32 2
    python benches/engine_loop.py float32 1 2 --epochs 2 --tune task_weights_one=8192
    python benches/engine_loop.py float64 32 2 --rows 10000 --epochs 32 --ab gather_early=0,1
    python benches/engine_loop.py float32 8 2 --ab fused_rows=8,16 --ab task_weights_small=8192,4096
    python benches/engine_loop.py float64 1 2 --rows 4000 --phases

This is how changes to the engine are judged on the shared build machine,
where 2-thread speed swings by up to 30% for minutes at a time.  Best, when
the change is a tuning knob: --ab alternates the knob's two values epoch by
epoch in one process (the order swapped every pair) and reports the median
ratio of each pair, which the machine's slow stretches mostly cancel out of.
Otherwise install the build before the change (pip install --target DIR .),
then alternate `PYTHONPATH=DIR python benches/engine_loop.py ...` with the
current build, several rounds, and compare the ranges.  One-thread rows move
by about 5%.

--phases times the engine's phases (fastsgd._engine.phase_times) over the
timed epochs and prints where a batch's time went: the master's work and
wait per phase, and its own and the helpers' items.
"""

import argparse
import statistics
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
    parser.add_argument("--ab", action="append", default=[], metavar="KNOB=A,B",
                        help="alternate the knob between A and B, epoch by epoch; --epochs "
                        "counts both (an untimed first epoch warms up); repeat --ab to "
                        "switch several knobs together (settings A against settings B)")
    parser.add_argument("--phases", action="store_true",
                        help="time the engine's phases over the timed epochs and print "
                        "where a batch's time went")
    args = parser.parse_args()
    _engine.set_tuning(**{k: int(v) for k, v in (t.split("=") for t in args.tune)})
    settings = [None]
    if args.ab:
        settings = [{}, {}]
        for spec in args.ab:
            knob, values = spec.split("=")
            values = values.split(",")
            if len(values) != 2:
                parser.error("--ab takes two values: KNOB=A,B")
            for setting, value in zip(settings, values):
                setting[knob] = int(value)
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
    def epoch():
        order = rng.permutation(args.rows).astype(np.int64)
        start = time.perf_counter()
        engine.train_epoch(params, velocity, X, Y, np.empty(0, dtype), order,
                           args.batch_size, lr, 0.9, True, 1e-4, args.threads, losses)
        return args.rows / (time.perf_counter() - start)

    label = f"{args.dtype} batch {args.batch_size} threads {args.threads}"
    with threadpool_limits(1, "blas"):
        if not args.ab:
            _engine.phase_timing(args.phases)
            _engine.phase_times(reset=True)
            try:
                for _ in range(args.epochs):
                    print(f"{label}: {epoch() / 1e3:.0f}k rows/s", flush=True)
            finally:
                _engine.phase_timing(False)
            if args.phases:
                print_phases(_engine.phase_times(reset=True))
            return
        epoch()
        rates, ratios = ([], []), []
        for pair in range(args.epochs // 2):
            order = (0, 1) if pair % 2 == 0 else (1, 0)
            rate = [0.0, 0.0]
            for i in order:
                _engine.set_tuning(**settings[i])
                rate[i] = epoch()
                rates[i].append(rate[i])
            ratios.append(rate[1] / rate[0])
            print(f"{label}: {'+'.join(settings[0])} {rate[0] / 1e3:.0f}k / "
                  f"{rate[1] / 1e3:.0f}k rows/s", flush=True)
        a, b = (statistics.median(r) / 1e3 for r in rates)
        print(f"{label}: median {a:.0f}k vs {b:.0f}k rows/s; B/A per pair: median "
              f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})")


def print_phases(times):
    """The breakdown of fastsgd._engine.phase_times, one line per phase."""
    print(f"{times['batches']} batches ({times['solo_batches']} alone); per batch: "
          f"{times['batch_us']:.2f} us, of which phase 1 {times['phase1_us']:.2f} us")
    print(f"  {'phase':12s} {'master work':>12s} {'master wait':>12s} "
          f"{'master items':>13s} {'helper items':>13s}")
    for name, row in times["phases"].items():
        print(f"  {name:12s} {row['master_work_us']:12.2f} {row['master_wait_us']:12.2f} "
              f"{row['master_items_us']:13.2f} {row['helper_items_us']:13.2f}")


if __name__ == "__main__":
    main()
