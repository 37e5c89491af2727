/* kernel_floor.c — how long the small-batch kernels take on the share of the
 * first layer one thread owns, hot in cache: the floor under the engine's
 * time per batch at batch sizes where it splits the weights (see
 * kernel_floor.py, which builds and runs this).
 *
 *   kernel_floor REAL_BYTES ROWS H B REPS [THREADS]
 *
 * prints one line "step_us stream_us together_us": the batch's update of
 * rows x H weights with the next batch's product of those rows (B = 1: the
 * fused one-row kernel, as the engine runs it; B > 1: outer_update, then the
 * product by small_matmul, where the engine calls BLAS: float64 at B=8,
 * 58 and 49 GFLOP/s on one Zen 4 core, against 52-55 for large matrices),
 * a plain pass that reads and writes the same weights and velocities (the
 * memory traffic alone), and the step again with THREADS threads (OpenMP)
 * each on a share of its own at the same time, a barrier after every call
 * as the engine has one after every batch (-1 without THREADS > 1 or
 * OpenMP): both cores busy share the chip's caches, memory and clocks.
 * Best of 7 runs. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "fastsgd.h"
#include "fsg_clones.h"

/* the memory traffic of a step alone, compiled for this CPU like the
 * kernels (FSG_HOT) */
#define STREAM(T, S)                                                        \
    FSG_HOT void stream_##S(T *restrict w, T *restrict v, fsg_idx n, T mu, T c) { \
        for (fsg_idx i = 0; i < n; i++) {                                   \
            v[i] = mu * v[i] - c * w[i];                                    \
            w[i] += v[i];                                                   \
        }                                                                   \
    }
STREAM(float, f32)
STREAM(double, f64)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* best of 7 runs of reps calls of body, in microseconds per call; `sync`
 * runs after every call (a barrier when threads run together) */
#define BEST_US(body, sync)                                             \
    ({                                                                  \
        double best = 1e30;                                             \
        for (int run = 0; run < 7; run++) {                             \
            sync;                                                       \
            double t0 = now();                                          \
            for (long k = 0; k < reps; k++) {                           \
                body;                                                   \
                __asm__ volatile("" ::: "memory");                      \
                sync;                                                   \
            }                                                           \
            double t = (now() - t0) / reps;                             \
            if (t < best) best = t;                                     \
        }                                                               \
        best * 1e6;                                                     \
    })

#ifdef _OPENMP
#define BARRIER _Pragma("omp barrier")
#else
#define BARRIER
#endif

/* one thread's buffers: its share of the layer (F rows x H), and a batch */
#define RUN(T, S)                                                                  \
    typedef struct {                                                               \
        T *w, *v, *scratch, *a, *a_next, *d, *out;                                 \
    } bufs_##S;                                                                    \
    static bufs_##S alloc_##S(fsg_idx F, fsg_idx H, fsg_idx B) {                   \
        bufs_##S m;                                                                \
        m.w = aligned_alloc(64, sizeof(T) * (F * H + 64));                         \
        m.v = aligned_alloc(64, sizeof(T) * (F * H + 64));                         \
        m.scratch = aligned_alloc(64, sizeof(T) * (F * H + 64));                   \
        m.a = aligned_alloc(64, sizeof(T) * (B * F + 64));                         \
        m.a_next = aligned_alloc(64, sizeof(T) * (B * F + 64));                    \
        m.d = aligned_alloc(64, sizeof(T) * (B * H + 64));                         \
        m.out = aligned_alloc(64, sizeof(T) * (B * H + 64));                       \
        for (fsg_idx i = 0; i < F * H; i++) {                                      \
            m.w[i] = (T)(1e-3 * (i % 17));                                         \
            m.v[i] = 0;                                                            \
        }                                                                          \
        for (fsg_idx i = 0; i < B * F; i++) {                                      \
            m.a[i] = (T)(0.01 * (i % 5) + 0.001);                                  \
            m.a_next[i] = (T)(0.02 * (i % 3));                                     \
        }                                                                          \
        for (fsg_idx i = 0; i < B * H; i++) m.d[i] = (T)(1e-9 * i);                \
        return m;                                                                  \
    }                                                                              \
    static void free_##S(bufs_##S m) {                                             \
        free(m.w), free(m.v), free(m.scratch), free(m.a), free(m.a_next);          \
        free(m.d), free(m.out);                                                    \
    }                                                                              \
    static double step_##S(bufs_##S m, fsg_idx F, fsg_idx H, fsg_idx B) {          \
        const T lr = (T)1e-9, mu = (T)0.9, alpha = (T)1e-4, inv_m = (T)(1.0 / B);  \
        if (B == 1)                                                                \
            return fsg_outer_update_next_##S(m.w, m.v, m.a, m.d, 0, F, H, alpha,   \
                                             inv_m, lr, mu, 1, m.a_next, m.out);   \
        double s = fsg_outer_update_##S(m.w, m.v, m.a, F, m.d, B, 0, F, H, alpha,  \
                                        inv_m, lr, mu, 1, m.scratch);              \
        fsg_small_matmul_##S(m.out, m.a_next, F, m.w, B, F, H);                    \
        return s;                                                                  \
    }                                                                              \
    static void run_##S(fsg_idx F, fsg_idx H, fsg_idx B, long reps, int threads) { \
        bufs_##S m = alloc_##S(F, H, B);                                           \
        double sink = 0;                                                           \
        double step = BEST_US(sink += step_##S(m, F, H, B), (void)0);              \
        double stream = BEST_US(stream_##S(m.w, m.v, F * H, (T)0.9, (T)1e-9),      \
                                (void)0);                                          \
        free_##S(m);                                                               \
        double together = -1;                                                      \
        if (threads > 1) {                                                         \
            _Pragma("omp parallel num_threads(threads) reduction(+ : sink)")       \
            {                                                                      \
                bufs_##S mine = alloc_##S(F, H, B); /* first touch: its own */     \
                double t = BEST_US(sink += step_##S(mine, F, H, B), BARRIER);      \
                _Pragma("omp master") together = t;                                \
                free_##S(mine);                                                    \
            }                                                                      \
        }                                                                          \
        printf("%.3f %.3f %.3f\n", step, stream, together);                       \
        if (sink == 12345.678) printf("%g\n", sink);                               \
    }

RUN(float, f32)
RUN(double, f64)

int main(int argc, char **argv) {
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: %s REAL_BYTES ROWS H B REPS [THREADS]\n", argv[0]);
        return 2;
    }
    fsg_idx F = atol(argv[2]), H = atol(argv[3]), B = atol(argv[4]);
    long reps = atol(argv[5]);
    int threads = argc == 7 ? atoi(argv[6]) : 1;
#ifndef _OPENMP
    threads = 1;
#endif
    if (atoi(argv[1]) == 4)
        run_f32(F, H, B, reps, threads);
    else
        run_f64(F, H, B, reps, threads);
    return 0;
}
