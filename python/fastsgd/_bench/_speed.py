"""The speed runs: every (dtype, threads, batch size) group side by side,
crowded groups measured again, fastsgd's thread speed-up; the linear
model against SGDClassifier; online learning with partial_fit."""

import datetime
import math
import os
import statistics
import time

from ._case import (ALPHA, LINEAR_ROWS, MOMENTUM, N_CLASSES, N_FEATURES, STREAM_CHUNK,
                    STREAM_PAUSE_S, STREAM_PAUSED_CALLS, STREAM_ROWS, auto_epochs,
                    flops_per_row, learning_rate_for, make_dataset, rows_for_batch)
from . import _crowding
from ._crowding import MatmulProbe, calm_gflops, calmest_attempt, group_was_crowded
from ._machine import (busy_warning, env_warning, loadavg, machine_info, set_torch_threads,
                       usable_physical_cores)
from ._report import (check_notes, console_row, console_table_header,
                      console_thread_speedup, fmt_rate, fmt_ratio, fmt_us, print_header,
                      ratio, write_markdown, write_outputs)
from ._runners import (FastsgdRunner, FastsgdStreamRunner, SGDClassifierRunner,
                       SklearnMLPRunner, SklearnStreamRunner, TorchRunner, TorchStreamRunner)
from ._timing import freeze_imports, run_group


def make_runners(args, use_torch, fastsgd_cls, sklearn_cls, torch_cls):
    """The frameworks of a run on the network of args.hidden: fastsgd, and
    scikit-learn and PyTorch unless left out."""
    runners = [fastsgd_cls(args.hidden, ALPHA, args.seed)]
    if not args.no_sklearn:
        runners.append(sklearn_cls(args.hidden, ALPHA, args.seed))
    if use_torch:
        runners.append(torch_cls(args.hidden, ALPHA, args.seed))
    return runners


def run_speed(args):
    import numpy as np
    from threadpoolctl import threadpool_limits

    warning = env_warning()
    machine = machine_info(args)
    print_header(machine, warning)

    use_torch = not args.no_torch and TorchRunner.available()
    if not args.no_torch and not use_torch:
        print("PyTorch is not importable: leaving it out (pip install torch to include it).\n")
    runners = make_runners(args, use_torch, FastsgdRunner, SklearnMLPRunner, TorchRunner)
    names = [r.name for r in runners]
    freeze_imports()

    units = [N_FEATURES, *args.hidden, N_CLASSES]
    fpr = flops_per_row(units)
    X64, y = make_dataset(args.rows, seed=args.seed)
    data = {"float64": X64}
    if "float32" in args.dtypes:
        data["float32"] = X64.astype(np.float32)
    print(f"data: {args.rows:,} rows x {N_FEATURES} standardised features, {N_CLASSES} "
          f"classes (seeded teacher network); network {'-'.join(map(str, units))} relu, "
          f"{fpr:,} matrix-product flops per row")
    print(f"SGD momentum {MOMENTUM} Nesterov, alpha {ALPHA}, lr 0.01 for batch >= 32 and "
          f"0.001 below; median of {args.repeats} interleaved repeats; frameworks: "
          f"{', '.join(names)}\n", flush=True)

    result = _new_result(args, machine, warning, names, units, fpr)
    t_start = time.perf_counter()
    run = _RunState()
    for dtype in args.dtypes:
        for threads in args.threads:
            set_torch_threads(threads)
            with threadpool_limits(threads, "blas"):
                _run_section(args, runners, data[dtype], y, dtype, threads, fpr, run, result)
            print(flush=True)

    result["thread_speedup"] = _thread_speedup(result["results"])
    console_thread_speedup(result["thread_speedup"])

    if args.linear:
        run_linear(args, data, y, result, use_torch)
    if args.stream:
        run_stream(args, data, y, result, use_torch)

    try:
        machine["loadavg_end"] = os.getloadavg()
    except OSError:
        pass
    result["wall_seconds"] = time.perf_counter() - t_start
    write_outputs(args, result, "bench", write_markdown)
    return 0 if _all_ok(result) else 1


