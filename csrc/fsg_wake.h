/* fsg_wake.h — whether a short piece of work is worth waking the team for.
 *
 * An OpenMP parallel region ends with a barrier that waits for every
 * thread of the team, including one that has not even started yet.  On a
 * virtual machine a vCPU that has idled for a while can take milliseconds
 * to run again: measured on this project's 2-vCPU build machine, a 2-thread
 * region of 10 us of work took 35-50 us after a 10 ms pause and 5.8 ms after
 * a 50 ms pause (1 thread: 40-55 us).  An online-learning stream of 32-row
 * partial_fit calls 100 ms apart paid 7.9 ms per call with 2 threads
 * against 0.25 ms with 1, and a 5,000-row prediction 100 ms after the last
 * one took 12.6 ms with 2 threads against 7.1 ms with 1 (4.7 ms with 2
 * when the calls follow each other).
 *
 * So each region records how long its last thread took to arrive when the
 * team had been idle, and a caller whose work would be over before a team
 * that slow arrived runs it on the calling thread alone.  Every
 * FSG_WAKE_RECHECK such decisions the team is woken anyway, to measure
 * again (the machine may have become quiet).  Who computes an item never
 * changes its result, so this changes speed only.
 *
 * Process-wide state (the team is the process's OpenMP pool), read and
 * written with relaxed atomics: concurrent callers may race, and the worst
 * a race does is one stale decision.
 */
#ifndef FSG_WAKE_H
#define FSG_WAKE_H

#include <stdint.h>
#include <time.h>

#include "fsg_clock.h"
#if defined(__linux__)
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#endif

/* after this long without a team region the team may be asleep */
#define FSG_WAKE_IDLE_NS 1000000LL
/* every this many solo decisions, wake the team and measure again */
#define FSG_WAKE_RECHECK 64

typedef struct {
    int64_t last_end_ns;  /* when the last team region ended */
    int64_t wake_ns;      /* how late its last thread arrived after an idle gap
                           * (the smaller of the last two such arrivals) */
    int64_t solo_calls;   /* decisions to run alone (for tests and diagnostics) */
    int64_t team_calls;   /* team regions recorded */
    int64_t last_wake_ns; /* the last arrival itself */
} fsg_wake_state;

static fsg_wake_state fsg_wake = {0, 0, 0, 0, INT64_MAX};

/* caller, before a region of about solo_ns of work on one thread (0 or
 * less: unknown) for a team of n_threads: 1 = wake the team, 0 = run
 * alone.  The team saves solo_ns * (n - 1) / n at best; after an idle gap
 * it first costs about wake_ns (the whole region was measured that much
 * slower, not only its last thread). */
/* ---- crowding ------------------------------------------------------------
 *
 * When other runnable threads (another process, or other threads of this
 * one) share the cores, a team is slower than one thread: the scheduler
 * takes turns between them every few milliseconds, and each thread of the
 * team that is off its core holds the others up.  Measured on the 2-vCPU
 * build machine with one busy process beside a fit: batch 8 float32 trained
 * at 121-143k rows/s with 2 threads against 251-260k with 1; batch 1 at 50k
 * against 103k.
 *
 * The sign is the time the master thread spends runnable but waiting for a
 * CPU (Linux: /proc/thread-self/schedstat): 0.02% of a busy loop's time on
 * the quiet machine, 40% with two busy processes on the two vCPUs.  (The
 * process's involuntary context switches, tried first, were 20/s quiet but
 * only 200-300/s with two busy processes: too close.)  Over at least
 * FSG_CROWD_WINDOW_NS of team time, a wait above FSG_CROWD_WAIT_PERCENT of
 * it -- or two waits for a teammate's item of more than a millisecond (the
 * engine's stall check) -- makes every team call of the process run alone
 * for a while: FSG_CROWD_FIRST_NS, doubled each time the team is tried
 * again too soon, up to FSG_CROWD_MAX_NS.  Who computes an item never
 * changes its result, so this changes speed only. */
#define FSG_CROWD_WINDOW_NS 20000000LL
#define FSG_CROWD_WAIT_PERCENT 10
#define FSG_CROWD_FIRST_NS 250000000LL
/* ... but a period begun while the runnable count shows no crowd (the host
 * took a vCPU for a moment, seen only as stalls) starts at this, doubled
 * the same way: such a moment cost a whole 2-thread fit its team (250 ms
 * alone; float64 batch 256, 0.38 s a fit against 0.21 with the team, while
 * scikit-learn and PyTorch beside it ran at their usual speed) */
