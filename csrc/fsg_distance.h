/* fsg_distance.h — how far apart two threads of the process run: the round
 * trip of one cache line bounced between them.
 *
 * On a chip of several core complexes (AMD's CCDs, a second socket) two
 * cores of one complex hand a line over through their shared L3, two of
 * different complexes across the fabric.  A shared virtual machine can be
 * moved between the two for tens of seconds at a time: on the 2-vCPU build
 * machine (AMD EPYC, Zen 4, 2026-12-05) the round trip switched between
 * ~65 ns and 330-390 ns, and 2-thread fits that share data between their
 * threads (fastsgd's large batches, scikit-learn's and PyTorch's BLAS)
 * ran at their 1-thread speed while it was far.  The bench
 * reads it to tell such stretches from calm ones.
 *
 * fsg_bounce runs in two threads at once: thread 0 writes odd values and
 * waits for the next even one, thread 1 answers each odd value with the
 * next even one.  Thread 0 stops after budget_ns (or when no answer came in
 * that time: the other thread never ran) and tells thread 1 by -1, which
 * thread 1's compare-and-swap can never overwrite. */
#ifndef FSG_DISTANCE_H
#define FSG_DISTANCE_H

#include <stdint.h>

#include "fsg_clock.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FSG_BOUNCE_RELAX() _mm_pause()
#else
#define FSG_BOUNCE_RELAX() ((void)0)
#endif

typedef struct {
    _Alignas(64) int64_t word;   /* the line bounced (alone on it) */
    char pad[56];
} fsg_bounce_line;

/* Thread `tid` (0 or 1) of the two.  Thread 0 returns the mean round trip
 * in ns, or -1 when no round trip completed; thread 1 returns 0. */
static inline double fsg_bounce(fsg_bounce_line *line, int tid, int64_t budget_ns) {
#if defined(__GNUC__) || defined(__clang__)
    if (tid == 1) {
        int64_t v = 1;
        for (;;) {
            int64_t seen = __atomic_load_n(&line->word, __ATOMIC_ACQUIRE);
            if (seen < 0) return 0.0;
            /* a compare-and-swap, not a store: thread 0 may have given up
             * waiting and written -1 since the load, and a plain store
             * would overwrite it (and this loop then never end) */
            if (seen == v && __atomic_compare_exchange_n(&line->word, &seen, v + 1, 0,
                                                         __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                v += 2;
        }
    }
    if (tid != 0) return 0.0;
    int64_t start = fsg_now_ns(), end = start + budget_ns, trips = 0, now = start;
    int64_t v = 1;
    while (now < end) {
        __atomic_store_n(&line->word, v, __ATOMIC_RELEASE);
        int64_t spins = 0;
        while (__atomic_load_n(&line->word, __ATOMIC_ACQUIRE) != v + 1) {
            if ((++spins & 255) == 0 && fsg_now_ns() >= end) break;
            FSG_BOUNCE_RELAX();
        }
        if (__atomic_load_n(&line->word, __ATOMIC_ACQUIRE) != v + 1) break;
        trips++;
        v += 2;
        if ((trips & 63) == 0) now = fsg_now_ns();
    }
    now = fsg_now_ns();
    __atomic_store_n(&line->word, -1, __ATOMIC_RELEASE);
    return trips > 0 ? (double)(now - start) / (double)trips : -1.0;
#else
    (void)line; (void)tid; (void)budget_ns;
    return -1.0;
#endif
}

#endif
