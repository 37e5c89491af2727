"""How busy the machine is while the bench measures: the matrix-product
probe (the machine limit, and a crowd's first sign), the pause before each
timed fit, other processes' CPU time, fastsgd's own crowd verdicts, and the
rule that says a group was crowded and is measured again."""

import math
import os
import statistics
import threading
import time


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
# within CROWDED_RETRY_SECONDS a section (dtype x threads; retries_that_fit);
# the calmest attempt is reported (calmest_attempt)
CROWDED_PROBE_SHARE = 0.8
# ... or during which other processes (and the host, stealing vCPU time)
# used more than this many cores beyond those the group leaves free (a
# neighbour between two probes went unseen before: a 2-thread group ran at
# 1.01x its 1-thread speed with calm probes)
CROWDED_OTHERS_CORES = 0.15
# ... or whose frameworks' fits were spread out: the median over the
# frameworks of each one's slowest fit over its fastest above this.  The
# host can take the vCPUs between the probes without other processes or
# steal time showing (a float32 batch-256 group, 23:24 UTC: every framework's
# five fits spread 1.43-1.56x, fastsgd at its 1-thread speed, probes calm;
# calm 1-thread groups of that run: 1.07-1.28x).  A median, so no single
# framework's spread (fastsgd's own included) decides.
CROWDED_FIT_SPREAD = 1.35
# ... or, with more threads than one, whose other frameworks lost the speed
# their own 1-thread group of the run had (peer_gains: each one's rows/s over
# its 1-thread rows/s at the same dtype and batch): any of them below
# CROWDED_PEER_FLOOR, or, from PEER_GAIN_MIN_BATCH rows a batch (where their
# BLAS splits the products over the cores), their geometric mean below
# CROWDED_PEER_GAIN.  The host can take a vCPU for minutes while the probe,
# one large product, still runs at its full rate: on 2026-12-05 (01:13-01:33
# UTC) four 2-thread groups at batch 128-256 ran scikit-learn and PyTorch at
# 0.91-1.13x their 1-thread speed, and fastsgd at 0.93-1.38x, with calm
# probes and no other sign; calm groups of five runs: 1.28-2.1x (geometric
# mean), and no framework below 0.85x at any batch.  Only the other
# frameworks count, so fastsgd's own speed cannot mark a group.
# ... or, with more threads than one, during which the host placed the
# vCPUs far apart: the median of the group's cache-line round trips between
# two threads (fastsgd._distance, 10 ms each round) above CORES_FAR_RATIO x
# the nearest this run has seen.  On 2026-12-05 it switched between ~65 ns
# and 330-390 ns for tens of seconds at a time (a test program with a
# falsely shared flag read 125-135 and 340-360), and float64 batch-128 fits
# on 2 threads took 0.22 s (median of 113) in the near stretches and 0.40 s
# (of 34) in the far ones, their 1-thread time; scikit-learn and PyTorch
# slowed alike, while the matmul probe lost only ~10 %.  A median: some
# stretches, a reading every ~2 s found the other vCPU gone for the whole
# 10 ms (a stall, not a placement).
CORES_FAR_RATIO = 1.8
# ... and above this.  Later the same day the near readings came in two
# levels, 61-69 ns and 100-170 ns, and the far ones at 320-390 and 550-850:
# with the nearest at ~60 ns the ratio alone marked nearly every 2-thread
# group far (06:59 UTC, float64: six of seven), and the retries went to
# groups whose peers had gained 1.2-1.6x (float64 batch 256 at 129 ns:
# scikit-learn 1.44x, PyTorch 1.62x its 1 thread) before one at 725 ns whose
# peers had lost (0.85x, 0.93x).  Float32 batch-1 fits on 2 threads took
# 18.5 ms at 64 ns, 20.6 at 149-164 ns and 28.7 at 322 ns.
CORES_FAR_MIN_NS = 250.0
DISTANCE_PROBE_SECONDS = 0.01
CROWDED_PEER_FLOOR = 0.8
CROWDED_PEER_GAIN = 1.15
PEER_GAIN_MIN_BATCH = 128
# (A budget of 8 a run went to the first sections: at 23:52 UTC the 1-thread
# float32 section took 5 retries and the 2-thread float64 one, the last,
# none for three crowded groups.  Then 3 groups a section, in batch order:
# batches 1, 8 and 32 took them, and crowded 2-thread groups at batch
# 128-1024 went unretried in six runs of 2026-12-05.  So a section has
# seconds of groups' wall time, and the shortest groups go first.  16 s
# (about what three groups took) left float32 and float64 batch 256 on 2
# threads unretried at 06:20 UTC, their peers at 0.9-1.5x their 1-thread
# speed: a 2-thread group takes 4-10 s (float64 batch 1: 18 s).  A run of
# 287-296 s had 14-15 s of retries in its 2-thread sections.)
CROWDED_RETRY_SECONDS = 24.0
# Of a group's attempts the one kept is where everything fastsgd does not
# control ran fastest: the other frameworks and the matrix-product probes
# (geometric mean of each one's rate against its best attempt).  Attempts
# within CALM_TIE of that are equally calm, and then the one with the
# fewest crowd signals wins.  (Kept by the signals first, a float32 batch-1
# group kept a second attempt with no signal at 71.2k rows/s, PyTorch 1.8k,
# over a first with one brief team step-aside at 106.2k, PyTorch 2.7k.)
# (At 3 %, a float32 batch-256 attempt whose others ran 1-7 % slower, and
# fastsgd at its 1-thread speed, won a near-tie over one with a single
# step-aside at 366.9k rows/s; 21:53 UTC.)
CALM_TIE = 0.01


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