#define FSG_CROWD_FIRST_UNSEEN_NS 25000000LL
#define FSG_CROWD_MAX_NS 4000000000LL
/* ... and doubles only up to this.  The guest cannot see such a crowd
 * leave, and the commonest one is no crowd: a helper woken on an idle vCPU
 * waits runnable while the host brings the vCPU back, and that wait reads
 * as CPU wait.  Doubling to 4 s, one bench run (2026-12-05 06:05 UTC) ran
 * float32 groups of 2 threads 37-96% alone, periods lasting from one group
 * into the next (batch 1024 at 1.07x its 1-thread speed, the full batch
 * 0.99x), while scikit-learn and PyTorch gained 1.3-1.9x beside them. */
#define FSG_CROWD_MAX_UNSEEN_NS 100000000LL
/* how often, and how many times in a row, free cores must be seen to end a
 * period early (see "the end of a crowded period" below) */
#define FSG_CROWD_POLL_NS 5000000LL
#define FSG_CROWD_FREE_POLLS 3
#define FSG_CROWD_START_FREE_POLLS 1
#define FSG_CROWD_START_POLL_NS 1000000LL

typedef struct {
    int64_t until_ns;       /* team calls run alone until then */
    int64_t backoff_ns;     /* the length of the last crowded period */
    int64_t window_ns;      /* team time since the last verdict */
    int64_t window_wait_ns; /* ... of which the master waited for a CPU */
    int64_t episodes;       /* crowded periods begun (tests, diagnostics) */
    int64_t verdict_window_ns;  /* the window of the last wait verdict that */
    int64_t verdict_wait_ns;    /* found a crowd, and its wait (diagnostics) */
    int64_t next_poll_ns;   /* when the master next looks for free cores */
    int64_t free_polls;     /* ... and how many looks in a row found them */
    int64_t free_needed;    /* ... and how many end this period (0: none) */
    int64_t early_ends;     /* periods ended by free cores (tests, diagnostics) */
    int64_t start_looks;    /* periods begun by a look at a call's start (same) */
    int64_t looks;          /* looks made in this period */
    int64_t started;        /* 1: this period was begun by a start look */
    int64_t blips;          /* start-look periods the first look ended (same):
                             * a moment's runnable thread, not a crowd */
    int64_t unseen;         /* periods begun with no crowd in the runnable
                             * count (fsg_crowd_begin; diagnostics) */
} fsg_crowd_state;

static fsg_crowd_state fsg_crowd = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

#if defined(__linux__)
/* a small /proc file's text into buf (NUL-terminated); 0 if unreadable */
static inline int fsg_read_proc(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    return 1;
}
#endif

/* ns the calling thread has so far spent runnable but waiting for a CPU;
 * -1 where unknown (then only stalls can find a crowd) */
static inline int64_t fsg_cpu_wait_ns(void) {
#if defined(__linux__)
    char buf[96];
    if (!fsg_read_proc("/proc/thread-self/schedstat", buf, sizeof buf)) return -1;
    char *end;
    strtoll(buf, &end, 10);                   /* time on the CPU */
    long long wait = strtoll(end, &end, 10);  /* time waiting for one */
    return (int64_t)wait;
#else
    return -1;
#endif
}

static inline int fsg_crowded(int64_t now) {
    return now < __atomic_load_n(&fsg_crowd.until_ns, __ATOMIC_RELAXED);
}

/* a crowded period begins as of `now`, unless one lasts: `first` long, or
 * twice the last one (at most `most`) if that ended less than twice its
 * length ago; 1 if it began */
static inline int fsg_crowd_open(int64_t now, int64_t first, int64_t most) {
    int64_t until = __atomic_load_n(&fsg_crowd.until_ns, __ATOMIC_RELAXED);
    int64_t backoff = __atomic_load_n(&fsg_crowd.backoff_ns, __ATOMIC_RELAXED);
    if (now < until) return 0;
    /* crowded again soon after the last period ended: twice as long */
    backoff = (backoff > 0 && now - until < 2 * backoff)
                  ? (2 * backoff < most ? 2 * backoff : most)
                  : first;
    __atomic_store_n(&fsg_crowd.backoff_ns, backoff, __ATOMIC_RELAXED);
    __atomic_store_n(&fsg_crowd.until_ns, now + backoff, __ATOMIC_RELAXED);
    __atomic_store_n(&fsg_crowd.window_ns, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&fsg_crowd.window_wait_ns, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&fsg_crowd.next_poll_ns, now + FSG_CROWD_POLL_NS, __ATOMIC_RELAXED);
    __atomic_store_n(&fsg_crowd.free_polls, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&fsg_crowd.looks, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&fsg_crowd.started, 0, __ATOMIC_RELAXED);
    return 1;
}

