"""The machine the bench runs on: what it is (CPU, versions, thread pools,
environment), how many physical cores it gives us, memory use."""

import os
import platform
import sys

from ._runners import TorchRunner


SLOW_BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def machine_info(args):
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": None,
        "avx512": None,
        "env": {k: os.environ.get(k) for k in SLOW_BLAS_ENV + (
            "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
    }
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        # a virtual machine's model name can be just "AMD EPYC": family and
        # model tell its generations apart (25/17 Zen 4: AVX-512 on 256-bit
        # units, half the matrix rate per core of a full-width one)
        fields = {}
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if not key.strip():
                break   # the first processor's block only
            fields.setdefault(key.strip(), value.strip())
        info["cpu_model"] = fields.get("model name")
        if "cpu family" in fields and "model" in fields:
            info["cpu_model"] = (f"{info['cpu_model']} "
                                 f"(family {fields['cpu family']} model {fields['model']})")
        info["avx512"] = " avx512f" in text
    except OSError:
        pass
    try:
        info["loadavg_start"] = os.getloadavg()
    except OSError:
        pass
    import numpy
    import scipy
    import sklearn

    import fastsgd
    info["versions"] = {"fastsgd": fastsgd.__version__, "numpy": numpy.__version__,
                        "scipy": scipy.__version__, "scikit-learn": sklearn.__version__}
    if not args.no_torch and TorchRunner.available():
        import torch
        info["versions"]["torch"] = torch.__version__
    try:
        info["fastsgd_build"] = fastsgd.build_info()
    except Exception as exc:
        info["fastsgd_build"] = f"unavailable: {exc}"
    try:
        from threadpoolctl import threadpool_info
        info["threadpools"] = threadpool_info()
    except Exception as exc:
        info["threadpools"] = f"unavailable: {exc}"
    return info


def env_warning():
    bad = {k: os.environ[k] for k in SLOW_BLAS_ENV if k in os.environ}
    if not bad:
        return None
    setting = ", ".join(f"{k}={v}" for k, v in bad.items())
    return (f"{setting} is set in the environment. It makes OpenBLAS (numpy's, "
            "scipy's and so scikit-learn's and fastsgd's) use slower kernels or "
            "blocking than this CPU supports, so the matrix-product rate, the "
            "machine limit and every BLAS-bound number below are too low. "
            "Rerun as: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m fastsgd bench")


def busy_warning(machine):
    load, cpus = machine.get("loadavg_start"), machine.get("usable_cpus") or 1
    if load and load[0] > 0.5 * cpus:
        return (f"the machine is busy (1-minute load average {load[0]:.1f} on {cpus} usable "
                "cpus) before the benchmark starts: the timings will be noisy; run it on "
                "an idle machine for numbers to quote.")
    return None


def usable_physical_cores():
    """Physical cores among the CPUs this process may use (Linux sysfs
    topology), or None when unknown."""
    try:
        cpus = os.sched_getaffinity(0)
        cores = set()
        for c in cpus:
            topo = f"/sys/devices/system/cpu/cpu{c}/topology/"
            with open(topo + "core_id") as f, open(topo + "physical_package_id") as g:
                cores.add((g.read().strip(), f.read().strip()))
        return len(cores) or None
    except (AttributeError, OSError):
        return None


def rss_bytes():
    """Current resident set size (Linux /proc), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def maxrss_bytes():
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def set_torch_threads(k):
    try:
        import torch
        torch.set_num_threads(k)
    except Exception:
        pass


def loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None
