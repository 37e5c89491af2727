# Declarations of the C kernels in csrc/ and one fused (float/double) inline
# wrapper per kernel, so engine code is written once for both dtypes.
from cython cimport floating
from libc.stdint cimport int64_t

cdef extern from "fastsgd.h" nogil:
    ctypedef Py_ssize_t fsg_idx

    cdef enum:
        FSG_ACT_IDENTITY
        FSG_ACT_LOGISTIC
        FSG_ACT_TANH
        FSG_ACT_RELU
        FSG_OUT_SQUARED
        FSG_OUT_POISSON
        FSG_OUT_BINARY
        FSG_OUT_SOFTMAX

    void fsg_bias_activation_f32(float *z, const float *bias, fsg_idx B, fsg_idx H, int act) noexcept
    void fsg_bias_activation_f64(double *z, const double *bias, fsg_idx B, fsg_idx H, int act) noexcept
    void fsg_activation_backward_f32(float *delta, const float *a, fsg_idx n, int act) noexcept
    void fsg_activation_backward_f64(double *delta, const double *a, fsg_idx n, int act) noexcept
    void fsg_output_forward_f32(float *z, const float *bias, fsg_idx B, fsg_idx K, int output) noexcept
    void fsg_output_forward_f64(double *z, const double *bias, fsg_idx B, fsg_idx K, int output) noexcept
    double fsg_output_loss_delta_f32(float *z, const float *bias, const float *y, const float *sw,
                                     fsg_idx B, fsg_idx K, int output) noexcept
    double fsg_output_loss_delta_f64(double *z, const double *bias, const double *y, const double *sw,
                                     fsg_idx B, fsg_idx K, int output) noexcept
    double fsg_sgd_update_f32(float *w, float *v, const float *g, fsg_idx n, float alpha,
                              float inv_m, float lr, float mu, int nesterov) noexcept
    double fsg_sgd_update_f64(double *w, double *v, const double *g, fsg_idx n, double alpha,
                              double inv_m, double lr, double mu, int nesterov) noexcept
    double fsg_sgd_update_sum_f32(float *w, float *v, const float *g, const float *g2,
                                  fsg_idx n, float alpha, float inv_m, float lr, float mu,
                                  int nesterov) noexcept
    double fsg_sgd_update_sum_f64(double *w, double *v, const double *g, const double *g2,
                                  fsg_idx n, double alpha, double inv_m, double lr,
                                  double mu, int nesterov) noexcept
    double fsg_outer_update_f32(float *w, float *v, const float *a, fsg_idx lda, const float *d,
                                fsg_idx B, fsg_idx f0, fsg_idx f1, fsg_idx H, float alpha,
                                float inv_m, float lr, float mu, int nesterov,
                                float *scratch) noexcept
    double fsg_outer_update_f64(double *w, double *v, const double *a, fsg_idx lda, const double *d,
                                fsg_idx B, fsg_idx f0, fsg_idx f1, fsg_idx H, double alpha,
                                double inv_m, double lr, double mu, int nesterov,
                                double *scratch) noexcept
    double fsg_outer_update_next_f32(float *w, float *v, const float *a, const float *d,
                                     fsg_idx f0, fsg_idx f1, fsg_idx H, float alpha,
                                     float inv_m, float lr, float mu, int nesterov,
                                     const float *a_next, float *out_next) noexcept
    double fsg_outer_update_next_f64(double *w, double *v, const double *a, const double *d,
                                     fsg_idx f0, fsg_idx f1, fsg_idx H, double alpha,
                                     double inv_m, double lr, double mu, int nesterov,
                                     const double *a_next, double *out_next) noexcept
    int fsg_narrow_ok_f32(fsg_idx H) noexcept
    int fsg_narrow_ok_f64(fsg_idx H) noexcept
    void fsg_column_sum_f32(float *out, const float *d, fsg_idx B, fsg_idx H) noexcept
    void fsg_column_sum_f64(double *out, const double *d, fsg_idx B, fsg_idx H) noexcept
    void fsg_small_matmul_f32(float *out, const float *a, fsg_idx lda, const float *w,
                              fsg_idx B, fsg_idx F, fsg_idx H) noexcept
    void fsg_small_matmul_f64(double *out, const double *a, fsg_idx lda, const double *w,
                              fsg_idx B, fsg_idx F, fsg_idx H) noexcept
    void fsg_small_matmul_bt_f32(float *out, fsg_idx ldo, const float *d, const float *w,
                                 fsg_idx B, fsg_idx F, fsg_idx H) noexcept
    void fsg_small_matmul_bt_f64(double *out, fsg_idx ldo, const double *d, const double *w,
                                 fsg_idx B, fsg_idx F, fsg_idx H) noexcept
    void fsg_accumulate_f32(float *out, const float *x, fsg_idx n) noexcept
    void fsg_sum_blocks_f32(float *out, const float *x, fsg_idx stride, fsg_idx m,
                            fsg_idx n) noexcept
    void fsg_sum_blocks_f64(double *out, const double *x, fsg_idx stride, fsg_idx m,
                            fsg_idx n) noexcept
    void fsg_accumulate_f64(double *out, const double *x, fsg_idx n) noexcept
    void fsg_gather_rows_f32(float *out, const float *x, const int64_t *idx, fsg_idx B, fsg_idx F,
                             fsg_idx ahead) noexcept
    void fsg_gather_rows_f64(double *out, const double *x, const int64_t *idx, fsg_idx B, fsg_idx F,
                             fsg_idx ahead) noexcept
    int fsg_all_finite_f32(const float *x, fsg_idx n) noexcept
    int fsg_all_finite_f64(const double *x, fsg_idx n) noexcept
    int fsg_gather_finite_f32(float *out, fsg_idx ldo, const float *x, fsg_idx ldx,
                              const int64_t *idx, fsg_idx B, fsg_idx width,
                              fsg_idx ahead) noexcept
    int fsg_gather_finite_f64(double *out, fsg_idx ldo, const double *x, fsg_idx ldx,
                              const int64_t *idx, fsg_idx B, fsg_idx width,
                              fsg_idx ahead) noexcept
    void fsg_prefetch_rows(const void *x, const int64_t *idx, fsg_idx B, size_t row_bytes,
                           size_t first, size_t count, int locality) noexcept
    const char *fsg_kernel_isa() noexcept
    int fsg_kernel_multiversioned() noexcept