/* ---- the end of a crowded period ---------------------------------------
 *
 * A crowd often leaves well before its period is over.  The commonest one
 * lives in the process itself: after every multi-threaded product,
 * OpenBLAS's idle workers spin for about 2**28 cycles, and the fit's BLAS
 * limit of one thread does not stop them (measured: 2 threads runnable for
 * ~100 ms after a 1500x1500 numpy product on this 2-vCPU machine, then 1).
 * A fit started right after a PCA or a matmul found that crowd, ran alone
 * for 250 ms, and trained at 21-35k rows/s instead of 38-52k (float64,
 * batch 1, 2,000 rows).  So while the team runs alone, the master looks
 * every FSG_CROWD_POLL_NS at how many threads the system has runnable
 * (/proc/loadavg, itself included); FSG_CROWD_FREE_POLLS looks in a row
 * with room for the rest of the team end the period.  Where that count
 * covers more than this machine (a container seeing its host) there is
 * rarely room, and the period runs its course as before; so does a period
 * begun when the count showed no crowd (fsg_crowd_begin).  The back-off is
 * kept: a crowd back soon after still doubles the next period.
 *
 * The same count, read as a team call starts after the team has idled,
 * finds such a crowd before the team meets it: no room then begins a
 * period at once.  One look is weak evidence -- on the quiet build machine
 * 1.7% of looks saw a second runnable thread, kernel work of up to ~2 ms
 * some 30 times a second -- so a single look with room ends such a period
 * (FSG_CROWD_START_FREE_POLLS), and the first is made after 1 ms
 * (FSG_CROWD_START_POLL_NS), not 5: a false alarm costs 1 ms alone, where
 * it cost 5 ms in 3 of 40 float32 batch-32 fits (59.5 ms median; those
 * took 61-69).  Only
 * after FSG_CROWD_LOOK_IDLE_NS: our own OpenMP threads spin for ~7.5 ms
 * after a region (measured) and would count as a crowd. */
#define FSG_CROWD_LOOK_IDLE_NS 10000000LL

/* CPUs the process may use (affinity and cgroup quota), noted by the
 * engine before each fit; 0 = unknown: no looks, periods run their course */
static int fsg_usable_cpus = 0;

/* tests: >= 0 replaces the runnable count read from /proc/loadavg */
static int fsg_runnable_override = -1;

/* threads runnable in the whole system now, the caller included; -1 where
 * unknown (then a period always runs its course) */
static inline int fsg_runnable_now(void) {
    if (fsg_runnable_override >= 0) return fsg_runnable_override;
#if defined(__linux__)
    char buf[128];
    if (!fsg_read_proc("/proc/loadavg", buf, sizeof buf)) return -1;
    /* "0.25 0.73 0.90 1/85 16702": the fourth field is running/total */
    char *p = buf;
    for (int field = 0; field < 3; field++) {
        while (*p && *p != ' ') p++;
        while (*p == ' ') p++;
    }
    char *end;
    long running = strtol(p, &end, 10);
    return (end != p && *end == '/') ? (int)running : -1;
#else
    return -1;
#endif
}

/* the team is crowded out as of `now`: run alone for a while.  Only a
 * crowd the runnable count shows (more runnable threads than cores, the
 * team's own included) can be seen to leave: a period begun without one
 * (a host taking the vCPUs, which the guest sees only as stalls) runs its
 * course, as looks would find "room" at once and the team would meet the
 * crowd again every few ms.  Such a period starts short
 * (FSG_CROWD_FIRST_UNSEEN_NS) and doubles while the host stays busy, up
 * to FSG_CROWD_MAX_UNSEEN_NS. */
