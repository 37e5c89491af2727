"""``python -m fastsgd bench``: fastsgd, scikit-learn and PyTorch side by side.

One run trains the same network (default 784-128-10 ReLU, softmax
cross-entropy) on the same generated data with the same SGD (momentum 0.9,
Nesterov, L2 ``alpha`` 1e-4) in each framework, for several batch sizes,
dtypes and thread counts, and reports rows/s, time per epoch, the ratios
fastsgd/scikit-learn and fastsgd/PyTorch and the fraction of the machine's
matrix-product rate (measured in the same run) that fastsgd reaches.

Method
------
* Data: ``make_dataset`` draws standard-normal features and labels from a
  fixed random "teacher" network (numpy, seeded; no downloads), then
  standardises the columns.  Small batches use the first n rows only (the
  same rows for every framework of a group; n is reported).
* Timed: fastsgd and scikit-learn -- ``estimator.fit(X, y)`` with
  ``max_iter=epochs``, ``tol=0`` and ``n_iter_no_change=inf`` (no early
  stop; input validation and weight initialisation are inside ``fit`` and so
  inside the timer).  PyTorch -- only the epoch loop (``randperm``, slice,
  index X and y, ``zero_grad``, forward, ``cross_entropy``, backward,
  ``step``); model, optimiser and tensors are built before the timer.
  Time per epoch = wall time / epochs.
* Each group (dtype, threads, batch size) first warms every framework up on
  a few batches, then runs ``repeats`` rounds interleaved (fastsgd,
  scikit-learn, PyTorch, fastsgd, ...) and reports the median.  Before each
  timed run: gc.collect() (imports are gc.freeze()-d) and a pause of at
  least 30 ms, until the previous framework's spinning threads have gone
  to sleep (at most 0.15 s).
* Threads: fastsgd ``n_threads=k``; scikit-learn and numpy
  ``threadpoolctl.threadpool_limits(k, "blas")``; PyTorch
  ``torch.set_num_threads(k)``.
* Machine limit: the median GFLOP/s of numpy matmul of two large square
  matrices (same dtype and thread count, measured once per repeat inside
  every group, interleaved with the frameworks) divided by the network's
  flops per row: forward 2*sum(F*H), weight gradients 2*sum(F*H), deltas
  through the layers after the first 2*sum_{i>=1}(F_i*H_i).  Bias, activation
  and update work is not counted.

* Online learning (``--stream``): ``partial_fit`` on consecutive 32-row
  chunks of the first 4,000 rows, one batch per call.  The first call (it
  initialises the model) is made before the timer; the rest are timed, with
  their input checks.  PyTorch's counterpart of a call: the chunk's arrays
  become tensors, then one shuffled epoch of the same loop as above.  One
  more row (float32, the most threads) has the chunks arrive 50 ms apart,
  as from a sensor or a queue: 16 timed calls, the median call reported.

``python -m fastsgd bench --help`` lists the options.  Heavy imports (torch,
matplotlib, scikit-learn) happen inside functions.
"""

import argparse
import datetime
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import warnings

N_FEATURES = 784
N_CLASSES = 10
HIDDEN = (128,)
ALPHA = 1e-4
MOMENTUM = 0.9
SEED = 0
DEFAULT_BATCH_SIZES = "1,8,32,128,256,1024,full"
QUICK_BATCH_SIZES = "1,32,full"
SLOW_BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
LINEAR_ROWS = 5000
STREAM_ROWS = 4000   # online learning: partial_fit on consecutive chunks
STREAM_CHUNK = 32
STREAM_PAUSED_CALLS = 16    # ...and chunks that arrive STREAM_PAUSE_S apart
STREAM_PAUSE_S = 0.05
MEMORY_ROWS = 1_000_000
MEMORY_FEATURES = 100
MEMORY_HIDDEN = (32,)
# Pause before every timed fit and matmul probe.  After a multithreaded run
# the previous runtime's idle threads keep spinning: OpenBLAS's for about
# 2**28 cycles (~0.1 s), libgomp's (fastsgd's, torch's) for ~9 ms (measured
# here).  A 2-thread matmul right after a torch epoch ran ~17% slower; a
# 2-thread fastsgd fit (batch 8) right after a 2-thread numpy matmul took
# 43 ms, 22 ms after a 30 ms pause, 18 ms after 0.1 s, 17 ms after 0.3 s.
# So the pause lasts until no other thread of this process has run for two
# looks SETTLE_LOOK_SECONDS apart (/proc/self/task), at least SETTLE_MIN and
# at most SETTLE_SECONDS; a fixed SETTLE_SECONDS where that cannot be seen.
# (A fixed 0.15 s took ~100 s of a 460 s run's ~700 pauses.)
SETTLE_SECONDS = 0.15
SETTLE_MIN_SECONDS = 0.03
SETTLE_LOOK_SECONDS = 0.005
# a group whose matrix-product probes ran below this share of the run's
# calm rate for its dtype and threads (or during which fastsgd's team saw
# its cores crowded) is measured again at the end of its section (a
# neighbour often stays for a minute), up to --crowded-retries times and
# CROWDED_RETRY_BUDGET times a run; the calmest attempt is reported
CROWDED_PROBE_SHARE = 0.8
# ... or during which other processes (and the host, stealing vCPU time)
# used more than this many cores beyond those the group leaves free (a
# neighbour between two probes went unseen before: a 2-thread group ran at
# 1.01x its 1-thread speed with calm probes)
CROWDED_OTHERS_CORES = 0.15
CROWDED_RETRY_BUDGET = 8


# ------------------------------------------------------------------ the case
def rows_for_batch(batch_size, rows):
    """Rows used for a batch size: the slow frameworks need fewer rows at
    small batches to keep the run short.  ``batch_size`` None is full batch."""
    if batch_size is None:
        return rows
    if batch_size <= 1:
        return min(rows, 2000)
    if batch_size < 32:
        return min(rows, 5000)
    return rows


def learning_rate_for(batch_size):
    """0.01 from batch 32 up; 0.001 below (momentum 0.9 with 0.01 diverges at
    batch 1 on standardised 784-feature data)."""
    return 0.01 if batch_size >= 32 else 0.001