def other_threads_running():
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
        running = other_threads_running()
        if running is None:
            time.sleep(max(0.0, SETTLE_SECONDS - (time.perf_counter() - start)))
            return
        quiet = quiet + 1 if running == 0 else 0
        if quiet >= 2:
            return
        time.sleep(SETTLE_LOOK_SECONDS)


def everyone_slowed(attempt, calm):
    """Did an attempt's crowd slow everything, not only fastsgd's team: its
    probes ran slow, the other frameworks lost their 2-thread gain, or the
    host placed the vCPUs far apart?"""
    return bool(attempt.get("peers_slowed") or attempt.get("cores_far")
                or attempt["matmul_gflops"] < CROWDED_PROBE_SHARE * calm)


def retries_that_fit(seconds, budget, slowed=None):
    """Which crowded groups to measure again: the indices of `seconds` (each
    group's last attempt, in wall seconds), those whose crowd slowed
    everyone first (`slowed`, see everyone_slowed), each kind shortest
    first, while their sum stays within `budget`.  (Shortest first alone,
    at 06:27 UTC, spent 24 s on groups with a step-aside or a spread of
    fits, and left float64 batch 128 and 256 on 2 threads unretried, their
    peers at 0.91-1.04x their 1-thread speed.)"""
    slowed = slowed or [False] * len(seconds)
    chosen = []
    for i in sorted(range(len(seconds)), key=lambda i: (not slowed[i], seconds[i])):
        if seconds[i] <= budget:
            budget -= seconds[i]
            chosen.append(i)
    return chosen


def calm_gflops(calm, dtype, threads, physical_cores=None):
    """The calm matrix-product rate for (dtype, threads) so far: the best
    probe median this run has seen for it, or, when the threads have a
    physical core each, 0.9 x threads x the 1-thread one if higher (a
    section that starts crowded must not set the bar)."""
    best = calm.get((dtype, threads), 0.0)
    if threads > 1 and (dtype, 1) in calm and (physical_cores or 0) >= threads:
        best = max(best, 0.9 * threads * calm[(dtype, 1)])
    return best


def fit_spread(frameworks):
    """The median over the frameworks of each one's slowest timed fit over
    its fastest (None without two fits of any)."""
    spreads = [max(fw["seconds_all"]) / min(fw["seconds_all"])
               for fw in frameworks.values()
               if len(fw.get("seconds_all") or ()) > 1 and min(fw["seconds_all"]) > 0]
    return statistics.median(spreads) if spreads else None


def peer_gains(frameworks, one_thread, own="fastsgd"):
    """Each other framework's rows/s in this group over its rows/s in
    `one_thread` (the run's 1-thread group of the same dtype and batch; both
    {name: {"rows_per_s": ...}}); empty when that group is missing."""
    gains = {}
    for name, fw in frameworks.items():
        base = (one_thread or {}).get(name, {}).get("rows_per_s")
        if name != own and base and fw.get("rows_per_s"):
            gains[name] = fw["rows_per_s"] / base
    return gains


def peers_lost_a_core(gains, batch):
    """Did the other frameworks run as if the group had lost a core (see
    CROWDED_PEER_FLOOR)?"""
    if not gains:
        return False
    if min(gains.values()) < CROWDED_PEER_FLOOR:
        return True
    return (batch >= PEER_GAIN_MIN_BATCH
            and statistics.geometric_mean(gains.values()) < CROWDED_PEER_GAIN)