static inline void fsg_crowd_begin(int64_t now) {
    int runnable = fsg_usable_cpus > 0 ? fsg_runnable_now() : -1;
    int unseen = runnable >= 0 && runnable <= fsg_usable_cpus;
    if (!fsg_crowd_open(now, unseen ? FSG_CROWD_FIRST_UNSEEN_NS : FSG_CROWD_FIRST_NS,
                        unseen ? FSG_CROWD_MAX_UNSEEN_NS : FSG_CROWD_MAX_NS))
        return;
    __atomic_store_n(&fsg_crowd.free_needed,
                     runnable > fsg_usable_cpus ? FSG_CROWD_FREE_POLLS : 0, __ATOMIC_RELAXED);
    __atomic_add_fetch(&fsg_crowd.episodes, 1, __ATOMIC_RELAXED);
    if (unseen) __atomic_add_fetch(&fsg_crowd.unseen, 1, __ATOMIC_RELAXED);
}

/* after team_ns of team time during which a thread of the team waited
 * wait_ns for a CPU; returns 1 when that makes it crowded.  A verdict
 * counts only while the runnable count shows the crowd (or cannot be
 * read).  A thread woken from a futex on an idle vCPU waits while the host
 * brings the vCPU back, and the guest counts that as waiting for a CPU:
 * the helper's and the master's such waits began crowded periods in most
 * 2-thread groups of bench runs with no other process busy (2026-12-05
 * 06:10-06:19 UTC; 14-17% of float32 and float64 batch-256 batches run
 * alone).  A host that keeps a teammate away is still caught by the
 * master's stalls (fsg_crowd_begin), and a slow one by adapt_team. */
static inline int fsg_crowd_record(int64_t team_ns, int64_t wait_ns, int64_t now) {
    int64_t w = __atomic_add_fetch(&fsg_crowd.window_ns, team_ns, __ATOMIC_RELAXED);
    int64_t q = __atomic_add_fetch(&fsg_crowd.window_wait_ns, wait_ns, __ATOMIC_RELAXED);
    if (w < FSG_CROWD_WINDOW_NS) return 0;
    __atomic_store_n(&fsg_crowd.window_ns, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&fsg_crowd.window_wait_ns, 0, __ATOMIC_RELAXED);
    if (q * 100 <= (int64_t)FSG_CROWD_WAIT_PERCENT * w) return 0;
    int runnable = fsg_usable_cpus > 0 ? fsg_runnable_now() : -1;
    if (runnable >= 0 && runnable <= fsg_usable_cpus) return 0;
    __atomic_store_n(&fsg_crowd.verdict_window_ns, w, __ATOMIC_RELAXED);
    __atomic_store_n(&fsg_crowd.verdict_wait_ns, q, __ATOMIC_RELAXED);
    fsg_crowd_begin(now);
    return 1;
}

/* one look, decided: `runnable` threads in the system (the caller among
 * them), a team of n_threads, n_cpus cores for it; returns 1 when this
 * look ends the crowded period */
static inline int fsg_crowd_look(int64_t now, int runnable, int n_threads, int n_cpus) {
    int64_t needed = __atomic_load_n(&fsg_crowd.free_needed, __ATOMIC_RELAXED);
    if (runnable < 0 || needed <= 0 || !fsg_crowded(now)) return 0;
    int64_t looks = __atomic_add_fetch(&fsg_crowd.looks, 1, __ATOMIC_RELAXED);
    if (runnable - 1 + n_threads > n_cpus) {
        __atomic_store_n(&fsg_crowd.free_polls, 0, __ATOMIC_RELAXED);
        return 0;
    }
    if (__atomic_add_fetch(&fsg_crowd.free_polls, 1, __ATOMIC_RELAXED) < needed) return 0;
    __atomic_store_n(&fsg_crowd.until_ns, now, __ATOMIC_RELAXED);
    __atomic_store_n(&fsg_crowd.free_polls, 0, __ATOMIC_RELAXED);
    __atomic_add_fetch(&fsg_crowd.early_ends, 1, __ATOMIC_RELAXED);
    if (looks == 1 && __atomic_load_n(&fsg_crowd.started, __ATOMIC_RELAXED))
        __atomic_add_fetch(&fsg_crowd.blips, 1, __ATOMIC_RELAXED);
    return 1;
}

/* a caller running alone in a crowded period: look for free cores when
 * it is time to; returns 1 when the period has just ended */