def auto_epochs(batch_size, n_rows):
    """Epochs per timed fit when --epochs is 'auto': one epoch while an epoch
    is many updates, two from batch 128 up (and for full batch) so that
    per-fit overhead (a few ms against epochs of 50 ms or more) is amortised.
    (Three made the default run ~40 s longer.)"""
    return 1 if batch_size < 128 and batch_size < n_rows else 2


def flops_per_row(units):
    """Matrix-product flops per training row of a network with these layer
    sizes: forward 2*sum(F*H), weight gradients 2*sum(F*H), and the deltas
    back through every layer but the first 2*sum_{i>=1}(F_i*H_i)."""
    fh = [f * h for f, h in zip(units[:-1], units[1:])]
    return 4 * sum(fh) + 2 * sum(fh[1:])


def make_dataset(n_rows, n_features=N_FEATURES, n_classes=N_CLASSES, seed=SEED):
    """Deterministic classification data: standardised float64 features and
    int64 labels in 0..n_classes-1 drawn from a random teacher network
    (tanh hidden layer, Gumbel noise on its logits).  Every class occurs
    among the first 200 rows, so any prefix used by the benchmark has all
    classes (the three frameworks then build the same output layer)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features))
    # a little shared structure so the features are not all independent
    mix = rng.standard_normal((n_features, 16)) / 4.0
    X += rng.standard_normal((n_rows, 16)) @ mix.T
    w1 = rng.standard_normal((n_features, 64)) / math.sqrt(n_features)
    w2 = rng.standard_normal((64, n_classes)) * 2.0
    logits = np.tanh(X @ w1) @ w2 + rng.gumbel(size=(n_rows, n_classes))
    y = np.argmax(logits, axis=1).astype(np.int64)
    k = min(n_rows, 200)
    missing = np.setdiff1d(np.arange(n_classes), y[:k])
    if k >= n_classes and missing.size:
        y[np.arange(missing.size) * 7 % k] = missing  # force all classes early
    X -= X.mean(axis=0)
    X /= X.std(axis=0)
    return X, y


# ---------------------------------------------------------- the frameworks
class FastsgdRunner:
    name = "fastsgd"

    def __init__(self, hidden, alpha, seed):
        self.hidden, self.alpha, self.seed = hidden, alpha, seed

    def setup(self, X, y, batch_size, lr, epochs, threads):
        from fastsgd import MLPClassifier
        return MLPClassifier(hidden_layer_sizes=self.hidden, batch_size=batch_size,
                             learning_rate_init=lr, max_iter=epochs, alpha=self.alpha,
                             momentum=MOMENTUM, nesterovs_momentum=True, tol=0.0,
                             n_iter_no_change=math.inf, shuffle=True,
                             random_state=self.seed, n_threads=threads)

    def run(self, est, X, y):
        est.fit(X, y)

    def after(self, est, X, y):
        """Outside the timer: the epoch losses the fit recorded, and the
        cross-entropy of the trained model on the data (no L2 term), which
        is defined the same way for every framework."""
        from sklearn.metrics import log_loss
        curve = [float(v) for v in getattr(est, "loss_curve_", [])]
        proba = est.predict_proba(X)
        return {"epoch_loss_curve": curve,
                "final_loss": float(log_loss(y, proba, labels=est.classes_))}


class SklearnMLPRunner(FastsgdRunner):
    name = "scikit-learn"

    def setup(self, X, y, batch_size, lr, epochs, threads):
        from sklearn.neural_network import MLPClassifier
        return MLPClassifier(solver="sgd", hidden_layer_sizes=self.hidden,
                             batch_size=batch_size, learning_rate_init=lr, max_iter=epochs,
                             alpha=self.alpha, momentum=MOMENTUM, nesterovs_momentum=True,
                             tol=0.0, n_iter_no_change=math.inf, shuffle=True,
                             random_state=self.seed)


class SGDClassifierRunner(FastsgdRunner):
    """scikit-learn's linear SGDClassifier: one epoch (max_iter=1, tol=None)
    of log-loss SGD, constant learning rate, one-vs-rest over the classes."""
    name = "SGDClassifier"

    def setup(self, X, y, batch_size, lr, epochs, threads):
        from sklearn.linear_model import SGDClassifier
        return SGDClassifier(loss="log_loss", penalty="l2", alpha=self.alpha,
                             learning_rate="constant", eta0=lr, max_iter=epochs, tol=None,
                             shuffle=True, random_state=self.seed)


class TorchRunner:
    """PyTorch eager, the honest fast loop: no DataLoader; per epoch one
    ``randperm``, then per batch slice the permutation, index X and y,
    zero_grad, forward, cross_entropy, backward, step.  The L2 penalty
    matches scikit-learn's (alpha / batch size on the weights, none on the
    biases)."""
    name = "torch"

    def __init__(self, hidden, alpha, seed):
        self.hidden, self.alpha, self.seed = hidden, alpha, seed

    @staticmethod
    def available():
        try:
            import torch  # noqa: F401
            return True
        except Exception:
            return False

    def build(self, n_features, n_classes, batch_size, lr, dtype):
        import torch
        torch.manual_seed(self.seed)
        layers, width = [], n_features
        for h in self.hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
            width = h
        layers.append(torch.nn.Linear(width, n_classes))
        model = torch.nn.Sequential(*layers).to(getattr(torch, str(dtype)))
        weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
        biases = [m.bias for m in model if isinstance(m, torch.nn.Linear)]
        opt = torch.optim.SGD([{"params": weights, "weight_decay": self.alpha / batch_size},
                               {"params": biases, "weight_decay": 0.0}],
                              lr=lr, momentum=MOMENTUM, nesterov=True)
        return model, opt

    def setup(self, X, y, batch_size, lr, epochs, threads):
        import torch
        model, opt = self.build(X.shape[1], N_CLASSES, batch_size, lr, X.dtype)
        Xt = torch.from_numpy(X)
        yt = torch.from_numpy(y)
        gen = torch.Generator().manual_seed(self.seed)
        return dict(model=model, opt=opt, Xt=Xt, yt=yt, gen=gen, batch_size=batch_size,
                    epochs=epochs)

    @staticmethod
    def train(model, opt, Xt, yt, batch_size, epochs, gen):
        import torch
        from torch.nn.functional import cross_entropy
        n = Xt.shape[0]
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n, batch_size):
                idx = perm[i:i + batch_size]
                xb, yb = Xt[idx], yt[idx]
                opt.zero_grad()
                loss = cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()

    def run(self, state, X, y):
        self.train(state["model"], state["opt"], state["Xt"], state["yt"],
                   state["batch_size"], state["epochs"], state["gen"])

    @staticmethod
    def full_loss(model, Xt, yt):
        import torch
        from torch.nn.functional import cross_entropy
        with torch.no_grad():
            return float(cross_entropy(model(Xt), yt))

    def after(self, state, X, y):
        return {"final_loss": self.full_loss(state["model"], state["Xt"], state["yt"])}


class _StreamMixin:
    """Online learning: partial_fit on consecutive chunks of batch_size
    rows.  setup makes the first call (it initialises the model); run makes
    the others, `pause` seconds apart, each call timed into `call_seconds`."""
    pause = 0.0

    def setup(self, X, y, batch_size, lr, epochs, threads):
        import numpy as np
        est = super().setup(X, y, batch_size, lr, epochs, threads)
        est.partial_fit(X[:batch_size], y[:batch_size], classes=np.arange(N_CLASSES))
        return est

    def run(self, est, X, y):
        chunk = est.batch_size
        for i in range(chunk, X.shape[0], chunk):
            self.call(lambda: est.partial_fit(X[i:i + chunk], y[i:i + chunk]))

    def call(self, fn):
        if self.pause:
            time.sleep(self.pause)
        start = time.perf_counter()
        fn()
        self.__dict__.setdefault("call_seconds", []).append(time.perf_counter() - start)


class FastsgdStreamRunner(_StreamMixin, FastsgdRunner):
    pass


class SklearnStreamRunner(_StreamMixin, SklearnMLPRunner):
    pass


class TorchStreamRunner(_StreamMixin, TorchRunner):
    """PyTorch's partial_fit: the chunk's numpy arrays become tensors, then
    one shuffled epoch of TorchRunner's loop over them."""

    def setup(self, X, y, batch_size, lr, epochs, threads):
        state = TorchRunner.setup(self, X, y, batch_size, lr, epochs, threads)
        self.partial_fit(state, X[:batch_size], y[:batch_size])
        return state

    def partial_fit(self, state, Xc, yc):
        import torch
        self.train(state["model"], state["opt"], torch.from_numpy(Xc), torch.from_numpy(yc),
                   state["batch_size"], 1, state["gen"])

    def run(self, state, X, y):
        chunk = state["batch_size"]
        for i in range(chunk, X.shape[0], chunk):
            self.call(lambda: self.partial_fit(state, X[i:i + chunk], y[i:i + chunk]))


