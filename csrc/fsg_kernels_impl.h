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

/* one momentum step over n parameters; `nesterov`, `want_sumsq` and
 * `two_grads` are compile-time constants at every call site, so each use
 * compiles to one straight vectorised loop.  With two_grads the gradient
 * is g + g2, added in the loop (the rounding of fsg_accumulate(g, g2) first,
 * without writing g back and reading it again).  sum(w^2) is accumulated
 * in T lanes (it only feeds the reported loss) and widened once at the end. */
static FSG_ALWAYS_INLINE double FN(sgd_step)(T *FSG_RESTRICT w, T *FSG_RESTRICT v,
                                             const T *FSG_RESTRICT g,
                                             const T *FSG_RESTRICT g2, fsg_idx n,
                                             T alpha, T inv_m, T lr, T mu,
                                             const int nesterov,
                                             const int want_sumsq,
                                             const int two_grads) {
    T sumsq = 0;
#pragma omp simd reduction(+ : sumsq)
    for (fsg_idx i = 0; i < n; i++) {
        const T wi = w[i];
        if (want_sumsq) sumsq += wi * wi;
        const T graw = two_grads ? g[i] + g2[i] : g[i];
        const T gi = (graw + alpha * wi) * inv_m;
        const T vi = mu * v[i] - lr * gi;
        v[i] = vi;
        w[i] = nesterov ? wi + (mu * vi - lr * gi) : wi + vi;
    }
    return (double)sumsq;
}

static FSG_ALWAYS_INLINE double FN(sgd_step_dispatch)(T *FSG_RESTRICT w,
                                                      T *FSG_RESTRICT v,
                                                      const T *FSG_RESTRICT g,
                                                      const T *FSG_RESTRICT g2,
                                                      fsg_idx n, T alpha,
                                                      T inv_m, T lr, T mu,
                                                      int nesterov,
                                                      const int two_grads) {
    /* the L2 term of the loss needs sum(w^2) only when alpha > 0 */
    if (alpha != (T)0) {
        return nesterov ? FN(sgd_step)(w, v, g, g2, n, alpha, inv_m, lr, mu, 1, 1, two_grads)
                        : FN(sgd_step)(w, v, g, g2, n, alpha, inv_m, lr, mu, 0, 1, two_grads);
    }
    return nesterov ? FN(sgd_step)(w, v, g, g2, n, alpha, inv_m, lr, mu, 1, 0, two_grads)
                    : FN(sgd_step)(w, v, g, g2, n, alpha, inv_m, lr, mu, 0, 0, two_grads);
}

FSG_HOT double FN(fsg_sgd_update)(T *FSG_RESTRICT w, T *FSG_RESTRICT v,
                                  const T *FSG_RESTRICT g, fsg_idx n, T alpha,
                                  T inv_m, T lr, T mu, int nesterov) {
    return FN(sgd_step_dispatch)(w, v, g, NULL, n, alpha, inv_m, lr, mu, nesterov, 0);
}

FSG_HOT double FN(fsg_sgd_update_sum)(T *FSG_RESTRICT w, T *FSG_RESTRICT v,
                                      const T *FSG_RESTRICT g, const T *FSG_RESTRICT g2,
                                      fsg_idx n, T alpha, T inv_m, T lr, T mu,
                                      int nesterov) {
    return FN(sgd_step_dispatch)(w, v, g, g2, n, alpha, inv_m, lr, mu, nesterov, 1);
}

/* ---- register-blocked small-batch kernels ---------------------------------
 * V is a 64-byte vector of T (GCC/clang vector extension; each target clone
 * lowers it to one zmm, two ymm or four xmm registers), VL its lane count.
 * Blocks of rows x NV vectors are accumulated in registers: the row and
 * vector counts are compile-time constants at every call of a *_block
 * function, so the loops unroll and the accumulators never touch memory. */

static FSG_ALWAYS_INLINE V FN(vload)(const T *p) { return *(const VU *)p; }
static FSG_ALWAYS_INLINE void FN(vstore)(T *p, V x) { *(VU *)p = x; }
static FSG_ALWAYS_INLINE V FN(vset1)(T s) {
    /* a shuffle of lane 0 compiles to one broadcast (from memory when s was
     * just loaded); GCC 12 lowers `0 + s` to an extra add, and `s - 0` or an
     * element-wise fill, inside target clones, to sixteen masked inserts */
    return __builtin_shuffle((V){s}, (VI){0});
}
static FSG_ALWAYS_INLINE T FN(vsum)(V x) {
    T s = 0;
    for (int i = 0; i < VL; i++) s += x[i];
    return s;
}

/* out[0:R, col:col+NV*VL] = a[0:R, :] @ w[:, col:col+NV*VL]; R <= 8, NV <= 4,
 * R * NV <= 16 accumulators (the AVX-512 register file holds 32) */
