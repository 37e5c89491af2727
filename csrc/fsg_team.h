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
 *  - waiting is a short spin (tens of microseconds), then the thread blocks
 *    in the kernel (a futex on Linux) and is woken the moment there is
 *    something for it: no long spin-waits on a busy machine, and a blocked
 *    thread leaves its core free for the scheduler to move a stalled
 *    teammate onto.
 *
 * The claim word packs (phase, front, back) into 64 bits and is changed by
 * compare-and-swap, so a thread can never claim an item of a phase that has
 * already moved on.  Item results are published by the release increment of
 * `done` and read by the master after its acquire load.  Sleeping uses the
 * Dekker pattern on sequentially consistent atomics (announce, re-check,
 * sleep / change, check for sleepers, wake), so no wake-up is lost.
 */
#ifndef FSG_TEAM_H
#define FSG_TEAM_H

#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FSG_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define FSG_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define FSG_CPU_RELAX() ((void)0)
#endif

/* pauses before a waiting thread blocks: about 20-40 us on recent Intel
 * x86, about 105 us on AMD Zen 4 (26 ns per pause, measured 2026-12-04) */
#define FSG_SPIN_LIMIT 4000
static int fsg_spin_limit = FSG_SPIN_LIMIT;   /* the engine's knob spin_pauses */

/* times a waiting thread gave up spinning and blocked (diagnostics: a
 * teammate that sleeps between phases pays a wake-up at the next one) */
static int64_t fsg_team_worker_sleeps = 0;
static int64_t fsg_team_master_sleeps = 0;

typedef struct {
    uint64_t claim;         /* phase:16 | front:24 | back:24 */
    int32_t done;           /* items of the current phase finished */
    int32_t seq;            /* bumped by every publish and by finish */
    int32_t exit;           /* set by the master when the epoch is over */
    int32_t master_asleep;  /* the master is (about to be) blocked on `done` */
    int32_t workers_asleep; /* workers (about to be) blocked on `seq` */
} fsg_team;

#define FSG_TEAM_MAX_ITEMS ((1 << 24) - 1)
#define FSG_CLAIM(phase, front, back) \
    (((uint64_t)(phase) << 48) | ((uint64_t)(front) << 24) | (uint64_t)(back))

static inline void fsg_team_init(fsg_team *t) {
    t->claim = 0;
    t->done = 0;
    t->seq = 0;
    t->exit = 0;
    t->master_asleep = 0;
    t->workers_asleep = 0;
}

/* block while *addr == value (returns at once if it changed); wake waiters */
static inline void fsg_futex_wait(int32_t *addr, int32_t value) {
#if defined(__linux__)
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
#else
    struct timespec ts = {0, 20000};  /* no futex: a short sleep, then re-check */
    (void)addr;
    (void)value;
    nanosleep(&ts, NULL);
#endif
}

static inline void fsg_futex_wake(int32_t *addr, int n) {
#if defined(__linux__)
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
#else
    (void)addr;
    (void)n;
#endif
}

static inline int fsg_team_has_work(fsg_team *t) {
    uint64_t c = __atomic_load_n(&t->claim, __ATOMIC_ACQUIRE);
    return ((c >> 24) & 0xffffff) < (c & 0xffffff);
}

/* master: open a phase of n items (n <= FSG_TEAM_MAX_ITEMS).  Descriptors
 * of the phase must be written before this call. */
static inline void fsg_team_publish(fsg_team *t, int64_t n) {
    uint64_t phase = ((__atomic_load_n(&t->claim, __ATOMIC_RELAXED) >> 48) + 1) & 0xffff;
    __atomic_store_n(&t->done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&t->claim, FSG_CLAIM(phase, 0, n), __ATOMIC_RELEASE);
    __atomic_fetch_add(&t->seq, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&t->workers_asleep, __ATOMIC_SEQ_CST) > 0)
        fsg_futex_wake(&t->seq, INT_MAX);
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
    __atomic_fetch_add(&t->done, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&t->master_asleep, __ATOMIC_SEQ_CST))
        fsg_futex_wake(&t->done, 1);
}

/* master: wait until all n items of the phase are finished */
static inline void fsg_team_wait(fsg_team *t, int64_t n) {
    int spins = 0;
    for (;;) {
        int32_t done = __atomic_load_n(&t->done, __ATOMIC_ACQUIRE);
        if (done >= n) return;
        if (spins++ < fsg_spin_limit) {
            FSG_CPU_RELAX();
            continue;
        }
        __atomic_add_fetch(&fsg_team_master_sleeps, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&t->master_asleep, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&t->done, __ATOMIC_SEQ_CST) == done) fsg_futex_wait(&t->done, done);
        __atomic_store_n(&t->master_asleep, 0, __ATOMIC_SEQ_CST);
    }
}

/* worker: wait until an item can be claimed (returns 1) or the epoch is
 * over (returns 0) */
static inline int fsg_team_wait_work(fsg_team *t) {
    int spins = 0;
    for (;;) {
        int32_t seq = __atomic_load_n(&t->seq, __ATOMIC_ACQUIRE);
        if (fsg_team_has_work(t)) return 1;
        if (__atomic_load_n(&t->exit, __ATOMIC_ACQUIRE)) return 0;
        if (spins++ < fsg_spin_limit) {
            FSG_CPU_RELAX();
            continue;
        }
        __atomic_add_fetch(&fsg_team_worker_sleeps, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&t->workers_asleep, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&t->seq, __ATOMIC_SEQ_CST) == seq) fsg_futex_wait(&t->seq, seq);
        __atomic_fetch_sub(&t->workers_asleep, 1, __ATOMIC_SEQ_CST);
        spins = 0;
    }
}

