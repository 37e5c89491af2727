/* fsg_kernels_impl.h — kernel bodies, written once for a real type T.
 *
 * Included by fsg_kernels.c with T, S (the name suffix), FSG_EXP, FSG_TANH,
 * FSG_LOG and FSG_EPS defined.  No include guard on purpose: it is stamped
 * out once per type.
 *
 * Numerical conventions follow scikit-learn's MLP (neural_network/_base.py):
 * activations and their derivatives are computed from the layer output,
 * losses are accumulated in double, and the loss-only clipping of
 * probabilities uses the machine epsilon of T.
 */

#define FSG_CAT_(a, b) a##_##b
#define FSG_CAT(a, b) FSG_CAT_(a, b)
#define FN(name) FSG_CAT(name, S)

/* x * log(y), defined as 0 when x == 0 (scipy.special.xlogy) */
static inline double FN(xlogy)(double x, double y) {
    return x == 0.0 ? 0.0 : x * log(y);
}

FSG_HOT void FN(fsg_bias_activation)(T *FSG_RESTRICT z,
                                     const T *FSG_RESTRICT bias, fsg_idx B,
                                     fsg_idx H, int activation) {
    for (fsg_idx b = 0; b < B; b++) {
        T *FSG_RESTRICT row = z + b * H;
        switch (activation) {
        case FSG_ACT_RELU:
            /* t < 0 ? 0 : t keeps NaN, like np.maximum(t, 0) */
            for (fsg_idx h = 0; h < H; h++) {
                T t = row[h] + bias[h];
                row[h] = t < (T)0 ? (T)0 : t;
            }
            break;
        case FSG_ACT_TANH:
            for (fsg_idx h = 0; h < H; h++) row[h] = FSG_TANH(row[h] + bias[h]);
            break;
        case FSG_ACT_LOGISTIC:
            for (fsg_idx h = 0; h < H; h++)
                row[h] = (T)1 / ((T)1 + FSG_EXP(-(row[h] + bias[h])));
            break;
        default: /* identity */
            for (fsg_idx h = 0; h < H; h++) row[h] += bias[h];
        }
    }
}

FSG_HOT void FN(fsg_activation_backward)(T *FSG_RESTRICT delta,
                                         const T *FSG_RESTRICT a, fsg_idx n,
                                         int activation) {
    switch (activation) {
    case FSG_ACT_RELU:
        for (fsg_idx i = 0; i < n; i++)
            if (a[i] == (T)0) delta[i] = (T)0;
        break;
    case FSG_ACT_TANH:
        for (fsg_idx i = 0; i < n; i++) delta[i] *= (T)1 - a[i] * a[i];
        break;
    case FSG_ACT_LOGISTIC:
        /* two roundings, as scikit-learn does: delta *= a; delta *= 1 - a */
        for (fsg_idx i = 0; i < n; i++) {
            T t = delta[i] * a[i];
            delta[i] = t * ((T)1 - a[i]);
        }
        break;
    default: /* identity: derivative 1 */
        break;
    }
}

/* softmax of one row in place, the scikit-learn way: subtract the row max,
 * exponentiate, divide by the sum */
static inline void FN(softmax_row)(T *FSG_RESTRICT p, fsg_idx K) {
    T mx = p[0];
    for (fsg_idx k = 1; k < K; k++) mx = p[k] > mx ? p[k] : mx;
    T sum = 0;
    for (fsg_idx k = 0; k < K; k++) {
        p[k] = FSG_EXP(p[k] - mx);
        sum += p[k];
    }
    for (fsg_idx k = 0; k < K; k++) p[k] /= sum;
}

/* z (B, K) <- out_act(z + bias) */
static inline void FN(output_activation_row)(T *FSG_RESTRICT z,
                                             const T *FSG_RESTRICT bias,
                                             fsg_idx K, int output) {
    for (fsg_idx k = 0; k < K; k++) z[k] += bias[k];
    switch (output) {
    case FSG_OUT_POISSON:
        for (fsg_idx k = 0; k < K; k++) z[k] = FSG_EXP(z[k]);
        break;
    case FSG_OUT_BINARY:
        for (fsg_idx k = 0; k < K; k++) z[k] = (T)1 / ((T)1 + FSG_EXP(-z[k]));
        break;
    case FSG_OUT_SOFTMAX:
        FN(softmax_row)(z, K);
        break;
    default: /* squared error: identity */
        break;
    }
}

FSG_HOT void FN(fsg_output_forward)(T *FSG_RESTRICT z,
                                    const T *FSG_RESTRICT bias, fsg_idx B,
                                    fsg_idx K, int output) {
    for (fsg_idx b = 0; b < B; b++) FN(output_activation_row)(z + b * K, bias, K, output);
}