def _new_result(args, machine, warning, names, units, fpr):
    """The speed run's record, before any measurement."""
    return {
        "schema": "fastsgd-bench/1",
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "python -m fastsgd bench " + " ".join(args.argv),
        "env_warning": warning,
        "busy_warning": busy_warning(machine),
        "machine": machine,
        "config": {"rows": args.rows, "n_features": N_FEATURES, "n_classes": N_CLASSES,
                   "hidden_layer_sizes": list(args.hidden), "units": units,
                   "activation": "relu", "alpha": ALPHA, "momentum": MOMENTUM,
                   "nesterov": True, "flops_per_row": fpr, "seed": args.seed,
                   "batch_sizes": [b if b else "full" for b in args.batch_sizes],
                   "dtypes": args.dtypes, "threads": args.threads,
                   "epochs": args.epochs or "auto", "repeats": args.repeats,
                   "crowded_retries": args.crowded_retries,
                   "matmul_size": args.matmul_size,
                   "timed": {"fastsgd": "MLPClassifier(...).fit(X, y), max_iter=epochs",
                             "scikit-learn": "MLPClassifier(solver='sgd', ...).fit(X, y), "
                                             "max_iter=epochs",
                             "torch": "epoch loop only (model/optimizer built before)"}},
        "frameworks": names,
        "matmul": [],
        "results": [],
        "linear": [],
        "stream": [],
    }


class _RunState:
    """What the speed run learns as it goes: the calm matrix-product rate of
    each (dtype, threads), the machine's cores, the current section's
    retry seconds left."""

    def __init__(self):
        from fastsgd._threads import _usable_cpus
        self.calm = {}   # (dtype, threads) -> best probe median seen
        self.physical_cores = usable_physical_cores()
        self.usable_cpus = _usable_cpus()   # (a group of k threads leaves the rest free)
        self.retry_seconds_left = _crowding.CROWDED_RETRY_SECONDS
        self.nearest_ns = None   # the shortest cache-line round trip seen


