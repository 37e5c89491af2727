"""The floor under small-batch training: how long the engine's phase-2
kernels take, hot in cache, on the share of the first layer one thread owns,
and the rows/s that would give if nothing else took any time (no serial
layers, no waiting, no gathering).  Compare with benches/engine_loop.py at
the same batch size and threads: the gap is the engine's overhead, the rest
is the kernels' (and the core's) limit.

    python benches/kernel_floor.py                     # 784-128, B = 1 and 8
    python benches/kernel_floor.py --batch 1,2,4,8 --threads 1

Three timings per batch size: `step`, one thread alone on its share;
`stream`, a plain pass that reads and writes the same weights and
velocities (at B = 1 the step can go no faster than that); and `together`,
every thread on its own share at the same time with a barrier after each
call, as in the engine (both cores busy share the chip's caches, memory and
clocks).  The ceiling is B / together: what the engine could reach with no
serial work, no waits and no gathers.

Measured on the build machine (AMD Zen 4, 2 threads, 2026-12-04): float64
B=1 10.9 us per row for the fused step against 10.7 us for the plain pass
(so at the memory floor); together 12.6-14.1 us, a ceiling of 71-79k rows/s;
the engine ran 45-60k.  B=8 38.7 us alone, a ceiling of 207k rows/s; the
engine ran 127-147k.

Builds benches/kernel_floor.c against csrc/fsg_kernels.c the way the
package builds its kernels (-O3, multi-versioned, so this CPU's variant
runs; OpenMP for `together`, which is left out where the compiler has none).
"""

import argparse
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(workdir, opt="-O3"):
    """The driver, with OpenMP when the compiler has it (else no `together`)."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    cc = shutil.which(cc) or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("kernel_floor needs a C compiler")
    exe = Path(workdir) / "kernel_floor"
    command = [cc, opt, "-fopenmp-simd", "-Wno-psabi", "-DFSG_USE_CLONES=1",
               "-I", str(ROOT / "csrc"), str(ROOT / "benches" / "kernel_floor.c"),
               str(ROOT / "csrc" / "fsg_kernels.c"), "-o", str(exe), "-lm"]
    if subprocess.run(command + ["-fopenmp"], capture_output=True).returncode != 0:
        subprocess.run(command, check=True)
    return exe


def measure(exe, real_bytes, rows, hidden, batch, threads):
    """(step, stream, together) microseconds per call, best of 7 runs of
    ~0.1 s; together is None without OpenMP or with one thread."""
    reps = max(20, int(2e7 // (rows * hidden * max(batch, 2))))
    out = subprocess.run([str(exe), str(real_bytes), str(rows), str(hidden), str(batch),
                          str(reps), str(threads)],
                         check=True, capture_output=True, text=True).stdout
    step, stream, together = (float(x) for x in out.split())
    return step, stream, (together if together > 0 else None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", default="1,8", help="batch sizes, comma list")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads sharing the layer's rows evenly")
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--opt", default="-O3",
                        help="optimisation flag of the build (CI's smoke run: --opt=-O0)")
    args = parser.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    if min(batches) < 1 or min(args.threads, args.features, args.hidden) < 1:
        parser.error("--batch, --threads, --features and --hidden must be at least 1")
    rows = -(-args.features // args.threads)
    print(f"first layer {args.features}x{args.hidden}, {args.threads} thread(s): "
          f"{rows} rows each, hot in cache")
    print(f"{'dtype':8} {'batch':>5} {'step us':>9} {'stream us':>10} {'together us':>12} "
          f"{'ceiling rows/s':>15}")
    with tempfile.TemporaryDirectory() as workdir:
        exe = build(workdir, args.opt)
        for dtype, real_bytes in (("float32", 4), ("float64", 8)):
            for batch in batches:
                step, stream, together = measure(exe, real_bytes, rows, args.hidden, batch,
                                                 args.threads)
                floor = together or step
                shown = f"{together:12.2f}" if together else f"{'-':>12}"
                print(f"{dtype:8} {batch:5d} {step:9.2f} {stream:10.2f} {shown} "
                      f"{batch / floor * 1e6 / 1e3:14.0f}k", flush=True)

if __name__ == "__main__":
    main()