FSG_HOT double FN(fsg_output_loss_delta)(T *FSG_RESTRICT z,
                                         const T *FSG_RESTRICT bias,
                                         const T *FSG_RESTRICT y,
                                         const T *FSG_RESTRICT sw, fsg_idx B,
                                         fsg_idx K, int output) {
    const T eps = FSG_EPS, one_minus_eps = (T)1 - FSG_EPS;
    double total = 0.0;
    for (fsg_idx b = 0; b < B; b++) {
        T *FSG_RESTRICT p = z + b * K;
        const T *FSG_RESTRICT yr = y + b * K;
        FN(output_activation_row)(p, bias, K, output);
        double row = 0.0;
        for (fsg_idx k = 0; k < K; k++) {
            const double yk = (double)yr[k];
            const T pk = p[k];
            /* probabilities are clipped for the loss value only */
            const T pc = pk < eps ? eps : (pk > one_minus_eps ? one_minus_eps : pk);
            switch (output) {
            case FSG_OUT_POISSON:
                row += FN(xlogy)(yk, yk / (double)pk) - yk + (double)pk;
                break;
            case FSG_OUT_BINARY:
                row -= FN(xlogy)(yk, (double)pc) + FN(xlogy)(1.0 - yk, 1.0 - (double)pc);
                break;
            case FSG_OUT_SOFTMAX:
                row -= FN(xlogy)(yk, (double)pc);
                break;
            default: {
                const double e = (double)(yr[k] - pk);
                row += e * e;
            }
            }
            p[k] = pk - yr[k]; /* delta of a canonical link */
        }
        if (sw) {
            const T wb = sw[b];
            for (fsg_idx k = 0; k < K; k++) p[k] *= wb;
            row *= (double)wb;
        }
        total += row;
    }
    return total;
}

/* one momentum step over n parameters; `nesterov` and `want_sumsq` are
 * compile-time constants at every call site, so each use compiles to one
 * straight vectorised loop */
static FSG_ALWAYS_INLINE double FN(sgd_step)(T *FSG_RESTRICT w, T *FSG_RESTRICT v,
                                             const T *FSG_RESTRICT g, fsg_idx n,
                                             T alpha, T inv_m, T lr, T mu,
                                             const int nesterov,
                                             const int want_sumsq) {
    double sumsq = 0.0;
#pragma omp simd reduction(+ : sumsq)
    for (fsg_idx i = 0; i < n; i++) {
        const T wi = w[i];
        if (want_sumsq) sumsq += (double)wi * (double)wi;
        const T gi = (g[i] + alpha * wi) * inv_m;
        const T vi = mu * v[i] - lr * gi;
        v[i] = vi;
        w[i] = nesterov ? wi + (mu * vi - lr * gi) : wi + vi;
    }
    return sumsq;
}

static FSG_ALWAYS_INLINE double FN(sgd_step_dispatch)(T *FSG_RESTRICT w,
                                                      T *FSG_RESTRICT v,
                                                      const T *FSG_RESTRICT g,
                                                      fsg_idx n, T alpha,
                                                      T inv_m, T lr, T mu,
                                                      int nesterov) {
    /* the L2 term of the loss needs sum(w^2) only when alpha > 0 */
    if (alpha != (T)0) {
        return nesterov ? FN(sgd_step)(w, v, g, n, alpha, inv_m, lr, mu, 1, 1)
                        : FN(sgd_step)(w, v, g, n, alpha, inv_m, lr, mu, 0, 1);
    }
    return nesterov ? FN(sgd_step)(w, v, g, n, alpha, inv_m, lr, mu, 1, 0)
                    : FN(sgd_step)(w, v, g, n, alpha, inv_m, lr, mu, 0, 0);
}

FSG_HOT double FN(fsg_sgd_update)(T *FSG_RESTRICT w, T *FSG_RESTRICT v,
                                  const T *FSG_RESTRICT g, fsg_idx n, T alpha,
                                  T inv_m, T lr, T mu, int nesterov) {
    return FN(sgd_step_dispatch)(w, v, g, n, alpha, inv_m, lr, mu, nesterov);
}

/* columns of W handled per register block in the fused small-batch update */
#define FSG_OUTER_COLS 64