static FSG_ALWAYS_INLINE void FN(matmul_block)(T *FSG_RESTRICT out,
                                               const T *FSG_RESTRICT a, fsg_idx lda,
                                               const T *FSG_RESTRICT w, fsg_idx F,
                                               fsg_idx H, fsg_idx col, const int R,
                                               const int NV) {
    V acc[8][4];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) acc[r][j] = FSG_VZERO;
    for (fsg_idx f = 0; f < F; f++) {
        const T *FSG_RESTRICT wf = w + f * H + col;
        V wv[4];
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) wv[j] = FN(vload)(wf + j * VL);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const V ar = FN(vset1)(a[r * lda + f]);
#pragma GCC unroll 4
            for (int j = 0; j < NV; j++) acc[r][j] += ar * wv[j];
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) FN(vstore)(out + r * H + col + j * VL, acc[r][j]);
}

static FSG_ALWAYS_INLINE void FN(matmul_rows)(T *FSG_RESTRICT out,
                                              const T *FSG_RESTRICT a, fsg_idx lda,
                                              const T *FSG_RESTRICT w, fsg_idx F,
                                              fsg_idx H, const int R) {
    /* up to 4 rows: 4 vectors wide; more rows: 2 wide, so R * NV <= 16 */
    const int NV = R <= 4 ? 4 : 2;
    fsg_idx col = 0;
    for (; col + NV * VL <= H; col += NV * VL)
        FN(matmul_block)(out, a, lda, w, F, H, col, R, NV);
    for (; col + VL <= H; col += VL) FN(matmul_block)(out, a, lda, w, F, H, col, R, 1);
    if (col < H) {
        /* last H % VL columns (e.g. a 10-class output layer): independent
         * accumulators per column, so no dependency chain over f */
        const fsg_idx tail = H - col;
        T acc[8][VL];
        for (int r = 0; r < R; r++)
            for (fsg_idx c = 0; c < tail; c++) acc[r][c] = 0;
        for (fsg_idx f = 0; f < F; f++) {
            const T *FSG_RESTRICT wf = w + f * H + col;
            for (int r = 0; r < R; r++) {
                const T ar = a[r * lda + f];
                for (fsg_idx c = 0; c < tail; c++) acc[r][c] += ar * wf[c];
            }
        }
        for (int r = 0; r < R; r++)
            for (fsg_idx c = 0; c < tail; c++) out[r * H + col + c] = acc[r][c];
    }
}

FSG_HOT void FN(fsg_small_matmul)(T *FSG_RESTRICT out, const T *FSG_RESTRICT a,
                                  fsg_idx lda, const T *FSG_RESTRICT w,
                                  fsg_idx B, fsg_idx F, fsg_idx H) {
    /* 8 rows at a time share each load of w */
    for (fsg_idx b0 = 0; b0 < B; b0 += 8) {
        T *o = out + b0 * H;
        const T *ab = a + b0 * lda;
        switch (B - b0 < 8 ? B - b0 : 8) {
        case 1: FN(matmul_rows)(o, ab, lda, w, F, H, 1); break;
        case 2: FN(matmul_rows)(o, ab, lda, w, F, H, 2); break;
        case 3: FN(matmul_rows)(o, ab, lda, w, F, H, 3); break;
        case 4: FN(matmul_rows)(o, ab, lda, w, F, H, 4); break;
        case 5: FN(matmul_rows)(o, ab, lda, w, F, H, 5); break;
        case 6: FN(matmul_rows)(o, ab, lda, w, F, H, 6); break;
        case 7: FN(matmul_rows)(o, ab, lda, w, F, H, 7); break;
        default: FN(matmul_rows)(o, ab, lda, w, F, H, 8); break;
        }
    }
}

/* Fused gradient + update of rows f..f+NR-1 (NR <= 2), columns
 * col..col+NV*VL of W (F, H): g = sum_b a[b, f] * d[b, :] in registers, then
 * the momentum step.  Two rows share every load of d.  Returns the block's
 * sum of squared pre-update weights. */
static FSG_ALWAYS_INLINE void FN(outer_block)(T *FSG_RESTRICT w, T *FSG_RESTRICT v,
                                              const T *FSG_RESTRICT a, fsg_idx lda,
                                              const T *FSG_RESTRICT d, fsg_idx B,
                                              fsg_idx H, fsg_idx f, fsg_idx col, T alpha,
                                              T inv_m, T lr, T mu, V *sumsq,
                                              const int nesterov, const int NR,
                                              const int NV) {
    V g[2][4];
#pragma GCC unroll 2
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) g[r][j] = FSG_VZERO;
    for (fsg_idx b = 0; b < B; b++) {
        const T a0 = a[b * lda + f];
        const T a1 = NR > 1 ? a[b * lda + f + 1] : (T)0;
        /* exact skip: adding 0 * finite changes nothing; relu layers and
         * sparse-ish inputs are full of zeros */
        if (a0 == (T)0 && a1 == (T)0) continue;
        V db[4];
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) db[j] = FN(vload)(d + b * H + col + j * VL);
        const V av0 = FN(vset1)(a0);
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) g[0][j] += av0 * db[j];
        if (NR > 1) {
            const V av1 = FN(vset1)(a1);
#pragma GCC unroll 4
            for (int j = 0; j < NV; j++) g[1][j] += av1 * db[j];
        }
    }
    const V valpha = FN(vset1)(alpha), vinv_m = FN(vset1)(inv_m);
    const V vlr = FN(vset1)(lr), vmu = FN(vset1)(mu);