def _run_section(args, runners, X_all, y, dtype, threads, fpr, run, result):
    """One (dtype, threads) section: the matrix-product probe, every batch
    size's group, then the crowded groups again; adds rows and the probe's
    record to `result`."""
    names = [r.name for r in runners]
    run.retry_seconds_left = _crowding.CROWDED_RETRY_SECONDS   # (each section its own)
    probe = MatmulProbe(dtype, args.matmul_size)
    distance = _distance_probe() if threads > 1 else None
    mm = {"dtype": dtype, "threads": threads, "size": args.matmul_size,
          "gflops_all": [probe() for _ in range(3)]}
    run.calm[(dtype, threads)] = statistics.median(mm["gflops_all"])
    print(f"--- {dtype}, {threads} thread{'s' if threads > 1 else ''}: numpy matmul "
          f"{statistics.median(mm['gflops_all']):.1f} GFLOP/s -> machine limit "
          f"{fmt_rate(statistics.median(mm['gflops_all']) * 1e9 / fpr)} rows/s "
          "(re-measured within every group)", flush=True)
    console_table_header(names)

    def attempt(group):
        """Measure a group once; returns the attempt (and notes the run's
        calm rate)."""
        start = time.perf_counter()
        fw, probed, watch = run_group(runners, group["X"], group["y"], group["batch"],
                                      group["lr"], group["epochs"], threads, args.repeats,
                                      probe=probe, distance=distance)
        crowded, others = watch["crowded_periods"], watch["others_cores"]
        trips = watch["round_trip_ns"]
        if trips:
            run.nearest_ns = min(run.nearest_ns or math.inf, min(trips))
        far = _crowding.cores_far_apart(trips, run.nearest_ns)
        mm["gflops_all"] += probed
        gflops = statistics.median(probed)
        reference = calm_gflops(run.calm, dtype, threads, run.physical_cores)
        run.calm[(dtype, threads)] = max(run.calm[(dtype, threads)], gflops)
        spread = _crowding.fit_spread(fw)
        gains = (_crowding.peer_gains(fw, _one_thread_frameworks(result, dtype, group))
                 if threads > 1 else {})
        slowed = _crowding.peers_lost_a_core(gains, group["batch"])
        verdict = group_was_crowded(gflops, reference, crowded, others,
                                    max(0, run.usable_cpus - threads), spread, slowed, far)
        return {"crowded": verdict, "matmul_gflops": gflops, "calm_gflops": reference,
                "crowded_periods": crowded, "others_cores": others, "fit_spread": spread,
                "peer_gains": gains, "peers_slowed": slowed,
                "round_trip_ns": trips, "nearest_ns": run.nearest_ns, "cores_far": far,
                "engine": watch["engine"], "frameworks": fw, "probed": probed,
                "seconds": time.perf_counter() - start}

    groups = []
    for bs in args.batch_sizes:
        n = rows_for_batch(bs, args.rows)
        batch = n if bs is None else bs
        if batch > n:
            print(f"{bs:>6}  skipped: larger than the {n:,} rows", flush=True)
            continue
        group = {"bs": bs, "n": n, "batch": batch, "X": X_all[:n], "y": y[:n],
                 "lr": learning_rate_for(batch), "epochs": args.epochs or auto_epochs(batch, n)}
        group["attempts"] = [attempt(group)]
        group["row"] = _group_row(group, dtype, threads, fpr)
        groups.append(group)
        result["results"].append(group["row"])
        console_row(group["row"], names)
        if group["attempts"][0]["crowded"] and args.crowded_retries:
            print("       (crowded: measured again at the end of this section)", flush=True)
    # crowded groups again, once the neighbour has perhaps left
    for _ in range(args.crowded_retries):
        again = [g for g in groups if g["row"]["crowded"]]
        again = [again[i] for i in _crowding.retries_that_fit(
            [g["attempts"][-1]["seconds"] for g in again], run.retry_seconds_left,
            [_crowding.everyone_slowed(g["attempts"][-1], g["attempts"][-1]["calm_gflops"])
             for g in again])]
        if not again:
            break
        print(f"--- {dtype}, {threads} thread{'s' if threads > 1 else ''}: "
              "the crowded groups again", flush=True)
        for group in again:
            group["attempts"].append(attempt(group))
            run.retry_seconds_left -= group["attempts"][-1]["seconds"]
            row = _group_row(group, dtype, threads, fpr)
            result["results"][result["results"].index(group["row"])] = row
            group["row"] = row
            console_row(row, names)
    mm["gflops"] = float(statistics.median(mm["gflops_all"]))
    mm["limit_rows_per_s"] = mm["gflops"] * 1e9 / fpr
    result["matmul"].append(mm)


def _distance_probe():
    """A callable giving the cache-line round trip (ns) between two threads
    of this process, or None where the engine cannot measure it."""
    try:
        from fastsgd._distance import core_round_trip_ns
    except ImportError:
        return None
    if core_round_trip_ns(_crowding.DISTANCE_PROBE_SECONDS) is None:
        return None
    return lambda: core_round_trip_ns(_crowding.DISTANCE_PROBE_SECONDS)


def _one_thread_frameworks(result, dtype, group):
    """The frameworks of this run's 1-thread group of the same dtype and
    batch, or None."""
    label = "full" if group["bs"] is None else str(group["bs"])
    for row in result["results"]:
        if row["threads"] == 1 and row["dtype"] == dtype and row["batch_label"] == label:
            return row["frameworks"]
    return None