# -------------------------------------------------------------- machinery
def _rss_bytes():
    """Current resident set size (Linux /proc), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _maxrss_bytes():
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def _set_torch_threads(k):
    try:
        import torch
        torch.set_num_threads(k)
    except Exception:
        pass


class MatmulProbe:
    """The machine's matrix-product rate: GFLOP/s of numpy matmul of two
    size x size matrices of the dtype, under the caller's BLAS thread limit.
    Called once per repeat of every group, interleaved with the frameworks,
    so the limit is measured under the same conditions as they are."""

    def __init__(self, dtype, size):
        import numpy as np
        rng = np.random.default_rng(1)
        self.a = rng.standard_normal((size, size)).astype(dtype)
        self.b = rng.standard_normal((size, size)).astype(dtype)
        self.c = np.empty_like(self.a)
        self.size = size
        self()  # warm-up: thread pool, caches

    def __call__(self):
        import numpy as np
        start = time.perf_counter()
        np.matmul(self.a, self.b, out=self.c)
        return 2.0 * self.size ** 3 / (time.perf_counter() - start) / 1e9


def _other_threads_running():
    """How many of this process's other threads are running or runnable
    now (Linux /proc/self/task); None where that cannot be read."""
    me = threading.get_native_id()
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    running = 0
    for tid in tasks:
        if int(tid) == me:
            continue
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:   # the thread has just ended
            continue
        # "tid (comm) S ...": comm may hold spaces and parentheses
        if stat.rpartition(")")[2].split()[0] == "R":
            running += 1
    return running


def settle():
    """Pause until the previous framework's idle threads have stopped
    spinning (see SETTLE_SECONDS)."""
    start = time.perf_counter()
    time.sleep(SETTLE_MIN_SECONDS)
    quiet = 0
    while time.perf_counter() - start < SETTLE_SECONDS:
        running = _other_threads_running()
        if running is None:
            time.sleep(max(0.0, SETTLE_SECONDS - (time.perf_counter() - start)))
            return
        quiet = quiet + 1 if running == 0 else 0
        if quiet >= 2:
            return
        time.sleep(SETTLE_LOOK_SECONDS)


def _measure(runner, X, y, batch_size, lr, epochs, threads, timed=True):
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
              probe=None):
    """Warm every framework up on a few batches, then ``repeats`` interleaved
    rounds (fastsgd, scikit-learn, torch, [matmul probe], fastsgd, ...).
    Returns ({framework: result dict}, probe GFLOP/s list, what was seen of
    crowding during the timed rounds: the periods fastsgd's engine began,
    and the cores other processes used on average (see cpu_snapshot))."""
    n = X.shape[0]
    if warmup:
        m = min(n, max(2 * batch_size, 64))
        for r in runners:
            _measure(r, X[:m], y[:m], min(batch_size, m), lr, 1, threads, timed=False)
    # what the first fits imported or cached lazily (torch's optimiser, say)
    # joins the frozen imports: each gc.collect() below then walks only the
    # objects made since (it took ~50 ms each without)
    gc.collect()
    if hasattr(gc, "freeze"):
        gc.freeze()
    # (a warm-up fit right after the last group may meet its spinning threads)
    crowded_before, cpu_before = _crowded_periods(), cpu_snapshot()
    times = {r.name: [] for r in runners}
    last, errors, probed = {}, {}, []
    for _ in range(repeats):
        if probe is not None:
            settle()
            probed.append(probe())
        for r in runners:
            if r.name in errors:
                continue
            seconds, state, error = _measure(r, X, y, batch_size, lr, epochs, threads)
            if error:
                errors[r.name] = error
                continue
            times[r.name].append(seconds)
            last[r.name] = state
    watch = {"crowded_periods": _crowded_periods() - crowded_before,
             "others_cores": others_cores(cpu_before, cpu_snapshot())}
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


# --------------------------------------------------------------- reporting
def _fmt_rate(v):
    if v is None or not math.isfinite(v):
        return "—"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def _fmt_ratio(v):
    return "—" if v is None else f"{v:.1f}×" if v >= 10 else f"{v:.2f}×"


def _fmt_frac(v):
    return "—" if v is None else f"{v:.2f}"


def _ratio(a, b):
    return a / b if a and b else None


def _machine_info(args):
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": None,
        "avx512": None,
        "env": {k: os.environ.get(k) for k in SLOW_BLAS_ENV + (
            "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
    }
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        # a virtual machine's model name can be just "AMD EPYC": family and
        # model tell its generations apart (25/17 Zen 4: AVX-512 on 256-bit
        # units, half the matrix rate per core of a full-width one)
        fields = {}
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if not key.strip():
                break   # the first processor's block only
            fields.setdefault(key.strip(), value.strip())
        info["cpu_model"] = fields.get("model name")
        if "cpu family" in fields and "model" in fields:
            info["cpu_model"] = (f"{info['cpu_model']} "
                                 f"(family {fields['cpu family']} model {fields['model']})")
        info["avx512"] = " avx512f" in text
    except OSError:
        pass
    try:
        info["loadavg_start"] = os.getloadavg()
    except OSError:
        pass
    import numpy
    import scipy
    import sklearn

    import fastsgd
    info["versions"] = {"fastsgd": fastsgd.__version__, "numpy": numpy.__version__,
                        "scipy": scipy.__version__, "scikit-learn": sklearn.__version__}
    if not args.no_torch and TorchRunner.available():
        import torch
        info["versions"]["torch"] = torch.__version__
    try:
        info["fastsgd_build"] = fastsgd.build_info()
    except Exception as exc:
        info["fastsgd_build"] = f"unavailable: {exc}"
    try:
        from threadpoolctl import threadpool_info
        info["threadpools"] = threadpool_info()
    except Exception as exc:
        info["threadpools"] = f"unavailable: {exc}"
    return info


def _env_warning():
    bad = {k: os.environ[k] for k in SLOW_BLAS_ENV if k in os.environ}
    if not bad:
        return None
    setting = ", ".join(f"{k}={v}" for k, v in bad.items())
    return (f"{setting} is set in the environment. It makes OpenBLAS (numpy's, "
            "scipy's and so scikit-learn's and fastsgd's) use slower kernels or "
            "blocking than this CPU supports, so the matrix-product rate, the "
            "machine limit and every BLAS-bound number below are too low. "
            "Rerun as: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m fastsgd bench")


def _busy_warning(machine):
    load, cpus = machine.get("loadavg_start"), machine.get("usable_cpus") or 1
    if load and load[0] > 0.5 * cpus:
        return (f"the machine is busy (1-minute load average {load[0]:.1f} on {cpus} usable "
                "cpus) before the benchmark starts: the timings will be noisy; run it on "
                "an idle machine for numbers to quote.")
    return None


def _print_header(machine, warning):
    import fastsgd
    print("=" * 78)
    print("fastsgd bench")
    print("=" * 78)
    try:
        fastsgd.show_config()
    except Exception as exc:  # pragma: no cover
        print(f"fastsgd.show_config() failed: {exc}")
    print(f"  CPU          {machine['cpu_model']} ({machine['usable_cpus']} usable cpus"
          f"{', AVX-512' if machine['avx512'] else ''})")
    pools = machine.get("threadpools")
    if isinstance(pools, list):
        for p in pools:
            if p.get("user_api") == "blas":
                print(f"  BLAS pool    {p.get('internal_api')} {p.get('version')}: "
                      f"architecture {p.get('architecture')}, {p.get('num_threads')} threads "
                      f"({os.path.basename(p.get('filepath', ''))})")
    if "torch" in machine["versions"]:
        print(f"  torch        {machine['versions']['torch']}")
    if "loadavg_start" in machine:
        print("  load average " + " ".join(f"{v:.2f}" for v in machine["loadavg_start"]))
    if warning:
        bar = "!" * 78
        print(bar)
        print("!! WARNING: " + warning)
        print(bar)
        print(f"WARNING: {warning}", file=sys.stderr)
    busy = _busy_warning(machine)
    if busy:
        print("WARNING: " + busy)
    print(flush=True)


def _console_table_header(names):
    cols = " | ".join(f"{n:>18}" for n in names)
    print(f"{'batch':>6} {'rows':>7} {'ep':>2} | {cols} | {'f/skl':>6} {'f/torch':>7} | "
          f"{'frac':>5}")
    print(f"{'':>6} {'':>7} {'':>2} | " + " | ".join(f"{'rows/s   ms/epoch':>18}" for _ in names)
          + " |")


def _console_row(row, names):
    cells = []
    for n in names:
        r = row["frameworks"].get(n, {})
        rate = r.get("rows_per_s")
        ms = r.get("seconds_per_epoch")
        if ms:
            cells.append(f"{_fmt_rate(rate):>7} {ms * 1e3:>10.1f}")
        else:
            cells.append(f"{'error' if r.get('error') else '—':>18}")
    print(f"{row['batch_label']:>6} {row['n_rows']:>7,} {row['epochs']:>2} | " + " | ".join(cells)
          + f" | {_fmt_ratio(row['ratio_vs_sklearn']):>6} {_fmt_ratio(row['ratio_vs_torch']):>7} | "
          f"{_fmt_frac(row['fraction_of_limit'].get('fastsgd')):>5}", flush=True)
    for note in row.get("notes", []):
        print(f"       NOTE: {note}", flush=True)


def _check_notes(fw, dtype):
    """Warnings about a group's results: failures, non-finite losses, and
    fastsgd not training the same model as scikit-learn."""
    notes = []
    for name, r in fw.items():
        if r.get("error"):
            notes.append(f"{name} failed: {r['error']}")
        elif r.get("loss_finite") is False:
            notes.append(f"{name}: non-finite loss")
    # same random_state, same algorithm: the same model up to rounding.  In
    # float32 rounding differences (another BLAS kernel, summation order)
    # can flip a ReLU and grow to ~1e-2 in the weights over a few epochs,
    # so there compare the losses; float64 must agree closely.
    f, s = fw.get("fastsgd", {}), fw.get("scikit-learn", {})
    diff = f.get("max_abs_weight_diff_vs_sklearn")
    if diff is not None and dtype == "float64" and diff > 1e-5:
        notes.append(f"fastsgd and scikit-learn weights differ by up to {diff:.3g} "
                     "(same random_state and algorithm: they should agree)")
    lf, ls = f.get("final_loss"), s.get("final_loss")
    if lf is not None and ls is not None and abs(lf - ls) > 0.01 + 0.01 * abs(ls):
        notes.append(f"fastsgd's final loss {lf:.4f} differs from scikit-learn's {ls:.4f}")
    return notes


def write_markdown(path, result):
    cfg = result["config"]
    m = result["machine"]
    lines = ["# fastsgd bench", ""]
    for key in ("env_warning", "busy_warning"):
        if result.get(key):
            lines += [f"> **WARNING:** {result[key]}", ""]
    lines += [
        f"- created {result['created']}; `{result['command']}`",
        f"- CPU {m.get('cpu_model')}, {m.get('usable_cpus')} usable cpus; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"- network {'-'.join(str(u) for u in cfg['units'])} "
        f"({cfg['activation']}), {cfg['flops_per_row']:,} matrix-product flops per row; "
        f"SGD momentum {cfg['momentum']} Nesterov, alpha {cfg['alpha']}, "
        "learning rate 0.01 for batch ≥ 32, 0.001 below",
        f"- rows/s = rows × epochs / median wall time of {cfg['repeats']} interleaved fits; "
        "full batch = all rows of the group; "
        "frac = fastsgd rows/s ÷ (numpy matmul GFLOP/s ÷ flops per row)",
        "",
    ]
    if result.get("matmul"):
        lines += ["| dtype | threads | matmul GFLOP/s | limit rows/s |", "|---|---|---|---|"]
        for mm in result["matmul"]:
            lines.append(f"| {mm['dtype']} | {mm['threads']} | {mm['gflops']:.1f} | "
                         f"{_fmt_rate(mm['limit_rows_per_s'])} |")
        lines.append("")
    names = result["frameworks"]
    if result["results"]:
        head = (["dtype", "threads", "batch", "rows", "epochs"]
                + [f"{n} rows/s" for n in names]
                + ["fastsgd/scikit-learn", "fastsgd/torch", "fastsgd frac of limit"])
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in result["results"]:
            cells = [row["dtype"], str(row["threads"]), row["batch_label"],
                     f"{row['n_rows']:,}", str(row["epochs"])]
            cells += [_fmt_rate(row["frameworks"].get(n, {}).get("rows_per_s")) for n in names]
            cells += [_fmt_ratio(row["ratio_vs_sklearn"]), _fmt_ratio(row["ratio_vs_torch"]),
                      _fmt_frac(row["fraction_of_limit"].get("fastsgd"))]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        noted = [r for r in result["results"] if r.get("notes")]
        if noted:
            lines += ["Notes on single rows (crowding, failures, checks):", ""]
            lines += [f"- {r['dtype']}, {r['threads']} thread(s), batch {r['batch_label']}: "
                      + "; ".join(r["notes"]) for r in noted]
            lines.append("")
    if result.get("thread_speedup"):
        batches = list(dict.fromkeys(s["batch_label"] for s in result["thread_speedup"]))
        lines += ["## fastsgd: more threads against one", "",
                  "rows/s with k threads ÷ rows/s with 1 thread, same dtype and batch, "
                  "from the table above", "",
                  "| dtype | threads | " + " | ".join(f"batch {b}" for b in batches) + " |",
                  "|---|---|" + "---|" * len(batches)]
        for key in dict.fromkeys((s["dtype"], s["threads"]) for s in result["thread_speedup"]):
            got = {s["batch_label"]: s["speedup"] for s in result["thread_speedup"]
                   if (s["dtype"], s["threads"]) == key}
            lines.append(f"| {key[0]} | {key[1]} | "
                         + " | ".join(f"{got[b]:.2f}×" if b in got else "—" for b in batches)
                         + " |")
        lines.append("")
    if result.get("linear"):
        lin_names = result["linear_frameworks"]
        lines += ["## Linear model (hidden_layer_sizes=(), batch 1, 1 thread)", "",
                  "SGDClassifier: loss='log_loss', constant learning rate, max_iter=1, "
                  "tol=None (one epoch, one-vs-rest); scikit-learn = MLPClassifier(solver='sgd', "
                  "hidden_layer_sizes=()).", ""]
        head = (["dtype", "rows"] + [f"{n} rows/s" for n in lin_names]
                + ["fastsgd/SGDClassifier", "fastsgd/scikit-learn", "fastsgd/torch"])
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in result["linear"]:
            cells = [row["dtype"], f"{row['n_rows']:,}"]
            cells += [_fmt_rate(row["frameworks"].get(n, {}).get("rows_per_s")) for n in lin_names]
            cells += [_fmt_ratio(row["ratios"].get(k)) for k in
                      ("SGDClassifier", "scikit-learn", "torch")]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if result.get("stream"):
        st_names = result["stream_frameworks"]
        first = result["stream"][0]
        lines += [f"## Online learning: partial_fit on {first['calls']} consecutive "
                  f"{first['chunk_rows']}-row chunks", "",
                  "One batch per call; the first call (initialisation) is not timed; each "
                  "call's input checks are.  Without pauses: total time / calls; with "
                  "pauses (chunks arriving apart, the last row): the median call.", ""]
        head = (["dtype", "threads", "calls", "pause"] + [f"{n} µs/call" for n in st_names]
                + ["fastsgd/scikit-learn", "fastsgd/torch"])
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in result["stream"]:
            cells = [row["dtype"], str(row["threads"]), str(row["calls"]),
                     f"{row['pause_ms']:.0f} ms" if row.get("pause_ms") else "none"]
            cells += [_fmt_us(row["frameworks"].get(n, {}).get("us_per_call")) for n in st_names]
            cells += [_fmt_ratio(row["ratio_vs_sklearn"]), _fmt_ratio(row["ratio_vs_torch"])]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def write_plot(path, result):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return False
    configs = []
    for row in result["results"]:
        key = (row["dtype"], row["threads"])
        if key not in configs:
            configs.append(key)
    if not configs:
        return False
    dtypes = sorted({c[0] for c in configs}, key=[c[0] for c in configs].index)
    threads = sorted({c[1] for c in configs})
    fig, axes = plt.subplots(len(dtypes), len(threads), squeeze=False,
                             figsize=(5.2 * len(threads), 4.0 * len(dtypes)), sharey=True)
    styles = {"fastsgd": "o-", "scikit-learn": "s--", "torch": "^:"}
    for i, dt in enumerate(dtypes):
        for j, th in enumerate(threads):
            ax = axes[i][j]
            rows = [r for r in result["results"] if r["dtype"] == dt and r["threads"] == th]
            for name in result["frameworks"]:
                pts = [(r["batch_size"], r["frameworks"][name]["rows_per_s"]) for r in rows
                       if r["frameworks"].get(name, {}).get("rows_per_s")]
                if pts:
                    ax.plot(*zip(*pts), styles.get(name, "x-"), label=name)
            limit = [(r["batch_size"], r["limit_rows_per_s"]) for r in rows
                     if r.get("limit_rows_per_s")]
            if limit:
                ax.plot(*zip(*limit), color="grey", lw=1, ls="-.", label="machine limit")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{dt}, {th} thread{'s' if th > 1 else ''}")
            ax.set_xlabel("batch size (rightmost = full batch)")
            ax.set_ylabel("rows / s")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle("-".join(str(u) for u in result["config"]["units"]) + " MLP, SGD: training rows/s")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _jsonable(obj.item())
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


# ------------------------------------------------------------- the main run
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
                        f"matrix-product rate fell below {CROWDED_PROBE_SHARE:.0%} of the run's "
                        "calm one, or fastsgd's team stepped aside); the calmest attempt is "
                        "reported, the others are kept in the JSON; at most "
                        f"{CROWDED_RETRY_BUDGET} a run (default 1, --quick 0)")
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


def usable_physical_cores():
    """Physical cores among the CPUs this process may use (Linux sysfs
    topology), or None when unknown."""
    try:
        cpus = os.sched_getaffinity(0)
        cores = set()
        for c in cpus:
            topo = f"/sys/devices/system/cpu/cpu{c}/topology/"
            with open(topo + "core_id") as f, open(topo + "physical_package_id") as g:
                cores.add((g.read().strip(), f.read().strip()))
        return len(cores) or None
    except (AttributeError, OSError):
        return None


def calm_gflops(calm, dtype, threads, physical_cores=None):
    """The calm matrix-product rate for (dtype, threads) so far: the best
    probe median this run has seen for it, or, when the threads have a
    physical core each, 0.9 x threads x the 1-thread one if higher (a
    section that starts crowded must not set the bar)."""
    best = calm.get((dtype, threads), 0.0)
    if threads > 1 and (dtype, 1) in calm and (physical_cores or 0) >= threads:
        best = max(best, 0.9 * threads * calm[(dtype, 1)])
    return best


def group_was_crowded(gflops, calm, team_crowded, others=None, free_cores=0):
    """Did other processes crowd the machine during a group?  Its probes ran
    slow, fastsgd's team stepped aside, or others used more cores than the
    group left free."""
    return (team_crowded > 0 or gflops < CROWDED_PROBE_SHARE * calm
            or (others is not None and others > free_cores + CROWDED_OTHERS_CORES))


def cpu_snapshot():
    """(wall s, CPU s the whole machine spent busy, CPU s the host stole
    from its vCPUs, CPU s of this process) now: Linux /proc/stat and
    os.times(); None elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        ticks = [int(v) for v in fields[1:]]
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    if fields[0] != "cpu" or len(ticks) < 7:
        return None
    busy = sum(ticks[i] for i in (0, 1, 2, 5, 6))   # user nice system irq softirq
    steal = ticks[7] if len(ticks) > 7 else 0
    t = os.times()
    return time.perf_counter(), busy / hz, steal / hz, t.user + t.system


