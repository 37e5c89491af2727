"""The command line of ``python -m fastsgd bench``: options, their defaults
(the full run, or --quick), and the dispatch to the speed or memory run."""

import argparse

from ._case import HIDDEN, SEED, STREAM_CHUNK, STREAM_ROWS
from ._crowding import CROWDED_PROBE_SHARE, CROWDED_RETRY_SECONDS
from ._memory import MEMORY_ROWS, memory_worker, run_memory
from ._speed import run_speed


DEFAULT_BATCH_SIZES = "1,8,32,128,256,1024,full"
QUICK_BATCH_SIZES = "1,32,full"


def _parse_batch_sizes(text):
    out = []
    for tok in text.split(","):
        tok = tok.strip().lower()
        if not tok:
            continue
        if tok in ("full", "n", "all"):
            out.append(None)
        else:
            b = int(tok)
            if b < 1:
                raise argparse.ArgumentTypeError(f"batch size must be >= 1, got {b}")
            out.append(b)
    return out


def _parse_list(text, conv):
    return [conv(t.strip()) for t in text.split(",") if t.strip()]


def _parse_hidden(text):
    return tuple(int(t) for t in text.split(",") if t.strip())


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m fastsgd bench",
        description="Train the same MLP on the same data with fastsgd, scikit-learn's "
                    "MLPClassifier(solver='sgd') and PyTorch, side by side, and report "
                    "rows/s, time per epoch, the speed ratios and the fraction of the "
                    "machine's matrix-product rate.  Writes JSON, Markdown and a PNG plot.",
        epilog="Run it on an idle machine, without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: "
               "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m fastsgd bench")
    p.add_argument("--quick", action="store_true",
                   help="tiny smoke run: 2,000 rows, batch sizes 1,32,full, float32, 1 thread, "
                        "1 epoch, 1 repeat")
    p.add_argument("--batch-sizes", help=f"comma list, 'full' = all rows (default "
                                         f"{DEFAULT_BATCH_SIZES})")
    p.add_argument("--dtypes", help="comma list of float32, float64 (default both)")
    p.add_argument("--threads", help="comma list of thread counts (default 1,2)")
    p.add_argument("--rows", type=int, help="rows of the data set (default 20000); batch 1 "
                                            "uses at most 2,000 and batches below 32 at most 5,000")
    p.add_argument("--epochs", help="epochs per timed fit, or 'auto' (default: 1 below batch "
                                    "128, 2 from 128 and for full batch)")
    p.add_argument("--repeats", type=int, help="interleaved repeats per measurement; the "
                                               "median is reported (default 5)")
    p.add_argument("--crowded-retries", type=int,
                   help="measure a group again at the end of its section, up to this many "
                        "times, when other processes crowded the machine during it (its "
                        f"matrix-product rate fell below {CROWDED_PROBE_SHARE * 100:.0f}%% of "
                        "the run's calm one, fastsgd's team stepped aside, other processes "
                        "used the free cores, the frameworks' fits spread out, or with 2 "
                        "threads the other frameworks ran as if a core was gone); the "
                        "attempt in which the other frameworks and the probes ran fastest "
                        "is reported (fewer crowd signals breaking near-ties), the others "
                        "are kept in the JSON; within "
                        f"{CROWDED_RETRY_SECONDS:.0f} s a section of one dtype and thread "
                        "count, groups whose crowd slowed everyone first, each kind "
                        "shortest first (default 1, --quick 0)")
    p.add_argument("--hidden", type=_parse_hidden,
                   help="hidden layer sizes, comma list (default 128)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    p.add_argument("--no-sklearn", action="store_true", help="leave scikit-learn out")
    p.add_argument("--linear", action=argparse.BooleanOptionalAction, default=True,
                   help="also the linear model (no hidden layer, batch 1, 1 thread) against "
                        "SGDClassifier (default on)")
    p.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True,
                   help=f"also online learning: partial_fit on consecutive {STREAM_CHUNK}-row "
                        f"chunks of {STREAM_ROWS:,} rows (default on)")
    p.add_argument("--memory", action="store_true",
                   help="instead: peak memory of one fit on 1,000,000 x 100 float32 rows, "
                        "fastsgd vs scikit-learn, each in a fresh subprocess")
    p.add_argument("--memory-rows", type=int, default=MEMORY_ROWS, help=argparse.SUPPRESS)
    p.add_argument("--memory-worker", help=argparse.SUPPRESS)
    p.add_argument("--matmul-size", type=int, help="side of the square matrices of the "
                                                   "matrix-product rate (default 2048)")
    p.add_argument("--seed", type=int, default=SEED, help="data and model seed (default 0)")
    p.add_argument("--out", default="bench-results", help="output directory (default "
                                                          "bench-results/)")
    return p


def _resolve(args):
    q = args.quick
    args.batch_sizes = _parse_batch_sizes(args.batch_sizes or
                                          (QUICK_BATCH_SIZES if q else DEFAULT_BATCH_SIZES))
    args.dtypes = _parse_list(args.dtypes or ("float32" if q else "float32,float64"), str)
    for d in args.dtypes:
        if d not in ("float32", "float64"):
            raise SystemExit(f"unknown dtype {d!r}: use float32 and/or float64")
    args.threads = _parse_list(args.threads or ("1" if q else "1,2"), int)
    if any(t < 1 for t in args.threads):
        raise SystemExit("thread counts must be >= 1")
    args.rows = args.rows or (2000 if q else 20000)
    epochs = args.epochs or ("1" if q else "auto")
    args.epochs = None if epochs == "auto" else int(epochs)
    args.repeats = args.repeats or (1 if q else 5)
    if args.crowded_retries is None:
        args.crowded_retries = 0 if q else 1
    if args.crowded_retries < 0:
        raise SystemExit("--crowded-retries must be >= 0")
    args.hidden = HIDDEN if args.hidden is None else args.hidden
    args.matmul_size = args.matmul_size or (1024 if q else 2048)
    return args


def main(argv):
    argv = list(argv)
    if argv[:1] == ["--"]:  # "python -m fastsgd bench -- --quick" passes the "--" on
        argv = argv[1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    if args.memory_worker:
        return memory_worker(args.memory_worker, args.memory_rows)
    args = _resolve(args)
    if args.memory:
        return run_memory(args)
    return run_speed(args)
