/* kernel_floor.c — how long the small-batch kernels take on the share of the
 * first layer one thread owns, hot in cache: the floor under the engine's
 * time per batch at batch sizes where it splits the weights (see
 * kernel_floor.py, which builds and runs this).
 *
 *   kernel_floor REAL_BYTES ROWS H B REPS
 *
 * prints one line "step_us stream_us": the batch's update of rows x H
 * weights with the next batch's product of those rows (B = 1: the fused
 * one-row kernel, as the engine runs it; B > 1: outer_update, then the
 * product by small_matmul, where the engine calls BLAS: float64 at B=8,
 * 58 and 49 GFLOP/s on one Zen 4 core, against 52-55 for large matrices),
 * and a plain pass that reads and writes
 * the same weights and velocities (the memory traffic alone).  Best of 7
 * runs. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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

#define BEST_US(body)                                                   \
    ({                                                                  \
        double best = 1e30;                                             \
        for (int run = 0; run < 7; run++) {                             \
            double t0 = now();                                          \
            for (long k = 0; k < reps; k++) {                           \
                body;                                                   \
                __asm__ volatile("" ::: "memory");                      \
            }                                                           \
            double t = (now() - t0) / reps;                             \
            if (t < best) best = t;                                     \
        }                                                               \
        best * 1e6;                                                     \
    })

#define RUN(T, S)                                                                  \
    static void run_##S(fsg_idx F, fsg_idx H, fsg_idx B, long reps) {              \
        T *w = aligned_alloc(64, sizeof(T) * (F * H + 64));                        \
        T *v = aligned_alloc(64, sizeof(T) * (F * H + 64));                        \
        T *scratch = aligned_alloc(64, sizeof(T) * (F * H + 64));                  \
        T *a = aligned_alloc(64, sizeof(T) * (B * F + 64));                        \
        T *a_next = aligned_alloc(64, sizeof(T) * (B * F + 64));                   \
        T *d = aligned_alloc(64, sizeof(T) * (B * H + 64));                        \
        T *out = aligned_alloc(64, sizeof(T) * (B * H + 64));                      \
        for (fsg_idx i = 0; i < F * H; i++) {                                      \
            w[i] = (T)(1e-3 * (i % 17));                                           \
            v[i] = 0;                                                              \
        }                                                                          \
        for (fsg_idx i = 0; i < B * F; i++) {                                      \
            a[i] = (T)(0.01 * (i % 5) + 0.001);                                    \
            a_next[i] = (T)(0.02 * (i % 3));                                       \
        }                                                                          \
        for (fsg_idx i = 0; i < B * H; i++) d[i] = (T)(1e-9 * i);                  \
        double sink = 0;                                                           \
        const T lr = (T)1e-9, mu = (T)0.9, alpha = (T)1e-4, inv_m = (T)(1.0 / B);  \
        double step = BEST_US({                                                    \
            if (B == 1) {                                                          \
                sink += fsg_outer_update_next_##S(w, v, a, d, 0, F, H, alpha,      \
                                                  inv_m, lr, mu, 1, a_next, out);  \
            } else {                                                               \
                sink += fsg_outer_update_##S(w, v, a, F, d, B, 0, F, H, alpha,     \
                                             inv_m, lr, mu, 1, scratch);           \
                fsg_small_matmul_##S(out, a_next, F, w, B, F, H);                  \
            }                                                                      \
        });                                                                        \
        double stream = BEST_US(stream_##S(w, v, F * H, mu, lr));                 \
        printf("%.3f %.3f\n", step, stream);                                       \
        if (sink == 12345.678) printf("%g\n", sink + out[0]);                      \
    }

RUN(float, f32)
RUN(double, f64)

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s REAL_BYTES ROWS H B REPS\n", argv[0]);
        return 2;
    }
    fsg_idx F = atol(argv[2]), H = atol(argv[3]), B = atol(argv[4]);
    long reps = atol(argv[5]);
    if (atoi(argv[1]) == 4)
        run_f32(F, H, B, reps);
    else
        run_f64(F, H, B, reps);
    return 0;
}
