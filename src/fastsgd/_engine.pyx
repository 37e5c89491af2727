# The fastsgd training engine: whole epochs of mini-batch SGD on a
# multi-layer perceptron, run without the GIL.
#
# Design decisions (DESIGN.md has the why):
#
# (a) Python decides, the engine executes.  The estimator draws every random
#     number (weights, the row order of each epoch, the validation split) and
#     owns the schedules; the engine is a deterministic function of
#     (parameters, velocities, data, row order, hyper-parameters).
# (b) One flat parameter slab, laid out [W0, ..., W(L-1), b0, ..., b(L-1)]
#     (scikit-learn's coefs_ + intercepts_ order); velocities share the
#     layout.  Offsets come from the estimator (fastsgd._params).
# (c) One batch = two phases:
#       phase 1, per slice of the batch's rows: gather the rows, forward
#         through every layer, output loss and delta, deltas back through the
#         hidden layers.  Rows are independent, so slices need no reduction.
#       phase 2, per task = a block of rows of one weight matrix (or the
#         intercepts of one layer): its gradient A[i][:, rows]^T @ delta[i]
#         and the momentum update of exactly those weights.
#     Large batches (> accumulate_rows) form the gradients in phase 1
#     instead: each slice, while its inputs and deltas are in cache, adds
#     A^T @ delta into the buffer of its group (an even number of groups of
#     consecutive slices are phase 1's items), and phase 2 sums the groups'
#     buffers in order before the update.  No second pass over the batch.
#     The slices and tasks depend on the batch size and the network only,
#     never on the thread count, and every reduction (loss, ||W||^2, partial
#     products) is summed in a fixed order, so results are bitwise identical
#     for any n_threads.
# (d) Threads: one OpenMP region per epoch.  The master runs the batch loop
#     and publishes each phase; every thread claims items (csrc/fsg_team.h),
#     so a thread that loses its core holds the others up by one item.  The
#     master runs alone when that is faster: small batches time the team
#     against the master alone now and then (adapt_probe), large ones watch
#     how long the master waits (adapt_team).
# (e) Small batches (<= split_rows) split phase 1 by weight blocks as well,
#     and phase 2 gathers the next batch's rows (each task its columns) and
#     starts its layer-0 forward on each block it has just updated.  At
#     B = 1 the rank-1 gradient is fused into the update, and so is the next
#     row's forward (csrc fsg_outer_update_next); elsewhere BLAS, which
#     measured faster.
# (f) Errors cross the nogil boundary as status codes / non-finite losses;
#     the estimator raises and restores its weights.  Ctrl-C is honoured
#     between batches.

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport isfinite
from libc.string cimport memcpy
from libc.stdint cimport int32_t, int64_t
from cpython.exc cimport PyErr_CheckSignals

import numpy as np

from fastsgd._blas cimport gemm
from fastsgd._kernels cimport (
    FSG_OUT_SQUARED, activation_backward, all_finite, bias_activation,
    accumulate, column_sum, fsg_kernel_isa, fsg_kernel_multiversioned, gather_finite,
    gather_rows,
    outer_update, outer_update_next, narrow_ok, output_forward, output_loss_delta, sgd_update,
    sgd_update_sum,
    small_matmul, small_matmul_bt, fsg_prefetch_rows, sum_blocks,
)
from fastsgd._openmp cimport (
    FSG_OPENMP_ENABLED, omp_get_max_threads, omp_get_num_procs,
    omp_get_thread_num,
)

cdef extern from *:
    """
    #define FSG_VECTOR_BYTES 64  /* the kernels' vector width (fsg_kernels.c) */
    """
    Py_ssize_t FSG_VECTOR_BYTES


# status codes of train_epoch
cpdef enum Status:
    STATUS_OK = 0
    STATUS_NONFINITE_LOSS = 1        # a batch loss was NaN or inf
    STATUS_ZERO_WEIGHT_BATCH = 2     # a batch's sample weights sum to 0
    STATUS_INTERRUPTED = 3           # Ctrl-C; the KeyboardInterrupt is re-raised
    STATUS_NONFINITE_X = 4           # check_x: a gathered row of X holds NaN or inf

# Tuning knobs.  They change speed, never the thread-independence of the
# results; some (small_rows, fused_rows, split_*, task_weights*, slice_rows)
# pick between exact formulas whose float rounding differs, by batch size
# only.  Benchmarks and tests change them through set_tuning().
cdef dict _TUNING = dict(
    slice_rows=512,          # phase 1: float32 rows per slice (at most; see
                             #     n_slices_for); float64 half as many, the
                             #     same bytes (784 features, full batch, 2
                             #     threads: 256 rows 331-351k rows/s, 512
                             #     312-329k; float32 512 as good or better)
    task_weights=8192,       # phase 2: weights per task (about), BLAS batches
    task_weights_small=8192, # ... on the weight-split small-batch path (64
                             #     rows of a 128-wide layer; 2 threads,
                             #     float64 against 32 rows, the old L1-sized
                             #     blocks: B=8 +4-6%, B=32 +1-4%, B=4 and
                             #     16 -1..+1.5%; float32's blocks unchanged)
    task_weights_one=16384,  # ... for batches of one row: fewer, larger
                             #     tasks (128 rows of a 128-wide layer), as
                             #     each claim costs a cache-line transfer
                             #     (2 threads: float32 +6% against 64 rows;
                             #     float64 +2-9% against 64 rows, -11%
                             #     with 256)
    taper_one=1,             # ... in blocks that shrink towards the middle,
                             #     which the team claims last (taper_rows):
                             #     the master's wait for its teammate's last
                             #     block, float64 2 threads, 1.84 -> 1.04 us
                             #     of a 23 us row
    task_weights_huge=32768, # ... batches of more than huge_rows rows: every
    huge_rows=128,           #     block re-reads the batch's deltas
    accumulate_rows=128,     # batches of more rows form the weight gradients
    max_groups=8,            #     per slice, summed in up to max_groups
                             #     buffers (see accumulate_slice) of at most
    group_mib=256,           #     group_mib MiB in all, else phase 2 products
    small_rows=1,            # products with up to this many rows skip BLAS
                             #     (so do a narrow layer's deltas back, up
                             #     to 64 rows: see matmul_bt)
    fused_rows=8,            # batches up to this many rows fuse the gradient
                             #     into the update (layers >= one vector wide);
                             #     on AMD Zen 4 (OpenBLAS's SkylakeX kernels
                             #     on double-pumped AVX-512) fusing beats gemm
                             #     + update by 4-33% (float32) and 9-53%
                             #     (float64) at B = 2..8, loses 6-9% (float32)
                             #     at 16; on the build machine of
                             #     2026-11-21 (CPU not recorded) it gained
                             #     nothing beyond B = 1
    split_rows=64,           # batches up to this many rows split phase 1 by
    split_min_weights=16384, #     weights, for layers with this many weights
    master_tail=1,           # ... and the master updates the small layers
                             #     and the intercepts itself, not the team
                             #     (their weights and deltas are in its
                             #     cache; 0: everyone claims every task).
                             #     2 threads, Zen 4: float64 B=1 +4-6%, B=8
                             #     +3%, B=32 +7%; float32 B=1 +1-7%, B=8
                             #     -2..0%
    reverse_last=1,          # ... and the last big layer's blocks are
                             #     listed from its end: the teammate, which
                             #     claims from the back, starts at the
                             #     layer's first rows, not beside the small
                             #     layers the master updates at that moment
                             #     (its prefetcher ran into their cache
                             #     lines: the master's 128x10 update took
                             #     1.4-2.0 us, not 0.4-0.6; float64 B=1,
                             #     2 threads)
    gather_early=1,          # ... the team gathers the next batch while
                             #     the master runs the small layers (0: the
                             #     update tasks gather it, each its columns)
    tail_gather=1,           # ... and a thread out of phase 2 tasks gathers
                             #     the batch after next into the blocks it
                             #     has finished with, for the gather phase
                             #     to skip (gather_tail; 0: never)
    ahead_hint=1,            # the batch after next is asked for a batch
                             #     ahead with this prefetch locality hint
                             #     (0-3; so are the rows of update_asks).
                             #     On Zen 4, alone: 32 scattered
                             #     784-float rows gathered ~100 us after
                             #     the ask took 7.1-8.1 us with 3
                             #     (prefetcht0), 4.2-4.6 with 1 or 2, 12-14
                             #     never asked.  In the engine, 2 threads,
                             #     1 against 3: float64 B=32 +2.8/+3.3%,
                             #     float32 B=32 -0.9/-0.6/+0.7%, B=8
                             #     -1.0/-1.1%, B=1 +1.5/+1.1% (noise)
    update_asks=1,           # large batches (gradient groups): the first
                             #     layer's update asks for the next batch's
                             #     rows as it goes (update_accumulated; 0:
                             #     phase 1 gathers them cold)
    gather_ahead=4,          # whole-row gathers (large batches, and any
                             #     batch alone) ask for the row this many
                             #     rows on while copying one (0: none)
    sum_rows=4,              # ... their products (sums of the blocks'
                             #     partials) are summed in row chunks of
                             #     this many rows, shared by the team
    parallel_min_work=1 << 15,  # rows * parameters below which 1 thread runs
    predict_rows=128,        # rows per prediction slice
    signal_every=256,        # batches between Ctrl-C checks
    solo_wait_percent=25,    # master waiting > this % of its work: go solo
                             #     (0: after any wait; tests)
    probe_rows=64,           # batches up to this many rows measure team vs
                             #     alone (adapt_probe); 0: never
    hidden_rows=1 << 30,     # a network of one hidden layer trains batches of
                             #     hidden_min_rows+1 up to this many rows split
                             #     by hidden units (train_batch_hidden; 0: never)
    hidden_min_rows=31,      # ... (float32 B=32, 2 threads, vCPUs near: 328.1k
                             #     rows/s against 333.4k for the small-batch
                             #     split, far apart 251-282k against 209-220k;
                             #     B=24 291.0k against 314.7k near)
    hidden_width=64,         # ... in blocks of about this many units (equal,
                             #     whole vectors; 784-128-10 float64 1 thread
                             #     B=128, before the small products below:
                             #     32 units 82k rows/s, 64 units 93k)
    hidden_chunk_rows=256,   # ... and chunks of at most this many float32
                             #     rows (float64 half as many, the same bytes;
                             #     float32 2 threads, against 128 rows: B=256
                             #     398.4k -> 405.2k rows/s, B=1024 436.6k ->
                             #     442.5k; 1 thread the same)
    hidden_grad_rows=32,     # ... and W1's gradient in products of this many
                             #     rows (32 x 64 x 256 fits the kernels below;
                             #     at 64 rows, 256-row chunks did not: float32
                             #     B=256 1 thread 189k against 227k for 128-
                             #     row chunks), and the forward in products of
    hidden_fwd_rows=16,      #     this many: OpenBLAS's SkylakeX build runs
                             #     products of M*N*K <= 1e6 in kernels that
                             #     pack nothing, and whole-chunk products
                             #     repacked the inputs for every block
                             #     (float64 B=128 1 thread: 85k rows/s whole,
                             #     102k with the gradient split, 113k with
                             #     both; the row split 100-104k)
    hidden_asks=1,           # ... and the gradient products ask for the rows
                             #     gathered next (0: never; float32 B=256
                             #     2 threads 343-347k -> 356-366k rows/s)
    hidden_reverse=1,        # ... odd blocks' gradient and update go through
                             #     W1's rows from the last (see hidden_item)
    hidden_merge=1,          # ... a batch's last phase also runs the next
                             #     batch's first forward (train_batch_hidden)
    hidden_private=8,        # ... on a team, epochs of at least this many
                             #     chunks of such batches move W1 and its
                             #     velocities into a copy per block (0:
                             #     never; see private_hidden_weights)
    hidden_any_blas=0,       # ... with any BLAS (0: only with OpenBLAS's
                             #     small-matrix kernels, fastsgd._threads.
                             #     blas_small_matrix_kernels: under
                             #     OPENBLAS_CORETYPE=Haswell the blocks ran
                             #     float32 B=256 1 thread at 111k rows/s,
                             #     whole products 184k, the row split 198k)
    spin_pauses=4000,        # a waiting thread's pauses before it blocks in
                             #     the kernel (fsg_team.h)
    wake_guard=1,            # short calls after an idle gap run alone when
                             #     the team would come too late (fsg_wake.h);
                             #     0: always wake the team
)


def get_tuning():
    """The engine's tuning knobs (a copy)."""
    return dict(_TUNING)


def set_tuning(**knobs):
    """Change tuning knobs (benchmarks use this to find crossovers)."""
    for key, value in knobs.items():
        if key not in _TUNING:
            raise KeyError(f"unknown tuning knob {key!r}")
        least = 0 if key in ("probe_rows", "wake_guard", "gather_early", "gather_ahead",
                            "tail_gather", "ahead_hint", "update_asks", "solo_wait_percent",
                            "master_tail", "taper_one", "reverse_last", "hidden_rows",
                            "hidden_asks", "hidden_any_blas", "spin_pauses", "hidden_reverse",
                            "hidden_merge", "hidden_private") else 1
        if int(value) < least:
            raise ValueError(f"tuning knob {key!r} must be >= {least}")
        if key == "ahead_hint" and int(value) > 3:
            raise ValueError("tuning knob 'ahead_hint' is a prefetch locality hint, 0 to 3")
        if key == "update_asks" and int(value) > 1:
            raise ValueError("tuning knob 'update_asks' is a switch, 0 or 1")
        _TUNING[key] = int(value)
        if key == "spin_pauses":
            global fsg_spin_limit
            fsg_spin_limit = int(value)


def build_info():
    """How the engine was built and what it runs on."""
    return {
        "openmp": bool(FSG_OPENMP_ENABLED),
        "openmp_max_threads": omp_get_max_threads(),
        "openmp_num_procs": omp_get_num_procs(),
        "kernel_isa": fsg_kernel_isa().decode(),
        "kernel_multiversioned": bool(fsg_kernel_multiversioned()),
    }


def openmp_max_threads():
    """omp_get_max_threads() of the engine's OpenMP runtime (honours
    OMP_NUM_THREADS and threadpoolctl limits)."""
    return omp_get_max_threads()


# Everything the nogil code needs to know about the network and the
# workspace: sizes, offsets into the parameter slab and into the workspace.
cdef struct Plan:
    Py_ssize_t n_layers          # L weight matrices
    int activation               # hidden activation (fsg_activation)
    int output                   # output activation + loss (fsg_output)
    int n_threads
    const Py_ssize_t *units      # L + 1 layer widths
    const Py_ssize_t *coef_off   # L offsets of W[i] in the slab
    const Py_ssize_t *icpt_off   # L offsets of b[i] in the slab
    Py_ssize_t n_params
    Py_ssize_t n_tasks           # phase 2 tasks
    const Py_ssize_t *task_layer
    const Py_ssize_t *task_row0  # -1: the intercepts of task_layer
    const Py_ssize_t *task_row1
    const Py_ssize_t *layer_first_task  # layer i's weight tasks are
    const Py_ssize_t *layer_n_tasks     # [first, first + n) of the table
    # workspace, in elements from its aligned base
    Py_ssize_t xb_off            # gathered batch inputs (B, F)
    Py_ssize_t xb2_off           # ... a second buffer: the next small batch
    Py_ssize_t yb_off            # gathered batch targets (B, K)
    Py_ssize_t sw_off            # gathered batch sample weights (B,)
    const Py_ssize_t *act_off    # hidden activations A[i] (B, units[i]), i=1..L-1
    const Py_ssize_t *delta_off  # deltas delta[i] (B, units[i+1]), i=0..L-1
    Py_ssize_t gbuf_off          # per-thread gradient blocks for phase 2
    Py_ssize_t gbuf_stride
    Py_ssize_t partial_off       # per-task partial products (small batches)
    Py_ssize_t group_off         # gradient buffers of the slice groups, each
    Py_ssize_t group_stride      #     laid out like the parameter slab
    Py_ssize_t group_count       # how many (0: batches never accumulate)
    double *slice_loss           # phase 1 results, one per slice
    double *task_sumsq           # phase 2 results, one per task
    Py_ssize_t slice_rows
    Py_ssize_t small_rows
    Py_ssize_t fused_rows
    Py_ssize_t split_rows
    Py_ssize_t split_min_weights
    Py_ssize_t sum_rows          # split batches: rows per PHASE_SUMS item
    Py_ssize_t parallel_min_work
    Py_ssize_t signal_every
    Py_ssize_t solo_wait_percent
    Py_ssize_t probe_rows
    Py_ssize_t accumulate_rows
    bint small_tail              # every layer after the first is below split_min_weights
    bint narrow_first            # one-row batches update the first layer with the
                                 #     narrow-layer kernel (csrc outer1_narrow)
    Py_ssize_t lead_tasks        # split batches: phase 2's team items, the weight
                                 #     tasks of the leading split layers (0: all)
    Py_ssize_t gather_ahead      # whole-row gathers ask for the row this many rows on
    int ahead_hint               # rows asked for ahead: prefetch locality hint
    bint update_asks             # large batches: the update asks for the next rows
    bint crowd_guard             # a crowded team runs solo (fsg_wake.h; knob wake_guard)
    bint check_x                 # gathers check X's values (see gather_x)
    int32_t *x_bad               # ... and raise this flag at NaN or inf
    bint tail_gather             # knob tail_gather (see gather_tail)
    int32_t *gather_slot         # per layer-0 task: hand-off of its columns' next
                                 #     gather (fsg_team.h slots; -1 at rest)
    int32_t *task_mark           # per layer-0 task: who finished it in which
                                 #     phase (mark_of; -1 at rest)
    # one hidden layer, batches of more than hidden_min_rows rows: split by
    # hidden units (train_batch_hidden); 0 blocks: never
    Py_ssize_t hidden_blocks     # blocks of hidden units (the items)
    Py_ssize_t hidden_width      # units per block (the last may be narrower)
    Py_ssize_t hidden_chunk      # rows per chunk of a batch, at most
    Py_ssize_t hidden_min_rows   # batches of more than this many rows take the path,
    Py_ssize_t hidden_max_rows   # ... up to this many
    Py_ssize_t hidden_grad_rows  # W1 rows per gradient product
    Py_ssize_t hidden_fwd_rows   # chunk rows per forward product
    bint hidden_asks             # the gradient products ask for the next rows
    bint hidden_reverse          # odd blocks update W1 from its last rows
    bint hidden_merge            # the next batch's first forward joins the last phase
    Py_ssize_t hidden_private    # chunks an epoch needs for private blocks
    Py_ssize_t hw1_off           # per block: its own copy of W1's columns (F, width),
    Py_ssize_t hv1_off           #     and of their velocities, hw1_stride apart
    Py_ssize_t hw1_stride        #     (0: no room for them: 1-thread workspace)
    Py_ssize_t hx_off            # per thread: its own two copies of a chunk's
    Py_ssize_t hx_stride         #     inputs (chunk, F), hx_stride apart
    int64_t *hx_stamp            # ... and which chunk each copy holds (one
                                 #     cache line per thread)
    Py_ssize_t hact_off          # per block: activations (chunk, width)
    Py_ssize_t hdelta_off        # per block: deltas (chunk, width)
    Py_ssize_t hpart_off         # per block: output partials (chunk, K)
    Py_ssize_t hgrad_off         # per block: gradients of its W1 columns
    Py_ssize_t hgrad_stride      #     (F, width), W2 rows (width, K), b1 (width)
    Py_ssize_t hout_off          # the output layer: z / delta (chunk, K),
                                 #     targets (chunk, K), weights (chunk),
                                 #     b2's gradient and a scratch (K each)
    double *hidden_sumsq         # per block: sum of squared pre-update weights