def _group_row(group, dtype, threads, fpr):
    """The result row of a measured group: its calmest attempt (see
    calmest_attempt), the others kept aside."""
    attempts = group["attempts"]
    kept = calmest_attempt(attempts)
    fw, probed, gflops = kept["frameworks"], kept["probed"], kept["matmul_gflops"]
    crowded, others_used = kept["crowded_periods"], kept.get("others_cores")
    others = [{"matmul_gflops": a["matmul_gflops"], "calm_gflops": a["calm_gflops"],
               "crowded_periods": a["crowded_periods"], "others_cores": a.get("others_cores"),
               "fit_spread": a.get("fit_spread"), "peer_gains": a.get("peer_gains"),
               "round_trip_ns": a.get("round_trip_ns"), "engine": a.get("engine"),
               "seconds": a.get("seconds"),
               "rows_per_s": {k: v.get("rows_per_s") for k, v in a["frameworks"].items()}}
              for a in attempts if a is not kept]
    limit = gflops * 1e9 / fpr
    frac = {k: (v["rows_per_s"] / limit if v.get("rows_per_s") else None)
            for k, v in fw.items()}
    f_rate = fw["fastsgd"].get("rows_per_s")
    notes = check_notes(fw, dtype)
    if crowded:
        notes.append(f"fastsgd's team stepped aside {crowded} time(s): other processes "
                     "crowded the cores (fsg_wake.h)")
    elif kept["crowded"] and gflops < _crowding.CROWDED_PROBE_SHARE * kept["calm_gflops"]:
        notes.append(f"the machine was crowded (matmul {gflops:.0f} against a calm "
                     f"{kept['calm_gflops']:.0f} GFLOP/s)")
    elif kept["crowded"] and (kept.get("fit_spread") or 0) > _crowding.CROWDED_FIT_SPREAD:
        notes.append(f"the machine was crowded (the frameworks' fits spread "
                     f"{kept['fit_spread']:.2f}x, slowest over fastest)")
    elif kept["crowded"] and kept.get("cores_far"):
        notes.append(f"the host placed the cores far apart (a cache line's round trip "
                     f"{statistics.median(kept['round_trip_ns']):.0f} ns, median, against the "
                     "run's nearest "
                     f"{kept['nearest_ns']:.0f} ns)")
    elif kept["crowded"] and kept.get("peers_slowed"):
        gains = ", ".join(f"{k} {v:.2f}x" for k, v in kept["peer_gains"].items())
        notes.append(f"the machine was crowded (the other frameworks ran as if a core was "
                     f"gone: {gains} their 1-thread speed)")
    elif kept["crowded"]:
        notes.append(f"the machine was crowded (other processes used {others_used:.2f} "
                     "cores on average)")
    engine = kept.get("engine") or {}
    if threads > 1 and engine.get("batches"):
        alone = engine["solo_batches"] / engine["batches"]
        share = engine.get("helper_share")
        if alone > ENGINE_ALONE_NOTE or (share is not None and share < ENGINE_HELPER_NOTE):
            notes.append(f"fastsgd ran {alone:.0%} of its batches alone, and its helper "
                         f"threads {share or 0:.0%} of the team's items")
    if others:
        notes.append(f"measured {len(attempts)} times (the machine was crowded); this is "
                     "the calmest (the other frameworks and the probes fastest)")
    return {"dtype": dtype, "threads": threads, "batch_size": group["batch"],
            "batch_label": "full" if group["bs"] is None else str(group["bs"]),
            "full_batch": group["bs"] is None, "n_rows": group["n"], "epochs": group["epochs"],
            "learning_rate": group["lr"], "flops_per_row": fpr,
            "matmul_gflops": gflops, "matmul_gflops_all": probed,
            "limit_rows_per_s": limit, "loadavg": loadavg(),
            "frameworks": fw, "fraction_of_limit": frac,
            "ratio_vs_sklearn": ratio(f_rate, fw.get("scikit-learn", {}).get("rows_per_s")),
            "ratio_vs_torch": ratio(f_rate, fw.get("torch", {}).get("rows_per_s")),
            "crowded_periods": crowded, "others_cores": others_used,
            "fit_spread": kept.get("fit_spread"), "peer_gains": kept.get("peer_gains"),
            "round_trip_ns": kept.get("round_trip_ns"), "engine": kept.get("engine"),
            "seconds": kept.get("seconds"),
            "crowded": kept["crowded"],
            "other_attempts": others, "notes": notes}


