/* fsg_random.c — the initial weights' uniform draws, as numpy makes them.
 *
 * scikit-learn draws every weight and bias with RandomState.uniform, i.e.
 * numpy's legacy MT19937 stream: two 32-bit words per double,
 * u = ((w0 >> 5) * 2^26 + (w1 >> 6)) / 2^53, value = low + range * u.  For
 * a 784-128-10 network that is 200k words and took 330 us of every fit,
 * generated one word at a time.  This file makes the same words and the
 * same doubles, bit for bit, with loops the compiler vectorises (the twist
 * and the tempering have no dependency shorter than 227 words).
 *
 * It works on numpy's own generator state (MT19937.ctypes.state_address),
 * so the RandomState goes on exactly as if numpy had drawn.  The file is
 * compiled with -ffp-contract=off: a fused multiply-add would round
 * low + range * u differently from numpy.
 */
#include "fastsgd.h"
#include "fsg_clones.h"

#define MT_N 624
#define MT_M 397
#define MT_MATRIX_A 0x9908b0dfU
#define MT_UPPER 0x80000000U
#define MT_LOWER 0x7fffffffU

static inline uint32_t mt_mix(uint32_t here, uint32_t next, uint32_t far) {
    uint32_t y = (here & MT_UPPER) | (next & MT_LOWER);
    return far ^ (y >> 1) ^ ((0U - (y & 1U)) & MT_MATRIX_A);
}

/* the next 624 words of state (Matsumoto and Nishimura's reference twist) */
FSG_HOT static void mt_twist(fsg_mt19937 *s) {
    uint32_t *k = s->key;
    int i;
    for (i = 0; i < MT_N - MT_M; i++) k[i] = mt_mix(k[i], k[i + 1], k[i + MT_M]);
    for (; i < MT_N - 1; i++) k[i] = mt_mix(k[i], k[i + 1], k[i + MT_M - MT_N]);
    k[MT_N - 1] = mt_mix(k[MT_N - 1], k[0], k[MT_M - 1]);
    s->pos = 0;
}

static inline uint32_t mt_temper(uint32_t y) {
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= y >> 18;
    return y;
}

static inline double mt_double(uint32_t w0, uint32_t w1) {
    /* (both fit in int32, which converts in one instruction everywhere) */
    return ((double)(int32_t)(w0 >> 5) * 67108864.0 + (double)(int32_t)(w1 >> 6)) /
           9007199254740992.0;
}

static inline uint32_t mt_next(fsg_mt19937 *s) {
    if (s->pos >= MT_N) mt_twist(s);
    return mt_temper(s->key[s->pos++]);
}

/* out[i] = low + range * u_i for n draws; T is float or double (a float
 * result is the double one rounded, as numpy's cast does) */
#define FSG_MT_UNIFORM(T, S)                                                    \
    FSG_HOT void fsg_mt_uniform_##S(fsg_mt19937 *s, T *out, fsg_idx n,         \
                                    double low, double range) {                 \
        fsg_idx i = 0;                                                          \
        while (i < n) {                                                         \
            if (s->pos >= MT_N) mt_twist(s);                                    \
            /* the whole pairs left in the state, in one vector loop */         \
            fsg_idx pairs = (MT_N - s->pos) / 2;                                \
            if (pairs > n - i) pairs = n - i;                                   \
            const uint32_t *k = s->key + s->pos;                                \
            T *o = out + i;                                                     \
            for (fsg_idx j = 0; j < pairs; j++) {                               \
                double u = mt_double(mt_temper(k[2 * j]), mt_temper(k[2 * j + 1])); \
                o[j] = (T)(low + range * u);                                    \
            }                                                                   \
            s->pos += (int)(2 * pairs);                                         \
            i += pairs;                                                         \
            if (i < n && s->pos == MT_N - 1) {                                  \
                /* a pair across a twist */                                     \
                uint32_t w0 = mt_next(s);                                       \
                uint32_t w1 = mt_next(s);                                       \
                out[i++] = (T)(low + range * mt_double(w0, w1));                \
            }                                                                   \
        }                                                                       \
    }

FSG_MT_UNIFORM(float, f32)
FSG_MT_UNIFORM(double, f64)