static inline void fsg_team_finish(fsg_team *t) {
    __atomic_store_n(&t->exit, 1, __ATOMIC_RELEASE);
    __atomic_fetch_add(&t->seq, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&t->workers_asleep, __ATOMIC_SEQ_CST) > 0)
        fsg_futex_wake(&t->seq, INT_MAX);
}

/* the id of the phase last published (fsg_team_publish opens id + 1,
 * modulo 2^16); any thread may ask, the master to name the next one */
static inline int32_t fsg_team_phase_id(fsg_team *t) {
    return (int32_t)(__atomic_load_n(&t->claim, __ATOMIC_ACQUIRE) >> 48);
}

static inline int32_t fsg_team_next_phase_id(fsg_team *t) {
    return (fsg_team_phase_id(t) + 1) & 0xffff;
}

/* master: have all n items of the open phase finished? */
static inline int fsg_team_all_done(fsg_team *t, int64_t n) {
    return __atomic_load_n(&t->done, __ATOMIC_ACQUIRE) >= n;
}

/* Hand-off slots: one piece of work that either of two phases may do (the
 * next gather of a column block: the idle tail of phase 2, or else the
 * gather phase after it), done exactly once.  A slot holds key << 2 |
 * state, the key being the id of the phase that offered it, the state
 * 0 (free), 1 (being done) or 2 (done).  A thread holding a stale key can
 * never claim a slot offered again under a newer one.  The master offers
 * (release) after writing what the work reads, so a successful claim
 * (acquire) sees it; done (release) publishes the work to whoever waits.
 * A key of -1 matches nothing: slots at rest. */
#define FSG_SLOT(key, state) ((int32_t)(((key) << 2) | (state)))

static inline void fsg_slot_offer(int32_t *slot, int32_t key) {
    __atomic_store_n(slot, FSG_SLOT(key, 0), __ATOMIC_RELEASE);
}

static inline int fsg_slot_claim(int32_t *slot, int32_t key) {
    int32_t expected = FSG_SLOT(key, 0);
    return __atomic_compare_exchange_n(slot, &expected, FSG_SLOT(key, 1), 0,
                                       __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static inline void fsg_slot_done(int32_t *slot, int32_t key) {
    __atomic_store_n(slot, FSG_SLOT(key, 2), __ATOMIC_RELEASE);
}

/* A slot wait that outlasts this (past the spins) counts as a stall: the
 * thread doing the work lost its CPU.  The engine's master reads the
 * process-wide count as it reads its own long waits for a teammate
 * (crowding, fsg_wake.h); a wait inside a phase otherwise counted as work
 * and hid a descheduled teammate. */
#define FSG_SLOT_STALL_NS 1000000LL
static int64_t fsg_slot_stalls = 0;

static inline int64_t fsg_slot_clock_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline int64_t fsg_slot_stall_count(void) {
    return __atomic_load_n(&fsg_slot_stalls, __ATOMIC_RELAXED);
}

/* wait while another thread does the slot's work (microseconds; yield the
 * CPU after a while in case that thread has lost its own) */
static inline void fsg_slot_wait(int32_t *slot, int32_t key) {
    int spins = 0;
    int64_t yielding_since = -1;
    while (__atomic_load_n(slot, __ATOMIC_ACQUIRE) == FSG_SLOT(key, 1)) {
        if (spins++ < fsg_spin_limit) {
            FSG_CPU_RELAX();
        } else {
            if (yielding_since < 0) yielding_since = fsg_slot_clock_ns();
            sched_yield();
        }
    }
    if (yielding_since >= 0 && fsg_slot_clock_ns() - yielding_since > FSG_SLOT_STALL_NS)
        __atomic_add_fetch(&fsg_slot_stalls, 1, __ATOMIC_RELAXED);
}

/* a mark a thread sets (release) when it has finished a piece of the phase
 * `key`, and others test (acquire) before touching what that piece read */
static inline void fsg_mark_set(int32_t *mark, int32_t key) {
    __atomic_store_n(mark, key, __ATOMIC_RELEASE);
}

static inline int fsg_mark_is(int32_t *mark, int32_t key) {
    return __atomic_load_n(mark, __ATOMIC_ACQUIRE) == key;
}

static inline void fsg_count_add(int64_t *counter, int64_t v) {
    __atomic_fetch_add(counter, v, __ATOMIC_RELAXED);
}

static inline void fsg_store_relaxed(int32_t *x, int32_t v) {
    __atomic_store_n(x, v, __ATOMIC_RELAXED);
}

static inline int32_t fsg_load_relaxed(int32_t *x) {
    return __atomic_load_n(x, __ATOMIC_RELAXED);
}

/* a flag any thread may raise during a phase (bad input seen); the master
 * reads it once the phase is over, after fsg_team_wait's acquire */
static inline void fsg_flag_raise(int32_t *flag) {
    __atomic_store_n(flag, 1, __ATOMIC_RELAXED);
}

static inline int32_t fsg_flag_raised(int32_t *flag) {
    return __atomic_load_n(flag, __ATOMIC_RELAXED);
}

#endif /* FSG_TEAM_H */