# a 2-thread group notes fastsgd's engine record (engine_change) when it ran
# more than this share of its batches alone, or its helpers less than this
# share of the team's items (two threads sharing evenly: about a half)
ENGINE_ALONE_NOTE = 0.2
ENGINE_HELPER_NOTE = 0.3


def _thread_speedup(results):
    """fastsgd's rows/s with k threads over its rows/s with 1, for each
    (dtype, batch) measured with both (the issue's "2 threads vs 1")."""
    one = {(r["dtype"], r["batch_label"]): r["frameworks"].get("fastsgd", {}).get("rows_per_s")
           for r in results if r["threads"] == 1}
    out = []
    for r in results:
        base = one.get((r["dtype"], r["batch_label"]))
        rate = r["frameworks"].get("fastsgd", {}).get("rows_per_s")
        if r["threads"] > 1 and base and rate:
            out.append({"dtype": r["dtype"], "batch_label": r["batch_label"],
                        "threads": r["threads"], "speedup": rate / base})
    return out


def _all_ok(result):
    rows = result["results"] + result["linear"] + result.get("stream", [])
    return all(fw.get("rows_per_s") and fw.get("loss_finite", True)
               for row in rows for fw in row["frameworks"].values())


def run_linear(args, data, y, result, use_torch):
    from threadpoolctl import threadpool_limits
    runners = [FastsgdRunner((), ALPHA, args.seed), SGDClassifierRunner((), ALPHA, args.seed)]
    if not args.no_sklearn:
        runners.append(SklearnMLPRunner((), ALPHA, args.seed))
    if use_torch:
        runners.append(TorchRunner((), ALPHA, args.seed))
    names = [r.name for r in runners]
    result["linear_frameworks"] = names
    n = min(args.rows, LINEAR_ROWS)
    fpr = flops_per_row([N_FEATURES, N_CLASSES])
    print(f"--- linear model ({N_FEATURES}-{N_CLASSES}, hidden_layer_sizes=()), batch 1, 1 thread, "
          f"{n:,} rows, 1 epoch; SGDClassifier: loss='log_loss', constant lr 0.001, "
          "max_iter=1, tol=None (one-vs-rest)")
    print(f"{'dtype':>8} | " + " | ".join(f"{nm:>13}" for nm in names)
          + " | f/SGDClf f/sklMLP  f/torch   (rows/s)")
    set_torch_threads(1)
    with threadpool_limits(1, "blas"):
        for dtype in args.dtypes:
            X, yy = data[dtype][:n], y[:n]
            fw, _, _ = run_group(runners, X, yy, 1, learning_rate_for(1), 1, 1, args.repeats)
            f_rate = fw["fastsgd"].get("rows_per_s")
            ratios = {k: ratio(f_rate, fw.get(k, {}).get("rows_per_s"))
                      for k in ("SGDClassifier", "scikit-learn", "torch")}
            row = {"dtype": dtype, "threads": 1, "batch_size": 1, "n_rows": n, "epochs": 1,
                   "learning_rate": learning_rate_for(1), "flops_per_row": fpr,
                   "sgdclassifier_loss": "log_loss", "frameworks": fw, "ratios": ratios}
            result["linear"].append(row)
            print(f"{dtype:>8} | " + " | ".join(
                f"{fmt_rate(fw[nm].get('rows_per_s')):>13}" for nm in names)
                + f" | {fmt_ratio(ratios['SGDClassifier']):>8} "
                  f"{fmt_ratio(ratios['scikit-learn']):>7} {fmt_ratio(ratios['torch']):>8}",
                flush=True)
            row["notes"] = check_notes(fw, dtype)
            for note in row["notes"]:
                print(f"       NOTE: {note}", flush=True)
    print(flush=True)