cdef inline void bias_activation(floating *z, const floating *bias, fsg_idx B, fsg_idx H,
                                 int act) noexcept nogil:
    if floating is float:
        fsg_bias_activation_f32(z, bias, B, H, act)
    else:
        fsg_bias_activation_f64(z, bias, B, H, act)


cdef inline void activation_backward(floating *delta, const floating *a, fsg_idx n,
                                     int act) noexcept nogil:
    if floating is float:
        fsg_activation_backward_f32(delta, a, n, act)
    else:
        fsg_activation_backward_f64(delta, a, n, act)


cdef inline void output_forward(floating *z, const floating *bias, fsg_idx B, fsg_idx K,
                                int output) noexcept nogil:
    if floating is float:
        fsg_output_forward_f32(z, bias, B, K, output)
    else:
        fsg_output_forward_f64(z, bias, B, K, output)


cdef inline double output_loss_delta(floating *z, const floating *bias, const floating *y,
                                     const floating *sw, fsg_idx B, fsg_idx K,
                                     int output) noexcept nogil:
    if floating is float:
        return fsg_output_loss_delta_f32(z, bias, y, sw, B, K, output)
    else:
        return fsg_output_loss_delta_f64(z, bias, y, sw, B, K, output)


cdef inline double sgd_update(floating *w, floating *v, const floating *g, fsg_idx n,
                              floating alpha, floating inv_m, floating lr, floating mu,
                              bint nesterov) noexcept nogil:
    if floating is float:
        return fsg_sgd_update_f32(w, v, g, n, alpha, inv_m, lr, mu, nesterov)
    else:
        return fsg_sgd_update_f64(w, v, g, n, alpha, inv_m, lr, mu, nesterov)


cdef inline double sgd_update_sum(floating *w, floating *v, const floating *g,
                                  const floating *g2, fsg_idx n, floating alpha,
                                  floating inv_m, floating lr, floating mu,
                                  bint nesterov) noexcept nogil:
    if floating is float:
        return fsg_sgd_update_sum_f32(w, v, g, g2, n, alpha, inv_m, lr, mu, nesterov)
    else:
        return fsg_sgd_update_sum_f64(w, v, g, g2, n, alpha, inv_m, lr, mu, nesterov)


