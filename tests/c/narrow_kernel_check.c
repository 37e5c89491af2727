/* The small-batch update kernels of csrc/ against a plain scalar loop, for
 * layer widths that take the narrow-layer kernel (H under four vectors)
 * and widths that do not, odd row ranges included (remainder rows, and
 * the last group's copied inputs): one row, and batches of several rows;
 * and the large-batch update that adds the last gradient group in its pass.
 * tests/test_kernels_c.py compiles it
 * for every instruction set the package ships (the engine's own tests
 * only run the one this CPU picks). */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include "fastsgd.h"
/* REAL is double or float (default double) */
#ifndef REAL
#define REAL double
#endif
#define FSG_IS_DOUBLE_double 1
#define FSG_IS_DOUBLE_float 0
#define FSG_IS_DOUBLE_(r) FSG_IS_DOUBLE_##r
#define FSG_IS_DOUBLE(r) FSG_IS_DOUBLE_(r)
#if FSG_IS_DOUBLE(REAL)
#define SFX(name) name##_f64
#define TOL 1e-12
#else
#define SFX(name) name##_f32
#define TOL 2e-5
#endif
typedef REAL real;
/* reference: the one-value-at-a-time formula of outer1_narrow's remainder rows */
static double ref(real *w, real *v, const real *a, const real *d, long f0, long f1, long H,
                  real alpha, real lr, real mu, int nest, const real *an, real *out) {
    real lr_m = lr, lr_m_alpha = lr * alpha;
    double s = 0;
    for (long c = 0; c < H; c++) out[c] = 0;
    for (long f = f0; f < f1; f++) for (long c = 0; c < H; c++) {
        real wi = w[f*H+c]; s += (double)wi*wi;
        real step = (lr_m*a[f])*d[c] + lr_m_alpha*wi;
        real vi = mu*v[f*H+c] - step;
        real wn = nest ? (wi - step) + mu*vi : wi + vi;
        v[f*H+c] = vi; w[f*H+c] = wn; if (an) out[c] += an[f]*wn;
    }
    return s;
}
/* reference for batches of B rows (a (B, F), d (B, H)): outer_block's step */
static double ref_rows(real *w, real *v, const real *a, long F, const real *d, long B, long f0,
                       long f1, long H, real alpha, real inv_m, real lr, real mu, int nest) {
    double s = 0;
    for (long f = f0; f < f1; f++) for (long c = 0; c < H; c++) {
        real g = 0;
        for (long b = 0; b < B; b++) g += a[b*F+f]*d[b*H+c];
        real wi = w[f*H+c]; s += (double)wi*wi;
        real gi = (g + alpha*wi)*inv_m;
        real vi = mu*v[f*H+c] - lr*gi;
        v[f*H+c] = vi; w[f*H+c] = nest ? wi + (mu*vi - lr*gi) : wi + vi;
    }
    return s;
}
/* fsg_outer_update on batches of several rows against ref_rows */
static int check_rows(void) {
    long Hs[] = {1, 3, 7, 10, 12, 16, 20, 40}, Bs[] = {2, 3, 5, 8, 32}; int bad = 0;
    for (int hi = 0; hi < 8; hi++) for (int bi = 0; bi < 5; bi++) for (int nest = 0; nest < 2; nest++)
    for (long f1 = 1; f1 < 40; f1 += 5) {
        long H = Hs[hi], B = Bs[bi], F = 40, f0 = f1 > 5 ? 3 : 0;
        real *w = malloc(sizeof(real)*F*H), *v = malloc(sizeof(real)*F*H), *w2 = malloc(sizeof(real)*F*H),
             *v2 = malloc(sizeof(real)*F*H), *a = malloc(sizeof(real)*B*F), *d = malloc(sizeof(real)*B*H),
             *scr = malloc(sizeof(real)*F*H);
        for (long i = 0; i < F*H; i++) { w[i] = w2[i] = sin(i*0.7); v[i] = v2[i] = cos(i*1.3)*0.1; }
        for (long i = 0; i < B*F; i++) a[i] = i % 7 == 0 ? 0 : sin(i*2.1);
        for (long i = 0; i < B*H; i++) d[i] = sin(i*0.37+1);
        double s1 = SFX(fsg_outer_update)(w, v, a, F, d, B, f0, f1, H, 1e-2, 1.0/B, 0.1, 0.9, nest, scr);
        double s2 = ref_rows(w2, v2, a, F, d, B, f0, f1, H, 1e-2, 1.0/B, 0.1, 0.9, nest);
        double e = fabs(s1 - s2) / (fabs(s2) + 1e-300);
        for (long i = 0; i < F*H; i++) { e = fmax(e, fabs(w[i]-w2[i])); e = fmax(e, fabs(v[i]-v2[i])); }
        if (!(e <= TOL * B)) { printf("rows: H=%ld B=%ld f0=%ld f1=%ld nest=%d err %g\n", H, B, f0, f1, nest, e); bad++; }
        free(w); free(v); free(w2); free(v2); free(a); free(d); free(scr);
    }
    return bad;
}
/* the small products against scalar loops, one row and several, widths
 * with and without remainder columns: fsg_small_matmul, out (B, H) <- x
 * (B, F) @ w (F, H), and fsg_small_matmul_bt, out (B, F) rows ldo apart <-
 * x (B, H) @ w (F, H)^T */