def run_stream(args, data, y, result, use_torch):
    """Online learning: the per-call cost of partial_fit on small chunks."""
    from threadpoolctl import threadpool_limits
    runners = make_runners(args, use_torch, FastsgdStreamRunner, SklearnStreamRunner,
                           TorchStreamRunner)
    names = [r.name for r in runners]
    result["stream_frameworks"] = names
    chunk = STREAM_CHUNK
    calls = min(args.rows, STREAM_ROWS) // chunk
    n = calls * chunk
    lr = learning_rate_for(chunk)
    print(f"--- online learning: partial_fit on {calls} consecutive {chunk}-row chunks "
          f"(one batch each), {'-'.join(map(str, [N_FEATURES, *args.hidden, N_CLASSES]))}; "
          f"the first call is not timed")
    print(f"{'dtype':>8} {'thr':>3} | " + " | ".join(f"{nm + ' us/call':>20}" for nm in names)
          + " | f/sklearn  f/torch")
    for dtype in args.dtypes:
        for threads in args.threads:
            set_torch_threads(threads)
            with threadpool_limits(threads, "blas"):
                fw, _, _ = run_group(runners, data[dtype][:n], y[:n], chunk, lr, 1, threads,
                                  args.repeats)
            for res in fw.values():
                if res.get("seconds_median"):
                    res["rows_per_s"] = (n - chunk) / res["seconds_median"]
                    res["us_per_call"] = res["seconds_median"] / (calls - 1) * 1e6
            _stream_row(result, names, fw, dtype=dtype, threads=threads, chunk_rows=chunk,
                        calls=calls, n_rows=n, learning_rate=lr)
    # chunks that arrive 50 ms apart (a sensor, a queue): each call starts
    # on caches and threads that have gone cold; median of the calls
    dtype, threads = ("float32" if "float32" in args.dtypes else args.dtypes[0]), max(args.threads)
    n = (STREAM_PAUSED_CALLS + 1) * chunk
    for r in runners:
        r.pause, r.call_seconds = STREAM_PAUSE_S, []
    set_torch_threads(threads)
    with threadpool_limits(threads, "blas"):
        fw, _, _ = run_group(runners, data[dtype][:n], y[:n], chunk, lr, 1, threads,
                          max(1, min(args.repeats, 3)), warmup=False)
    for r in runners:
        res = fw[r.name]
        if r.call_seconds and "error" not in res:
            med = statistics.median(r.call_seconds)
            res.update(us_per_call=med * 1e6, rows_per_s=chunk / med,
                       call_seconds_all=r.call_seconds)
        r.pause = 0.0
    _stream_row(result, names, fw, dtype=dtype, threads=threads, chunk_rows=chunk,
                calls=n // chunk, n_rows=n, learning_rate=lr, pause_ms=STREAM_PAUSE_S * 1e3)
    print(flush=True)


def _stream_row(result, names, fw, **fields):
    """Record one stream row (fields + the frameworks' results and the
    ratios) and print it."""
    f_rate = fw["fastsgd"].get("rows_per_s")
    row = dict(fields, frameworks=fw,
               ratio_vs_sklearn=ratio(f_rate, fw.get("scikit-learn", {}).get("rows_per_s")),
               ratio_vs_torch=ratio(f_rate, fw.get("torch", {}).get("rows_per_s")),
               notes=check_notes(fw, fields["dtype"]))
    result["stream"].append(row)
    pause = f" {row['pause_ms']:.0f} ms apart" if row.get("pause_ms") else ""
    print(f"{row['dtype']:>8} {row['threads']:>3} | " + " | ".join(
        f"{fmt_us(fw[nm].get('us_per_call')):>20}" for nm in names)
        + f" | {fmt_ratio(row['ratio_vs_sklearn']):>9} "
          f"{fmt_ratio(row['ratio_vs_torch']):>8}{pause}", flush=True)
    for note in row["notes"]:
        print(f"       NOTE: {note}", flush=True)
