"""How far apart two threads of this process run: the round trip of a cache
line bounced between them (csrc/fsg_distance.h has the why).  The bench
reads it to tell the stretches in which a shared host placed the vCPUs on
different core complexes, where every framework's 2-thread work slows."""

from cython.parallel cimport parallel
from libc.stdint cimport int64_t

from fastsgd._openmp cimport FSG_OPENMP_ENABLED, omp_get_thread_num

cdef extern from "fsg_distance.h" nogil:
    ctypedef struct fsg_bounce_line:
        int64_t word
    double fsg_bounce(fsg_bounce_line *line, int tid, int64_t budget_ns) noexcept


def core_round_trip_ns(double seconds=0.01):
    """The mean round trip, in ns, of one cache line between two threads of
    this process during `seconds`; None without OpenMP or when the second
    thread did not run in that time (one usable CPU)."""
    cdef fsg_bounce_line line
    cdef double result[1]
    cdef int64_t budget = <int64_t> (seconds * 1e9)
    cdef int tid
    if not FSG_OPENMP_ENABLED or not seconds > 0:   # (NaN too)
        return None
    line.word = 0
    result[0] = -1.0
    with nogil, parallel(num_threads=2):
        tid = omp_get_thread_num()
        if tid == 0:
            result[0] = fsg_bounce(&line, 0, budget)
        elif tid == 1:
            fsg_bounce(&line, 1, budget)
    return None if result[0] < 0 else result[0]