def others_cores(before, after):
    """Cores that other processes (and the host, stealing vCPU time) used
    on average between two cpu_snapshot()s; None when unknown."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    others = (after[1] - before[1]) - (after[3] - before[3]) + (after[2] - before[2])
    return max(0.0, others) / (after[0] - before[0])


def run_speed(args):
    import numpy as np
    from threadpoolctl import threadpool_limits

    warning = _env_warning()
    machine = _machine_info(args)
    _print_header(machine, warning)

    use_torch = not args.no_torch and TorchRunner.available()
    if not args.no_torch and not use_torch:
        print("PyTorch is not importable: leaving it out (pip install torch to include it).\n")
    runners = [FastsgdRunner(args.hidden, ALPHA, args.seed)]
    if not args.no_sklearn:
        runners.append(SklearnMLPRunner(args.hidden, ALPHA, args.seed))
    if use_torch:
        runners.append(TorchRunner(args.hidden, ALPHA, args.seed))
    names = [r.name for r in runners]
    _freeze_imports()

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

    result = {
        "schema": "fastsgd-bench/1",
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "python -m fastsgd bench " + " ".join(args.argv),
        "env_warning": warning,
        "busy_warning": _busy_warning(machine),
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
    t_start = time.perf_counter()
    calm = {}   # (dtype, threads) -> best probe median seen
    physical_cores = usable_physical_cores()
    from fastsgd._threads import _usable_cpus
    usable_cpus = _usable_cpus()   # (a group of k threads leaves the rest free)
    retries_left = CROWDED_RETRY_BUDGET
    for dtype in args.dtypes:
        X_all = data[dtype]
        for threads in args.threads:
            _set_torch_threads(threads)
            with threadpool_limits(threads, "blas"):
                probe = MatmulProbe(dtype, args.matmul_size)
                mm = {"dtype": dtype, "threads": threads, "size": args.matmul_size,
                      "gflops_all": [probe() for _ in range(3)]}
                calm[(dtype, threads)] = statistics.median(mm["gflops_all"])
                print(f"--- {dtype}, {threads} thread{'s' if threads > 1 else ''}: numpy matmul "
                      f"{statistics.median(mm['gflops_all']):.1f} GFLOP/s -> machine limit "
                      f"{_fmt_rate(statistics.median(mm['gflops_all']) * 1e9 / fpr)} rows/s "
                      "(re-measured within every group)", flush=True)
                _console_table_header(names)
                def attempt(group):
                    """Measure a group once; returns the attempt (and notes
                    the run's calm rate)."""
                    fw, probed, watch = run_group(runners, group["X"], group["y"],
                                                  group["batch"], group["lr"],
                                                  group["epochs"], threads, args.repeats,
                                                  probe=probe)
                    crowded, others = watch["crowded_periods"], watch["others_cores"]
                    mm["gflops_all"] += probed
                    gflops = statistics.median(probed)
                    reference = calm_gflops(calm, dtype, threads, physical_cores)
                    calm[(dtype, threads)] = max(calm[(dtype, threads)], gflops)
                    verdict = group_was_crowded(gflops, reference, crowded, others,
                                                max(0, usable_cpus - threads))
                    return {"crowded": verdict, "matmul_gflops": gflops,
                            "calm_gflops": reference, "crowded_periods": crowded,
                            "others_cores": others, "frameworks": fw, "probed": probed}

                groups = []
                for bs in args.batch_sizes:
                    n = rows_for_batch(bs, args.rows)
                    batch = n if bs is None else bs
                    if batch > n:
                        print(f"{bs:>6}  skipped: larger than the {n:,} rows", flush=True)
                        continue
                    group = {"bs": bs, "n": n, "batch": batch, "X": X_all[:n], "y": y[:n],
                             "lr": learning_rate_for(batch),
                             "epochs": args.epochs or auto_epochs(batch, n)}
                    group["attempts"] = [attempt(group)]
                    group["row"] = _group_row(group, dtype, threads, fpr)
                    groups.append(group)
                    result["results"].append(group["row"])
                    _console_row(group["row"], names)
                    if group["attempts"][0]["crowded"] and args.crowded_retries:
                        print("       (crowded: measured again at the end of this section)",
                              flush=True)
                # crowded groups again, once the neighbour has perhaps left
                for retry in range(args.crowded_retries):
                    again = [g for g in groups if g["row"]["crowded"]]
                    if not again or retries_left == 0:
                        break
                    print(f"--- {dtype}, {threads} thread{'s' if threads > 1 else ''}: "
                          "the crowded groups again", flush=True)
                    for group in again[:retries_left]:
                        retries_left -= 1
                        group["attempts"].append(attempt(group))
                        row = _group_row(group, dtype, threads, fpr)
                        result["results"][result["results"].index(group["row"])] = row
                        group["row"] = row
                        _console_row(row, names)
                mm["gflops"] = float(statistics.median(mm["gflops_all"]))
                mm["limit_rows_per_s"] = mm["gflops"] * 1e9 / fpr
                result["matmul"].append(mm)
            print(flush=True)

    result["thread_speedup"] = _thread_speedup(result["results"])
    _console_thread_speedup(result["thread_speedup"])

    if args.linear:
        run_linear(args, data, y, result, use_torch)
    if args.stream:
        run_stream(args, data, y, result, use_torch)

    try:
        machine["loadavg_end"] = os.getloadavg()
    except OSError:
        pass
    result["wall_seconds"] = time.perf_counter() - t_start
    _write_outputs(args, result, "bench")
    return 0 if _all_ok(result) else 1


def _group_row(group, dtype, threads, fpr):
    """The result row of a measured group: its calmest attempt (not crowded
    if any, else the one with the fastest probes), the others kept aside."""
    attempts = group["attempts"]
    kept = min(attempts, key=lambda a: (a["crowded"], -a["matmul_gflops"]))
    fw, probed, gflops = kept["frameworks"], kept["probed"], kept["matmul_gflops"]
    crowded, others_used = kept["crowded_periods"], kept.get("others_cores")
    others = [{"matmul_gflops": a["matmul_gflops"], "calm_gflops": a["calm_gflops"],
               "crowded_periods": a["crowded_periods"], "others_cores": a.get("others_cores"),
               "rows_per_s": {k: v.get("rows_per_s") for k, v in a["frameworks"].items()}}
              for a in attempts if a is not kept]
    limit = gflops * 1e9 / fpr
    frac = {k: (v["rows_per_s"] / limit if v.get("rows_per_s") else None)
            for k, v in fw.items()}
    f_rate = fw["fastsgd"].get("rows_per_s")
    notes = _check_notes(fw, dtype)
    if crowded:
        notes.append(f"fastsgd's team stepped aside {crowded} time(s): other processes "
                     "crowded the cores (fsg_wake.h)")
    elif kept["crowded"] and gflops < CROWDED_PROBE_SHARE * kept["calm_gflops"]:
        notes.append(f"the machine was crowded (matmul {gflops:.0f} against a calm "
                     f"{kept['calm_gflops']:.0f} GFLOP/s)")
    elif kept["crowded"]:
        notes.append(f"the machine was crowded (other processes used {others_used:.2f} "
                     "cores on average)")
    if others:
        notes.append(f"measured {len(attempts)} times (the machine was crowded); this is "
                     "the calmest")
    return {"dtype": dtype, "threads": threads, "batch_size": group["batch"],
            "batch_label": "full" if group["bs"] is None else str(group["bs"]),
            "full_batch": group["bs"] is None, "n_rows": group["n"], "epochs": group["epochs"],
            "learning_rate": group["lr"], "flops_per_row": fpr,
            "matmul_gflops": gflops, "matmul_gflops_all": probed,
            "limit_rows_per_s": limit, "loadavg": _loadavg(),
            "frameworks": fw, "fraction_of_limit": frac,
            "ratio_vs_sklearn": _ratio(f_rate, fw.get("scikit-learn", {}).get("rows_per_s")),
            "ratio_vs_torch": _ratio(f_rate, fw.get("torch", {}).get("rows_per_s")),
            "crowded_periods": crowded, "others_cores": others_used,
            "crowded": kept["crowded"], "other_attempts": others, "notes": notes}


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


def _console_thread_speedup(speedup):
    for threads in sorted({s["threads"] for s in speedup}):
        for dtype in sorted({s["dtype"] for s in speedup}):
            cells = [f"{s['batch_label']} {s['speedup']:.2f}×" for s in speedup
                     if s["threads"] == threads and s["dtype"] == dtype]
            print(f"--- fastsgd, {threads} threads against 1, {dtype}, by batch: "
                  + ", ".join(cells))
    if speedup:
        print(flush=True)


def _freeze_imports():
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


def _crowded_periods():
    """Crowded periods the engine has begun in this process (fsg_wake.h):
    by the team's waits, or by a look at a call's start that found no room
    for the team among the system's runnable threads."""
    from fastsgd import _engine
    stats = _engine.crowd_stats()
    return stats["episodes"] + stats["start_looks"]


def _loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


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
    _set_torch_threads(1)
    with threadpool_limits(1, "blas"):
        for dtype in args.dtypes:
            X, yy = data[dtype][:n], y[:n]
            fw, _, _ = run_group(runners, X, yy, 1, learning_rate_for(1), 1, 1, args.repeats)
            f_rate = fw["fastsgd"].get("rows_per_s")
            ratios = {k: _ratio(f_rate, fw.get(k, {}).get("rows_per_s"))
                      for k in ("SGDClassifier", "scikit-learn", "torch")}
            row = {"dtype": dtype, "threads": 1, "batch_size": 1, "n_rows": n, "epochs": 1,
                   "learning_rate": learning_rate_for(1), "flops_per_row": fpr,
                   "sgdclassifier_loss": "log_loss", "frameworks": fw, "ratios": ratios}
            result["linear"].append(row)
            print(f"{dtype:>8} | " + " | ".join(
                f"{_fmt_rate(fw[nm].get('rows_per_s')):>13}" for nm in names)
                + f" | {_fmt_ratio(ratios['SGDClassifier']):>8} "
                  f"{_fmt_ratio(ratios['scikit-learn']):>7} {_fmt_ratio(ratios['torch']):>8}",
                flush=True)
            row["notes"] = _check_notes(fw, dtype)
            for note in row["notes"]:
                print(f"       NOTE: {note}", flush=True)
    print(flush=True)


def run_stream(args, data, y, result, use_torch):
    """Online learning: the per-call cost of partial_fit on small chunks."""
    from threadpoolctl import threadpool_limits
    runners = [FastsgdStreamRunner(args.hidden, ALPHA, args.seed)]
    if not args.no_sklearn:
        runners.append(SklearnStreamRunner(args.hidden, ALPHA, args.seed))
    if use_torch:
        runners.append(TorchStreamRunner(args.hidden, ALPHA, args.seed))
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
            _set_torch_threads(threads)
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
    _set_torch_threads(threads)
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
               ratio_vs_sklearn=_ratio(f_rate, fw.get("scikit-learn", {}).get("rows_per_s")),
               ratio_vs_torch=_ratio(f_rate, fw.get("torch", {}).get("rows_per_s")),
               notes=_check_notes(fw, fields["dtype"]))
    result["stream"].append(row)
    pause = f" {row['pause_ms']:.0f} ms apart" if row.get("pause_ms") else ""
    print(f"{row['dtype']:>8} {row['threads']:>3} | " + " | ".join(
        f"{_fmt_us(fw[nm].get('us_per_call')):>20}" for nm in names)
        + f" | {_fmt_ratio(row['ratio_vs_sklearn']):>9} "
          f"{_fmt_ratio(row['ratio_vs_torch']):>8}{pause}", flush=True)
    for note in row["notes"]:
        print(f"       NOTE: {note}", flush=True)