cdef inline double outer_update(floating *w, floating *v, const floating *a, fsg_idx lda,
                                const floating *d, fsg_idx B, fsg_idx f0, fsg_idx f1,
                                fsg_idx H, floating alpha, floating inv_m, floating lr,
                                floating mu, bint nesterov, floating *scratch) noexcept nogil:
    if floating is float:
        return fsg_outer_update_f32(w, v, a, lda, d, B, f0, f1, H, alpha, inv_m, lr, mu,
                                    nesterov, scratch)
    else:
        return fsg_outer_update_f64(w, v, a, lda, d, B, f0, f1, H, alpha, inv_m, lr, mu,
                                    nesterov, scratch)


cdef inline double outer_update_next(floating *w, floating *v, const floating *a,
                                     const floating *d, fsg_idx f0, fsg_idx f1, fsg_idx H,
                                     floating alpha, floating inv_m, floating lr,
                                     floating mu, bint nesterov, const floating *a_next,
                                     floating *out_next) noexcept nogil:
    if floating is float:
        return fsg_outer_update_next_f32(w, v, a, d, f0, f1, H, alpha, inv_m, lr, mu,
                                         nesterov, a_next, out_next)
    else:
        return fsg_outer_update_next_f64(w, v, a, d, f0, f1, H, alpha, inv_m, lr, mu,
                                         nesterov, a_next, out_next)


cdef inline bint narrow_ok(const floating *like, fsg_idx H) noexcept nogil:
    """Whether one-row batches update a layer H wide (of like's dtype) with
    the narrow-layer kernel."""
    if floating is float:
        return fsg_narrow_ok_f32(H)
    else:
        return fsg_narrow_ok_f64(H)


cdef inline void column_sum(floating *out, const floating *d, fsg_idx B, fsg_idx H) noexcept nogil:
    if floating is float:
        fsg_column_sum_f32(out, d, B, H)
    else:
        fsg_column_sum_f64(out, d, B, H)


cdef inline void small_matmul(floating *out, const floating *a, fsg_idx lda, const floating *w,
                              fsg_idx B, fsg_idx F, fsg_idx H) noexcept nogil:
    if floating is float:
        fsg_small_matmul_f32(out, a, lda, w, B, F, H)
    else:
        fsg_small_matmul_f64(out, a, lda, w, B, F, H)


cdef inline void small_matmul_bt(floating *out, fsg_idx ldo, const floating *d,
                                 const floating *w, fsg_idx B, fsg_idx F,
                                 fsg_idx H) noexcept nogil:
    if floating is float:
        fsg_small_matmul_bt_f32(out, ldo, d, w, B, F, H)
    else:
        fsg_small_matmul_bt_f64(out, ldo, d, w, B, F, H)


cdef inline void accumulate(floating *out, const floating *x, fsg_idx n) noexcept nogil:
    if floating is float:
        fsg_accumulate_f32(out, x, n)
    else:
        fsg_accumulate_f64(out, x, n)


cdef inline void sum_blocks(floating *out, const floating *x, fsg_idx stride, fsg_idx m,
                            fsg_idx n) noexcept nogil:
    if floating is float:
        fsg_sum_blocks_f32(out, x, stride, m, n)
    else:
        fsg_sum_blocks_f64(out, x, stride, m, n)


cdef inline void gather_rows(floating *out, const floating *x, const int64_t *idx, fsg_idx B,
                             fsg_idx F, fsg_idx ahead=0) noexcept nogil:
    if floating is float:
        fsg_gather_rows_f32(out, x, idx, B, F, ahead)
    else:
        fsg_gather_rows_f64(out, x, idx, B, F, ahead)


cdef inline bint gather_finite(floating *out, fsg_idx ldo, const floating *x, fsg_idx ldx,
                               const int64_t *idx, fsg_idx B, fsg_idx width,
                               fsg_idx ahead) noexcept nogil:
    if floating is float:
        return fsg_gather_finite_f32(out, ldo, x, ldx, idx, B, width, ahead)
    else:
        return fsg_gather_finite_f64(out, ldo, x, ldx, idx, B, width, ahead)


cdef inline bint all_finite(const floating *x, fsg_idx n) noexcept nogil:
    if floating is float:
        return fsg_all_finite_f32(x, n)
    else:
        return fsg_all_finite_f64(x, n)