static int check_products(void) {
    long Hs[] = {1, 3, 10, 12, 20, 31, 40, 64}, Bs[] = {1, 2, 3, 5, 7, 8, 32}; int bad = 0;
    for (int hi = 0; hi < 8; hi++) for (int bi = 0; bi < 7; bi++) for (long F = 1; F < 60; F += 7) {
        long H = Hs[hi], B = Bs[bi], ldo = F + 3, K = F > H ? F : H;
        real *w = malloc(sizeof(real)*F*H), *x = malloc(sizeof(real)*B*K), *o = malloc(sizeof(real)*B*(ldo + H));
        for (long i = 0; i < F*H; i++) w[i] = sin(i*0.7);
        for (long i = 0; i < B*K; i++) x[i] = cos(i*0.37);
        double ef = 0, eb = 0;
        SFX(fsg_small_matmul)(o, x, F, w, B, F, H);
        for (long b = 0; b < B; b++) for (long c = 0; c < H; c++) {
            double s = 0;
            for (long f = 0; f < F; f++) s += (double)x[b*F+f]*w[f*H+c];
            ef = fmax(ef, fabs(o[b*H+c] - s));
        }
        SFX(fsg_small_matmul_bt)(o, ldo, x, w, B, F, H);
        for (long b = 0; b < B; b++) for (long f = 0; f < F; f++) {
            double s = 0;
            for (long h = 0; h < H; h++) s += (double)x[b*H+h]*w[f*H+h];
            eb = fmax(eb, fabs(o[b*ldo+f] - s));
        }
        if (!(ef <= TOL * F && eb <= TOL * H)) {
            printf("products: H=%ld B=%ld F=%ld err %g (matmul) %g (matmul_bt)\n", H, B, F, ef, eb);
            bad++;
        }
        free(w); free(x); free(o);
    }
    return bad;
}
/* the large-batch update with the last gradient group added in its pass,
 * fsg_sgd_update_sum, against fsg_accumulate then fsg_sgd_update: the same
 * numbers bit for bit (the engine's results must not depend on which one
 * ran), lengths with and without a vector remainder, with and without the
 * L2 term and Nesterov */