#pragma GCC unroll 2
    for (int r = 0; r < NR; r++) {
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) {
            T *wp = w + (f + r) * H + col + j * VL;
            T *vp = v + (f + r) * H + col + j * VL;
            const V wi = FN(vload)(wp);
            *sumsq += wi * wi;
            const V gi = (g[r][j] + valpha * wi) * vinv_m;
            const V vi = vmu * FN(vload)(vp) - vlr * gi;
            FN(vstore)(vp, vi);
            FN(vstore)(wp, nesterov ? wi + (vmu * vi - vlr * gi) : wi + vi);
        }
    }
}

static FSG_ALWAYS_INLINE double FN(outer_rows)(T *FSG_RESTRICT w, T *FSG_RESTRICT v,
                                               const T *FSG_RESTRICT a, fsg_idx lda,
                                               const T *FSG_RESTRICT d, fsg_idx B,
                                               fsg_idx H, fsg_idx f, T alpha, T inv_m,
                                               T lr, T mu, V *vsumsq,
                                               const int nesterov, const int NR) {
    double sumsq = 0.0;
    fsg_idx col = 0;
    for (; col + 4 * VL <= H; col += 4 * VL)
        FN(outer_block)(w, v, a, lda, d, B, H, f, col, alpha, inv_m, lr, mu, vsumsq,
                        nesterov, NR, 4);
    for (; col + VL <= H; col += VL)
        FN(outer_block)(w, v, a, lda, d, B, H, f, col, alpha, inv_m, lr, mu, vsumsq,
                        nesterov, NR, 1);
    if (col < H) {
        /* last H % VL columns: gradient into a small buffer, then the step */
        const fsg_idx tail = H - col;
        for (int r = 0; r < NR; r++) {
            T g[VL];
            for (fsg_idx c = 0; c < tail; c++) g[c] = 0;
            for (fsg_idx b = 0; b < B; b++) {
                const T ab = a[b * lda + f + r];
                for (fsg_idx c = 0; c < tail; c++) g[c] += ab * d[b * H + col + c];
            }
            sumsq += FN(sgd_step)(w + (f + r) * H + col, v + (f + r) * H + col, g, NULL,
                                  tail, alpha, inv_m, lr, mu, nesterov, 1, 0);
        }
    }
    return sumsq;
}

/* Batch of one row on a layer narrower than four vectors (a 10-class output
 * layer), optionally fused with the next row's partial product like
 * outer1_next_chunk (a_next NULL: no product).  Rows [f0, f1) are one flat
 * run of weights, taken R = VL / gcd(H, VL) rows = G = R * H / VL whole
 * vectors at a time: within such a group every lane's row and column are
 * fixed, so a[row] is one permute of a[f:f+VL] and d[column] a vector set
 * up once.  The remainder rows run one value at a time.  The update is
 * outer1_next_chunk's, rounded a little differently (a * (lr/m * d)), and a
 * zero input is multiplied, not skipped (the same for any finite delta);
 * the next row's product collects in per-lane sums, added per column in a
 * fixed order at the end.  Measured on the linear model 784-10 at B=1:
 * 1.8-1.9x the BLAS outer product + flat update + BLAS forward. */
#define FSG_NARROW_MAX_G 8
static FSG_ALWAYS_INLINE fsg_idx FN(narrow_rows)(fsg_idx H) {
    fsg_idx g = H, b = VL;
    while (b) {
        const fsg_idx t = g % b;
        g = b;
        b = t;
    }
    return VL / g;
}

static FSG_ALWAYS_INLINE int FN(narrow_ok)(fsg_idx H) {
    return H < 4 * VL && FN(narrow_rows)(H) * H / VL <= FSG_NARROW_MAX_G;
}

