"""How many threads the engine uses, and keeping BLAS out of their way."""

import os
from contextlib import contextmanager

from fastsgd import _engine


_cpus_seen = None  # (affinity mask, usable CPUs) of the last lookup


def _usable_cpus():
    """CPUs this process may run on (affinity mask and cgroup quota).

    joblib reads the cgroup files on every call (about 40 us, two or three
    times per fit); the answer is kept until the affinity mask changes.  A
    cgroup quota changed while the process runs is not seen."""
    global _cpus_seen
    try:
        mask = os.sched_getaffinity(0)
    except AttributeError:  # pragma: no cover - not on Linux
        mask = None
    if _cpus_seen is not None and _cpus_seen[0] == mask:
        return _cpus_seen[1]
    try:
        from joblib import cpu_count  # scikit-learn's dependency; knows cgroups
        usable = max(1, cpu_count())
    except Exception:  # pragma: no cover - joblib always comes with sklearn
        usable = max(1, len(mask) if mask is not None else os.cpu_count() or 1)
    _cpus_seen = (mask, usable)
    _engine._note_usable_cpus(usable)   # (the crowd guard's room for a team)
    return usable


def effective_n_threads(n_threads):
    """The number of engine threads for the estimator's ``n_threads``.

    ``None``: every CPU the process may use, capped by OpenMP's own limit
    (``OMP_NUM_THREADS``, or a ``threadpoolctl`` limit on OpenMP).  ``k > 0``:
    k threads (at most 4 per usable CPU).  ``k < 0``: all but ``|k| - 1``
    (``-1`` is all), as in joblib.
    Always 1 when the engine was built without OpenMP.
    """
    if not _engine.build_info()["openmp"]:
        return 1
    available = min(_engine.openmp_max_threads(), _usable_cpus())
    if n_threads is None:
        return max(1, available)
    if n_threads == 0:
        raise ValueError("n_threads == 0 is invalid; use None, a positive or a negative int")
    if n_threads < 0:
        return max(1, available + 1 + n_threads)
    # more threads than cores never speeds CPU-bound work up, and absurd
    # requests (10**5) would exhaust the process's threads: cap generously
    return int(min(n_threads, 4 * _usable_cpus()))


_blas = None  # threadpoolctl's controllers of the BLAS libraries loaded


@contextmanager
def single_threaded_blas():
    """Hold BLAS to one thread while the engine runs.

    The engine calls BLAS from inside its own OpenMP threads; a BLAS that
    also started threads would oversubscribe the cores, and a multithreaded
    BLAS could split a product differently from run to run.  (The libraries
    are looked up once; threadpoolctl's ``limit`` context would look them up
    and describe them on every call, 13 us.)
    """
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController
        _blas = ThreadpoolController().select(user_api="blas").lib_controllers
    changed = []
    try:
        for lib in _blas:
            n = lib.num_threads
            if n != 1:
                lib.set_num_threads(1)
                changed.append((lib, n))
        yield
    finally:
        for lib, n in changed:
            lib.set_num_threads(n)


# OpenBLAS architectures whose products of M*N*K <= 1e6 run in kernels that
# pack nothing, which the engine's hidden-unit blocks are cut for (the only
# one measured: SkylakeX, also chosen on AMD Zen 4).  Under a BLAS without
# them the blocks' small products repack their operands every time.
SMALL_MATRIX_ARCHS = frozenset({"SkylakeX"})
_small_matrix = None


def blas_small_matrix_kernels():
    """True when the BLAS the engine calls (scipy's) is OpenBLAS running
    kernels with small-matrix paths (SMALL_MATRIX_ARCHS); looked up once per
    process.  scipy's own library where it ships one (its wheels), else
    every BLAS loaded must qualify, so the answer does not hang on what
    else was imported first.  ``OPENBLAS_CORETYPE`` decides the
    architecture where it is set."""
    global _small_matrix
    if _small_matrix is None:
        try:
            import scipy.linalg.cython_blas  # noqa: F401  (the BLAS the engine calls)
            from threadpoolctl import threadpool_info
            libs = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
            scipys = [lib for lib in libs if "scipy" in os.path.basename(
                os.path.dirname(lib.get("filepath") or ""))]
            libs = scipys or libs
            _small_matrix = bool(libs) and all(
                lib.get("internal_api") == "openblas"
                and lib.get("architecture") in SMALL_MATRIX_ARCHS for lib in libs)
        except Exception:   # no threadpoolctl or an unknown BLAS: assume not
            _small_matrix = False
    return _small_matrix
