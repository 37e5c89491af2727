# OpenMP shim: every OpenMP call of the engine comes through here, so a build
# without OpenMP (e.g. Apple clang) still compiles and simply runs serially.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FSG_OPENMP_ENABLED 1
    /* Cython emits its prange loops inside parallel() blocks with `nowait`;
       this is the barrier that separates two phases of one region */
    static inline void fsg_omp_barrier(void) {
        #pragma omp barrier
    }
    #else
    static inline void fsg_omp_barrier(void) {}
    #define FSG_OPENMP_ENABLED 0
    static inline int omp_get_thread_num(void) { return 0; }
    static inline int omp_get_max_threads(void) { return 1; }
    static inline int omp_get_num_procs(void) { return 1; }
    #endif
    """
    bint FSG_OPENMP_ENABLED
    int omp_get_thread_num() noexcept nogil
    int omp_get_max_threads() noexcept nogil
    int omp_get_num_procs() noexcept nogil
    void fsg_omp_barrier() noexcept nogil
