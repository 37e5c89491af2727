"""``--memory``: peak resident memory of one fit on 1,000,000 x 100 float32
rows, fastsgd against scikit-learn, each in a fresh interpreter."""

import datetime
import gc
import json
import math
import subprocess
import sys
import time
import warnings

from ._case import N_CLASSES, SEED
from ._machine import env_warning, machine_info, maxrss_bytes, rss_bytes
from ._report import print_header, write_outputs


MEMORY_ROWS = 1_000_000
MEMORY_FEATURES = 100
MEMORY_HIDDEN = (32,)


def memory_worker(framework, n_rows):
    """Runs in a fresh interpreter: build the data, then one fit, and print
    one JSON line with the resident-memory numbers."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    X = np.empty((n_rows, MEMORY_FEATURES), dtype=np.float32)
    y = np.empty(n_rows, dtype=np.int64)
    w = rng.standard_normal((MEMORY_FEATURES, N_CLASSES)).astype(np.float32)
    chunk = 100_000
    for s in range(0, n_rows, chunk):  # in chunks: no full-size temporaries
        e = min(n_rows, s + chunk)
        rng.standard_normal(out=X[s:e], dtype=np.float32)
        y[s:e] = np.argmax(X[s:e] @ w + rng.gumbel(size=(e - s, N_CLASSES)), axis=1)
    y[:N_CLASSES] = np.arange(N_CLASSES)
    from sklearn.exceptions import ConvergenceWarning
    params = dict(hidden_layer_sizes=MEMORY_HIDDEN, batch_size="auto", max_iter=1, tol=0.0,
                  n_iter_no_change=math.inf, random_state=SEED)
    if framework == "fastsgd":
        from fastsgd import MLPClassifier
        est = MLPClassifier(**params)
    else:
        from sklearn.neural_network import MLPClassifier
        est = MLPClassifier(solver="sgd", **params)
    gc.collect()
    reset = False
    try:  # reset the peak-RSS mark (Linux >= 4.0) so building X does not count
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        pass
    rss_before = rss_bytes()
    peak_before = maxrss_bytes()
    if rss_before is None:
        rss_before = peak_before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        est.fit(X, y)
        seconds = time.perf_counter() - start
    peak = maxrss_bytes()
    n_params = sum(c.size for c in est.coefs_) + sum(b.size for b in est.intercepts_)
    print(json.dumps({
        "framework": framework, "n_rows": n_rows, "n_features": MEMORY_FEATURES,
        "x_bytes": int(X.nbytes), "x_dtype": str(X.dtype), "model_dtype": str(est.coefs_[0].dtype),
        "rss_before_fit": rss_before, "peak_rss": peak, "peak_rss_before_fit": peak_before,
        "peak_reset": reset, "fit_peak_minus_before": peak - rss_before,
        "n_params": int(n_params), "seconds": seconds, "loss": float(est.loss_),
        "exact": reset or peak_before <= rss_before,
    }))
    return 0


def run_memory(args):
    warning = env_warning()
    machine = machine_info(args)
    print_header(machine, warning)
    n = args.memory_rows
    print(f"--- memory: one epoch of fit on {n:,} x {MEMORY_FEATURES} float32 rows, "
          f"hidden {MEMORY_HIDDEN}, batch_size='auto', each framework in a fresh process")
    print("    peak RSS during fit (getrusage ru_maxrss, after resetting the mark) minus the "
          "RSS right before fit", flush=True)
    frameworks = ["fastsgd"] + ([] if args.no_sklearn else ["scikit-learn"])
    rows = []
    for fw in frameworks:
        cmd = [sys.executable, "-m", "fastsgd", "bench", "--memory-worker", fw,
               "--memory-rows", str(n)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        rec = None
        if proc.returncode == 0:
            for line in reversed(proc.stdout.splitlines()):
                if line.startswith("{"):
                    rec = json.loads(line)
                    break
        if rec is None:
            rec = {"framework": fw, "error": (proc.stderr or proc.stdout)[-2000:]}
            print(f"{fw:>13}: FAILED\n{rec['error']}")
        else:
            mb = 1024 * 1024
            print(f"{fw:>13}: fit peak - before {rec['fit_peak_minus_before'] / mb:8.1f} MiB  "
                  f"(X is {rec['x_bytes'] / mb:.1f} MiB, ratio "
                  f"{rec['fit_peak_minus_before'] / rec['x_bytes']:.2f}; RSS before fit "
                  f"{rec['rss_before_fit'] / mb:.0f} MiB, fit {rec['seconds']:.2f} s"
                  f"{'' if rec['exact'] else '; LOWER BOUND: peak mark not reset'})", flush=True)
        rows.append(rec)
    result = {"schema": "fastsgd-bench-memory/1",
              "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "command": "python -m fastsgd bench " + " ".join(args.argv),
              "env_warning": warning, "machine": machine, "memory": rows}
    write_outputs(args, result, "memory", write_memory_markdown)
    return 0 if all("error" not in r for r in rows) else 1


def write_memory_markdown(path, result):
    mb = 1024 * 1024
    lines = ["# fastsgd bench --memory", "",
             f"- created {result['created']}; `{result['command']}`",
             f"- one epoch of `fit` on {MEMORY_FEATURES}-feature float32 rows, hidden "
             f"{MEMORY_HIDDEN}, batch_size='auto'; each framework in a fresh process; "
             "peak RSS (getrusage ru_maxrss, peak mark reset before fit) minus RSS right "
             "before fit", "",
             "| framework | rows | X MiB | fit peak − before MiB | ÷ size of X | fit s |",
             "|---|---|---|---|---|---|"]
    for r in result["memory"]:
        if "error" in r:
            lines.append(f"| {r['framework']} | failed | | | | |")
            continue
        lines.append(f"| {r['framework']} | {r['n_rows']:,} | {r['x_bytes'] / mb:.1f} | "
                     f"{r['fit_peak_minus_before'] / mb:.1f} | "
                     f"{r['fit_peak_minus_before'] / r['x_bytes']:.2f} | {r['seconds']:.2f} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
