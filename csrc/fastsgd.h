/* fastsgd.h — the C kernels the Cython engine calls.
 *
 * Every kernel exists twice, `_f32` (float) and `_f64` (double): the bodies
 * are written once in fsg_kernels_impl.h and stamped out per type by
 * fsg_kernels.c.  Kernels are serial, allocate nothing and never fail; the
 * engine decides threading and turns non-finite results into status codes.
 *
 * Shape letters used in comments: B rows of a batch (slice), F fan-in,
 * H fan-out of a layer, K output columns.  Matrices are row-major.
 * Argument order follows llm.c: outputs first, then inputs, then sizes.
 */
#ifndef FASTSGD_H
#define FASTSGD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef ptrdiff_t fsg_idx;

/* hidden-layer activations (scikit-learn's `activation`) */
enum fsg_activation {
    FSG_ACT_IDENTITY = 0,
    FSG_ACT_LOGISTIC = 1,
    FSG_ACT_TANH = 2,
    FSG_ACT_RELU = 3
};

/* output activation + loss pairs; each is a canonical link, so delta = P - Y */
enum fsg_output {
    FSG_OUT_SQUARED = 0,  /* identity + squared error (regressor) */
    FSG_OUT_POISSON = 1,  /* exp + half Poisson deviance (regressor) */
    FSG_OUT_BINARY = 2,   /* logistic + binary log-loss (binary, multilabel) */
    FSG_OUT_SOFTMAX = 3   /* softmax + log-loss (multiclass) */
};

