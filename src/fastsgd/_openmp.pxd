# OpenMP shim: every OpenMP call of the engine comes through here, so a build
# without OpenMP (e.g. Apple clang) still compiles and simply runs serially.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FSG_OPENMP_ENABLED 1
    #else
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
