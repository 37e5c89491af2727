"""What fastsgd was built with and what it runs on."""

import platform


def build_info():
    """A dict describing the build and the runtime: OpenMP, the SIMD kernel
    variant in use, thread counts, and the BLAS libraries loaded."""
    from fastsgd import _engine
    from fastsgd._threads import effective_n_threads

    info = dict(_engine.build_info())
    info["default_n_threads"] = effective_n_threads(None)
    info["engine_tuning"] = _engine.get_tuning()
    try:
        from threadpoolctl import threadpool_info
        info["blas"] = [
            {k: lib.get(k) for k in ("internal_api", "version", "architecture",
                                      "num_threads", "filepath")}
            for lib in threadpool_info() if lib.get("user_api") == "blas"
        ]
    except Exception as exc:  # pragma: no cover
        info["blas"] = f"unavailable: {exc}"
    return info


def show_config():
    """Print build_info() for bug reports and benchmark headers."""
    import numpy
    import scipy
    import sklearn

    from fastsgd import __version__

    info = build_info()
    print(f"fastsgd {__version__}")
    print(f"  python       {platform.python_version()} ({platform.machine()})")
    print(f"  numpy {numpy.__version__}, scipy {scipy.__version__}, "
          f"scikit-learn {sklearn.__version__}")
    print(f"  OpenMP       {'yes' if info['openmp'] else 'NO (single-threaded build)'}, "
          f"max threads {info['openmp_max_threads']}, default n_threads "
          f"{info['default_n_threads']}")
    print(f"  kernels      {info['kernel_isa']} "
          f"({'run-time dispatch' if info['kernel_multiversioned'] else 'single build'})")
    for lib in info["blas"] if isinstance(info["blas"], list) else []:
        print(f"  BLAS         {lib['internal_api']} {lib['version']} "
              f"({lib['architecture']}, {lib['num_threads']} threads)")