FSG_HOT double FN(fsg_outer_update)(T *FSG_RESTRICT w, T *FSG_RESTRICT v,
                                    const T *FSG_RESTRICT a, fsg_idx lda,
                                    const T *FSG_RESTRICT d, fsg_idx B,
                                    fsg_idx f0, fsg_idx f1, fsg_idx H, T alpha,
                                    T inv_m, T lr, T mu, int nesterov) {
    double sumsq = 0.0;
    T g[FSG_OUTER_COLS];
    for (fsg_idx f = f0; f < f1; f++) {
        T *FSG_RESTRICT wr = w + f * H;
        T *FSG_RESTRICT vr = v + f * H;
        for (fsg_idx h0 = 0; h0 < H; h0 += FSG_OUTER_COLS) {
            const fsg_idx hn = H - h0 < FSG_OUTER_COLS ? H - h0 : FSG_OUTER_COLS;
            /* g = sum_b a[b, f] * d[b, h0:h0+hn], in row order */
            const T a0 = a[f];
            const T *FSG_RESTRICT d0 = d + h0;
            for (fsg_idx h = 0; h < hn; h++) g[h] = a0 * d0[h];
            for (fsg_idx b = 1; b < B; b++) {
                const T ab = a[b * lda + f];
                /* exact skip: adding 0 * finite leaves g unchanged; relu
                 * layers and sparse-ish inputs are full of zeros */
                if (ab == (T)0) continue;
                const T *FSG_RESTRICT db = d + b * H + h0;
                for (fsg_idx h = 0; h < hn; h++) g[h] += ab * db[h];
            }
            sumsq += FN(sgd_step_dispatch)(wr + h0, vr + h0, g, hn, alpha,
                                           inv_m, lr, mu, nesterov);
        }
    }
    return sumsq;
}

FSG_HOT void FN(fsg_column_sum)(T *FSG_RESTRICT out, const T *FSG_RESTRICT d,
                                fsg_idx B, fsg_idx H) {
    for (fsg_idx h = 0; h < H; h++) out[h] = d[h];
    for (fsg_idx b = 1; b < B; b++) {
        const T *FSG_RESTRICT db = d + b * H;
        for (fsg_idx h = 0; h < H; h++) out[h] += db[h];
    }
}

/* rows of `out` computed together, sharing each load of a row of w */
#define FSG_MM_ROWS 4

FSG_HOT void FN(fsg_small_matmul)(T *FSG_RESTRICT out, const T *FSG_RESTRICT a,
                                  fsg_idx lda, const T *FSG_RESTRICT w,
                                  fsg_idx B, fsg_idx F, fsg_idx H) {
    for (fsg_idx b0 = 0; b0 < B; b0 += FSG_MM_ROWS) {
        const fsg_idx rn = B - b0 < FSG_MM_ROWS ? B - b0 : FSG_MM_ROWS;
        for (fsg_idx r = 0; r < rn; r++)
            for (fsg_idx h = 0; h < H; h++) out[(b0 + r) * H + h] = 0;
        for (fsg_idx f = 0; f < F; f++) {
            const T *FSG_RESTRICT wf = w + f * H;
            for (fsg_idx r = 0; r < rn; r++) {
                const T ar = a[(b0 + r) * lda + f];
                if (ar == (T)0) continue; /* exact for finite w */
                T *FSG_RESTRICT o = out + (b0 + r) * H;
                for (fsg_idx h = 0; h < H; h++) o[h] += ar * wf[h];
            }
        }
    }
}

FSG_HOT void FN(fsg_small_matmul_bt)(T *FSG_RESTRICT out,
                                     const T *FSG_RESTRICT d,
                                     const T *FSG_RESTRICT w, fsg_idx B,
                                     fsg_idx F, fsg_idx H) {
    for (fsg_idx b = 0; b < B; b++) {
        const T *FSG_RESTRICT db = d + b * H;
        for (fsg_idx f = 0; f < F; f++) {
            const T *FSG_RESTRICT wf = w + f * H;
            T s = 0;
#pragma omp simd reduction(+ : s)
            for (fsg_idx h = 0; h < H; h++) s += db[h] * wf[h];
            out[b * F + f] = s;
        }
    }
}

void FN(fsg_gather_rows)(T *FSG_RESTRICT out, const T *FSG_RESTRICT x,
                         const int64_t *FSG_RESTRICT idx, fsg_idx B, fsg_idx F) {
    for (fsg_idx b = 0; b < B; b++)
        memcpy(out + b * F, x + (fsg_idx)idx[b] * F, (size_t)F * sizeof(T));
}

FSG_HOT int FN(fsg_all_finite)(const T *FSG_RESTRICT x, fsg_idx n) {
    /* x * 0 is 0 for finite x and NaN for inf/NaN: one branch-free pass */
    T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (fsg_idx i = 0; i < n; i++) acc += x[i] * (T)0;
    return acc == (T)0;
}

#undef FN
#undef FSG_CAT
#undef FSG_CAT_