static int check_update_sum(void) {
    long ns[] = {1, 7, 16, 33, 100, 1001}; int bad = 0;
    for (int ni = 0; ni < 6; ni++) for (int nest = 0; nest < 2; nest++) for (int l2 = 0; l2 < 2; l2++) {
        long n = ns[ni];
        real *w = malloc(sizeof(real)*n), *v = malloc(sizeof(real)*n), *g = malloc(sizeof(real)*n),
             *g2 = malloc(sizeof(real)*n), *w2 = malloc(sizeof(real)*n), *v2 = malloc(sizeof(real)*n),
             *gs = malloc(sizeof(real)*n);
        for (long i = 0; i < n; i++) {
            w[i] = w2[i] = sin(i*0.7); v[i] = v2[i] = cos(i*1.3)*0.1;
            g[i] = gs[i] = sin(i*0.37+1)*3; g2[i] = cos(i*0.11)*1e-3 + sin(i*5.3);
        }
        real alpha = l2 ? (real)1e-2 : 0;
        double s1 = SFX(fsg_sgd_update_sum)(w, v, g, g2, n, alpha, (real)(1.0/7), (real)0.1, (real)0.9, nest);
        SFX(fsg_accumulate)(gs, g2, n);
        double s2 = SFX(fsg_sgd_update)(w2, v2, gs, n, alpha, (real)(1.0/7), (real)0.1, (real)0.9, nest);
        int same = s1 == s2;
        for (long i = 0; i < n; i++) same &= w[i] == w2[i] && v[i] == v2[i] && g[i] == (real)(sin(i*0.37+1)*3);
        if (!same) { printf("update_sum: n=%ld nest=%d l2=%d differs\n", n, nest, l2); bad++; }
        free(w); free(v); free(g); free(g2); free(w2); free(v2); free(gs);
    }
    return bad;
}
int main(void) {
    long Hs[] = {1, 2, 3, 5, 7, 10, 12, 16, 20, 24, 31, 40, 64}; int bad = 0;
    for (int hi = 0; hi < 13; hi++) for (int nest = 0; nest < 2; nest++) for (long f1 = 1; f1 < 40; f1 += 3) {
        long H = Hs[hi], F = 40, f0 = f1 > 5 ? 2 : 0;
        real *w = malloc(sizeof(real)*F*H), *v = malloc(sizeof(real)*F*H), *w2 = malloc(sizeof(real)*F*H),
             *v2 = malloc(sizeof(real)*F*H);
        real a[64], an[64], d[64], o1[64], o2[64];
        for (long i = 0; i < F*H; i++) { w[i] = w2[i] = sin(i*0.7); v[i] = v2[i] = cos(i*1.3)*0.1; }
        for (long i = 0; i < 64; i++) { a[i] = sin(i*2.1); an[i] = cos(i*0.9); d[i] = sin(i*0.37+1); }
        double s1 = SFX(fsg_outer_update_next)(w, v, a, d, f0, f1, H, 1e-2, 1.0, 0.1, 0.9, nest, an, o1);
        double s2 = ref(w2, v2, a, d, f0, f1, H, 1e-2, 0.1, 0.9, nest, an, o2);
        double e = fabs(s1 - s2) / (fabs(s2) + 1e-300);
        for (long i = 0; i < F*H; i++) { e = fmax(e, fabs(w[i]-w2[i])); e = fmax(e, fabs(v[i]-v2[i])); }
        for (long c = 0; c < H; c++) e = fmax(e, fabs(o1[c]-o2[c]));
        /* the update without the product, through fsg_outer_update (B=1) */
        real scr[2600];
        for (long i = 0; i < F*H; i++) { w[i] = w2[i] = sin(i*0.7); v[i] = v2[i] = cos(i*1.3)*0.1; }
        s1 = SFX(fsg_outer_update)(w, v, a, F, d, 1, f0, f1, H, 1e-2, 1.0, 0.1, 0.9, nest, scr);
        s2 = ref(w2, v2, a, d, f0, f1, H, 1e-2, 0.1, 0.9, nest, NULL, o2);
        for (long i = 0; i < F*H; i++) { e = fmax(e, fabs(w[i]-w2[i])); e = fmax(e, fabs(v[i]-v2[i])); }
        e = fmax(e, fabs(s1 - s2) / (fabs(s2) + 1e-300));
        if (!(e <= TOL)) { printf("H=%ld f0=%ld f1=%ld nest=%d err %g\n", H, f0, f1, nest, e); bad++; }
        free(w); free(v); free(w2); free(v2);
    }
    bad += check_rows();
    bad += check_products();
    bad += check_update_sum();
    printf("narrow ok %d, mismatches %d\n", SFX(fsg_narrow_ok)(10), bad);
    return bad != 0;
}