static FSG_ALWAYS_INLINE double FN(outer1_narrow)(T *FSG_RESTRICT w, T *FSG_RESTRICT v,
                                                  const T *FSG_RESTRICT a,
                                                  const T *FSG_RESTRICT d, fsg_idx f0,
                                                  fsg_idx f1, fsg_idx H, T lr_m,
                                                  T lr_m_alpha, T mu, const int nesterov,
                                                  const T *FSG_RESTRICT a_next,
                                                  T *FSG_RESTRICT out_next) {
    const fsg_idx R = FN(narrow_rows)(H), G = R * H / VL;
    VI row[FSG_NARROW_MAX_G];
    V dpat[FSG_NARROW_MAX_G], acc[FSG_NARROW_MAX_G];
    for (fsg_idx j = 0; j < G; j++) {
        for (int k = 0; k < VL; k++) {
            const fsg_idx p = j * VL + k;
            row[j][k] = p / H;
            dpat[j][k] = lr_m * d[p % H];
        }
        acc[j] = FSG_VZERO;
    }
    const V vlr_m_alpha = FN(vset1)(lr_m_alpha), vmu = FN(vset1)(mu);
    V vsumsq = FSG_VZERO;
    T abuf[VL], nbuf[VL];
    fsg_idx f = f0;
    for (; f + R <= f1; f += R) {
        /* a[f:f+VL] may run past the block's last row: past f1, copy */
        V av, anv = FSG_VZERO;
        if (f + VL <= f1) {
            av = FN(vload)(a + f);
            if (a_next) anv = FN(vload)(a_next + f);
        } else {
            for (int k = 0; k < VL; k++) {
                abuf[k] = f + k < f1 ? a[f + k] : (T)0;
                nbuf[k] = a_next && f + k < f1 ? a_next[f + k] : (T)0;
            }
            av = FN(vload)(abuf);
            anv = FN(vload)(nbuf);
        }
        T *wp = w + f * H, *vp = v + f * H;
        for (fsg_idx j = 0; j < G; j++) {
            const V wi = FN(vload)(wp + j * VL);
            vsumsq += wi * wi;
            const V step = __builtin_shuffle(av, row[j]) * dpat[j] + vlr_m_alpha * wi;
            const V vi = vmu * FN(vload)(vp + j * VL) - step;
            const V wn = nesterov ? (wi - step) + vmu * vi : wi + vi;
            FN(vstore)(vp + j * VL, vi);
            FN(vstore)(wp + j * VL, wn);
            if (a_next) acc[j] += __builtin_shuffle(anv, row[j]) * wn;
        }
    }
    double sumsq = (double)FN(vsum)(vsumsq);
    if (a_next) {
        for (fsg_idx c = 0; c < H; c++) out_next[c] = 0;
        for (fsg_idx j = 0; j < G; j++)
            for (int k = 0; k < VL; k++) out_next[(j * VL + k) % H] += acc[j][k];
    }
    /* the remainder rows, one value at a time */
    for (; f < f1; f++) {
        const T lr_m_a = lr_m * a[f];
        for (fsg_idx c = 0; c < H; c++) {
            T *wp = w + f * H + c, *vp = v + f * H + c;
            const T wi = *wp;
            sumsq += (double)wi * wi;
            const T step = lr_m_a * d[c] + lr_m_alpha * wi;
            const T vi = mu * *vp - step;
            const T wn = nesterov ? (wi - step) + mu * vi : wi + vi;
            *vp = vi;
            *wp = wn;
            if (a_next) out_next[c] += a_next[f] * wn;
        }
    }
    return sumsq;
}

/* Batches of 2..FSG_NARROW_MAX_B rows on a layer narrower than one vector
 * that the narrow-layer kernel takes (float32's 10-class output layer):
 * outer1_narrow's fixed lane pattern, the gradient of each group summed
 * over the rows in registers, then outer_block's step.  The values
 * d[b, column] of every lane are laid out once per call (dpat), so a group's
 * gradient is one permute and one multiply-add per vector and row; the
 * permutes bound the loop.  128 x 10 in the engine (2 threads, master's
 * update): B=8 1.4-1.6 us against 2.5 us for the gradient formed in scratch
 * one value at a time, B=2 0.7-0.9 against 0.9-1.2 us.  Not for layers one
 * to four vectors wide (float64's 10 classes): 2.0-2.4 us at B=8 against
 * 1.7-1.8 for BLAS's gradient + the flat update. */
