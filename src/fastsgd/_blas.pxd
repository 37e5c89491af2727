# Matrix products through scipy.linalg.cython_blas (the route scikit-learn's
# own Cython takes).  Our matrices are row-major; BLAS is column-major, and a
# row-major matrix is the column-major view of its transpose, so
#     C = op(A) @ op(B)   (row-major)   <=>   C^T = op(B)^T @ op(A)^T
# which is the same gemm call with the operands swapped.
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm


cdef inline void gemm(bint trans_a, bint trans_b, int M, int N, int K,
                      floating alpha, const floating *A, int lda,
                      const floating *B, int ldb, floating beta,
                      floating *C, int ldc) noexcept nogil:
    """C (M, N) = alpha * op(A) (M, K) @ op(B) (K, N) + beta * C, row-major."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if M == 0 or N == 0:
        return
    if floating is float:
        sgemm(&tb, &ta, &N, &M, &K, &alpha, <float *> B, &ldb,
              <float *> A, &lda, &beta, C, &ldc)
    else:
        dgemm(&tb, &ta, &N, &M, &K, &alpha, <double *> B, &ldb,
              <double *> A, &lda, &beta, C, &ldc)
