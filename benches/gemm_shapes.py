"""How close OpenBLAS (through numpy) comes to its large-matrix rate at the
shapes one batch of the first layer needs: the forward product (B x F @ F x H)
and the weight gradient (F x B @ B x H), on one thread.  This caps the
fraction of the machine limit that the engine can reach at small batches.

    python benches/gemm_shapes.py              # B=32, 784-128, both dtypes
    python benches/gemm_shapes.py --batch 8 --features 784 --hidden 128
"""

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits


def gflops(product, flops, seconds=1.0, parts=7):
    """Median GFLOP/s of `product` over `parts` stretches of the time."""
    rates = []
    for _ in range(parts):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / parts:
            product()
            n += 1
        rates.append(flops * n / (time.perf_counter() - t0) / 1e9)
    return float(np.median(rates))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--hidden", type=int, default=128)
    args = parser.parse_args()
    B, F, H = args.batch, args.features, args.hidden
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        for dtype in (np.float32, np.float64):
            big = rng.random((2000, 2000)).astype(dtype)
            a, w, d = (rng.random(s).astype(dtype) for s in ((B, F), (F, H), (B, H)))
            out, grad = np.empty((B, H), dtype), np.empty((F, H), dtype)
            peak = gflops(lambda: big @ big, 2 * 2000**3)
            fwd = gflops(lambda: np.matmul(a, w, out=out), 2 * B * F * H)
            grd = gflops(lambda: np.matmul(a.T, d, out=grad), 2 * B * F * H)
            print(f"{np.dtype(dtype).name}: 2000x2000 {peak:.1f} GFLOP/s; "
                  f"B={B} forward {fwd:.1f} ({fwd / peak:.2f}), "
                  f"gradient {grd:.1f} ({grd / peak:.2f})")


if __name__ == "__main__":
    main()