#define FSG_NARROW_MAX_B 32
static FSG_ALWAYS_INLINE double FN(outer_narrow_rows)(T *FSG_RESTRICT w, T *FSG_RESTRICT v,
                                                      const T *FSG_RESTRICT a, fsg_idx lda,
                                                      const T *FSG_RESTRICT d, fsg_idx B,
                                                      fsg_idx f0, fsg_idx f1, fsg_idx H,
                                                      T alpha, T inv_m, T lr, T mu,
                                                      const int nesterov) {
    const fsg_idx R = FN(narrow_rows)(H), G = R * H / VL;
    VI row[FSG_NARROW_MAX_G];
    V dpat[FSG_NARROW_MAX_B * FSG_NARROW_MAX_G];
    /* lane p of the group: row p / H, column p % H (counted, no division) */
    int col[FSG_NARROW_MAX_G * VL];
    for (fsg_idx p = 0, r = 0, c = 0; p < G * VL; p++) {
        row[p / VL][p % VL] = r;
        col[p] = (int)c;
        if (++c == H) c = 0, r++;
    }
    for (fsg_idx b = 0; b < B; b++) {
        const T *db = d + b * H;
        T *dp = (T *)(dpat + b * G);
        for (fsg_idx p = 0; p < G * VL; p++) dp[p] = db[col[p]];
    }
    const V valpha = FN(vset1)(alpha), vinv_m = FN(vset1)(inv_m);
    const V vlr = FN(vset1)(lr), vmu = FN(vset1)(mu);
    V vsumsq = FSG_VZERO;
    T abuf[VL];
    fsg_idx f = f0;
    for (; f + R <= f1; f += R) {
        V g[FSG_NARROW_MAX_G];
        for (fsg_idx j = 0; j < G; j++) g[j] = FSG_VZERO;
        for (fsg_idx b = 0; b < B; b++) {
            /* a[b, f:f+VL] may run past the block's last row: past f1, copy */
            V av;
            if (f + VL <= f1) {
                av = FN(vload)(a + b * lda + f);
            } else {
                for (int k = 0; k < VL; k++) abuf[k] = f + k < f1 ? a[b * lda + f + k] : (T)0;
                av = FN(vload)(abuf);
            }
            for (fsg_idx j = 0; j < G; j++)
                g[j] += __builtin_shuffle(av, row[j]) * dpat[b * G + j];
        }
        T *wp = w + f * H, *vp = v + f * H;
        for (fsg_idx j = 0; j < G; j++) {
            const V wi = FN(vload)(wp + j * VL);
            vsumsq += wi * wi;
            const V gi = (g[j] + valpha * wi) * vinv_m;
            const V vi = vmu * FN(vload)(vp + j * VL) - vlr * gi;
            FN(vstore)(vp + j * VL, vi);
            FN(vstore)(wp + j * VL, nesterov ? wi + (vmu * vi - vlr * gi) : wi + vi);
        }
    }
    double sumsq = (double)FN(vsum)(vsumsq);
    /* the remainder rows, one value at a time */
    for (; f < f1; f++) {
        T g[VL];
        for (fsg_idx c = 0; c < H; c++) g[c] = 0;
        for (fsg_idx b = 0; b < B; b++)
            for (fsg_idx c = 0; c < H; c++) g[c] += a[b * lda + f] * d[b * H + c];
        sumsq += FN(sgd_step)(w + f * H, v + f * H, g, NULL, H, alpha, inv_m, lr, mu, nesterov,
                              1, 0);
    }
    return sumsq;
}

FSG_HOT double FN(fsg_outer_update)(T *FSG_RESTRICT w, T *FSG_RESTRICT v,
                                    const T *FSG_RESTRICT a, fsg_idx lda,
                                    const T *FSG_RESTRICT d, fsg_idx B,
                                    fsg_idx f0, fsg_idx f1, fsg_idx H, T alpha,
                                    T inv_m, T lr, T mu, int nesterov,
                                    T *FSG_RESTRICT scratch) {
    if (B == 1 && FN(narrow_ok)(H)) {
        const T lr_m = lr * inv_m;
        return nesterov ? FN(outer1_narrow)(w, v, a, d, f0, f1, H, lr_m, lr_m * alpha, mu, 1,
                                            NULL, NULL)
                        : FN(outer1_narrow)(w, v, a, d, f0, f1, H, lr_m, lr_m * alpha, mu, 0,
                                            NULL, NULL);
    }
    if (H < VL && B <= FSG_NARROW_MAX_B && FN(narrow_ok)(H))
        return nesterov ? FN(outer_narrow_rows)(w, v, a, lda, d, B, f0, f1, H, alpha, inv_m,
                                                lr, mu, 1)
                        : FN(outer_narrow_rows)(w, v, a, lda, d, B, f0, f1, H, alpha, inv_m,
                                                lr, mu, 0);
    if (H < VL) {
        /* narrow rows (e.g. a 10-class output layer): the block's rows are
         * contiguous, so form its gradient in scratch and update it as one
         * flat vector */
        const fsg_idx n = (f1 - f0) * H;
        for (fsg_idx i = 0; i < n; i++) scratch[i] = 0;
        for (fsg_idx b = 0; b < B; b++) {
            const T *FSG_RESTRICT db = d + b * H;
            for (fsg_idx f = f0; f < f1; f++) {
                const T ab = a[b * lda + f];
                T *FSG_RESTRICT gf = scratch + (f - f0) * H;
                for (fsg_idx c = 0; c < H; c++) gf[c] += ab * db[c];
            }
        }
        return FN(sgd_step_dispatch)(w + f0 * H, v + f0 * H, scratch, NULL, n, alpha, inv_m,
                                     lr, mu, nesterov, 0);
    }
    double sumsq = 0.0;
    V vsumsq = FSG_VZERO;
    fsg_idx f = f0;
    if (nesterov) {
        for (; f + 2 <= f1; f += 2)
            sumsq += FN(outer_rows)(w, v, a, lda, d, B, H, f, alpha, inv_m, lr, mu, &vsumsq,
                                    1, 2);
        if (f < f1)
            sumsq += FN(outer_rows)(w, v, a, lda, d, B, H, f, alpha, inv_m, lr, mu, &vsumsq,
                                    1, 1);
    } else {
        for (; f + 2 <= f1; f += 2)
            sumsq += FN(outer_rows)(w, v, a, lda, d, B, H, f, alpha, inv_m, lr, mu, &vsumsq,
                                    0, 2);
        if (f < f1)
            sumsq += FN(outer_rows)(w, v, a, lda, d, B, H, f, alpha, inv_m, lr, mu, &vsumsq,
                                    0, 1);
    }
    return sumsq + (double)FN(vsum)(vsumsq);
}