def _blas_small_matrix_kernels():
    """Whether the BLAS has the small-matrix kernels the hidden-unit blocks
    are cut for (looked up once per process, in fastsgd._threads)."""
    from fastsgd._threads import blas_small_matrix_kernels
    return blas_small_matrix_kernels()


def _slice_rows(dtype):
    """Phase 1 rows per slice for this dtype: slice_rows float32 rows' bytes."""
    return max(1, _TUNING["slice_rows"] * 4 // np.dtype(dtype).itemsize)


cdef inline Py_ssize_t n_slices_for(Py_ssize_t B, Py_ssize_t slice_rows) noexcept nogil:
    """Phase 1 slices of a batch of B rows: at most slice_rows rows each, but
    at least two slices (of >= 32 rows) so that two threads can share."""
    cdef Py_ssize_t n = (B + slice_rows - 1) // slice_rows
    if n < 2 and B >= 64:
        n = 2
    return n


cdef inline void matmul(const Plan *p, floating *out, const floating *a, Py_ssize_t lda,
                        const floating *w, Py_ssize_t B, Py_ssize_t F,
                        Py_ssize_t H) noexcept nogil:
    """out (B, H) = a (B, F; rows lda apart) @ w (F, H)."""
    if B <= p.small_rows and H >= 4 * FSG_VECTOR_BYTES // sizeof(floating):
        small_matmul(out, a, lda, w, B, F, H)
    else:
        gemm(False, False, <int> B, <int> H, <int> F, <floating> 1.0, a, <int> lda,
             w, <int> H, <floating> 0.0, out, <int> H)


cdef inline void matmul_bt(const Plan *p, floating *out, Py_ssize_t ldo, const floating *d,
                           const floating *w, Py_ssize_t B, Py_ssize_t F,
                           Py_ssize_t H) noexcept nogil:
    """out (B, F; rows ldo apart) = d (B, H) @ w (F, H)^T."""
    # own kernel for rows under two vectors too (a 10-class output layer's
    # deltas back to 128 units, 2 threads, timed in the engine side by side
    # with BLAS: float64 B=8 1.8-1.9 vs 2.4-5.7 us, B=32 5.5-6.1 vs 9.2-24;
    # float32 B=8 0.9-2.7 vs 2.7-3.0, B=32 2.3-2.9 vs 3.7)
    if B <= p.small_rows or (H < 2 * FSG_VECTOR_BYTES // sizeof(floating) and B <= 64):
        small_matmul_bt(out, ldo, d, w, B, F, H)
    else:
        gemm(False, True, <int> B, <int> F, <int> H, <floating> 1.0, d, <int> H,
             w, <int> H, <floating> 0.0, out, <int> ldo)


cdef double forward_backward_slice(
        const Plan *p, floating *ws, const floating *params,
        const floating *X, const floating *Y, const floating *sw,
        const int64_t *rows, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t b0) noexcept nogil:
    """Phase 1 on batch rows [r0, r1): forward pass, output loss and delta,
    deltas of the hidden layers, into the workspace's per-row buffers from
    their row b0 on.  Returns the slice's sum of sw * loss.

    With `rows` the batch is gathered from X, Y, sw by index; without, X, Y
    and sw already point at the batch's first row (a contiguous batch is
    used in place)."""
    cdef Py_ssize_t n = r1 - r0, L = p.n_layers, K = p.units[p.n_layers]
    cdef Py_ssize_t i, F = p.units[0], H
    cdef const floating *a
    cdef const floating *y
    cdef floating *z
    cdef floating *d_below
    cdef double loss = 0.0

    if rows != NULL:
        gather_x(p, ws + p.xb_off + b0 * F, X, rows + r0, n, 0, F)
        gather_rows(ws + p.yb_off + b0 * K, Y, rows + r0, n, K)
        a = ws + p.xb_off + b0 * F
        y = ws + p.yb_off + b0 * K
        if sw != NULL:
            gather_rows(ws + p.sw_off + b0, sw, rows + r0, n, 1)
            sw = ws + p.sw_off + b0
    else:
        a = X + r0 * F
        y = Y + r0 * K
        if sw != NULL:
            sw = sw + r0

    # forward: A[i+1] = act(A[i] @ W[i] + b[i]); the output layer's
    # pre-activation is written straight into delta[L-1] and becomes P - Y
    for i in range(L):
        F = p.units[i]
        H = p.units[i + 1]
        if i < L - 1:
            z = ws + p.act_off[i + 1] + b0 * H
        else:
            z = ws + p.delta_off[L - 1] + b0 * H
        matmul(p, z, a, F, params + p.coef_off[i], n, F, H)
        if i < L - 1:
            bias_activation(z, params + p.icpt_off[i], n, H, p.activation)
        else:
            loss = output_loss_delta(z, params + p.icpt_off[i], y, sw, n, H, p.output)
        a = z

    # backward: delta[i-1] = (delta[i] @ W[i]^T) * act'(A[i]), with the
    # weights from before this batch's update (phase 2 has not run yet)
    for i in range(L - 1, 0, -1):
        F = p.units[i]
        H = p.units[i + 1]
        d_below = ws + p.delta_off[i - 1] + b0 * F
        matmul_bt(p, d_below, F, ws + p.delta_off[i] + b0 * H, params + p.coef_off[i], n, F, H)
        activation_backward(d_below, ws + p.act_off[i] + b0 * F, n * F, p.activation)
    return loss


cdef void accumulate_slice(const Plan *p, floating *ws, const floating *a0, floating *group,
                           floating *tmp, Py_ssize_t n, Py_ssize_t b0,
                           bint first) noexcept nogil:
    """Large batches: the weight and intercept gradients of a slice of n
    rows, right after phase 1 made their deltas in the workspace from row
    b0 on (the slice's inputs and deltas are still in this core's cache),
    into a group buffer laid out like the slab: written by a group's first
    slice, added to by the next.  a0 is the slice's layer-0 input; tmp holds
    one intercept vector."""
    cdef Py_ssize_t i, F, H
    cdef const floating *a
    cdef const floating *d
    for i in range(p.n_layers):
        F = p.units[i]
        H = p.units[i + 1]
        a = a0 if i == 0 else ws + p.act_off[i] + b0 * F
        d = ws + p.delta_off[i] + b0 * H
        gemm(True, False, <int> F, <int> H, <int> n, <floating> 1.0, a, <int> F, d, <int> H,
             <floating> (0.0 if first else 1.0), group + p.coef_off[i], <int> H)
        if first:
            column_sum(group + p.icpt_off[i], d, n, H)
        else:
            column_sum(tmp, d, n, H)
            accumulate(group + p.icpt_off[i], tmp, H)


cdef double update_accumulated(const Plan *p, floating *ws, floating *params,
                               floating *velocity, Py_ssize_t n_groups, Py_ssize_t t,
                               floating alpha, floating inv_m, floating lr, floating mu,
                               bint nesterov, const floating *next_X,
                               const int64_t *next_rows, Py_ssize_t n_next) noexcept nogil:
    """Phase 2 after accumulate_slice: task t's gradient is the sum of the
    groups' buffers over its range (in group order), then the momentum
    update; the update's pass also asks for the next batch's rows
    next_rows[0:n_next].  Returns the sum of squared pre-update weights."""
    cdef Py_ssize_t i = p.task_layer[t], H = p.units[i + 1], off, n, g, start, chunk, r = 0
    cdef Py_ssize_t row_bytes = p.units[0] * sizeof(floating)
    cdef floating *grad = ws + p.group_off
    cdef const floating *last = grad
    cdef double sumsq = 0.0
    if p.task_row0[t] < 0:
        off, n, alpha = p.icpt_off[i], H, 0.0   # intercepts: no L2 penalty
    else:
        off, n = p.coef_off[i] + p.task_row0[t] * H, (p.task_row1[t] - p.task_row0[t]) * H
    # the last group is added in the update's own pass: the first group's
    # buffer (another core's, for half the tasks) is not written back and
    # read again (1 thread, tasks per batch: float32 B=256 44-46 -> 28-31 us,
    # float64 90-110 -> 62-77; 2 threads float32 42-45 -> 36-38)
    for g in range(1, n_groups - 1):
        accumulate(grad + off, ws + p.group_off + g * p.group_stride + off, n)
    if n_groups > 1:
        last = ws + p.group_off + (n_groups - 1) * p.group_stride
    # The next batch's rows come from DRAM, the update's operands from L2:
    # one row asked for before each chunk of the update overlaps the two,
    # and phase 1 then gathers the rows from cache (float32 B=256, phase
    # timing per batch: 1 thread 1266-1310 -> 1242-1274 us; 2 threads, calm,
    # 684-708 -> 645-652 us, the update 2-4 us longer).  Asked for all at
    # once before the update instead, the update took as long as the gather
    # saved.  The chunks depend on the batch sizes only (not on threads), so
    # the partial sums of w^2 do too.
    chunk = n
    if n_next > 0:
        chunk = ((n + n_next - 1) // n_next + 63) // 64 * 64
    start = 0
    while start < n:
        if r < n_next:
            fsg_prefetch_rows(next_X, next_rows + r, 1, row_bytes, 0, row_bytes, p.ahead_hint)
            r += 1
        if n_groups > 1:
            sumsq += sgd_update_sum(params + off + start, velocity + off + start,
                                    grad + off + start, last + off + start,
                                    min(chunk, n - start), alpha, inv_m, lr, mu, nesterov)
        else:
            sumsq += sgd_update(params + off + start, velocity + off + start, grad + off + start,
                                min(chunk, n - start), alpha, inv_m, lr, mu, nesterov)
        start += chunk
    if r < n_next:
        fsg_prefetch_rows(next_X, next_rows + r, n_next - r, row_bytes, 0, row_bytes,
                          p.ahead_hint)
    return 0.0 if p.task_row0[t] < 0 else sumsq


cdef void forward_block(const Plan *p, floating *ws, const floating *params,
                        const floating *a, Py_ssize_t B, Py_ssize_t i,
                        Py_ssize_t k) noexcept nogil:
    """Small batches, layer i's k-th weight block (rows f0:f1 of W[i]): the
    partial product a[:, f0:f1] @ W[i][f0:f1, :] (B, H) into its own buffer.
    The master sums the partials in block order."""
    cdef Py_ssize_t t = p.layer_first_task[i] + k
    cdef Py_ssize_t f0 = p.task_row0[t], f1 = p.task_row1[t]
    cdef Py_ssize_t F = p.units[i], H = p.units[i + 1]
    matmul(p, ws + p.partial_off + k * B * H, a + f0, F, params + p.coef_off[i] + f0 * H,
           B, f1 - f0, H)


cdef void backward_block(const Plan *p, floating *ws, const floating *params,
                         Py_ssize_t B, Py_ssize_t i, Py_ssize_t k) noexcept nogil:
    """Small batches, layer i's k-th weight block: columns f0:f1 of
    delta[i-1] = (delta[i] @ W[i]^T) * act'(A[i]).  Blocks own disjoint
    columns, so nothing needs summing."""
    cdef Py_ssize_t t = p.layer_first_task[i] + k
    cdef Py_ssize_t f0 = p.task_row0[t], f1 = p.task_row1[t]
    cdef Py_ssize_t F = p.units[i], H = p.units[i + 1], b
    cdef floating *d_below = ws + p.delta_off[i - 1]
    cdef const floating *a = ws + p.act_off[i]
    matmul_bt(p, d_below + f0, F, ws + p.delta_off[i], params + p.coef_off[i] + f0 * H,
              B, f1 - f0, H)
    for b in range(B):
        activation_backward(d_below + b * F + f0, a + b * F + f0, f1 - f0, p.activation)


cdef void sum_chunk(const Plan *p, const Work *w, floating *ws, const floating *params,
                    Py_ssize_t item) noexcept nogil:
    """Small batches, rows [r0, r1) of split layer w.layer's product: the
    sum of the weight blocks' partials in block order, then for a hidden
    layer its bias and activation."""
    cdef Py_ssize_t i = w.layer, H = p.units[w.layer + 1]
    cdef Py_ssize_t r0 = item * p.sum_rows, r1 = min(r0 + p.sum_rows, w.B)
    cdef floating *z = <floating *> w.z + r0 * H
    sum_blocks(z, ws + p.partial_off + r0 * H, w.B * H, p.layer_n_tasks[i], (r1 - r0) * H)
    if i < p.n_layers - 1:
        bias_activation(z, params + p.icpt_off[i], r1 - r0, H, p.activation)


cdef double forward_backward_split(const Plan *p, Work *w, fsg_team *team, floating *ws,
                                   floating *params, floating *velocity) noexcept nogil:
    """Phase 1 for small batches, split by weights instead of rows: each big
    layer's forward and delta run as a phase of weight blocks (the same
    blocks phase 2 updates, so each thread keeps reading the weights it
    writes).  Tiny layers run on the master.  Returns sum of sw * loss."""
    cdef Py_ssize_t B = w.B, L = p.n_layers, K = p.units[p.n_layers]
    cdef Py_ssize_t i, F = p.units[0], H
    cdef const floating *a
    cdef const floating *y
    cdef const floating *sw = <const floating *> w.sw
    cdef floating *z
    cdef floating *d_below
    cdef double loss = 0.0
    cdef double t_gather = 0.0

    cdef floating *xb = ws + (p.xb2_off if w.xb_cur else p.xb_off)
    if w.rows != NULL:
        if not w.ready0:   # else the previous batch gathered these inputs
            gather_x(p, xb, <const floating *> w.X, w.rows, B, 0, F)
        gather_rows(ws + p.yb_off, <const floating *> w.Y, w.rows, B, K)
        if sw != NULL:
            gather_rows(ws + p.sw_off, sw, w.rows, B, 1)
            sw = ws + p.sw_off
        a = xb
        y = ws + p.yb_off
    else:
        a = <const floating *> w.X
        y = <const floating *> w.Y
    w.a0 = a

    for i in range(L):
        F = p.units[i]
        H = p.units[i + 1]
        z = ws + (p.act_off[i + 1] if i < L - 1 else p.delta_off[L - 1])
        if (i == 0 and w.ready0) or F * H >= p.split_min_weights:
            if not (i == 0 and w.ready0):   # (else phase 2 of the previous
                w.layer = i                 # batch formed layer 0's partials)
                w.a_in = a
                run_phase(p, w, team, PHASE_FORWARD, p.layer_n_tasks[i], ws, params, velocity)
            # summing the partials reads as much as the update does: the
            # team shares it by rows (elementwise, so the numbers do not
            # depend on the chunks or on who sums them)
            w.layer = i
            w.z = z
            run_phase(p, w, team, PHASE_SUMS, (B + p.sum_rows - 1) // p.sum_rows,
                      ws, params, velocity)
            if i == 0 and w.gather_early:
                # the team gathers the next batch while the master runs the
                # small layers below, which would leave it idle
                t_gather = now_ns()
                open_phase(w, team, PHASE_GATHER, p.layer_n_tasks[0])
        else:
            matmul(p, z, a, F, params + p.coef_off[i], B, F, H)
            if i < L - 1:
                bias_activation(z, params + p.icpt_off[i], B, H, p.activation)
        if i == L - 1:
            loss = output_loss_delta(z, params + p.icpt_off[i], y, sw, B, H, p.output)
        a = z

    for i in range(L - 1, 0, -1):
        F = p.units[i]
        H = p.units[i + 1]
        if F * H >= p.split_min_weights:
            w.layer = i
            run_phase(p, w, team, PHASE_BACKWARD, p.layer_n_tasks[i], ws, params, velocity)
        else:
            d_below = ws + p.delta_off[i - 1]
            matmul_bt(p, d_below, F, ws + p.delta_off[i], params + p.coef_off[i], B, F, H)
            activation_backward(d_below, ws + p.act_off[i], B * F, p.activation)
    if w.gather_early:
        close_phase(p, w, team, p.layer_n_tasks[0], t_gather, ws, params, velocity)
        w.pregather_key = -1
    return loss


cdef double update_task(
        const Plan *p, floating *ws, floating *params, floating *velocity,
        const floating *a0, Py_ssize_t B, Py_ssize_t t, floating *gbuf,
        floating alpha, floating inv_m, floating lr, floating mu,
        bint nesterov) noexcept nogil:
    """Phase 2, task t: gradient and momentum update of one block of weight
    rows (or of one layer's intercepts).  Returns the block's sum of squared
    pre-update weights, for the L2 term of the batch loss."""
    cdef Py_ssize_t i = p.task_layer[t]
    cdef Py_ssize_t f0 = p.task_row0[t], f1 = p.task_row1[t]
    cdef Py_ssize_t F = p.units[i], H = p.units[i + 1]
    cdef const floating *d = ws + p.delta_off[i]
    cdef const floating *a = a0 if i == 0 else ws + p.act_off[i]
    cdef floating *w = params + p.coef_off[i]
    cdef floating *v = velocity + p.coef_off[i]

    if f0 < 0:
        # intercepts: gradient = column sums of delta; no L2 penalty
        column_sum(gbuf, d, B, H)
        sgd_update(params + p.icpt_off[i], velocity + p.icpt_off[i], gbuf, H,
                   <floating> 0.0, inv_m, lr, mu, nesterov)
        return 0.0
    # fused for rows at least four vectors wide, or under one (outer_update
    # then forms the block's gradient in scratch and updates it as one flat
    # vector), or at B=1 narrower than four vectors (the narrow-layer
    # kernel, lanes in a fixed row/column pattern); in between, at B > 1,
    # vector code spends its time in remainders and BLAS + the flat update
    # measured faster (784-10 float64 at B=1, before the narrow kernel:
    # 4.8 vs 4.0 us per row; float32, under one vector: 3.1 vs 4.0)
    cdef Py_ssize_t vec = FSG_VECTOR_BYTES // sizeof(floating)
    if B <= p.fused_rows and (H >= 4 * vec or H < vec or (B == 1 and narrow_ok(w, H))):
        return outer_update(w, v, a, F, d, B, f0, f1, H, alpha, inv_m, lr, mu, nesterov, gbuf)
    # gradient block (f1 - f0, H) = A[:, f0:f1]^T @ delta, then the update
    gemm(True, False, <int> (f1 - f0), <int> H, <int> B, <floating> 1.0, a + f0, <int> F,
         d, <int> H, <floating> 0.0, gbuf, <int> H)
    return sgd_update(w + f0 * H, v + f0 * H, gbuf, (f1 - f0) * H, alpha, inv_m, lr, mu,
                      nesterov)


# ---- one hidden layer, large batches: split by hidden units -----------------
# Splitting a large batch's rows between threads makes each thread read, every
# batch, the weights the other's update wrote and the other's gradient sums:
# ~800 KB per thread per batch in float64 at 784-128-10.  When the host puts
# the two vCPUs on far-apart cores (a cache line's round trip 330-890 ns
# against ~65), that traffic slowed every 2-thread large-batch fit to its
# 1-thread speed.  Here each item is a block of hidden units: its columns of
# W1, its rows of W2, their velocities and gradients stay with the thread
# that keeps claiming the block (the master claims from the front, helpers
# from the back), each thread gathers its own copy of the inputs, and only
# the output layer's partial sums (chunk x K) and deltas cross.  The blocks
# and chunks depend on the shapes, not on the threads, so neither do the
# numbers.


cdef const floating *hidden_inputs(const Plan *p, const void *X, const int64_t *rows, int tid,
                                   floating *ws, Py_ssize_t r0, Py_ssize_t n,
                                   int64_t stamp) noexcept nogil:
    """The chunk of rows [r0, r0 + n) of a batch (X and rows as in Work):
    in place when the batch is contiguous, else this thread's own copy,
    gathered once per chunk.
    A phase reads two chunks (backward of one, forward of the next, their
    stamps consecutive): each has a copy of its own, by the stamp's parity,
    so a thread running several blocks does not gather them in turn."""
    cdef Py_ssize_t F = p.units[0], copy = 2 * tid + (stamp & 1)
    cdef floating *buf
    if rows == NULL:
        return <const floating *> X + r0 * F
    buf = ws + p.hx_off + copy * p.hx_stride
    if p.hx_stamp[8 * tid + (stamp & 1)] != stamp:
        gather_x(p, buf, <const floating *> X, rows + r0, n, 0, F)
        p.hx_stamp[8 * tid + (stamp & 1)] = stamp
    return buf


cdef inline Py_ssize_t hidden_chunk_len(const Plan *p, Py_ssize_t B) noexcept nogil:
    """Rows per chunk of a batch of B rows: equal chunks of at most
    hidden_chunk rows."""
    cdef Py_ssize_t n_chunks = (B + p.hidden_chunk - 1) // p.hidden_chunk
    return (B + n_chunks - 1) // n_chunks


cdef void hidden_item(const Plan *p, const Work *w, Py_ssize_t c, int tid, floating *ws,
                      floating *params, floating *velocity) noexcept nogil:
    """Block c of hidden units: the backward pass of chunk bwd (gradients of
    its W1 columns, b1 entries and W2 rows; on the batch's last chunk their
    momentum update), then the forward pass of chunk fwd (its activations
    and its partial of the output layer's product)."""
    cdef Py_ssize_t F = p.units[0], H = p.units[1], K = p.units[2]
    cdef Py_ssize_t c0 = c * p.hidden_width, n = min(p.hidden_width, H - c0), f, f0, f1
    cdef Py_ssize_t G = p.hidden_grad_rows, n_sub = (F + G - 1) // G, s
    cdef floating *a = ws + p.hact_off + c * p.hidden_chunk * p.hidden_width
    cdef floating *d = ws + p.hdelta_off + c * p.hidden_chunk * p.hidden_width
    cdef floating *g1 = ws + p.hgrad_off + c * p.hgrad_stride    # (F, n)
    cdef floating *g2 = g1 + F * n                                # (n, K)
    cdef floating *gb = g2 + n * K                                # (n,)
    cdef floating *tmp = gb + n                                   # (n,)
    # the block's columns of W1 and of their velocities, ldw apart
    cdef floating *w1 = params + p.coef_off[0] + c0
    cdef floating *v1 = velocity + p.coef_off[0] + c0
    cdef Py_ssize_t ldw = H
    cdef floating *w2 = params + p.coef_off[1] + c0 * K
    cdef const floating *d2 = ws + p.hout_off
    cdef const floating *x
    cdef floating beta
    cdef double sumsq = 0.0
    # the rows this thread gathers next (this phase's forward chunk, or the
    # next batch's first) are asked for during the gradient products, so
    # the gather copies them from cache
    cdef const int64_t *ahead = NULL
    cdef Py_ssize_t n_ahead = 0, asked = 0, per_product
    cdef size_t row_bytes = F * sizeof(floating)
    if w.fwd_len > 0 and w.fwd_next:
        if w.next_rows != NULL:
            ahead, n_ahead = w.next_rows, w.fwd_len
    elif w.fwd_len > 0 and w.rows != NULL:
        ahead, n_ahead = w.rows + w.fwd_r0, w.fwd_len
    elif w.bwd_last and w.next_rows != NULL and w.next_B > 0:
        ahead, n_ahead = w.next_rows, hidden_chunk_len(p, w.next_B)
    per_product = (n_ahead * p.hidden_grad_rows + F - 1) // F
    if w.w1_private:
        w1 = ws + p.hw1_off + c * p.hw1_stride
        v1 = ws + p.hv1_off + c * p.hw1_stride
        ldw = n
    if w.bwd_len > 0:
        x = hidden_inputs(p, w.X, w.rows, tid, ws, w.bwd_r0, w.bwd_len, w.bwd_stamp)
        beta = 0.0 if w.bwd_first else 1.0
        # W2 rows' gradient, then the deltas back through the old W2 rows
        gemm(True, False, <int> n, <int> K, <int> w.bwd_len, <floating> 1.0, a, <int> n,
             d2, <int> K, beta, g2, <int> K)
        matmul_bt(p, d, n, d2, w2, w.bwd_len, n, K)
        activation_backward(d, a, w.bwd_len * n, p.activation)
        if w.bwd_first:
            column_sum(gb, d, w.bwd_len, n)
        else:
            column_sum(tmp, d, w.bwd_len, n)
            accumulate(gb, tmp, n)
        # W1 columns' gradient X^T d in row blocks small enough for BLAS's
        # small-matrix kernels (no packing of X for every block), each
        # updated while in L1 on the batch's last chunk.  Odd blocks go from
        # W1's last rows: two threads updating the two halves of the same
        # rows at once slowed each other (the hardware prefetchers fetch the
        # neighbour's lines as it writes them; a C test of the update alone,
        # 784x128 float32, two threads: 28-51 us a pass on one matrix's two
        # column halves, 8-10 on a matrix each, 14-16 with one reversed)
        for s in range(n_sub):
            f0 = (n_sub - 1 - s if p.hidden_reverse and c % 2 == 1 else s) * G
            f1 = min(f0 + G, F)
            if asked < n_ahead and p.hidden_asks:
                fsg_prefetch_rows(w.X if ahead != w.next_rows else w.next_X, ahead + asked,
                                  min(per_product, n_ahead - asked), row_bytes, 0, row_bytes,
                                  p.ahead_hint)
                asked += per_product
            gemm(True, False, <int> (f1 - f0), <int> n, <int> w.bwd_len, <floating> 1.0,
                 x + f0, <int> F, d, <int> n, beta, g1 + f0 * n, <int> n)
            if w.bwd_last:
                for f in range(f0, f1):   # (the block's columns: n apart in g1)
                    sumsq += sgd_update(w1 + f * ldw, v1 + f * ldw, g1 + f * n, n,
                                        <floating> w.alpha, <floating> w.inv_m,
                                        <floating> w.lr, <floating> w.mu, w.nesterov)
        if w.bwd_last:
            sgd_update(params + p.icpt_off[0] + c0, velocity + p.icpt_off[0] + c0, gb, n,
                       <floating> 0.0, <floating> w.inv_m, <floating> w.lr, <floating> w.mu,
                       w.nesterov)
            sumsq += sgd_update(w2, velocity + p.coef_off[1] + c0 * K, g2, n * K,
                                <floating> w.alpha, <floating> w.inv_m, <floating> w.lr,
                                <floating> w.mu, w.nesterov)
            p.hidden_sumsq[c] = sumsq
    if w.fwd_len > 0:
        if w.fwd_next:
            x = hidden_inputs(p, w.next_X, w.next_rows, tid, ws, 0, w.fwd_len, w.fwd_stamp)
        else:
            x = hidden_inputs(p, w.X, w.rows, tid, ws, w.fwd_r0, w.fwd_len, w.fwd_stamp)
        f0 = 0
        while f0 < w.fwd_len:
            f1 = min(f0 + p.hidden_fwd_rows, w.fwd_len)
            gemm(False, False, <int> (f1 - f0), <int> n, <int> F, <floating> 1.0, x + f0 * F,
                 <int> F, w1, <int> ldw, <floating> 0.0, a + f0 * n, <int> n)
            f0 = f1
        bias_activation(a, params + p.icpt_off[0] + c0, w.fwd_len, n, p.activation)
        matmul(p, ws + p.hpart_off + c * p.hidden_chunk * K, a, n, w2, w.fwd_len, n, K)


cdef void private_hidden_weights(const Plan *p, Work *w, floating *ws, floating *params,
                                 floating *velocity, bint into) noexcept nogil:
    """W1 and its velocities into each block's own copy (into), or back.

    In W1's row-major layout (scikit-learn's) the blocks' columns share
    every row, and two threads working on the two halves of the same rows
    slowed each other: the hardware prefetchers fetch the lines the other
    core is writing, and across core complexes every such line crosses the
    fabric.  In copies of their own the blocks share no row.  The numbers
    are the same either way (the same products and updates, row by row).
    Copying costs two passes over W1 and its velocities per epoch, so only
    epochs of many chunks do it (hidden_private)."""
    cdef Py_ssize_t F = p.units[0], H = p.units[1], c, c0, n, f
    cdef floating *w1 = params + p.coef_off[0]
    cdef floating *v1 = velocity + p.coef_off[0]
    cdef floating *bw
    cdef floating *bv
    cdef size_t nbytes
    for c in range(p.hidden_blocks):
        c0 = c * p.hidden_width
        n = min(p.hidden_width, H - c0)
        nbytes = n * sizeof(floating)
        bw = ws + p.hw1_off + c * p.hw1_stride
        bv = ws + p.hv1_off + c * p.hw1_stride
        for f in range(F):
            if into:
                memcpy(bw + f * n, w1 + f * H + c0, nbytes)
                memcpy(bv + f * n, v1 + f * H + c0, nbytes)
            else:
                memcpy(w1 + f * H + c0, bw + f * n, nbytes)
                memcpy(v1 + f * H + c0, bv + f * n, nbytes)
    w.w1_private = into


cdef double train_batch_hidden(const Plan *p, Work *w, fsg_team *team, floating *ws,
                               floating *params, floating *velocity, double m) noexcept nogil:
    """train_batch for a network of one hidden layer, by blocks of hidden
    units (see above), in chunks of at most hidden_chunk rows: one phase
    per chunk runs the last chunk's backward and this chunk's forward, the
    master between phases sums the output partials (in block order) into
    the chunk's loss and output deltas.

    With hidden_merge, when the next batch takes this path too, the last
    phase also runs the next batch's first forward: each block's weights
    are final once its own backward is done, so the helpers go on without
    waiting for the master's end of the batch (hidden_pre tells the next
    call).  Same products on the same weights: the results do not change."""
    cdef Py_ssize_t K = p.units[2], C = hidden_chunk_len(p, w.B), k, c, r0, n
    cdef Py_ssize_t n_chunks = (w.B + C - 1) // C
    cdef floating *z = ws + p.hout_off                 # (C, K): z, then delta
    cdef floating *y = z + p.hidden_chunk * K          # (C, K)
    cdef floating *sw = y + p.hidden_chunk * K         # (C,)
    cdef floating *gb2 = sw + p.hidden_chunk           # (K,)
    cdef floating *tmp = gb2 + K                       # (K,)
    cdef const floating *yk
    cdef const floating *swk
    cdef double data_loss = 0.0, sumsq = 0.0
    global _timed_batches, _timed_solo_batches, _timed_batch_ns, _hidden_phases_run
    cdef double t_batch = now_ns() if _timing else 0.0
    w.inv_m = 1.0 / m
    w.make_next = False
    w.ready0 = False
    if w.pregather_key >= 0:   # (a last small batch's tail may still gather)
        settle_slots(p, w)
    cdef bint pre = w.hidden_pre
    cdef bint merge = (p.hidden_merge and p.hidden_min_rows < w.next_B <= p.hidden_max_rows)
    w.hidden_pre = False
    w.bwd_len = 0
    for k in range(n_chunks + 1):
        # this phase: backward of chunk k - 1 (set below), forward of chunk k
        # (or of the next batch's first)
        w.fwd_len = 0
        w.fwd_next = False
        if k < n_chunks:
            w.fwd_r0 = k * C
            w.fwd_len = min(C, w.B - w.fwd_r0)
            if k == 0 and pre:    # run by the last call's last phase
                w.fwd_stamp = w.pre_stamp
            else:
                w.fwd_stamp = w.next_stamp
                w.next_stamp += 1
        elif merge:
            w.fwd_next = True
            w.fwd_r0 = 0
            w.fwd_len = hidden_chunk_len(p, w.next_B)
            w.fwd_stamp = w.pre_stamp = w.next_stamp
            w.next_stamp += 1
        if not (k == 0 and pre):
            run_phase(p, w, team, PHASE_HIDDEN, p.hidden_blocks, ws, params, velocity)
            _hidden_phases_run += 1
        if k == n_chunks:
            break
        # the master: the chunk's output layer from the blocks' partials
        r0 = w.fwd_r0
        n = w.fwd_len
        sum_blocks(z, ws + p.hpart_off, p.hidden_chunk * K, p.hidden_blocks, n * K)
        if w.rows != NULL:
            gather_rows(y, <const floating *> w.Y, w.rows + r0, n, K, 0)
            yk = y
            swk = NULL
            if w.sw != NULL:
                gather_rows(sw, <const floating *> w.sw, w.rows + r0, n, 1, 0)
                swk = sw
        else:
            yk = <const floating *> w.Y + r0 * K
            swk = (<const floating *> w.sw + r0) if w.sw != NULL else NULL
        data_loss += output_loss_delta(z, params + p.icpt_off[1], yk, swk, n, K, p.output)
        if k == 0:
            column_sum(gb2, z, n, K)
        else:
            column_sum(tmp, z, n, K)
            accumulate(gb2, tmp, K)
        if k == n_chunks - 1:   # b2's gradient is whole (no block reads b2 now)
            sgd_update(params + p.icpt_off[1], velocity + p.icpt_off[1], gb2, K,
                       <floating> 0.0, <floating> w.inv_m, <floating> w.lr, <floating> w.mu,
                       w.nesterov)
        w.bwd_r0 = r0
        w.bwd_len = n
        w.bwd_stamp = w.fwd_stamp
        w.bwd_first = k == 0
        w.bwd_last = k == n_chunks - 1
    w.hidden_pre = merge
    if _timing:
        _timed_batch_ns += now_ns() - t_batch
        _timed_batches += 1
        _timed_solo_batches += w.solo
    # reductions in a fixed order: the result does not depend on threads
    for c in range(p.hidden_blocks):
        sumsq += p.hidden_sumsq[c]
    if p.output == FSG_OUT_SQUARED:
        data_loss *= 0.5 / K    # scikit-learn averages squared error over outputs
    return (data_loss + 0.5 * w.alpha * sumsq) / m


# ---- the team: how threads share a batch (csrc/fsg_team.h has the why) -------
cdef extern from "fsg_team.h" nogil:
    ctypedef struct fsg_team:
        pass
    void fsg_team_init(fsg_team *t) noexcept
    void fsg_team_publish(fsg_team *t, int64_t n) noexcept
    int64_t fsg_team_claim(fsg_team *t, int from_back) noexcept
    void fsg_team_item_done(fsg_team *t) noexcept
    void fsg_team_wait(fsg_team *t, int64_t n) noexcept
    int fsg_team_wait_work(fsg_team *t) noexcept
    void fsg_team_finish(fsg_team *t) noexcept
    void fsg_flag_raise(int32_t *flag) noexcept
    int32_t fsg_flag_raised(int32_t *flag) noexcept
    int32_t fsg_team_phase_id(fsg_team *t) noexcept
    int32_t fsg_team_next_phase_id(fsg_team *t) noexcept
    int fsg_team_all_done(fsg_team *t, int64_t n) noexcept
    void fsg_slot_offer(int32_t *slot, int32_t key) noexcept
    int fsg_slot_claim(int32_t *slot, int32_t key) noexcept
    void fsg_slot_done(int32_t *slot, int32_t key) noexcept
    void fsg_slot_wait(int32_t *slot, int32_t key) noexcept
    int64_t fsg_slot_stall_count() noexcept
    void fsg_mark_set(int32_t *mark, int32_t key) noexcept
    int fsg_mark_is(int32_t *mark, int32_t key) noexcept
    void fsg_store_relaxed(int32_t *x, int32_t v) noexcept
    int32_t fsg_load_relaxed(int32_t *x) noexcept
    void fsg_count_add(int64_t *counter, int64_t v) noexcept
    int64_t fsg_team_worker_sleeps
    int fsg_spin_limit
    int64_t fsg_team_master_sleeps

# ---- waking the team for short work (csrc/fsg_wake.h has the why) ------------
cdef extern from "fsg_wake.h" nogil:
    ctypedef struct fsg_wake_state:
        int64_t last_end_ns
        int64_t wake_ns
        int64_t solo_calls
        int64_t team_calls
    fsg_wake_state fsg_wake
    ctypedef struct fsg_crowd_state:
        int64_t until_ns
        int64_t backoff_ns
        int64_t window_ns
        int64_t window_wait_ns
        int64_t episodes
        int64_t verdict_window_ns
        int64_t verdict_wait_ns
        int64_t next_poll_ns
        int64_t free_polls
        int64_t free_needed
        int64_t early_ends
        int64_t start_looks
        int64_t looks
        int64_t started
        int64_t blips
        int64_t unseen
    fsg_crowd_state fsg_crowd
    int fsg_runnable_override
    int fsg_usable_cpus
    int fsg_runnable_now() noexcept
    int fsg_crowd_look(int64_t now, int runnable, int n_threads, int n_cpus) noexcept
    int fsg_crowd_poll(int64_t now, int n_threads) noexcept
    int fsg_crowd_start_look(int64_t now, int n_threads) noexcept
    int64_t fsg_cpu_wait_ns() noexcept
    int fsg_crowded(int64_t now) noexcept
    void fsg_crowd_begin(int64_t now) noexcept
    int fsg_crowd_record(int64_t team_ns, int64_t wait_ns, int64_t now) noexcept
    int64_t fsg_now_ns() noexcept
    int fsg_wake_worth(int64_t now, int64_t solo_ns, int n_threads) noexcept
    void fsg_wake_arrived(int64_t *latest) noexcept
    void fsg_wake_team_done(int64_t start, int64_t latest) noexcept


def wake_stats():
    """The process's record of waking its OpenMP team (see fsg_wake.h):
    how late the last thread arrived after an idle gap, and how many calls
    ran alone rather than wait for it."""
    return dict(wake_ns=fsg_wake.wake_ns, solo_calls=fsg_wake.solo_calls,
                team_calls=fsg_wake.team_calls, last_end_ns=fsg_wake.last_end_ns)


def _set_wake_ns(int64_t value):
    """Tests: pretend the team took `value` ns to arrive after idling."""
    fsg_wake.wake_ns = value


def _record_wake_for_test(int64_t arrival_ns):
    """Tests: record a team region that starts now, after an idle gap, and
    whose last thread arrived arrival_ns late."""
    cdef int64_t start = fsg_now_ns()
    fsg_wake_team_done(start, start + arrival_ns)


cdef double _predict_unit_ns = 0.0   # predict: one thread's ns per row per parameter
cdef double _check_value_ns = 0.0     # all_finite_rows: one thread's ns per value
cdef double _train_unit_ns = 0.0      # train_epoch, any engine: ns per row per parameter


cdef enum Phase:
    PHASE_SLICES = 1      # phase 1: row slices of the batch
    PHASE_TASKS = 2       # phase 2: blocks of weights
    PHASE_FORWARD = 3     # small batches: one layer's forward, by weight blocks
    PHASE_BACKWARD = 4    # small batches: one layer's delta, by weight blocks
    PHASE_SUMS = 5        # small batches: one layer's partials summed, by rows
    PHASE_GATHER = 6      # small batches: the next batch's inputs, by columns
    PHASE_TAIL = 7        # (not a phase: gather_tail's work, for phase_times)
    PHASE_HIDDEN = 8      # one hidden layer, large batches: blocks of hidden units


# ---- phase timing: where a batch's time goes (diagnostics, off by default) --
# The master's work and wait in each phase it publishes, its own items, and
# each helper's busy time per phase: the breakdown that says whether a
# change should go after the kernels, the serial part or the hand-offs.
# Two clock reads per item when on (about 1% of a float64 one-row batch),
# one predictable branch when off.  Helpers add to rows of their own, so no
# two threads write one counter.
cdef enum:
    TIMED_PHASES = 9
    TIMED_THREADS = 64        # helpers beyond this are not timed
cdef bint _timing = False
cdef int64_t _timed_batches = 0
cdef int64_t _timed_solo_batches = 0     # ... run by the master alone
cdef double _timed_batch_ns = 0.0        # train_batch, start to end
cdef double _timed_phase1_ns = 0.0       # its phase 1 (forward, loss, deltas)
cdef double _master_work_ns[TIMED_PHASES]   # open_phase .. its items done
cdef double _master_wait_ns[TIMED_PHASES]   # .. the others' items done
cdef double _thread_items_ns[TIMED_THREADS][TIMED_PHASES]   # items run, by tid


cdef inline void note_item_ns(int tid, int phase, double ns) noexcept nogil:
    if tid < TIMED_THREADS:
        _thread_items_ns[tid][phase] += ns


_PHASE_NAMES = {PHASE_SLICES: "slices", PHASE_TASKS: "tasks", PHASE_FORWARD: "forward",
                PHASE_BACKWARD: "backward", PHASE_SUMS: "sums", PHASE_GATHER: "gather",
                PHASE_TAIL: "tail_gather", PHASE_HIDDEN: "hidden"}


def phase_timing(bint on):
    """Switch phase timing on or off (diagnostics; see phase_times).  The
    counters keep what they have; phase_times(reset=True) clears them."""
    global _timing
    _timing = on


def phase_times(bint reset=False):
    """Where the timed batches' time went, in microseconds per batch:
    `batch_us` (train_batch), `phase1_us` (forward, loss and deltas, the
    small-batch phases it publishes included), and per phase that ran: the
    master's work (from publishing the phase to its last own item, what
    it does beside the team included), its wait for the others' items,
    its own items, and the helpers' items (summed over helpers).
    `tail_gather` is not a phase: threads out of phase 2 work gathering
    the batch after next.  Batches the master ran alone count in
    `solo_batches` and add only to work and master items."""
    global _timed_batches, _timed_solo_batches, _timed_batch_ns, _timed_phase1_ns
    cdef Py_ssize_t n = max(_timed_batches, 1), ph, tid
    phases = {}
    for ph, name in _PHASE_NAMES.items():
        helpers = sum(_thread_items_ns[tid][ph] for tid in range(1, TIMED_THREADS))
        row = dict(master_work_us=_master_work_ns[ph] / n / 1e3,
                   master_wait_us=_master_wait_ns[ph] / n / 1e3,
                   master_items_us=_thread_items_ns[0][ph] / n / 1e3,
                   helper_items_us=helpers / n / 1e3)
        if any(row.values()):
            phases[name] = row
    out = dict(batches=int(_timed_batches), solo_batches=int(_timed_solo_batches),
               batch_us=_timed_batch_ns / n / 1e3, phase1_us=_timed_phase1_ns / n / 1e3,
               phases=phases)
    if reset:
        _timed_batches = _timed_solo_batches = 0
        _timed_batch_ns = _timed_phase1_ns = 0.0
        for ph in range(TIMED_PHASES):
            _master_work_ns[ph] = _master_wait_ns[ph] = 0.0
            for tid in range(TIMED_THREADS):
                _thread_items_ns[tid][ph] = 0.0
    return out


# What the team works on: written by the master before it publishes a phase,
# read by whichever thread claims an item of that phase.  The master changes
# it only after every item of the phase is done.
cdef struct Work:
    int phase
    const void *X             # the batch's rows: gathered by `rows`, or in place
    const void *Y
    const void *sw
    const int64_t *rows
    const void *a0            # layer-0 input of the whole batch
    void *z                   # PHASE_SUMS: the layer's output (B, H)
    const void *a_in          # PHASE_FORWARD: the layer's input (B, F)
    Py_ssize_t layer          # PHASE_FORWARD / PHASE_BACKWARD: which layer
    # the next batch, so that phase 2 can start its layer-0 forward on each
    # weight block it has just updated (small batches; see train_batch)
    const void *next_X
    const int64_t *next_rows
    Py_ssize_t next_B
    const int64_t *ahead_rows   # the batch after next, to prefetch (ahead_B
    Py_ssize_t ahead_B          #     rows; 0: none)
    const void *next_a        # next batch's layer-0 input, once gathered
    bint gather_next          # phase 2 tasks gather their columns of next_a
    bint gather_early         # ... no: PHASE_GATHER does, during the small layers
    bint make_next            # phase 2 computes the next layer-0 partials
    bint fuse_next            # ... inside the update (batches of one row)
    bint ready0               # this batch's layer-0 partials are computed
    int xb_cur                # which of the two gather buffers is current
    # gather_tail: phase 2's idle threads gather the batch after next into
    # the blocks of this batch's buffer whose tasks are done (tail_key: the
    # id of that phase 2, or -1; read by helpers at any time, so atomically)
    int32_t tail_key
    int32_t pregather_key     # the key of the slots this batch's gather phase
                              #     shares with the last phase 2's tail, or -1
    void *tail_a              # where (rows tail_rows of tail_X, tail_B of
    const void *tail_X        #     them); written before the slots are
    const int64_t *tail_rows  #     offered, unchanged until all are done
    Py_ssize_t tail_B
    Py_ssize_t B
    Py_ssize_t slice_len
    bint accumulate           # phase 1 forms the weight gradients by slice
    Py_ssize_t n_slices
    Py_ssize_t group_len      # slices per group (the items of phase 1)
    double inv_m
    double alpha
    double lr
    double mu
    bint nesterov
    # load awareness (master only): time spent working on a phase versus
    # waiting for items other threads claimed; `solo` = run without them
    bint solo
    double work_ns
    double wait_ns
    bint stalled              # a teammate held an item far too long (close_phase)
    # train_batch_hidden: the phase's items run the backward pass of chunk
    # `bwd` (if bwd_len > 0) and then the forward pass of chunk `fwd` (if
    # fwd_len > 0); chunk stamps say which copy of the inputs is which
    Py_ssize_t bwd_r0
    Py_ssize_t bwd_len
    int64_t bwd_stamp
    bint bwd_first            # the batch's first chunk: gradients start afresh
    bint bwd_last             # ... its last: the blocks update their weights
    Py_ssize_t fwd_r0
    Py_ssize_t fwd_len
    int64_t fwd_stamp
    bint fwd_next             # chunk `fwd` is the next batch's (next_X, next_rows)
    int64_t next_stamp        # the next chunk stamp to hand out
    bint hidden_pre           # this batch's first forward ran in the last call
    int64_t pre_stamp         # ... as this chunk stamp
    bint w1_private           # W1 and its velocities live in the blocks' copies
    bint private_ok           # ... and may this epoch (run_epoch)


# Small batches: is the team faster than the master alone right now?  On a
# shared machine the answer changes (a busy neighbour, or the two vCPUs
# landing on one physical core), and for batches of a few microseconds a
# slow teammate costs more than it brings, without any long wait showing
# it.  So the master measures: a few batches with the team, a few alone, then
# a stretch with the faster (see adapt_probe).  The Engine keeps this across
# epochs for one batch size and thread count.
cdef enum:
    ADAPT_RUN = 0             # running the last probe's winner
    ADAPT_TEAM = 1            # probing: the team
    ADAPT_SOLO = 2            # probing: the master alone
    ADAPT_PROBE_BATCHES = 16  # batches per probe
    ADAPT_FIRST_STRETCH = 1024  # batches to run a new winner for (doubling)
    ADAPT_FIRST_SOLO_STRETCH = 64
    ADAPT_MAX_STRETCH = 8192

cdef struct Adapt:
    Py_ssize_t batch_size     # what the measurements are for
    int n_threads
    int state
    Py_ssize_t left           # batches left in this state
    double t0                 # when the current probe started
    double team_ns            # the last team probe's time
    bint run_solo             # the last probe's winner
    Py_ssize_t stretch
    Py_ssize_t team_batches   # counts, for diagnostics and tests
    Py_ssize_t solo_batches
    Py_ssize_t verdicts       # probes finished


# The last verdict of any engine, per network, dtype, batch size and team
# size: (run_solo, when in ns).  A new engine of the same shape trusts one
# younger than ADAPT_MEMORY_NS instead of probing at once: in a run of fits
# (a grid search, cross-validation, a benchmark) every estimator makes a new
# engine, and the solo half of a probe cost 2-3 ms of a 60 ms float64
# batch-32 fit on 2 threads (measured: fit 61.3 ms vs 58.6-59.7 unprobed).
# The trusted verdict is measured again after its first stretch as usual.
cdef dict _ADAPT_MEMORY = {}
cdef double ADAPT_MEMORY_NS = 10e9


def forget_adapt_memory():
    """Forget the remembered team/alone verdicts (tests)."""
    _ADAPT_MEMORY.clear()


cdef void run_item(const Plan *p, const Work *w, Py_ssize_t item, int tid, floating *ws,
                   floating *params, floating *velocity) noexcept nogil:
    """Run one item of the current phase."""
    cdef Py_ssize_t r0, r1
    cdef int32_t key
    cdef Py_ssize_t s, s0, b0
    cdef const floating *a0
    if w.phase == PHASE_SLICES and w.accumulate:
        # item = a group of consecutive slices, run in order by one thread;
        # a slice's rows are done with once in its group's buffer, so each
        # thread reuses its own rows of the workspace (they stay in cache,
        # and a full batch needs no batch-sized buffers)
        s0 = item * w.group_len
        b0 = tid * p.slice_rows
        for s in range(s0, min(s0 + w.group_len, w.n_slices)):
            r0 = s * w.slice_len
            r1 = min(r0 + w.slice_len, w.B)
            p.slice_loss[s] = forward_backward_slice(
                p, ws, params, <const floating *> w.X, <const floating *> w.Y,
                <const floating *> w.sw, w.rows, r0, r1, b0)
            if w.rows != NULL:
                a0 = ws + p.xb_off + b0 * p.units[0]
            else:
                a0 = <const floating *> w.X + r0 * p.units[0]
            accumulate_slice(p, ws, a0, ws + p.group_off + item * p.group_stride,
                             ws + p.gbuf_off + tid * p.gbuf_stride, r1 - r0, b0, s == s0)
    elif w.phase == PHASE_SLICES:
        r0 = item * w.slice_len
        r1 = min(r0 + w.slice_len, w.B)
        p.slice_loss[item] = forward_backward_slice(
            p, ws, params, <const floating *> w.X, <const floating *> w.Y,
            <const floating *> w.sw, w.rows, r0, r1, r0)
    elif w.phase == PHASE_SUMS:
        sum_chunk(p, w, ws, params, item)
    elif w.phase == PHASE_GATHER:
        if w.pregather_key < 0:
            gather_columns(p, w, item, <floating *> w.next_a)
        elif fsg_slot_claim(&p.gather_slot[item], w.pregather_key):
            gather_columns(p, w, item, <floating *> w.next_a)
            fsg_slot_done(&p.gather_slot[item], w.pregather_key)
        else:   # the last phase 2's tail has it (done, or nearly)
            fsg_slot_wait(&p.gather_slot[item], w.pregather_key)
    elif w.phase == PHASE_FORWARD:
        forward_block(p, ws, params, <const floating *> w.a_in, w.B, w.layer, item)
    elif w.phase == PHASE_BACKWARD:
        backward_block(p, ws, params, w.B, w.layer, item)
    elif w.phase == PHASE_HIDDEN:
        hidden_item(p, w, item, tid, ws, params, velocity)
    elif w.fuse_next and item < p.layer_n_tasks[0]:
        if w.gather_next:
            gather_columns(p, w, item, <floating *> w.next_a)
        # batches of one row: the update and the next row's layer-0 partial
        # in one pass over the block (each weight loaded once)
        p.task_sumsq[item] = outer_update_next(
            params + p.coef_off[0], velocity + p.coef_off[0], <const floating *> w.a0,
            ws + p.delta_off[0], p.task_row0[item], p.task_row1[item], p.units[1],
            <floating> w.alpha, <floating> w.inv_m, <floating> w.lr, <floating> w.mu,
            w.nesterov, <const floating *> w.next_a, ws + p.partial_off + item * p.units[1])
    elif w.accumulate:
        # the first layer's tasks share out the next batch's rows to ask for
        r0 = r1 = 0
        if p.update_asks and w.next_rows != NULL and item < p.layer_n_tasks[0]:
            r0 = item * w.next_B // p.layer_n_tasks[0]
            r1 = (item + 1) * w.next_B // p.layer_n_tasks[0]
        p.task_sumsq[item] = update_accumulated(
            p, ws, params, velocity, (w.n_slices + w.group_len - 1) // w.group_len, item,
            <floating> w.alpha, <floating> w.inv_m, <floating> w.lr, <floating> w.mu,
            w.nesterov, <const floating *> w.next_X, w.next_rows + r0, r1 - r0)
    else:
        p.task_sumsq[item] = update_task(
            p, ws, params, velocity, <const floating *> w.a0, w.B, item,
            ws + p.gbuf_off + tid * p.gbuf_stride, <floating> w.alpha,
            <floating> w.inv_m, <floating> w.lr, <floating> w.mu, w.nesterov)
        if w.make_next and item < p.layer_n_tasks[0]:
            if w.gather_next:
                gather_columns(p, w, item, <floating *> w.next_a)
            # the block's new weights are in this core's L1: use them now for
            # the next batch's layer-0 partial (the same product the next
            # forward phase would compute, so the numbers are unchanged)
            forward_block(p, ws, params, <const floating *> w.next_a, w.next_B, 0, item)
            key = fsg_load_relaxed(<int32_t *> &w.tail_key)
            if key >= 0:   # its columns of this batch's buffer are free now
                fsg_mark_set(&p.task_mark[item], mark_of(key, tid))


cdef inline void gather_x(const Plan *p, floating *out, const floating *x, const int64_t *rows,
                         Py_ssize_t B, Py_ssize_t f0, Py_ssize_t width) noexcept nogil:
    """Copy columns f0:f0+width of X's rows `rows` into the same columns of
    out (both B rows of units[0] values).  In an epoch that checks X (the
    first of a fit whose X was not checked up front: gathering reads it
    anyway, a separate check would read all of X once more), the copy also
    checks the values and raises p.x_bad at a NaN or infinity."""
    cdef Py_ssize_t F = p.units[0], b
    if p.check_x:
        if not gather_finite(out + f0, F, x + f0, F, rows, B, width, p.gather_ahead):
            fsg_flag_raise(p.x_bad)
    elif f0 == 0 and width == F:
        gather_rows(out, x, rows, B, F, p.gather_ahead)
    else:
        for b in range(B):
            memcpy(out + b * F + f0, x + rows[b] * F + f0, width * sizeof(floating))


cdef inline void gather_columns(const Plan *p, const Work *w, Py_ssize_t t,
                                floating *next_a) noexcept nogil:
    """Copy columns f0:f1 (those of layer-0 task t) of the next batch's rows
    into the next gather buffer.  The tasks partition the columns, so the
    gather runs in parallel, and each task's columns are the only ones its
    products (this partial, the next batch's gradient block) ever read."""
    cdef Py_ssize_t F = p.units[0], f0 = p.task_row0[t], width = p.task_row1[t] - f0
    gather_x(p, next_a, <const floating *> w.next_X, w.next_rows, w.next_B, f0, width)
    if w.ahead_B > 0 and w.B > 1:
        # the same columns of the batch after next: in cache when gathered
        fsg_prefetch_rows(w.next_X, w.ahead_rows, w.ahead_B, F * sizeof(floating),
                          f0 * sizeof(floating), width * sizeof(floating), p.ahead_hint)


cdef int64_t _tail_gathered = 0   # blocks gather_tail has gathered (diagnostics)

# What the team did (diagnostics, always on: one add per thread per phase).
# Items run by the master [0] and by the helpers [8] while the team worked
# together, each count on a cache line of its own; batches run, and of
# those run by the master alone.  A 2-thread fit whose helpers ran no item
# ran at 1-thread speed, whatever the crowd counters say.
cdef int64_t _team_items[16]
cdef int64_t _batches_run = 0
cdef int64_t _solo_batches_run = 0
cdef int64_t _hidden_phases_run = 0   # train_batch_hidden's phases (master)


def team_counts():
    """Since the process started: items of team phases run by the master
    and by the helpers, batches trained and of those run alone, and how
    often a waiting helper or master stopped spinning and blocked in the
    kernel (fsg_team.h), and the phases of hidden-unit blocks run, alone or
    not (diagnostics; the bench records their change over each group)."""
    return dict(master_items=int(_team_items[0]), helper_items=int(_team_items[8]),
                batches=int(_batches_run), solo_batches=int(_solo_batches_run),
                hidden_phases=int(_hidden_phases_run),
                worker_sleeps=int(fsg_team_worker_sleeps),
                master_sleeps=int(fsg_team_master_sleeps))


def tail_gather_count():
    """Column blocks gathered by idle threads at the end of phase 2 since
    the process started (gather_tail; tests and benchmarks)."""
    return _tail_gathered


cdef inline int32_t mark_of(int32_t key, int tid) noexcept nogil:
    """A layer-0 task's mark: finished by thread tid in phase `key`."""
    return key * 1024 + (tid & 1023)


cdef void gather_tail(const Plan *p, const Work *w, fsg_team *team, int tid,
                      Py_ssize_t n_items, floating *ws) noexcept nogil:
    """A thread with no phase 2 task left, while the others finish theirs:
    gather the batch after next (the next batch's gather phase would) into
    the blocks of this batch's buffer whose tasks this thread has finished,
    instead of waiting.  Its own blocks: their columns are in its cache, and
    it is likely to update them again next batch.  The slots hand each
    block to exactly one of this tail and that gather phase; the data are
    the same either way, so the numbers never depend on who gathers.  The
    master stops when the phase's n_items are done (it is on the critical
    path, an item of ~1-3 us late at most), the others when the master has
    moved on."""
    cdef int32_t key = fsg_load_relaxed(<int32_t *> &w.tail_key)
    cdef Py_ssize_t n = p.layer_n_tasks[0], k, t, f0
    if key < 0:
        return
    for k in range(n):
        if tid == 0:
            if fsg_team_all_done(team, n_items):
                return
        elif fsg_team_phase_id(team) != key:
            return
        t = k if tid == 0 else n - 1 - k   # the end this thread claims from
        if (fsg_mark_is(&p.task_mark[t], mark_of(key, tid))
                and fsg_slot_claim(&p.gather_slot[t], key)):
            f0 = p.task_row0[t]
            gather_x(p, <floating *> w.tail_a, <const floating *> w.tail_X, w.tail_rows,
                     w.tail_B, f0, p.task_row1[t] - f0)
            fsg_slot_done(&p.gather_slot[t], key)
            fsg_count_add(&_tail_gathered, 1)


cdef void run_items(const Plan *p, const Work *w, fsg_team *team, int tid, floating *ws,
                    floating *params, floating *velocity) noexcept nogil:
    """Claim and run items of the current phase until none is left (the
    master claims from the front, the others from the back)."""
    cdef int64_t item, n_run = 0
    cdef double t0
    while True:
        item = fsg_team_claim(team, tid != 0)
        if item < 0:
            break
        n_run += 1
        if _timing:
            t0 = now_ns()
            run_item(p, w, item, tid, ws, params, velocity)
            note_item_ns(tid, w.phase, now_ns() - t0)
        else:
            run_item(p, w, item, tid, ws, params, velocity)
        fsg_team_item_done(team)
    if n_run:
        fsg_count_add(&_team_items[8 if tid else 0], n_run)


cdef void serve(const Plan *p, const Work *w, fsg_team *team, int tid, floating *ws,
                floating *params, floating *velocity) noexcept nogil:
    """A helper thread's epoch: run items whenever a phase has some left."""
    cdef double t0
    while fsg_team_wait_work(team):
        run_items(p, w, team, tid, ws, params, velocity)
        if _timing:
            t0 = now_ns()
            gather_tail(p, w, team, tid, 0, ws)
            note_item_ns(tid, PHASE_TAIL, now_ns() - t0)
        else:
            gather_tail(p, w, team, tid, 0, ws)


cdef void run_phase(const Plan *p, Work *w, fsg_team *team, int phase, Py_ssize_t n_items,
                    floating *ws, floating *params, floating *velocity) noexcept nogil:
    """Master: open a phase, work on it, wait for the items others claimed.
    Solo (see run_epoch), or a phase of one item (a small batch's sums):
    run every item itself, the team stays asleep."""
    cdef Py_ssize_t item
    cdef double t0
    w.phase = phase
    if w.solo or n_items == 1:
        if _timing:
            t0 = now_ns()
        for item in range(n_items):
            run_item(p, w, item, 0, ws, params, velocity)
        if _timing:
            t0 = now_ns() - t0
            _master_work_ns[phase] += t0
            note_item_ns(0, phase, t0)
        return
    open_phase(w, team, phase, n_items)
    close_phase(p, w, team, n_items, now_ns(), ws, params, velocity)


cdef inline void open_phase(Work *w, fsg_team *team, int phase, Py_ssize_t n_items) noexcept nogil:
    """Master: publish a phase of n_items items to the team.  Until
    close_phase the master may do other work that the items do not read."""
    w.phase = phase
    fsg_team_publish(team, n_items)


cdef void close_phase(const Plan *p, Work *w, fsg_team *team, Py_ssize_t n_items, double t0,
                      floating *ws, floating *params, floating *velocity) noexcept nogil:
    """Master: run the items of the open phase no one has claimed, then wait
    for those others did (time since t0 counts as work, the wait as waiting)."""
    cdef double t1, t2
    run_items(p, w, team, 0, ws, params, velocity)
    if w.phase == PHASE_TASKS:
        if _timing:
            t1 = now_ns()
            gather_tail(p, w, team, 0, n_items, ws)
            note_item_ns(0, PHASE_TAIL, now_ns() - t1)
        else:
            gather_tail(p, w, team, 0, n_items, ws)
    t1 = now_ns()
    fsg_team_wait(team, n_items)
    t2 = now_ns()
    w.work_ns += t1 - t0
    w.wait_ns += t2 - t1
    if _timing:
        _master_work_ns[w.phase] += t1 - t0
        _master_wait_ns[w.phase] += t2 - t1
    if t2 - t1 > STALL_MIN_NS and t2 - t1 > 2 * (t1 - t0):
        w.stalled = True   # (see run_epoch: crowding)


cdef void settle_slots(const Plan *p, Work *w) noexcept nogil:
    """Master: the last phase 2's tail may still be gathering, and no
    gather phase will take over its slots (this batch gathers another way,
    or not at all): close every slot, waiting for one being gathered."""
    cdef Py_ssize_t t
    for t in range(p.layer_n_tasks[0]):
        if fsg_slot_claim(&p.gather_slot[t], w.pregather_key):
            fsg_slot_done(&p.gather_slot[t], w.pregather_key)
        else:
            fsg_slot_wait(&p.gather_slot[t], w.pregather_key)
    w.pregather_key = -1


cdef double train_batch(const Plan *p, Work *w, fsg_team *team, floating *ws,
                        floating *params, floating *velocity, double m) noexcept nogil:
    """One SGD step on the batch described by `w`, of total weight m.
    Returns the batch loss as scikit-learn defines it (data loss + L2 term,
    both divided by m)."""
    cdef Py_ssize_t n_slices = n_slices_for(w.B, p.slice_rows)
    cdef Py_ssize_t s, t, K = p.units[p.n_layers], n_groups
    if p.hidden_blocks > 0 and p.hidden_min_rows < w.B <= p.hidden_max_rows:
        if w.private_ok and not w.w1_private:
            private_hidden_weights(p, w, ws, params, velocity, True)
        return train_batch_hidden(p, w, team, ws, params, velocity, m)
    if w.w1_private:   # (the other paths read scikit-learn's layout)
        private_hidden_weights(p, w, ws, params, velocity, False)
    w.make_next = False
    w.fuse_next = False
    w.accumulate = False
    global _timed_batches, _timed_solo_batches, _timed_batch_ns, _timed_phase1_ns
    cdef double data_loss = 0.0, sumsq = 0.0, t0
    cdef double t_batch = now_ns() if _timing else 0.0
    w.slice_len = (w.B + n_slices - 1) // n_slices
    w.inv_m = 1.0 / m

    cdef Py_ssize_t F = p.units[0]
    cdef floating *xb_next
    # the next batch: phase 2 starts its layer-0 forward on each block it has
    # just updated (small batches), and someone gathers its rows
    w.gather_early = False
    # (one-row batches on a narrow first layer, a linear model's, fuse the
    # next row's product into the update even when the layer is small)
    cdef bint one_row = w.B == 1 and w.next_B == 1 and p.fused_rows >= 1
    w.make_next = (w.B <= p.split_rows and 0 < w.next_B <= p.split_rows
                   and (F * p.units[1] >= p.split_min_weights or (one_row and p.narrow_first)))
    # the condition of update_task's fused path, for one-row batches
    w.fuse_next = (w.make_next and one_row
                   and (p.units[1] >= 4 * FSG_VECTOR_BYTES // sizeof(floating) or p.narrow_first))
    if w.make_next:
        if w.next_rows != NULL:
            xb_next = ws + (p.xb_off if w.xb_cur else p.xb2_off)
            w.next_a = xb_next
            # with a team, the phase 2 tasks gather it, each its own columns
            # (in parallel); alone, whole rows stream faster (measured at
            # B=32: 2 threads +3%, 1 thread -6% with columns)
            w.gather_next = p.n_threads > 1 and not w.solo
            # ... or, at batches of several rows whose layers after the
            # first are small, a phase of its own while the master runs
            # those layers (the team would idle)
            w.gather_early = w.gather_next and w.B > 1 and p.small_tail
            w.gather_next = w.gather_next and not w.gather_early
            if w.pregather_key >= 0 and not w.gather_early:
                settle_slots(p, w)
            if not (w.gather_next or w.gather_early):
                gather_x(p, xb_next, <const floating *> w.next_X, w.next_rows, w.next_B, 0, F)
        else:
            w.next_a = w.next_X
            w.gather_next = False
    # (one-row batches: the master asks for the whole row; a row ahead is
    # too little lead for a dozen tasks' calls each to pay, measured 81k vs
    # 88k rows/s float64 on 2 threads)
    if w.ahead_B > 0 and not (w.make_next and (w.gather_next or w.gather_early) and w.B > 1):
        fsg_prefetch_rows(w.next_X, w.ahead_rows, w.ahead_B, F * sizeof(floating), 0,
                          F * sizeof(floating), p.ahead_hint)
    cdef double t_phase1 = now_ns() if _timing else 0.0
    if w.B <= p.split_rows:
        n_slices = 1
        p.slice_loss[0] = forward_backward_split(p, w, team, ws, params, velocity)
    else:
        w.a0 = (ws + p.xb_off) if w.rows != NULL else w.X
        # large batches form their gradients slice by slice, in up to
        # group_count groups of consecutive slices (the items of phase 1)
        n_groups = 0
        w.accumulate = w.B > p.accumulate_rows and p.group_count > 0
        if w.accumulate:
            # an even number of groups of equally many slices: the groups are
            # the items, and two threads share them evenly
            n_groups = min(p.group_count, n_slices)
            if n_groups > 1:
                n_groups -= n_groups % 2
            n_slices = (n_slices + n_groups - 1) // n_groups * n_groups
            w.slice_len = (w.B + n_slices - 1) // n_slices
            n_slices = (w.B + w.slice_len - 1) // w.slice_len
            w.group_len = (n_slices + n_groups - 1) // n_groups
        w.n_slices = n_slices
        run_phase(p, w, team, PHASE_SLICES, n_groups if w.accumulate else n_slices,
                  ws, params, velocity)
    if _timing:
        _timed_phase1_ns += now_ns() - t_phase1
    if w.pregather_key >= 0:   # (a next batch gathered without the phase)
        settle_slots(p, w)
    # every delta is known now, so weights may change.  A thread out of
    # tasks gathers the batch after next (gather_tail) when the next batch
    # will gather it in a phase of its own that can skip those blocks
    cdef int32_t key = -1
    if (p.tail_gather and w.gather_early and w.next_B > 1 and w.ahead_B > 0
            and w.next_rows != NULL):
        key = fsg_team_next_phase_id(team)
        w.tail_a = ws + (p.xb2_off if w.xb_cur else p.xb_off)
        w.tail_X = w.next_X
        w.tail_rows = w.ahead_rows
        w.tail_B = w.ahead_B
        for t in range(p.layer_n_tasks[0]):
            fsg_slot_offer(&p.gather_slot[t], key)
    fsg_store_relaxed(&w.tail_key, key)
    if w.B <= p.split_rows and p.lead_tasks > 0 and not w.solo:
        # the team takes the big layers' blocks (the ones its threads read in
        # phase 1); the master itself updates the layers it ran alone, and
        # the intercepts: their weights and deltas are in its cache, and
        # the team starts on the big blocks at once
        t0 = now_ns()
        open_phase(w, team, PHASE_TASKS, p.lead_tasks)
        for t in range(p.lead_tasks, p.n_tasks):
            run_item(p, w, t, 0, ws, params, velocity)
        close_phase(p, w, team, p.lead_tasks, t0, ws, params, velocity)
    else:
        run_phase(p, w, team, PHASE_TASKS, p.n_tasks, ws, params, velocity)
    fsg_store_relaxed(&w.tail_key, -1)
    w.pregather_key = key
    if _timing:
        _timed_batch_ns += now_ns() - t_batch
        _timed_batches += 1
        _timed_solo_batches += w.solo
    w.ready0 = w.make_next
    if w.make_next and w.next_rows != NULL:
        w.xb_cur = 1 - w.xb_cur

    # reductions in a fixed order: the result does not depend on threads
    for s in range(n_slices):
        data_loss += p.slice_loss[s]
    for t in range(p.n_tasks):
        sumsq += p.task_sumsq[t]
    if p.output == FSG_OUT_SQUARED:
        data_loss *= 0.5 / K    # scikit-learn averages squared error over outputs
    return (data_loss + 0.5 * w.alpha * sumsq) / m


# A wait for a teammate's item longer than this and than twice the master's
# own work in the phase means the teammate lost its core (fsg_wake.h,
# crowding); microseconds of work would otherwise wait milliseconds.  Two
# such stalls within STALL_PAIR_NS begin a crowded period.
cdef double STALL_MIN_NS = 1e6
# while a team runs, the master's wait for a CPU is read this often
cdef double CROWD_CHECK_NS = 5e6
cdef double STALL_PAIR_NS = 100e6
cdef Py_ssize_t _stalls = 0          # stalls seen (diagnostics)
cdef Py_ssize_t _helper_verdicts = 0 # crowded periods a helper's wait began
cdef Py_ssize_t _solo_stretches = 0  # adapt_team's solo stretches (a slow teammate)
cdef double _last_stall_ns = -1e18
# a call in a crowded period that would take this long alone still takes
# the team along: the master runs alone, looks for free cores, and the team
# joins it when they are (fsg_wake.h); shorter calls run alone
cdef double CROWD_LONG_CALL_NS = 50e6


def _note_usable_cpus(int n):
    """CPUs this process may use (fastsgd._threads, before each fit): a
    crowded period ends early when the system has room on them for the
    team (fsg_wake.h); 0 = unknown, a period runs its course."""
    global fsg_usable_cpus
    fsg_usable_cpus = n


cdef inline void note_helper_verdict() noexcept nogil:
    global _helper_verdicts
    _helper_verdicts += 1


def crowd_stats():
    """Crowded periods begun (fsg_wake.h) and whether one lasts now; the
    current backoff; stalls seen; the team-time window and CPU wait of the
    last verdict that found a crowd by waiting, and how many such verdicts
    a helper thread's wait began; periods ended early by looks that found
    room for the team, periods begun by a look as a call started, and of
    those the `blips` that the first look ended (a moment's runnable
    thread, not a crowd); the `unseen` periods begun with no crowd in the
    runnable count (the host taking a vCPU); and the `solo_stretches` large batches ran
    without the team because the master waited too long for it
    (adapt_team) (diagnostics)."""
    return dict(episodes=fsg_crowd.episodes, crowded_now=bool(fsg_crowded(fsg_now_ns())),
                backoff_ms=fsg_crowd.backoff_ns / 1e6, stalls=_stalls,
                verdict_window_ms=fsg_crowd.verdict_window_ns / 1e6,
                verdict_wait_ms=fsg_crowd.verdict_wait_ns / 1e6,
                helper_verdicts=_helper_verdicts, early_ends=fsg_crowd.early_ends,
                start_looks=fsg_crowd.start_looks, blips=fsg_crowd.blips,
                unseen=fsg_crowd.unseen, solo_stretches=_solo_stretches)


def forget_crowding():
    """End any crowded period and forget the back-off (tests)."""
    fsg_crowd.until_ns = fsg_crowd.backoff_ns = 0
    fsg_crowd.window_ns = fsg_crowd.window_wait_ns = 0
    fsg_crowd.episodes = fsg_crowd.unseen = 0
    fsg_crowd.verdict_window_ns = fsg_crowd.verdict_wait_ns = 0
    fsg_crowd.next_poll_ns = fsg_crowd.free_polls = fsg_crowd.early_ends = 0
    fsg_crowd.free_needed = 0
    fsg_crowd.start_looks = fsg_crowd.looks = fsg_crowd.started = fsg_crowd.blips = 0
    global _stalls, _last_stall_ns, _helper_verdicts, _solo_stretches
    _stalls = 0
    _helper_verdicts = 0
    _solo_stretches = 0
    _last_stall_ns = -1e18


def _crowd_policy(str what, int64_t now, int64_t team_ns=0, int64_t wait_ns=0,
                  int runnable=0, int n_threads=2, int n_cpus=2):
    """The crowding policy of fsg_wake.h on a made-up clock, for its tests:
    'record' team time and a thread's wait for a CPU in it (True when that
    begins a crowded period: only while the runnable count shows a crowd,
    see _set_runnable_override), 'begin' a period, 'look' at `runnable` threads
    in the system for a team of n_threads on n_cpus (True when that ends the
    period), look as a team call of n_threads 'start's (True when that
    begins a period; the runnable count is the engine's, see
    _set_runnable_override), 'poll' as a caller alone does (a look with the
    engine's count, when one is due; True when it ends the period), or ask
    whether it is 'crowded'."""
    if what == "record":
        return bool(fsg_crowd_record(team_ns, wait_ns, now))
    if what == "look":
        return bool(fsg_crowd_look(now, runnable, n_threads, n_cpus))
    if what == "start":
        return bool(fsg_crowd_start_look(now, n_threads))
    if what == "poll":
        return bool(fsg_crowd_poll(now, n_threads))
    if what == "begin":
        fsg_crowd_begin(now)
        return None
    return bool(fsg_crowded(now))


cdef int32_t[::1] _test_slot = np.full(1, -1, dtype=np.int32)


def _slot_hold_for_test():
    """Tests: claim a hand-off slot (fsg_team.h) as a thread about to do its
    work would."""
    fsg_slot_offer(&_test_slot[0], 7)
    assert fsg_slot_claim(&_test_slot[0], 7)


def _slot_wait_for_test():
    """Tests: wait for the held slot without the GIL (another thread calls
    _slot_done_for_test); returns the process's slot stalls seen since."""
    cdef int64_t before = fsg_slot_stall_count()
    with nogil:
        fsg_slot_wait(&_test_slot[0], 7)
    return fsg_slot_stall_count() - before


def _slot_done_for_test():
    fsg_slot_done(&_test_slot[0], 7)


def _set_runnable_override(int n):
    """Tests: n >= 0 is taken as the system's runnable thread count instead
    of /proc/loadavg's; -1 reads it again.  Returns what the engine reads."""
    global fsg_runnable_override
    fsg_runnable_override = n
    return fsg_runnable_now()


cdef int run_epoch(const Plan *p, Work *w, fsg_team *team, floating *ws, floating *params,
                   floating *velocity, const floating *X, const floating *Y,
                   const floating *sw, const int64_t *order, Py_ssize_t n,
                   Py_ssize_t batch_size, double *batch_losses, Py_ssize_t *done,
                   double *total, Adapt *ad) noexcept nogil:
    """Master: the epoch (run_batches), with W1 in the hidden-unit blocks'
    own copies while a team runs many batches of them
    (private_hidden_weights), and back in params at the end, however the
    epoch ends.  Returns a Status."""
    cdef int status
    w.w1_private = False
    w.private_ok = (p.hw1_stride > 0 and p.n_threads > 1 and p.hidden_private > 0
                    and p.hidden_min_rows < batch_size <= p.hidden_max_rows
                    and (n // batch_size) * ((batch_size + p.hidden_chunk - 1)
                                             // p.hidden_chunk) >= p.hidden_private)
    status = run_batches(p, w, team, ws, params, velocity, X, Y, sw, order, n, batch_size,
                         batch_losses, done, total, ad)
    if w.w1_private:
        private_hidden_weights(p, w, ws, params, velocity, False)
    return status


cdef int run_batches(const Plan *p, Work *w, fsg_team *team, floating *ws, floating *params,
                     floating *velocity, const floating *X, const floating *Y,
                     const floating *sw, const int64_t *order, Py_ssize_t n,
                     Py_ssize_t batch_size, double *batch_losses, Py_ssize_t *done,
                     double *total, Adapt *ad) noexcept nogil:
    """Master: the epoch loop.  Batches are consecutive runs of `order` (or
    of X's rows when order is NULL).  Returns a Status."""
    cdef Py_ssize_t F = p.units[0], K = p.units[p.n_layers]
    cdef Py_ssize_t k, r, start, n_batches = (n + batch_size - 1) // batch_size
    cdef double m, loss
    cdef Py_ssize_t solo_until = 0, solo_batches = 32
    cdef bint probing = p.n_threads > 1 and batch_size <= p.probe_rows
    cdef bint crowd_solo = False   # solo while the team is crowded out (fsg_wake.h)
    cdef double t, t_check = 0.0
    cdef int64_t cpu_wait = 0, now_wait
    cdef int64_t slot_stalls = fsg_slot_stall_count()
    global _stalls, _last_stall_ns, _batches_run, _solo_batches_run
    w.solo = False
    w.stalled = False
    w.work_ns = 0.0
    w.wait_ns = 0.0
    if probing:
        if ad.state != ADAPT_RUN:
            # a probe cut by the end of the last epoch: start it again
            ad.state = ADAPT_TEAM
            ad.left = ADAPT_PROBE_BATCHES
            ad.t0 = now_ns()
        w.solo = ad.state == ADAPT_SOLO or (ad.state == ADAPT_RUN and ad.run_solo)
    if p.n_threads > 1 and p.crowd_guard:
        t_check = now_ns()
        cpu_wait = fsg_cpu_wait_ns()
        if fsg_crowded(<int64_t> t_check):
            w.solo = crowd_solo = True
    w.ready0 = False
    w.hidden_pre = False
    w.xb_cur = 0
    w.tail_key = -1
    w.pregather_key = -1
    for k in range(n_batches):
        start = k * batch_size
        w.B = min(batch_size, n - start)
        if order != NULL:
            w.rows = order + start
            w.X, w.Y, w.sw = X, Y, sw
        else:
            w.rows = NULL
            w.X, w.Y = X + start * F, Y + start * K
            w.sw = (sw + start) if sw != NULL else NULL
        # the next batch of this epoch, if any
        w.next_B = min(batch_size, n - start - batch_size) if k + 1 < n_batches else 0
        if order != NULL:
            w.next_rows, w.next_X = order + start + batch_size, X
        else:
            w.next_rows, w.next_X = NULL, X + (start + batch_size) * F
        # small batches with a team gather the next batch's rows piecewise
        # in phase 2 (gather_columns), each piece a DRAM miss: the rows of
        # the batch after next are asked for a whole batch ahead (by the
        # tasks, each its columns, or else here; see train_batch)
        w.ahead_B = 0
        if (order != NULL and p.n_threads > 1 and batch_size <= p.split_rows
                and k + 2 < n_batches):
            w.ahead_rows = order + start + 2 * batch_size
            w.ahead_B = min(batch_size, n - start - 2 * batch_size)
        # m: the batch's row count, or its total sample weight
        m = w.B
        if sw != NULL:
            m = 0.0
            for r in range(w.B):
                m += sw[order[start + r]] if order != NULL else sw[start + r]
            if m == 0.0:
                return STATUS_ZERO_WEIGHT_BATCH
        loss = train_batch(p, w, team, ws, params, velocity, m)
        _batches_run += 1
        _solo_batches_run += w.solo or p.n_threads == 1
        if fsg_slot_stall_count() != slot_stalls:
            # a thread waited long for a gather another was doing (fsg_team.h)
            slot_stalls = fsg_slot_stall_count()
            w.stalled = True
        if p.check_x and fsg_flag_raised(p.x_bad):
            done[0] = k + 1   # (this batch, the next or the one after holds it)
            return STATUS_NONFINITE_X
        # crowding (fsg_wake.h): two stalls, or the master waiting for a CPU
        # too much of its team time, send the team solo for a while; then
        # it is tried again, sooner if the cores are seen free
        if p.n_threads > 1 and p.crowd_guard and (w.stalled or crowd_solo or k % 16 == 15):
            t = now_ns()
            if w.stalled:
                # one stall can be the host taking the vCPU for a moment
                # (seen every few seconds on the quiet build machine); two
                # within STALL_PAIR_NS are a crowd (every few ms)
                _stalls += 1
                if t - _last_stall_ns < STALL_PAIR_NS:
                    fsg_crowd_begin(<int64_t> t)
                _last_stall_ns = t
            elif crowd_solo:
                # the crowd may have left (OpenBLAS's spinning workers, say)
                fsg_crowd_poll(<int64_t> t, p.n_threads)
            elif not crowd_solo and t - t_check >= CROWD_CHECK_NS:
                now_wait = fsg_cpu_wait_ns()
                if not w.solo and now_wait >= 0 and cpu_wait >= 0:
                    fsg_crowd_record(<int64_t> (t - t_check), now_wait - cpu_wait,
                                     <int64_t> t)
                t_check, cpu_wait = t, now_wait
            if fsg_crowded(<int64_t> t):
                w.solo = crowd_solo = True
            elif crowd_solo:
                w.solo = crowd_solo = False
                w.work_ns = 0.0
                w.wait_ns = 0.0
                solo_until = 0
                t_check, cpu_wait = t, fsg_cpu_wait_ns()
                if probing:   # measure anew
                    ad.state = ADAPT_TEAM
                    ad.left = ADAPT_PROBE_BATCHES
                    ad.t0 = t
        w.stalled = False
        if crowd_solo:
            pass
        elif probing:
            adapt_probe(p, ad, w)
        elif p.n_threads > 1:
            adapt_team(p, w, k, &solo_until, &solo_batches)
        batch_losses[k] = loss
        total[0] += loss * w.B
        done[0] = k + 1
        if not isfinite(loss):
            return STATUS_NONFINITE_LOSS
        if (k + 1) % p.signal_every == 0 and k + 1 < n_batches:
            with gil:
                if PyErr_CheckSignals() != 0:
                    return STATUS_INTERRUPTED   # the KeyboardInterrupt stays pending
    return STATUS_OK


cdef inline double now_ns() noexcept nogil:
    return <double> fsg_now_ns()   # the monotonic clock of fsg_wake.h


cdef void adapt_probe(const Plan *p, Adapt *ad, Work *w) noexcept nogil:
    """Master, after each small batch: ADAPT_PROBE_BATCHES batches with the
    team, as many alone, then a stretch with the faster (1024 batches for
    the team, 64 alone, doubling while the same side keeps winning); alone must be 10% faster to
    win, so noise keeps the team.  A team stretch ends early when the
    master waits for its teammate as adapt_team would notice (a neighbour
    took the core).  Who computes an item never changes its result, so
    this is invisible in the numbers."""
    cdef double t
    cdef bint solo
    if w.solo:
        ad.solo_batches += 1
    else:
        ad.team_batches += 1
        if ad.state == ADAPT_RUN and ad.team_batches % 32 == 0:
            if w.wait_ns * 100 > p.solo_wait_percent * w.work_ns:
                ad.left = 1   # measure again now
            w.work_ns = 0.0
            w.wait_ns = 0.0
    ad.left -= 1
    if ad.left > 0:
        return
    t = now_ns()
    if ad.state == ADAPT_TEAM:
        ad.team_ns = t - ad.t0
        ad.state = ADAPT_SOLO
        ad.left = ADAPT_PROBE_BATCHES
        w.solo = True
    elif ad.state == ADAPT_SOLO:
        ad.verdicts += 1
        solo = (t - ad.t0) < 0.9 * ad.team_ns
        if solo == ad.run_solo:
            ad.stretch = min(2 * ad.stretch, <Py_ssize_t> ADAPT_MAX_STRETCH)
        else:
            # a solo verdict is checked again soon: a passing disturbance
            # (another library's threads spinning down) must not cost long
            ad.stretch = ADAPT_FIRST_SOLO_STRETCH if solo else ADAPT_FIRST_STRETCH
        ad.run_solo = solo
        ad.state = ADAPT_RUN
        ad.left = ad.stretch
        w.solo = solo
    else:
        ad.state = ADAPT_TEAM
        ad.left = ADAPT_PROBE_BATCHES
        w.solo = False
    ad.t0 = t


cdef void adapt_team(const Plan *p, Work *w, Py_ssize_t k, Py_ssize_t *solo_until,
                     Py_ssize_t *solo_batches) noexcept nogil:
    """Master, after batch k: degrade gracefully when a teammate is slow.

    If, over the last 32 batches, the master spent more than a quarter of
    its working time waiting for items another thread had claimed (that
    thread shares its core with a busy neighbour, or with another library's
    spinning threads), run the next batches solo; then try the team again,
    doubling the solo stretch each time it fails (up to 4096 batches).
    Who computes an item never changes its result, so this is invisible in
    the numbers."""
    if w.solo:
        if k + 1 >= solo_until[0]:
            w.solo = False
            w.work_ns = 0.0
            w.wait_ns = 0.0
        return
    if (k + 1) % 32 != 0:
        return
    global _solo_stretches
    if w.wait_ns * 100 > p.solo_wait_percent * w.work_ns:
        w.solo = True
        _solo_stretches += 1
        solo_until[0] = k + 1 + solo_batches[0]
        solo_batches[0] = min(2 * solo_batches[0], 4096)
    else:
        solo_batches[0] = 32
    w.work_ns = 0.0
    w.wait_ns = 0.0


cdef int raise_pending() except -1:
    """Re-raise the exception a signal handler left pending (Ctrl-C)."""
    return -1


cdef inline Py_ssize_t _align(Py_ssize_t n) noexcept nogil:
    # 64-byte alignment for every workspace buffer (16 floats / 8 doubles;
    # rounding to 16 elements covers both)
    return (n + 15) // 16 * 16


def taper_rows(n, block, least):
    """Block sizes (rows) covering n rows, largest at both ends and shrinking
    towards the middle: the master claims blocks from the front and its
    teammate from the back, so the last blocks claimed, whose finish the
    other thread may wait for, are the small ones.  Each half is split
    'guided': a block is a share of the rows left in the half, the first
    about 2 * block, none under `least` rows (a remainder under that joins
    the first block)."""
    return _taper_half(n // 2, block, least) + _taper_half(n - n // 2, block, least)[::-1]


def _taper_half(rows, block, least):
    sizes = []
    left = rows
    while left > 0:
        size = min(left, max(least, -(-left * 2 * block // rows)))
        sizes.append(size)
        left -= size
    if len(sizes) > 1 and sizes[len(sizes) - 1] < least:   # (no wraparound here)
        sizes[0] += sizes.pop()
    return sizes


cdef class Engine:
    """The compiled training engine for one network shape.

    Parameters
    ----------
    units : sequence of int
        Layer widths [n_features, hidden..., n_outputs].
    coef_offsets, intercept_offsets : sequence of int
        Where W[i] and b[i] start in the flat parameter slab.
    activation : int
        Hidden activation code (fastsgd._params.ACTIVATION_CODES).
    output : int
        Output activation + loss code (fastsgd._params.OUTPUT_CODES).
    """

    cdef readonly object units
    cdef readonly int activation
    cdef readonly int output
    cdef readonly Py_ssize_t n_params
    cdef object _coef_off, _icpt_off
    cdef object _task_layer, _task_row0, _task_row1
    cdef object _layer_first_task, _layer_n_tasks
    cdef Py_ssize_t _task_weights
    cdef bint _task_taper
    cdef Py_ssize_t _task_reverse
    cdef object _act_off, _delta_off
    cdef object _ws, _slice_loss, _task_sumsq
    cdef object _gather_slots, _task_marks   # int32, per task (Plan.gather_slot, task_mark)
    cdef object _hx_stamps, _hidden_sumsq    # Plan.hx_stamp, hidden_sumsq
    cdef Py_ssize_t _ws_rows, _ws_threads, _ws_groups
    cdef object _ws_tuning
    cdef object _ws_dtype
    cdef Plan _plan
    cdef Adapt _adapt
    cdef int32_t _x_bad             # raised by check_x gathers (Plan.x_bad)
    cdef double _row_ns            # one thread's ns per row in the last call...
    cdef Py_ssize_t _row_ns_batch  # ...at this batch size (0: none yet)

    def __init__(self, units, coef_offsets, intercept_offsets, int activation, int output):
        units = np.asarray(units, dtype=np.intp)
        L = len(units) - 1
        if L < 1 or len(coef_offsets) != L or len(intercept_offsets) != L:
            raise ValueError("inconsistent network layout")
        if np.any(units < 1):
            raise ValueError("every layer needs at least one unit")
        self.units = units
        self.activation = activation
        self.output = output
        self._coef_off = np.asarray(coef_offsets, dtype=np.intp)
        self._icpt_off = np.asarray(intercept_offsets, dtype=np.intp)
        self.n_params = int(np.sum(units[:-1] * units[1:]) + np.sum(units[1:]))

        self._task_weights = 0
        self._task_taper = False
        self._task_reverse = -1
        self._ws = None
        self._ws_rows = 0
        self._ws_threads = 0
        self._ws_dtype = None
        self._row_ns = 0.0
        self._row_ns_batch = 0

    cdef void _build_tasks(self, Py_ssize_t task_weights, bint taper,
                           Py_ssize_t reverse_layer) except *:
        """Phase 2 tasks: blocks of about task_weights weights (whole rows of
        one W), then one task per layer for its intercepts.  Larger blocks
        for BLAS batches (fewer, better-shaped products), smaller for the
        fused small-batch path (finer sharing between threads).  `taper`:
        blocks shrink from both ends towards the middle (see taper_rows).
        Layer `reverse_layer`'s blocks are listed last rows first (see the
        knob reverse_last)."""
        units = self.units
        layer, row0, row1 = [], [], []
        for i in range(len(units) - 1):
            fan_in, fan_out = int(units[i]), int(units[i + 1])
            # equal blocks of about task_weights weights (no small last one)
            n_blocks = max(1, -(-fan_in * fan_out // task_weights))
            block = -(-fan_in // n_blocks)
            if taper and n_blocks > 2:
                sizes = taper_rows(fan_in, block, max(1, -(-task_weights // (4 * fan_out))))
            else:
                sizes = [block] * n_blocks
            f0 = 0
            blocks = []
            for size in sizes:
                if f0 >= fan_in:
                    break
                blocks.append((f0, min(f0 + size, fan_in)))
                f0 += size
            if i == reverse_layer:
                blocks.reverse()
            for b0, b1 in blocks:
                layer.append(i)
                row0.append(b0)
                row1.append(b1)
        for i in range(len(units) - 1):
            layer.append(i)
            row0.append(-1)
            row1.append(-1)
        self._task_layer = np.asarray(layer, dtype=np.intp)
        self._task_row0 = np.asarray(row0, dtype=np.intp)
        self._task_row1 = np.asarray(row1, dtype=np.intp)
        n_layers = len(units) - 1
        weight_tasks = self._task_row0 >= 0
        self._layer_n_tasks = np.asarray(
            [np.sum(weight_tasks & (self._task_layer == i)) for i in range(n_layers)],
            dtype=np.intp)
        self._layer_first_task = np.concatenate(
            [[0], np.cumsum(self._layer_n_tasks)[:-1]]).astype(np.intp)
        self._task_weights = task_weights
        self._task_taper = taper
        self._task_reverse = reverse_layer
        self._ws = None   # the gradient blocks may have changed size

    @property
    def workspace_nbytes(self):
        """Bytes of scratch held for the largest batch seen so far."""
        return 0 if self._ws is None else int(self._ws.nbytes + self._slice_loss.nbytes)

    cdef Py_ssize_t _n_leading_split(self):
        """How many layers from the first on have at least split_min_weights
        weights: small batches split them by weights, and with master_tail
        the team updates them (lead_tasks) while the master does the rest."""
        cdef Py_ssize_t n = 0, L = len(self.units) - 1
        while n < L and self.units[n] * self.units[n + 1] >= _TUNING["split_min_weights"]:
            n += 1
        return n

    def task_blocks(self):
        """Phase 2's weight blocks as the team claims them (diagnostics and
        tests): (layer, first row, end row) in task order, for the batch
        size of the last call."""
        return [(int(i), int(r0), int(r1))
                for i, r0, r1 in zip(self._task_layer, self._task_row0, self._task_row1)
                if r0 >= 0]

    def adapt_stats(self):
        """How the small-batch team/solo probes went (see adapt_probe):
        batches run with the team and alone since the batch size or thread
        count last changed, the current winner and stretch."""
        return dict(team_batches=self._adapt.team_batches,
                    solo_batches=self._adapt.solo_batches,
                    run_solo=bool(self._adapt.run_solo), stretch=self._adapt.stretch)

    def __reduce__(self):
        # the workspace is scratch: rebuild from the shape
        return (Engine, (self.units, self._coef_off, self._icpt_off,
                         self.activation, self.output))

    cdef void _reserve(self, Py_ssize_t rows, int n_threads, object dtype) except *:
        """Allocate the workspace for batches of up to `rows` rows and
        `n_threads` threads, once; later calls reuse it."""
        cdef Py_ssize_t L = len(self.units) - 1, off = 0, i, gbuf, n_slices, buf_rows
        cdef Py_ssize_t[::1] units = self.units
        if rows == 1:
            task_weights = _TUNING["task_weights_one"]
        elif rows <= _TUNING["split_rows"]:
            task_weights = _TUNING["task_weights_small"]
        elif rows <= _TUNING["huge_rows"]:
            task_weights = _TUNING["task_weights"]
        else:
            task_weights = _TUNING["task_weights_huge"]
        taper = rows == 1 and _TUNING["taper_one"]
        # small batches: the master updates the layers after the leading run
        # of big ones (lead_tasks); list the last big layer's blocks from its
        # end (reverse_last)
        reverse_layer = -1
        if rows <= _TUNING["split_rows"] and _TUNING["master_tail"] and _TUNING["reverse_last"]:
            reverse_layer = self._n_leading_split() - 1
        if (task_weights != self._task_weights or taper != self._task_taper
                or reverse_layer != self._task_reverse):
            self._build_tasks(task_weights, taper, reverse_layer)
        # gradient buffers for slice groups (accumulate_slice), unless they
        # would be huge: then large batches take the phase-2 products
        itemsize = np.dtype(dtype).itemsize
        groups = 0
        if rows > _TUNING["accumulate_rows"]:
            groups = min(n_slices_for(rows, _slice_rows(dtype)), _TUNING["max_groups"])
            if groups * self.n_params * itemsize > (_TUNING["group_mib"] << 20):
                groups = 0
        # (a tuning knob changed since may change every size: start afresh)
        if (self._ws is not None and rows <= self._ws_rows
                and n_threads <= self._ws_threads and dtype == self._ws_dtype
                and groups == self._ws_groups and self._ws_tuning == _TUNING):
            return
        if self._ws_tuning != _TUNING:
            self._ws_rows = 0
        rows = max(rows, self._ws_rows if dtype == self._ws_dtype else 0)
        n_threads = max(n_threads, self._ws_threads if dtype == self._ws_dtype else 1)
        K = units[L]
        act_off = np.zeros(L + 1, dtype=np.intp)
        delta_off = np.zeros(L, dtype=np.intp)
        # per-row buffers (inputs, targets, activations, deltas): a whole
        # batch, but batches that accumulate need one slice per thread
        # (run_item); a whole one only batches that don't accumulate (up to
        # accumulate_rows, an epoch's last) or split by weights (up to
        # split_rows: forward_backward_split, whatever accumulate_rows says)
        buf_rows = rows
        if groups > 0:
            buf_rows = max(min(rows, max(_TUNING["accumulate_rows"], _TUNING["split_rows"])),
                           n_threads * _slice_rows(dtype))
        xb_off = off
        off += _align(buf_rows * units[0])
        xb2_off = off
        off += _align(min(rows, _TUNING["split_rows"]) * units[0])
        yb_off = off
        off += _align(buf_rows * K)
        sw_off = off
        off += _align(buf_rows)
        for i in range(1, L):
            act_off[i] = off
            off += _align(buf_rows * units[i])
        for i in range(L):
            delta_off[i] = off
            off += _align(buf_rows * units[i + 1])
        # largest gradient block of a task, and room for an intercept vector
        gbuf = 0
        for t in range(len(self._task_layer)):
            i = self._task_layer[t]
            if self._task_row0[t] < 0:
                gbuf = max(gbuf, units[i + 1])
            else:
                gbuf = max(gbuf, (self._task_row1[t] - self._task_row0[t]) * units[i + 1])
        gbuf = _align(gbuf)
        gbuf_off = off
        off += gbuf * n_threads
        # partial products of the weight-split forward (small batches only)
        # (any batch may be small: an epoch's last batch can be short)
        partial_off = off
        partial = 0
        for i in range(L):
            partial = max(partial, self._layer_n_tasks[i] * min(rows, _TUNING["split_rows"])
                          * units[i + 1])
        off += _align(partial)
        group_off = off
        group_stride = _align(self.n_params)
        off += groups * group_stride
        # one hidden layer split by hidden units (train_batch_hidden)
        h_blocks = h_width = h_chunk = 0
        hx_off = hx_stride = hact_off = hdelta_off = hpart_off = hgrad_off = 0
        hgrad_stride = hout_off = 0
        hw1_off = hv1_off = hw1_stride = 0
        if (L == 2 and _TUNING["hidden_rows"] > _TUNING["hidden_min_rows"]
                and rows > _TUNING["hidden_min_rows"]
                and units[0] * units[1] >= _TUNING["split_min_weights"]
                and (_TUNING["hidden_any_blas"] or _blas_small_matrix_kernels())):
            # equal blocks of whole vectors (two threads share evenly)
            h_blocks = -(-units[1] // _TUNING["hidden_width"])
            vec = FSG_VECTOR_BYTES // itemsize
            h_width = -(-(-(-units[1] // h_blocks)) // vec) * vec
            h_blocks = -(-units[1] // h_width)
            if h_blocks < 2:
                h_blocks = 0
        if h_blocks > 0:
            h_chunk = min(rows, max(1, _TUNING["hidden_chunk_rows"] * 4 // itemsize))
            hx_off = off
            hx_stride = _align(h_chunk * units[0])
            off += hx_stride * 2 * n_threads
            hact_off = off
            off += _align(h_blocks * h_chunk * h_width)
            hdelta_off = off
            off += _align(h_blocks * h_chunk * h_width)
            hpart_off = off
            off += _align(h_blocks * h_chunk * K)
            hgrad_off = off
            hgrad_stride = _align(h_width * (units[0] + K + 2))
            off += h_blocks * hgrad_stride
            hout_off = off
            off += _align(2 * h_chunk * K + h_chunk + 2 * K)
            if n_threads > 1:
                hw1_stride = _align(units[0] * h_width)
                hw1_off = off
                off += h_blocks * hw1_stride
                hv1_off = off
                off += h_blocks * hw1_stride
        raw = np.empty(off + 64 // itemsize, dtype=dtype)
        shift = (-raw.ctypes.data % 64) // itemsize
        self._ws = raw[shift:shift + off]
        self._act_off = act_off
        self._delta_off = delta_off
        n_slices = n_slices_for(rows, _slice_rows(dtype))
        # (accumulating batches may cut up to max_groups - 1 more slices)
        self._slice_loss = np.zeros(max(n_slices, 1) + _TUNING["max_groups"], dtype=np.float64)
        self._task_sumsq = np.zeros(len(self._task_layer), dtype=np.float64)
        self._gather_slots = np.full(len(self._task_layer), -1, dtype=np.int32)
        self._task_marks = np.full(len(self._task_layer), -1, dtype=np.int32)
        self._hx_stamps = np.full(8 * max(n_threads, 1), -1, dtype=np.int64)
        self._hidden_sumsq = np.zeros(max(h_blocks, 1), dtype=np.float64)
        self._ws_rows = rows
        self._ws_threads = n_threads
        self._ws_dtype = np.dtype(dtype)
        self._ws_groups = groups
        self._ws_tuning = dict(_TUNING)

        cdef Py_ssize_t[::1] v
        self._plan.n_layers = L
        self._plan.activation = self.activation
        self._plan.output = self.output
        self._plan.n_params = self.n_params
        v = self.units
        self._plan.units = &v[0]
        v = self._coef_off
        self._plan.coef_off = &v[0]
        v = self._icpt_off
        self._plan.icpt_off = &v[0]
        self._plan.n_tasks = len(self._task_layer)
        v = self._task_layer
        self._plan.task_layer = &v[0]
        v = self._task_row0
        self._plan.task_row0 = &v[0]
        v = self._task_row1
        self._plan.task_row1 = &v[0]
        v = self._layer_first_task
        self._plan.layer_first_task = &v[0]
        v = self._layer_n_tasks
        self._plan.layer_n_tasks = &v[0]
        self._plan.xb_off = xb_off
        self._plan.xb2_off = xb2_off
        self._plan.yb_off = yb_off
        self._plan.sw_off = sw_off
        v = self._act_off
        self._plan.act_off = &v[0]
        v = self._delta_off
        self._plan.delta_off = &v[0]
        self._plan.gbuf_off = gbuf_off
        self._plan.gbuf_stride = gbuf
        self._plan.partial_off = partial_off
        self._plan.group_off = group_off
        self._plan.group_stride = group_stride
        self._plan.group_count = groups
        cdef double[::1] dv = self._slice_loss
        self._plan.slice_loss = &dv[0]
        dv = self._task_sumsq
        self._plan.task_sumsq = &dv[0]
        cdef int32_t[::1] iv = self._gather_slots
        self._plan.gather_slot = &iv[0]
        iv = self._task_marks
        self._plan.task_mark = &iv[0]
        self._plan.hidden_blocks = h_blocks
        self._plan.hidden_width = h_width
        self._plan.hidden_chunk = h_chunk
        self._plan.hx_off = hx_off
        self._plan.hx_stride = hx_stride
        self._plan.hact_off = hact_off
        self._plan.hdelta_off = hdelta_off
        self._plan.hpart_off = hpart_off
        self._plan.hgrad_off = hgrad_off
        self._plan.hgrad_stride = hgrad_stride
        self._plan.hout_off = hout_off
        self._plan.hw1_off = hw1_off
        self._plan.hv1_off = hv1_off
        self._plan.hw1_stride = hw1_stride
        cdef int64_t[::1] sv = self._hx_stamps
        self._plan.hx_stamp = &sv[0]
        dv = self._hidden_sumsq
        self._plan.hidden_sumsq = &dv[0]

    def train_epoch(self, floating[::1] params not None,
                    floating[::1] velocity not None,
                    const floating[:, ::1] X not None,
                    const floating[:, ::1] Y not None,
                    const floating[::1] sample_weight not None,
                    const int64_t[::1] order not None,
                    Py_ssize_t batch_size, double learning_rate,
                    double momentum, bint nesterov, double alpha,
                    int n_threads, double[::1] batch_losses not None,
                    bint check_x=False):
        """Run one epoch: every batch of `order` (or of X's rows in storage
        order when `order` is empty), one forward/backward/update each.

        `sample_weight` may be empty (no weights).  Per-batch losses go to
        `batch_losses`.  Returns (status, batches done, sum over batches of
        loss * batch rows); status is STATUS_OK or why the epoch stopped
        early (the failing batch's update has been applied).  Ctrl-C raises
        KeyboardInterrupt between batches, leaving the updates made so far.

        `check_x`: check every row of X for NaN and infinity as it is
        gathered (the epoch must gather: `order` not empty); at the first
        bad value the epoch stops with STATUS_NONFINITE_X, after the batch
        that gathered it (its update may have been applied)."""
        cdef Py_ssize_t n_rows = X.shape[0]
        cdef Py_ssize_t n = order.shape[0] if order.shape[0] > 0 else n_rows
        cdef Py_ssize_t L = len(self.units) - 1
        cdef Py_ssize_t F = self.units[0], K = self.units[L]
        cdef Py_ssize_t n_batches
        cdef const floating *sw = NULL
        cdef const int64_t *order_ptr = NULL
        cdef int tid
        cdef int status[1]
        cdef Py_ssize_t done[1]
        cdef double total[1]
        cdef Work work
        cdef fsg_team team
        cdef int64_t t_start, master_done[1], latest[1]
        cdef int64_t helper_t0, helper_t1, helper_wait0
        cdef bint team_call, crowded, looked
        cdef double solo_ns
        global _train_unit_ns

        if params.shape[0] != self.n_params or velocity.shape[0] != self.n_params:
            raise ValueError("parameter slab does not match the network")
        if X.shape[1] != F or Y.shape[1] != K or Y.shape[0] != n_rows:
            raise ValueError("data does not match the network")
        if sample_weight.shape[0] not in (0, n_rows):
            raise ValueError("sample_weight does not match X")
        if batch_size < 1 or n < 1:
            raise ValueError("need at least one row and batch_size >= 1")
        if order.shape[0] > 0:
            if np.min(order) < 0 or np.max(order) >= n_rows:
                raise ValueError("row order out of range")
            order_ptr = &order[0]
        if check_x and order.shape[0] == 0:
            raise ValueError("check_x needs an explicit row order (gathered rows)")
        n_batches = (n + batch_size - 1) // batch_size
        if batch_losses.shape[0] < n_batches:
            raise ValueError("batch_losses too short")
        if sample_weight.shape[0] > 0:
            sw = &sample_weight[0]
        batch_size = min(batch_size, n)
        # threads pay only when a batch has enough work to split
        if batch_size * self.n_params < _TUNING["parallel_min_work"]:
            n_threads = 1
        n_threads = max(1, n_threads)
        self._reserve(batch_size, n_threads, np.asarray(X).dtype)
        self._plan.slice_rows = _slice_rows(np.asarray(X).dtype)
        self._plan.small_rows = _TUNING["small_rows"]
        self._plan.fused_rows = _TUNING["fused_rows"]
        self._plan.split_rows = _TUNING["split_rows"]
        self._plan.split_min_weights = _TUNING["split_min_weights"]
        self._plan.sum_rows = _TUNING["sum_rows"]
        self._plan.parallel_min_work = _TUNING["parallel_min_work"]
        self._plan.signal_every = _TUNING["signal_every"]
        self._plan.solo_wait_percent = _TUNING["solo_wait_percent"]
        self._plan.probe_rows = _TUNING["probe_rows"]
        self._plan.accumulate_rows = _TUNING["accumulate_rows"]
        self._plan.gather_ahead = _TUNING["gather_ahead"]
        self._plan.ahead_hint = _TUNING["ahead_hint"]
        self._plan.update_asks = _TUNING["update_asks"]
        self._plan.tail_gather = _TUNING["tail_gather"]
        self._gather_slots.fill(-1)   # (at rest: no key matches)
        self._task_marks.fill(-1)
        self._hx_stamps.fill(-1)      # (no thread holds a chunk of this call)
        work.next_stamp = 0
        work.hidden_pre = False
        work.fwd_next = False
        work.w1_private = False
        work.private_ok = False
        self._plan.hidden_max_rows = _TUNING["hidden_rows"]
        self._plan.hidden_min_rows = _TUNING["hidden_min_rows"]
        self._plan.hidden_grad_rows = _TUNING["hidden_grad_rows"]
        self._plan.hidden_fwd_rows = _TUNING["hidden_fwd_rows"]
        self._plan.hidden_asks = _TUNING["hidden_asks"]
        self._plan.hidden_reverse = _TUNING["hidden_reverse"]
        self._plan.hidden_merge = _TUNING["hidden_merge"]
        self._plan.hidden_private = _TUNING["hidden_private"]
        self._plan.crowd_guard = _TUNING["wake_guard"]
        self._plan.small_tail = _TUNING["gather_early"] and L >= 2 and all(
            self.units[i] * self.units[i + 1] < self._plan.split_min_weights
            for i in range(1, L))
        self._plan.lead_tasks = 0
        if _TUNING["master_tail"]:
            for i in range(self._n_leading_split()):
                self._plan.lead_tasks += self._layer_n_tasks[i]
        self._x_bad = 0
        self._plan.x_bad = &self._x_bad
        self._plan.check_x = check_x
        cdef floating[::1] ws_view = self._ws
        cdef floating *ws = &ws_view[0]
        cdef floating *w_ptr = &params[0]
        cdef floating *v_ptr = &velocity[0]
        cdef const floating *x_ptr = &X[0, 0]
        cdef const floating *y_ptr = &Y[0, 0]
        cdef double *losses_ptr = &batch_losses[0]
        cdef Plan *plan = &self._plan
        self._plan.narrow_first = narrow_ok(<const floating *> w_ptr, self._plan.units[1])

        work.alpha = <floating> alpha
        work.lr = <floating> learning_rate
        work.mu = <floating> momentum
        work.nesterov = nesterov
        adapt_key = (tuple(self.units), np.asarray(X).dtype.char, batch_size, n_threads)
        if self._adapt.batch_size != batch_size or self._adapt.n_threads != n_threads:
            # new measurements for a new batch size or team, unless a recent
            # verdict for this shape is remembered (_ADAPT_MEMORY)
            self._adapt = Adapt(batch_size=batch_size, n_threads=n_threads,
                                state=ADAPT_TEAM, left=ADAPT_PROBE_BATCHES, t0=0.0,
                                team_ns=0.0, run_solo=False, stretch=ADAPT_FIRST_STRETCH // 2,
                                team_batches=0, solo_batches=0, verdicts=0)
            remembered = _ADAPT_MEMORY.get(adapt_key)
            if remembered is not None and fsg_now_ns() - remembered[1] < ADAPT_MEMORY_NS:
                self._adapt.run_solo = remembered[0]
                self._adapt.state = ADAPT_RUN
                self._adapt.stretch = (ADAPT_FIRST_SOLO_STRETCH if remembered[0]
                                       else ADAPT_FIRST_STRETCH)
                self._adapt.left = self._adapt.stretch
        # a short call after an idle gap runs alone when the team would
        # arrive after the work is done (fsg_wake.h); the team/alone probes
        # (self._adapt) keep their measurements for the next team call
        # (this engine's last call at this batch size tells the cost best;
        # else the last call of any engine, per row and parameter)
        t_start = fsg_now_ns()
        team_call = n_threads > 1
        if team_call and _TUNING["wake_guard"]:
            solo_ns = (self._row_ns * n if self._row_ns_batch == batch_size
                       else _train_unit_ns * n * self.n_params)
            team_call = fsg_wake_worth(t_start, <int64_t> solo_ns, n_threads)
            crowded = fsg_crowded(t_start)
            looked = not crowded and team_call and fsg_crowd_start_look(t_start, n_threads)
            if crowded or looked:
                # crowded (fsg_wake.h): run_epoch runs alone and looks for
                # free cores; a long call brings the team for when it does,
                # and so does a call whose own start look found no room:
                # one look is weak evidence, and the next, 1 ms on, mostly
                # ends the period (2 of 30 float32 batch-1 fits of 2,000
                # rows ran wholly alone, 27.5-29.1 ms against 17-21)
                team_call = solo_ns >= CROWD_LONG_CALL_NS or looked
        self._plan.n_threads = n_threads if team_call else 1
        fsg_team_init(&team)
        status[0] = STATUS_OK
        done[0] = 0
        total[0] = 0.0
        latest[0] = 0
        if not team_call:
            with nogil:
                status[0] = run_epoch(plan, &work, &team, ws, w_ptr, v_ptr, x_ptr, y_ptr, sw,
                                      order_ptr, n, batch_size, losses_ptr, done, total,
                                      &self._adapt)
            master_done[0] = fsg_now_ns()
        else:
            # one region for the whole epoch: the master runs the loop and
            # the others serve its phases (no fork/join per batch)
            with nogil, parallel(num_threads=n_threads):
                tid = omp_get_thread_num()
                if tid == 0:
                    status[0] = run_epoch(plan, &work, &team, ws, w_ptr, v_ptr, x_ptr, y_ptr,
                                          sw, order_ptr, n, batch_size, losses_ptr, done,
                                          total, &self._adapt)
                    master_done[0] = fsg_now_ns()
                    fsg_team_finish(&team)
                else:
                    fsg_wake_arrived(&latest[0])
                    helper_t0 = fsg_now_ns()
                    helper_wait0 = fsg_cpu_wait_ns()
                    serve(plan, &work, &team, tid, ws, w_ptr, v_ptr)
                    # a helper kept off its CPU: crowding (fsg_wake.h) that the
                    # master, with a CPU of its own, may not have seen
                    if plan.crowd_guard and helper_wait0 >= 0:
                        helper_t1 = fsg_now_ns()
                        if fsg_crowd_record(helper_t1 - helper_t0,
                                            fsg_cpu_wait_ns() - helper_wait0, helper_t1):
                            note_helper_verdict()
            fsg_wake_team_done(t_start, latest[0])
        # one thread's time per row, at most (a team's wall time x its size)
        self._row_ns = (master_done[0] - t_start) / <double> n * (n_threads if team_call else 1)
        self._row_ns_batch = batch_size
        _train_unit_ns = self._row_ns / self.n_params
        if self._adapt.verdicts > 0:
            _ADAPT_MEMORY[adapt_key] = (bool(self._adapt.run_solo), fsg_now_ns())
        if status[0] == STATUS_INTERRUPTED:
            raise_pending()
        return status[0], done[0], total[0]

def predict(units, coef_offsets, intercept_offsets, int activation, int output,
            const floating[::1] params not None, const floating[:, ::1] X not None,
            floating[:, ::1] out not None, int n_threads):
    """out = the network's output (after the output activation) for X.

    Row slices run in parallel; no temporaries beyond one slice's
    activations per thread.  Arguments as for Engine, plus the parameter
    slab, C-contiguous X and the output array (n_samples, n_outputs)."""
    cdef Py_ssize_t[::1] units_v = np.asarray(units, dtype=np.intp)
    cdef Py_ssize_t[::1] coef_off = np.asarray(coef_offsets, dtype=np.intp)
    cdef Py_ssize_t[::1] icpt_off = np.asarray(intercept_offsets, dtype=np.intp)
    cdef Py_ssize_t n = X.shape[0], L = units_v.shape[0] - 1
    cdef Py_ssize_t K = units_v[L]
    cdef Py_ssize_t slice_rows = _TUNING["predict_rows"]
    cdef Py_ssize_t n_slices = (n + slice_rows - 1) // slice_rows
    cdef Py_ssize_t width = 1, i, s, r0, r1, F, H, tid, n_params = 0
    cdef floating *buf
    cdef const floating *a
    cdef floating *z
    cdef Plan plan
    cdef int64_t t_start, t0, latest[1]
    cdef double work_ns = 0.0
    global _predict_unit_ns
    for i in range(L):
        n_params += units_v[i] * units_v[i + 1] + units_v[i + 1]
    if params.shape[0] != n_params:
        raise ValueError("parameter slab does not match the network")
    if X.shape[1] != units_v[0] or out.shape[0] != n or out.shape[1] != K:
        raise ValueError("data does not match the network")
    if n == 0:
        return
    for i in range(1, L):
        width = max(width, units_v[i])
    width = _align(width * slice_rows)
    n_threads = max(1, min(n_threads, n_slices))
    # a short prediction after an idle gap runs alone when the team would
    # arrive after it is done (fsg_wake.h)
    t_start = fsg_now_ns()
    if (n_threads > 1 and _TUNING["wake_guard"]
            and not fsg_wake_worth(t_start, <int64_t> (_predict_unit_ns * n * n_params),
                                   n_threads)):
        n_threads = 1
    latest[0] = 0
    scratch_arr = np.empty(2 * width * n_threads, dtype=np.asarray(X).dtype)
    cdef floating[::1] scratch = scratch_arr
    plan.check_x = False   # (prediction never gathers)
    plan.small_rows = _TUNING["small_rows"]

    with nogil, parallel(num_threads=n_threads, use_threads_if=n_threads > 1):
        tid = omp_get_thread_num()
        if tid != 0:
            fsg_wake_arrived(&latest[0])
        buf = &scratch[0] + 2 * width * tid
        for s in prange(n_slices, schedule='dynamic'):
            t0 = fsg_now_ns()
            r0 = s * slice_rows
            r1 = min(r0 + slice_rows, n)
            a = &X[r0, 0]
            for i in range(L):
                F = units_v[i]
                H = units_v[i + 1]
                if i == L - 1:
                    z = &out[r0, 0]
                else:
                    z = buf + (i % 2) * width   # ping-pong between two buffers
                matmul(&plan, z, a, F, &params[coef_off[i]], r1 - r0, F, H)
                if i < L - 1:
                    bias_activation(z, &params[icpt_off[i]], r1 - r0, H, activation)
                else:
                    output_forward(z, &params[icpt_off[i]], r1 - r0, H, output)
                a = z
            work_ns += fsg_now_ns() - t0   # (a reduction: every thread's work)
    if n_threads > 1:
        fsg_wake_team_done(t_start, latest[0])
    _predict_unit_ns = work_ns / (<double> n * n_params)


def all_finite_rows(const floating[:, ::1] X not None, int n_threads=1):
    """True when every value of the C-contiguous matrix X is finite.  The
    input check of fit/predict: X is usually far bigger than the caches, so
    the pass is memory-bound and two cores read it faster than one (unless
    the team would wake too late, see fsg_wake.h)."""
    cdef Py_ssize_t n = X.shape[0] * X.shape[1]
    cdef Py_ssize_t chunk = 1 << 16, n_chunks = (n + chunk - 1) // chunk, c
    cdef const floating *x
    cdef int bad = 0
    cdef int64_t t_start, t0, latest[1]
    cdef double work_ns = 0.0
    global _check_value_ns
    if n == 0:
        return True
    x = &X[0, 0]
    n_threads = max(1, min(n_threads, n_chunks))
    t_start = fsg_now_ns()
    if (n_threads > 1 and _TUNING["wake_guard"]
            and not fsg_wake_worth(t_start, <int64_t> (_check_value_ns * n), n_threads)):
        n_threads = 1
    latest[0] = 0
    with nogil, parallel(num_threads=n_threads, use_threads_if=n_threads > 1):
        if omp_get_thread_num() != 0:
            fsg_wake_arrived(&latest[0])
        for c in prange(n_chunks, schedule='dynamic'):
            t0 = fsg_now_ns()
            if not all_finite(x + c * chunk, min(chunk, n - c * chunk)):
                bad += 1
            work_ns += fsg_now_ns() - t0   # (a reduction: every thread's work)
    if n_threads > 1:
        fsg_wake_team_done(t_start, latest[0])
    _check_value_ns = work_ns / n
    return bad == 0


def all_finite_slab(const floating[::1] x not None):
    """True when every value of x is finite."""
    cdef bint ok = True
    if x.shape[0] > 0:
        with nogil:
            ok = all_finite(&x[0], x.shape[0])
    return ok