def cores_far_apart(round_trips, nearest):
    """Was the median of a group's cache-line round trips (ns) above
    CORES_FAR_RATIO times the nearest one of the run, and above
    CORES_FAR_MIN_NS?"""
    if not round_trips or not nearest:
        return False
    median = statistics.median(round_trips)
    return median > CORES_FAR_RATIO * nearest and median > CORES_FAR_MIN_NS


def group_was_crowded(gflops, calm, team_crowded, others=None, free_cores=0, spread=None,
                      peers_slowed=False, far=False):
    """Did other processes crowd the machine during a group?  Its probes ran
    slow, fastsgd's team stepped aside, others used more cores than the
    group left free, the frameworks' fits were spread out (fit_spread), the
    other frameworks ran as if a core was gone (peers_lost_a_core), or the
    host placed the vCPUs far apart (cores_far_apart)."""
    return (team_crowded > 0 or gflops < CROWDED_PROBE_SHARE * calm
            or (others is not None and others > free_cores + CROWDED_OTHERS_CORES)
            or (spread is not None and spread > CROWDED_FIT_SPREAD)
            or peers_slowed or far)


def calmest_attempt(attempts, own="fastsgd"):
    """The attempt of a group to report (see CALM_TIE).  Each attempt has
    "matmul_gflops", "frameworks" ({name: {"rows_per_s": ...}}), "crowded",
    "crowded_periods" and "others_cores"; `own` is the framework whose
    speed must not choose."""
    def rates(a):
        out = {name: fw.get("rows_per_s") for name, fw in a["frameworks"].items()
               if name != own}
        out["matmul probe"] = a["matmul_gflops"]
        return out
    per_attempt = [rates(a) for a in attempts]
    keys = [k for k in per_attempt[0] if all(r.get(k) for r in per_attempt)]
    best = {k: max(r[k] for r in per_attempt) for k in keys}

    def score(r):
        return (sum(math.log(r[k] / best[k]) for k in keys) / len(keys)) if keys else 0.0
    scores = [score(r) for r in per_attempt]
    top = max(scores)
    tied = [i for i, sc in enumerate(scores) if sc >= top + math.log(1.0 - CALM_TIE)]
    kept = min(tied, key=lambda i: (attempts[i]["crowded"], attempts[i]["crowded_periods"],
                                    attempts[i].get("others_cores") or 0.0, -scores[i]))
    return attempts[kept]


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


def crowded_periods():
    """Crowded periods the engine has begun in this process (fsg_wake.h):
    by the team's waits, or by a look at a call's start that found no room
    for the team among the system's runnable threads -- unless the next
    look, 1 ms on, found room (a blip: the team lost 1 ms, and such blips
    marked most groups of a busy run crowded); and the stretches large
    batches ran without the team because the master waited too long for
    it (a float32 batch-256 group ran all its fits at the 1-thread speed
    with no other sign, while the other frameworks used both cores)."""
    from fastsgd import _engine
    stats = _engine.crowd_stats()
    return (stats["episodes"] + stats["start_looks"] - stats["blips"]
            + stats["solo_stretches"])


def engine_counters():
    """fastsgd's engine counters now (see engine_change)."""
    from fastsgd import _engine
    wake = _engine.wake_stats()
    crowd = _engine.crowd_stats()
    counts = _engine.team_counts()
    counts.update(wake_solo_calls=wake["solo_calls"], wake_team_calls=wake["team_calls"],
                  stalls=crowd["stalls"], solo_stretches=crowd["solo_stretches"],
                  crowd_episodes=crowd["episodes"], start_looks=crowd["start_looks"],
                  blips=crowd["blips"], helper_verdicts=crowd["helper_verdicts"],
                  early_ends=crowd["early_ends"], unseen_episodes=crowd["unseen"],
                  crowded_now=crowd["crowded_now"], backoff_ms=crowd["backoff_ms"])
    return counts


def engine_change(before, after):
    """What fastsgd's engine did between two engine_counters(): items of
    team phases its master and its helpers ran (a 2-thread fit whose helper
    ran none ran at 1-thread speed), batches trained and run alone, waits
    that blocked in the kernel, calls the wake guard ran alone or with the
    team (fsg_wake.h), slot stalls and adapt_team's solo stretches; whether
    a crowded period (fsg_wake.h) lasted as it began, and the length of the
    last one as it ended.  The record a group keeps, so that a group at
    1-thread speed with no crowd sign can be told apart afterwards."""
    change = {k: after[k] - before[k] for k in after
              if k not in ("crowded_now", "backoff_ms")}
    change["crowded_at_start"] = before["crowded_now"]
    change["backoff_ms_at_end"] = after["backoff_ms"]
    items = change["master_items"] + change["helper_items"]
    change["helper_share"] = change["helper_items"] / items if items else None
    return change