/* Batch of one row, then the next batch's first-layer forward on the same
 * weights: columns col..col+NV*VL of rows [f0, f1).  d stays in registers,
 * and so does the next row's partial product, so every weight is loaded
 * once for both jobs.
 *
 * On AMD Zen 4 this loop is bound by its multiplies (a 512-bit multiply or
 * FMA takes both 256-bit FMA pipes for a cycle), so the step is written
 * with six per vector instead of seven (objdump): lr/m is folded into the
 * scalars, lr/m * g = (lr/m * a[f]) * d + (lr/m * alpha) * w, and Nesterov's
 * w + mu * v' - lr/m * g as (w - lr/m * g) + mu * v'.  The same update as
 * scikit-learn's, rounded differently (a few ulp per step). */
static FSG_ALWAYS_INLINE void FN(outer1_next_chunk)(T *FSG_RESTRICT w, T *FSG_RESTRICT v,
                                                    const T *FSG_RESTRICT a,
                                                    const T *FSG_RESTRICT d, fsg_idx f0,
                                                    fsg_idx f1, fsg_idx H, fsg_idx col,
                                                    T lr_m, T lr_m_alpha, T mu,
                                                    const T *FSG_RESTRICT a_next,
                                                    T *FSG_RESTRICT out_next, V *sumsq,
                                                    const int nesterov, const int NV) {
    V dv[8], acc[8];
    const V vlr_m_alpha = FN(vset1)(lr_m_alpha), vmu = FN(vset1)(mu);
#pragma GCC unroll 8
    for (int j = 0; j < NV; j++) {
        dv[j] = FN(vload)(d + col + j * VL);
        acc[j] = FSG_VZERO;
    }
    for (fsg_idx f = f0; f < f1; f++) {
        /* the same gradient as outer_block: 0 when a[f] is 0, else a[f] * d */
        const V lr_m_a = FN(vset1)(lr_m * a[f]);
        const int skip = a[f] == (T)0;
        const V anv = FN(vset1)(a_next[f]);
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++) {
            T *wp = w + f * H + col + j * VL;
            T *vp = v + f * H + col + j * VL;
            const V wi = FN(vload)(wp);
            *sumsq += wi * wi;
            const V step = (skip ? FSG_VZERO : lr_m_a * dv[j]) + vlr_m_alpha * wi;
            const V vi = vmu * FN(vload)(vp) - step;
            const V wn = nesterov ? (wi - step) + vmu * vi : wi + vi;
            FN(vstore)(vp, vi);
            FN(vstore)(wp, wn);
            acc[j] += anv * wn;
        }
    }
#pragma GCC unroll 8
    for (int j = 0; j < NV; j++) FN(vstore)(out_next + col + j * VL, acc[j]);
}