static inline int fsg_crowd_poll(int64_t now, int n_threads) {
    if (fsg_usable_cpus <= 0 || !fsg_crowded(now)
        || now < __atomic_load_n(&fsg_crowd.next_poll_ns, __ATOMIC_RELAXED))
        return 0;
    __atomic_store_n(&fsg_crowd.next_poll_ns, now + FSG_CROWD_POLL_NS, __ATOMIC_RELAXED);
    return fsg_crowd_look(now, fsg_runnable_now(), n_threads, fsg_usable_cpus);
}

/* a team call of n_threads about to start: after an idle team, no room for
 * it in the system right now begins a crowded period; returns 1 if so */
static inline int fsg_crowd_start_look(int64_t now, int n_threads) {
    if (fsg_usable_cpus <= 0 || n_threads < 2 || fsg_crowded(now)
        || now - __atomic_load_n(&fsg_wake.last_end_ns, __ATOMIC_RELAXED) < FSG_CROWD_LOOK_IDLE_NS)
        return 0;
    int runnable = fsg_runnable_now();
    if (runnable < 0 || runnable - 1 + n_threads <= fsg_usable_cpus) return 0;
    if (fsg_crowd_open(now, FSG_CROWD_FIRST_NS, FSG_CROWD_MAX_NS)) {
        __atomic_store_n(&fsg_crowd.free_needed, FSG_CROWD_START_FREE_POLLS, __ATOMIC_RELAXED);
        __atomic_store_n(&fsg_crowd.next_poll_ns, now + FSG_CROWD_START_POLL_NS,
                         __ATOMIC_RELAXED);
        __atomic_store_n(&fsg_crowd.started, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&fsg_crowd.start_looks, 1, __ATOMIC_RELAXED);
    }
    return 1;
}

static inline int fsg_wake_worth(int64_t now, int64_t solo_ns, int n_threads) {
    if (n_threads >= 2 && fsg_crowded(now) && !fsg_crowd_poll(now, n_threads)) {
        __atomic_add_fetch(&fsg_wake.solo_calls, 1, __ATOMIC_RELAXED);
        return 0;
    }
    int64_t last_end = __atomic_load_n(&fsg_wake.last_end_ns, __ATOMIC_RELAXED);
    int64_t wake = __atomic_load_n(&fsg_wake.wake_ns, __ATOMIC_RELAXED);
    if (solo_ns <= 0 || n_threads < 2 || now - last_end < FSG_WAKE_IDLE_NS
        || solo_ns / n_threads * (n_threads - 1) >= wake)
        return 1;
    int64_t n = __atomic_add_fetch(&fsg_wake.solo_calls, 1, __ATOMIC_RELAXED);
    return n % FSG_WAKE_RECHECK == 0;
}

/* a thread other than the caller, on entering the region: note its arrival
 * (the latest of all arrivals is kept) */
static inline void fsg_wake_arrived(int64_t *latest) {
    int64_t t = fsg_now_ns();
    int64_t seen = __atomic_load_n(latest, __ATOMIC_RELAXED);
    while (seen < t && !__atomic_compare_exchange_n(latest, &seen, t, 1, __ATOMIC_RELAXED,
                                                    __ATOMIC_RELAXED)) {
    }
}

/* caller, after a team region that began at `start` and whose threads
 * arrived by `latest` (0: none came) */
static inline void fsg_wake_team_done(int64_t start, int64_t latest) {
    int64_t end = fsg_now_ns();
    int64_t last_end = __atomic_load_n(&fsg_wake.last_end_ns, __ATOMIC_RELAXED);
    if (start - last_end >= FSG_WAKE_IDLE_NS) {
        /* one late arrival (the host holding the helper's vCPU for tens of
         * ms) must not send the next FSG_WAKE_RECHECK calls alone: a
         * 100 ms sample ran float32 batch-1024 epochs at 245k rows/s, not
         * 432k; two in a row are believed */
        int64_t sample = (latest > start ? latest : end) - start;
        int64_t before = __atomic_load_n(&fsg_wake.last_wake_ns, __ATOMIC_RELAXED);
        __atomic_store_n(&fsg_wake.wake_ns, sample < before ? sample : before,
                         __ATOMIC_RELAXED);
        __atomic_store_n(&fsg_wake.last_wake_ns, sample, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&fsg_wake.last_end_ns, end, __ATOMIC_RELAXED);
    __atomic_add_fetch(&fsg_wake.team_calls, 1, __ATOMIC_RELAXED);
}

#endif /* FSG_WAKE_H */