#define FSG_DECLARE_KERNELS(T, S)                                              \
    /* z (B, H) <- act(z + bias) */                                            \
    void fsg_bias_activation_##S(T *z, const T *bias, fsg_idx B, fsg_idx H,    \
                                 int activation);                              \
    /* delta (n) *= act'(a), the derivative written in terms of the output a */\
    void fsg_activation_backward_##S(T *delta, const T *a, fsg_idx n,          \
                                     int activation);                          \
    /* z (B, K) <- out_act(z + bias): the prediction P */                      \
    void fsg_output_forward_##S(T *z, const T *bias, fsg_idx B, fsg_idx K,     \
                                int output);                                   \
    /* z (B, K) <- (out_act(z + bias) - y) * sw; returns sum_rows sw*loss_row  \
     * (sw = 1 when NULL).  Squared error is returned as sum (y-p)^2; the      \
     * caller applies scikit-learn's 0.5/K factor. */                          \
    double fsg_output_loss_delta_##S(T *z, const T *bias, const T *y,          \
                                     const T *sw, fsg_idx B, fsg_idx K,        \
                                     int output);                              \
    /* momentum-SGD step on n parameters, gradient given:                     \
     *   g' = (g + alpha*w) * inv_m;  v = mu*v - lr*g';                        \
     *   w += nesterov ? mu*v - lr*g' : v.                                     \
     * returns sum of the pre-update w^2 (the L2 term of this batch's loss). */\
    double fsg_sgd_update_##S(T *w, T *v, const T *g, fsg_idx n, T alpha,      \
                              T inv_m, T lr, T mu, int nesterov);              \
    /* the same step with the gradient g + g2, added in the step (the        \
     * rounding of fsg_accumulate(g, g2) and then the step; g is not written) */\
    double fsg_sgd_update_sum_##S(T *w, T *v, const T *g, const T *g2,         \
                                  fsg_idx n, T alpha, T inv_m, T lr, T mu,     \
                                  int nesterov);                               \
    /* the same step for rows [f0, f1) of W (F, H) with the gradient formed    \
     * on the fly, g[f, :] = sum_b a[b, f] * d[b, :], kept in registers: the   \
     * small-batch path.  a (B, lda), d (B, H); scratch holds (f1 - f0) * H    \
     * values, used only for rows narrower than one vector. */                 \
    double fsg_outer_update_##S(T *w, T *v, const T *a, fsg_idx lda,           \
                                const T *d, fsg_idx B, fsg_idx f0, fsg_idx f1, \
                                fsg_idx H, T alpha, T inv_m, T lr, T mu,       \
                                int nesterov, T *scratch);                     \
    /* the same step for a batch of one row (a, d vectors), fused with the   \
     * next batch's first-layer partial product on the updated rows:          \
     * out_next (H) <- a_next[f0:f1] @ W[f0:f1, :] */                          \
    double fsg_outer_update_next_##S(T *w, T *v, const T *a, const T *d,       \
                                     fsg_idx f0, fsg_idx f1, fsg_idx H,        \
                                     T alpha, T inv_m, T lr, T mu,             \
                                     int nesterov, const T *a_next,            \
                                     T *out_next);                             \
    /* whether batches of one row update a layer H wide by the narrow-layer  \
     * kernel (H under four vectors; fused with the next product too) */     \
    int fsg_narrow_ok_##S(fsg_idx H);                                          \
    /* out (H) <- sum over the B rows of d (B, H), in row order */             \
    void fsg_column_sum_##S(T *out, const T *d, fsg_idx B, fsg_idx H);         \
    /* out (B, H) <- a (B, F) @ w (F, H), for small B where BLAS call overhead \
     * dominates */                                                            \
    void fsg_small_matmul_##S(T *out, const T *a, fsg_idx lda, const T *w,     \
                              fsg_idx B, fsg_idx F, fsg_idx H);                \
    /* out (B, F), rows ldo apart <- d (B, H) @ w (F, H)^T, for small B */     \
    void fsg_small_matmul_bt_##S(T *out, fsg_idx ldo, const T *d, const T *w,  \
                                 fsg_idx B, fsg_idx F, fsg_idx H);             \
    /* out (n) += x (n) */                                                     \
    void fsg_accumulate_##S(T *out, const T *x, fsg_idx n);                    \
    /* out (n) <- x[0:n] + x[stride:stride+n] + ... (m blocks), added in      \
     * block order: the rounding of a copy and m-1 accumulates, but each value \
     * is read once and out written once */                                    \
    void fsg_sum_blocks_##S(T *out, const T *x, fsg_idx stride, fsg_idx m,     \
                            fsg_idx n);                                        \
    /* out (B, F) <- rows idx[0..B) of x (n, F), asking for the row `ahead`  \
     * rows on while copying one (0: no asking) */                            \
    void fsg_gather_rows_##S(T *out, const T *x, const int64_t *idx,           \
                             fsg_idx B, fsg_idx F, fsg_idx ahead);             \
    /* 1 when all n values are finite */                                       \
    int fsg_all_finite_##S(const T *x, fsg_idx n);                             \
    /* out[b*ldo + j] <- x[idx[b]*ldx + j] for b < B, j < width, as a gather, \
     * checking the values on the way: 1 when all are finite */               \
    int fsg_gather_finite_##S(T *out, fsg_idx ldo, const T *x, fsg_idx ldx,   \
                              const int64_t *idx, fsg_idx B, fsg_idx width,    \
                              fsg_idx ahead);

FSG_DECLARE_KERNELS(float, f32)
FSG_DECLARE_KERNELS(double, f64)

/* numpy's MT19937 state (numpy/random/src/mt19937/mt19937.h), worked on in
 * place through MT19937.ctypes.state_address; fsg_random.c */
typedef struct {
    uint32_t key[624];
    int pos;
} fsg_mt19937;

/* out[i] = low + range * (the next double of numpy's legacy RandomState
 * stream), bit for bit what RandomState.uniform(low, low + range, n) draws */
void fsg_mt_uniform_f32(fsg_mt19937 *s, float *out, fsg_idx n, double low, double range);
void fsg_mt_uniform_f64(fsg_mt19937 *s, double *out, fsg_idx n, double low, double range);

/* ask for bytes [first, first + count) of rows idx[0..B) of x (rows
 * row_bytes apart) to be brought into cache ahead of a gather, with
 * __builtin_prefetch's locality hint (0-3) */
void fsg_prefetch_rows(const void *x, const int64_t *idx, fsg_idx B, size_t row_bytes,
                       size_t first, size_t count, int locality);

/* which SIMD variant of the kernels this CPU runs ("avx512", "avx2",
 * "baseline"), and whether function multi-versioning was compiled in */
const char *fsg_kernel_isa(void);
int fsg_kernel_multiversioned(void);

#ifdef __cplusplus
}
#endif

#endif /* FASTSGD_H */