FSG_HOT double FN(fsg_outer_update_next)(T *FSG_RESTRICT w, T *FSG_RESTRICT v,
                                         const T *FSG_RESTRICT a, const T *FSG_RESTRICT d,
                                         fsg_idx f0, fsg_idx f1, fsg_idx H, T alpha,
                                         T inv_m, T lr, T mu, int nesterov,
                                         const T *FSG_RESTRICT a_next,
                                         T *FSG_RESTRICT out_next) {
    const T lr_m = lr * inv_m, lr_m_alpha = lr_m * alpha;
    if (FN(narrow_ok)(H))
        return nesterov ? FN(outer1_narrow)(w, v, a, d, f0, f1, H, lr_m, lr_m_alpha, mu, 1,
                                            a_next, out_next)
                        : FN(outer1_narrow)(w, v, a, d, f0, f1, H, lr_m, lr_m_alpha, mu, 0,
                                            a_next, out_next);
    V vsumsq = FSG_VZERO;
    fsg_idx col = 0;
#define FSG_CHUNK(NV)                                                                 \
    (nesterov ? FN(outer1_next_chunk)(w, v, a, d, f0, f1, H, col, lr_m, lr_m_alpha,  \
                                      mu, a_next, out_next, &vsumsq, 1, NV)          \
              : FN(outer1_next_chunk)(w, v, a, d, f0, f1, H, col, lr_m, lr_m_alpha,  \
                                      mu, a_next, out_next, &vsumsq, 0, NV))
    for (; col + 8 * VL <= H; col += 8 * VL) FSG_CHUNK(8);
    for (; col + 4 * VL <= H; col += 4 * VL) FSG_CHUNK(4);
    for (; col + VL <= H; col += VL) FSG_CHUNK(1);
#undef FSG_CHUNK
    double sumsq = (double)FN(vsum)(vsumsq);
    /* the last H % VL columns, one value at a time */
    for (fsg_idx c = col; c < H; c++) {
        T acc = 0;
        for (fsg_idx f = f0; f < f1; f++) {
            T *wp = w + f * H + c, *vp = v + f * H + c;
            const T wi = *wp;
            sumsq += (double)wi * wi;
            const T step = (a[f] == (T)0 ? (T)0 : (lr_m * a[f]) * d[c]) + lr_m_alpha * wi;
            const T vi = mu * *vp - step;
            const T wn = nesterov ? (wi - step) + mu * vi : wi + vi;
            *vp = vi;
            *wp = wn;
            acc += a_next[f] * wn;
        }
        out_next[c] = acc;
    }
    return sumsq;
}

int FN(fsg_narrow_ok)(fsg_idx H) { return FN(narrow_ok)(H); }

FSG_HOT void FN(fsg_column_sum)(T *FSG_RESTRICT out, const T *FSG_RESTRICT d,
                                fsg_idx B, fsg_idx H) {
    for (fsg_idx h = 0; h < H; h++) out[h] = d[h];
    for (fsg_idx b = 1; b < B; b++) {
        const T *FSG_RESTRICT db = d + b * H;
        for (fsg_idx h = 0; h < H; h++) out[h] += db[h];
    }
}

FSG_HOT void FN(fsg_small_matmul_bt)(T *FSG_RESTRICT out, fsg_idx ldo,
                                     const T *FSG_RESTRICT d,
                                     const T *FSG_RESTRICT w, fsg_idx B,
                                     fsg_idx F, fsg_idx H) {
    if (H < 2 * VL && B > 1) {
        /* rows narrower than two vectors, several batch rows: VL rows of w
         * at a time turned into H column vectors once (tile), shared by
         * every batch row; each output vector is then H multiply-adds of a
         * broadcast delta, in the order of the one-row loop below.  Four
         * batch rows at a time keep four chains in flight, enough to cover
         * the multiply-add's latency (two chains left the kernel
         * latency-bound: 784-128-10 float64 B=32, 5.0 us per batch) */
        T tile[2 * VL][VL];
        fsg_idx f = 0;
        for (; f + VL <= F; f += VL) {
            for (fsg_idx h = 0; h < H; h++)
                for (int k = 0; k < VL; k++) tile[h][k] = w[(f + k) * H + h];
            fsg_idx b = 0;
            for (; b + 4 <= B; b += 4) {
                const T *FSG_RESTRICT d0 = d + b * H;
                V s0 = FSG_VZERO, s1 = FSG_VZERO, s2 = FSG_VZERO, s3 = FSG_VZERO;
                for (fsg_idx h = 0; h < H; h++) {
                    const V t = FN(vload)(tile[h]);
                    s0 += FN(vset1)(d0[h]) * t;
                    s1 += FN(vset1)(d0[H + h]) * t;
                    s2 += FN(vset1)(d0[2 * H + h]) * t;
                    s3 += FN(vset1)(d0[3 * H + h]) * t;
                }
                FN(vstore)(out + b * ldo + f, s0);
                FN(vstore)(out + (b + 1) * ldo + f, s1);
                FN(vstore)(out + (b + 2) * ldo + f, s2);
                FN(vstore)(out + (b + 3) * ldo + f, s3);
            }
            for (; b < B; b++) {
                const T *FSG_RESTRICT d0 = d + b * H;
                V s0 = FSG_VZERO;
                for (fsg_idx h = 0; h < H; h++) s0 += FN(vset1)(d0[h]) * FN(vload)(tile[h]);
                FN(vstore)(out + b * ldo + f, s0);
            }
        }
        for (; f < F; f++)
            for (fsg_idx b = 0; b < B; b++) {
                T s = 0;
                for (fsg_idx h = 0; h < H; h++) s += d[b * H + h] * w[f * H + h];
                out[b * ldo + f] = s;
            }
        return;
    }
    if (H < 2 * VL) {
        /* rows narrower than two vectors (a 10-class output layer): a vector
         * reduction per output costs more than the products; eight outputs
         * at a time in scalar registers keep eight independent chains busy */
        for (fsg_idx b = 0; b < B; b++) {
            const T *FSG_RESTRICT db = d + b * H;
            fsg_idx f = 0;
            for (; f + 8 <= F; f += 8) {
                T s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                for (fsg_idx h = 0; h < H; h++) {
                    const T dh = db[h];
#pragma GCC unroll 8
                    for (int k = 0; k < 8; k++) s[k] += dh * w[(f + k) * H + h];
                }
                for (int k = 0; k < 8; k++) out[b * ldo + f + k] = s[k];
            }
            for (; f < F; f++) {
                T s = 0;
                for (fsg_idx h = 0; h < H; h++) s += db[h] * w[f * H + h];
                out[b * ldo + f] = s;
            }
        }
        return;
    }
    for (fsg_idx b = 0; b < B; b++) {
        const T *FSG_RESTRICT db = d + b * H;
        for (fsg_idx f = 0; f < F; f++) {
            const T *FSG_RESTRICT wf = w + f * H;
            T s = 0;
#pragma omp simd reduction(+ : s)
            for (fsg_idx h = 0; h < H; h++) s += db[h] * wf[h];
            out[b * ldo + f] = s;
        }
    }
}

