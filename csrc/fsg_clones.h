/* fsg_clones.h — FSG_HOT marks a function to be compiled for AVX-512,
 * AVX2+FMA and baseline SSE2, the loader picking one for the CPU at import
 * (GCC target_clones, x86-64 Linux; see fsg_kernels.c).  Elsewhere, or with
 * the CMake option FASTSGD_CLONES=OFF, one baseline copy. */
#ifndef FSG_CLONES_H
#define FSG_CLONES_H

#if defined(FSG_USE_CLONES) && defined(__GNUC__) && !defined(__clang__) && \
    defined(__x86_64__) && defined(__linux__)
#define FSG_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define FSG_HAVE_CLONES 1
#else
#define FSG_HOT
#define FSG_HAVE_CLONES 0
#endif

#endif /* FSG_CLONES_H */
