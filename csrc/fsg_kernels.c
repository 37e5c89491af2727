/* fsg_kernels.c — stamps out the float and double kernels.
 *
 * Portable wheels and fast local code at once: with GCC on x86-64 Linux the
 * hot kernels are compiled three times (AVX-512, AVX2+FMA, baseline SSE2)
 * through `target_clones`, and the loader picks the best one for the CPU
 * once, at import (an ifunc).  No -march=native needed; set the CMake option
 * FASTSGD_CLONES=OFF to get one baseline copy.
 */
#include "fastsgd.h"
#include "fsg_clones.h"

#include <float.h>
#include <math.h>
#include <string.h>

#if defined(__GNUC__)
#define FSG_RESTRICT __restrict__
#define FSG_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define FSG_RESTRICT
#define FSG_ALWAYS_INLINE inline
#endif


/* 64-byte vectors: one AVX-512 register, lowered to 2 or 4 narrower ones by
 * the AVX2 and baseline clones */
#if defined(__GNUC__)
typedef float fsg_vf32 __attribute__((vector_size(64)));
typedef float fsg_vf32u __attribute__((vector_size(64), aligned(4)));
typedef double fsg_vf64 __attribute__((vector_size(64)));
typedef double fsg_vf64u __attribute__((vector_size(64), aligned(8)));
typedef int32_t fsg_vi32 __attribute__((vector_size(64)));
typedef int64_t fsg_vi64 __attribute__((vector_size(64)));
#define FSG_VZERO ((V){0})
#else
#error "fastsgd's kernels need GCC or clang vector extensions"
#endif

#define T float
#define S f32
#define V fsg_vf32
#define VU fsg_vf32u
#define VI fsg_vi32
#define VL 16
#define FSG_EXP expf
#define FSG_TANH tanhf
#define FSG_EPS FLT_EPSILON
#include "fsg_kernels_impl.h"
#undef T
#undef S
#undef V
#undef VU
#undef VI
#undef VL
#undef FSG_EXP
#undef FSG_TANH
#undef FSG_EPS

#define T double
#define S f64
#define V fsg_vf64
#define VU fsg_vf64u
#define VI fsg_vi64
#define VL 8
#define FSG_EXP exp
#define FSG_TANH tanh
#define FSG_EPS DBL_EPSILON
#include "fsg_kernels_impl.h"
#undef T
#undef S
#undef V
#undef VU
#undef VI
#undef VL
#undef FSG_EXP
#undef FSG_TANH
#undef FSG_EPS

/* one prefetch per cache line the range touches (the hint must be a
 * compile-time constant, hence one loop per hint) */
#define FSG_PREFETCH_ROWS(hint)                                                \
    for (fsg_idx b = 0; b < B; b++) {                                          \
        const char *row = base + (size_t)idx[b] * row_bytes;                   \
        for (size_t off = start; off < end; off += 64)                         \
            __builtin_prefetch(row + off, 0, hint);                            \
    }

void fsg_prefetch_rows(const void *x, const int64_t *idx, fsg_idx B, size_t row_bytes,
                       size_t first, size_t count, int locality) {
    const char *base = (const char *)x;
    size_t start = first & ~(size_t)63, end = first + count;
    switch (locality) {
    case 3: FSG_PREFETCH_ROWS(3) break;
    case 2: FSG_PREFETCH_ROWS(2) break;
    case 1: FSG_PREFETCH_ROWS(1) break;
    default: FSG_PREFETCH_ROWS(0) break;
    }
}
#undef FSG_PREFETCH_ROWS

int fsg_kernel_multiversioned(void) { return FSG_HAVE_CLONES; }

const char *fsg_kernel_isa(void) {
#if FSG_HAVE_CLONES
    /* the same test the ifunc resolvers make */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return "avx512";
    if (__builtin_cpu_supports("x86-64-v3")) return "avx2";
    return "baseline";
#elif defined(__AVX512F__)
    return "avx512 (compile-time)";
#elif defined(__AVX2__)
    return "avx2 (compile-time)";
#else
    return "baseline";
#endif
}
