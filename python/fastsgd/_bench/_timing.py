"""How a group is timed: warm-ups, then interleaved rounds of the
frameworks (and the matrix-product probe), each fit after a garbage
collection and a pause; medians, and checks outside the timer."""

import gc
import math
import statistics
import time
import warnings

from ._crowding import (cpu_snapshot, crowded_periods, engine_change, engine_counters,
                        others_cores, settle)


def freeze_imports():
    """Import everything the runs use, then move all objects alive now into
    the garbage collector's permanent generation: the gc.collect() before
    every timed fit then costs microseconds instead of ~0.1 s (torch's many
    objects), and no collection inside a timed fit walks them."""
    import sklearn.linear_model  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import sklearn.neural_network  # noqa: F401

    import fastsgd  # noqa: F401
    gc.collect()
    if hasattr(gc, "freeze"):
        gc.freeze()


def measure_fit(runner, X, y, batch_size, lr, epochs, threads, timed=True):
    """One fit, timed; returns (seconds, state, error).  A warm-up fit
    (timed=False) skips the garbage collection and the pause."""
    from sklearn.exceptions import ConvergenceWarning
    try:
        state = runner.setup(X, y, batch_size, lr, epochs, threads)
        if timed:
            gc.collect()
            settle()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            runner.run(state, X, y)
            seconds = time.perf_counter() - start
        return seconds, state, None
    except Exception as exc:  # a failing framework must not sink the run
        return None, None, f"{type(exc).__name__}: {exc}"


def run_group(runners, X, y, batch_size, lr, epochs, threads, repeats, warmup=True,
              probe=None, distance=None):
    """Warm every framework up on a few batches, then ``repeats`` interleaved
    rounds (fastsgd, scikit-learn, torch, [matmul probe], [distance probe],
    fastsgd, ...).  Returns ({framework: result dict}, probe GFLOP/s list,
    what was seen of crowding during the timed rounds: the periods fastsgd's
    engine began, the cores other processes used on average (see
    cpu_snapshot), each round's cache-line round trip in ns between two
    threads (`distance`, see fastsgd._distance)), and what fastsgd's engine
    did (engine_change))."""
    n = X.shape[0]
    if warmup:
        m = min(n, max(2 * batch_size, 64))
        for r in runners:
            measure_fit(r, X[:m], y[:m], min(batch_size, m), lr, 1, threads, timed=False)
    # what the first fits imported or cached lazily (torch's optimiser, say)
    # joins the frozen imports: each gc.collect() below then walks only the
    # objects made since (it took ~50 ms each without)
    gc.collect()
    if hasattr(gc, "freeze"):
        gc.freeze()
    # (a warm-up fit right after the last group may meet its spinning threads)
    crowded_before, cpu_before = crowded_periods(), cpu_snapshot()
    engine_before = engine_counters()
    times = {r.name: [] for r in runners}
    last, errors, probed, trips = {}, {}, [], []
    for _ in range(repeats):
        if probe is not None:
            settle()
            probed.append(probe())
        if distance is not None:
            trip = distance()
            if trip is not None:
                trips.append(trip)
        for r in runners:
            if r.name in errors:
                continue
            seconds, state, error = measure_fit(r, X, y, batch_size, lr, epochs, threads)
            if error:
                errors[r.name] = error
                continue
            times[r.name].append(seconds)
            last[r.name] = state
    # (a start look just before the group and its blip counted inside it
    # come to -1: the group itself saw nothing; 23:59 UTC run, batch 32)
    watch = {"crowded_periods": max(0, crowded_periods() - crowded_before),
             "others_cores": others_cores(cpu_before, cpu_snapshot()),
             "round_trip_ns": trips,
             "engine": engine_change(engine_before, engine_counters())}
    out = {}
    for r in runners:
        res = {"seconds_all": times[r.name], "epochs": epochs,
               "seconds_median": None, "seconds_per_epoch": None, "rows_per_s": None}
        if r.name in errors:
            res["error"] = errors[r.name]
        if times[r.name]:
            med = statistics.median(times[r.name])
            res["seconds_median"] = med
            res["seconds_per_epoch"] = med / epochs
            res["rows_per_s"] = n * epochs / med
            try:  # checks, outside the timer, on the last repeat's model
                res.update(r.after(last[r.name], X, y))
            except Exception as exc:
                res["error"] = f"check failed: {type(exc).__name__}: {exc}"
            losses = res.get("epoch_loss_curve", []) + [res.get("final_loss", math.nan)]
            res["loss_finite"] = all(math.isfinite(v) for v in losses)
        out[r.name] = res
    # sanity: fastsgd and scikit-learn trained the same model (same
    # random_state, same algorithm, same rows)
    if "fastsgd" in last and "scikit-learn" in last:
        import numpy as np
        a, b = last["fastsgd"], last["scikit-learn"]
        try:
            diff = max(float(np.max(np.abs(p - q))) for p, q in
                       zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_))
        except Exception:
            diff = None
        out["fastsgd"]["max_abs_weight_diff_vs_sklearn"] = diff
    return out, probed, watch