FSG_HOT void FN(fsg_accumulate)(T *FSG_RESTRICT out, const T *FSG_RESTRICT x, fsg_idx n) {
    for (fsg_idx i = 0; i < n; i++) out[i] += x[i];
}

FSG_HOT void FN(fsg_sum_blocks)(T *FSG_RESTRICT out, const T *FSG_RESTRICT x, fsg_idx stride,
                                fsg_idx m, fsg_idx n) {
    /* a chunk of out stays in L1 while every block adds its piece to it */
    enum { CHUNK = 2048 / sizeof(T) };
    for (fsg_idx j0 = 0; j0 < n; j0 += CHUNK) {
        fsg_idx len = n - j0 < CHUNK ? n - j0 : CHUNK;
        T *FSG_RESTRICT o = out + j0;
        memcpy(o, x + j0, (size_t)len * sizeof(T));
        for (fsg_idx k = 1; k < m; k++) {
            const T *FSG_RESTRICT xk = x + k * stride + j0;
            for (fsg_idx j = 0; j < len; j++) o[j] += xk[j];
        }
    }
}

/* ask for every cache line of row idx[b + ahead] (if any): the rows of a
 * batch are scattered, so a plain copy waits for each row's first lines in
 * turn; asking a few rows ahead overlaps those misses */
static inline void FN(prefetch_ahead)(const T *x, const int64_t *idx, fsg_idx b, fsg_idx B,
                                      fsg_idx ldx, fsg_idx first, fsg_idx width,
                                      fsg_idx ahead) {
    if (ahead <= 0 || b + ahead >= B) return;
    const char *row = (const char *)(x + (fsg_idx)idx[b + ahead] * ldx + first);
    for (size_t off = 0; off < (size_t)width * sizeof(T); off += 64)
        __builtin_prefetch(row + off, 0, 3);
}

void FN(fsg_gather_rows)(T *FSG_RESTRICT out, const T *FSG_RESTRICT x,
                         const int64_t *FSG_RESTRICT idx, fsg_idx B, fsg_idx F,
                         fsg_idx ahead) {
    for (fsg_idx b = 0; b < B; b++) {
        FN(prefetch_ahead)(x, idx, b, B, F, 0, F, ahead);
        memcpy(out + b * F, x + (fsg_idx)idx[b] * F, (size_t)F * sizeof(T));
    }
}

FSG_HOT int FN(fsg_all_finite)(const T *FSG_RESTRICT x, fsg_idx n) {
    /* x * 0 is 0 for finite x and NaN for inf/NaN: one branch-free pass */
    T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (fsg_idx i = 0; i < n; i++) acc += x[i] * (T)0;
    return acc == (T)0;
}

FSG_HOT int FN(fsg_gather_finite)(T *FSG_RESTRICT out, fsg_idx ldo, const T *FSG_RESTRICT x,
                                  fsg_idx ldx, const int64_t *FSG_RESTRICT idx, fsg_idx B,
                                  fsg_idx width, fsg_idx ahead) {
    /* the copy and the check in one pass: the first epoch of a fit checks
     * X as it gathers it, instead of reading all of X once more before */
    T acc = 0;
    for (fsg_idx b = 0; b < B; b++) {
        FN(prefetch_ahead)(x, idx, b, B, ldx, 0, width, ahead);
        T *FSG_RESTRICT o = out + b * ldo;
        const T *FSG_RESTRICT xr = x + (fsg_idx)idx[b] * ldx;
#pragma omp simd reduction(+ : acc)
        for (fsg_idx j = 0; j < width; j++) {
            o[j] = xr[j];
            acc += xr[j] * (T)0;
        }
    }
    return acc == (T)0;
}

#undef FN
#undef FSG_CAT
#undef FSG_CAT_