def _fmt_us(v):
    return "-" if v is None else f"{v:,.0f}"


def _write_outputs(args, result, stem):
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, f"{stem}.json")
    md_path = os.path.join(args.out, f"{stem}.md")
    with open(json_path, "w") as f:
        json.dump(_jsonable(result), f, indent=1)
    written = [json_path]
    if stem == "bench":
        write_markdown(md_path, result)
        written.append(md_path)
        png_path = os.path.join(args.out, f"{stem}.png")
        if write_plot(png_path, result):
            written.append(png_path)
        else:
            print("(matplotlib not importable: no plot)")
    else:
        write_memory_markdown(md_path, result)
        written.append(md_path)
    print("wrote " + ", ".join(written))


# ------------------------------------------------------------------ memory
def _memory_worker(framework, n_rows):
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
    rss_before = _rss_bytes()
    peak_before = _maxrss_bytes()
    if rss_before is None:
        rss_before = peak_before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        est.fit(X, y)
        seconds = time.perf_counter() - start
    peak = _maxrss_bytes()
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
    warning = _env_warning()
    machine = _machine_info(args)
    _print_header(machine, warning)
    n = args.memory_rows
    print(f"--- memory: one epoch of fit on {n:,} x {MEMORY_FEATURES} float32 rows, "
          f"hidden {MEMORY_HIDDEN}, batch_size='auto', each framework in a fresh process")
    print("    peak RSS during fit (getrusage ru_maxrss, after resetting the mark) minus the "
          "RSS right before fit", flush=True)
    frameworks = ["fastsgd"] + ([] if args.no_sklearn else ["scikit-learn"])
    rows = []
    for fw in frameworks:
        cmd = [sys.executable, os.path.abspath(__file__), "--memory-worker", fw,
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
    _write_outputs(args, result, "memory")
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


def main(argv):
    argv = list(argv)
    if argv[:1] == ["--"]:  # "python -m fastsgd bench -- --quick" passes the "--" on
        argv = argv[1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    if args.memory_worker:
        return _memory_worker(args.memory_worker, args.memory_rows)
    args = _resolve(args)
    if args.memory:
        return run_memory(args)
    return run_speed(args)


if __name__ == "__main__":  # the --memory workers run this file directly
    sys.exit(main(sys.argv[1:]))
