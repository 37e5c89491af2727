/* fsg_team.h — how the engine's threads share one epoch's work.
 *
 * One OpenMP region per epoch; inside it the master thread runs the epoch
 * loop and, for each phase of each batch, publishes N work items (row
 * slices, or blocks of weights).  Every thread, master included, claims
 * items until none is left; the master then waits only for items already
 * claimed to finish.  So:
 *
 *  - no barrier ever waits for a thread that is not working: if a
 *    neighbour process takes a core, the thread on the other core simply
 *    claims every item (a descheduled thread can hold up at most the one
 *    item it claimed);
 *  - the master claims from the front of the list and the others from the
 *    back, so with equal speed each thread keeps touching the same weight
 *    blocks batch after batch, and they stay in its own L2 cache;
 *  - waiting is a short spin (a few microseconds), then sched_yield, then
 *    sleeps: no long spin-waits on a busy machine.
 *
 * The claim word packs (phase, front, back) into 64 bits and is changed by
 * compare-and-swap, so a thread can never claim an item of a phase that has
 * already moved on.  Item results are published by the release increment of
 * `done` and read by the master after its acquire load.
 */
#ifndef FSG_TEAM_H
#define FSG_TEAM_H

#include <sched.h>
#include <stdint.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FSG_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define FSG_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define FSG_CPU_RELAX() ((void)0)
#endif

typedef struct {
    uint64_t claim;   /* phase:16 | front:24 | back:24 */
    int64_t done;     /* items of the current phase finished */
    int64_t exit;     /* set by the master when the epoch is over */
} fsg_team;

#define FSG_TEAM_MAX_ITEMS ((1 << 24) - 1)
#define FSG_CLAIM(phase, front, back) \
    (((uint64_t)(phase) << 48) | ((uint64_t)(front) << 24) | (uint64_t)(back))

static inline void fsg_team_init(fsg_team *t) {
    t->claim = 0;
    t->done = 0;
    t->exit = 0;
}

/* grows a wait: spin, then yield the core, then sleep (50 us steps) */
static inline void fsg_backoff(int64_t *spins) {
    if (*spins < 2000) {
        FSG_CPU_RELAX();
    } else if (*spins < 2200) {
        sched_yield();
    } else {
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
    (*spins)++;
}

/* master: open a phase of n items (n <= FSG_TEAM_MAX_ITEMS).  Descriptors
 * of the phase must be written before this call. */
static inline void fsg_team_publish(fsg_team *t, int64_t n) {
    uint64_t phase = ((__atomic_load_n(&t->claim, __ATOMIC_RELAXED) >> 48) + 1) & 0xffff;
    __atomic_store_n(&t->done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&t->claim, FSG_CLAIM(phase, 0, n), __ATOMIC_RELEASE);
}

/* any thread: claim one item of the current phase, from the front
 * (from_back == 0) or the back; returns -1 when none is left */
static inline int64_t fsg_team_claim(fsg_team *t, int from_back) {
    uint64_t c = __atomic_load_n(&t->claim, __ATOMIC_ACQUIRE);
    for (;;) {
        uint64_t phase = c >> 48, front = (c >> 24) & 0xffffff, back = c & 0xffffff;
        if (front >= back) return -1;
        uint64_t next = from_back ? FSG_CLAIM(phase, front, back - 1)
                                  : FSG_CLAIM(phase, front + 1, back);
        if (__atomic_compare_exchange_n(&t->claim, &c, next, 1, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return (int64_t)(from_back ? back - 1 : front);
    }
}

static inline void fsg_team_item_done(fsg_team *t) {
    __atomic_fetch_add(&t->done, 1, __ATOMIC_RELEASE);
}

/* master: wait until all n items of the phase are finished */
static inline void fsg_team_wait(fsg_team *t, int64_t n) {
    int64_t spins = 0;
    while (__atomic_load_n(&t->done, __ATOMIC_ACQUIRE) < n) fsg_backoff(&spins);
}

/* worker: wait until an item can be claimed (returns 1) or the epoch is
 * over (returns 0) */
static inline int fsg_team_wait_work(fsg_team *t) {
    int64_t spins = 0;
    for (;;) {
        uint64_t c = __atomic_load_n(&t->claim, __ATOMIC_ACQUIRE);
        if (((c >> 24) & 0xffffff) < (c & 0xffffff)) return 1;
        if (__atomic_load_n(&t->exit, __ATOMIC_ACQUIRE)) return 0;
        fsg_backoff(&spins);
    }
}

static inline void fsg_team_finish(fsg_team *t) {
    __atomic_store_n(&t->exit, 1, __ATOMIC_RELEASE);
}

#endif /* FSG_TEAM_H */
