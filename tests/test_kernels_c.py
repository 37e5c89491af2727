"""The small-batch kernels of csrc/ for every instruction set the package
ships.  The engine's tests run only the variant this CPU picks at import;
tests/c/narrow_kernel_check.c checks the update kernels (narrow-layer and
wide, one row and several) and small_matmul_bt against scalar loops,
compiled here as the baseline x86-64 build, the AVX2+FMA build and the
multi-versioned build."""

import platform
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "tests" / "c" / "narrow_kernel_check.c"


def _compiler():
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc) or shutil.which("cc") or shutil.which("gcc")


def _cpu_has(flag):
    try:
        return f" {flag}" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


VARIANTS = {"baseline": [], "multiversioned": ["-DFSG_USE_CLONES=1"]}
if platform.machine() in ("x86_64", "AMD64") and _cpu_has("avx2") and _cpu_has("fma"):
    VARIANTS["avx2"] = ["-mavx2", "-mfma"]


@pytest.fixture(scope="module", params=list(VARIANTS))
def kernels(request, tmp_path_factory):
    """csrc/fsg_kernels.c compiled once per variant (the slow part)."""
    cc = _compiler()
    assert cc, "a C compiler is needed to build fastsgd and for this test"
    obj = tmp_path_factory.mktemp(request.param) / "fsg_kernels.o"
    subprocess.run([cc, "-O2", "-fopenmp-simd", "-Wno-psabi", *VARIANTS[request.param],
                    "-I", str(ROOT / "csrc"), "-c", str(ROOT / "csrc" / "fsg_kernels.c"),
                    "-o", str(obj)], check=True, capture_output=True)
    return cc, request.param, obj


@pytest.mark.parametrize("real", ["double", "float"])
def test_small_batch_kernels_match_a_scalar_loop(tmp_path, kernels, real):
    cc, variant, obj = kernels
    exe = tmp_path / "check"
    subprocess.run([cc, "-O2", "-Wno-psabi", f"-DREAL={real}", *VARIANTS[variant],
                    "-I", str(ROOT / "csrc"), str(CHECK), str(obj), "-o", str(exe), "-lm"],
                   check=True, capture_output=True)
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout
    assert "mismatches 0" in run.stdout
