"""Memory for the weight snapshots a training call takes, kept between calls.

Before a partial_fit, a refit or an epoch, the parameter slab and the
velocities are copied so that a failing call or a diverging epoch can put
them back.  Fresh memory costs a page fault per 4 KiB page the first time it
is written: 1.5-4 us each on the build machine (a VM), about 1,200 per fit
of a fresh 784-128-10 float64 estimator, 4-5 ms, which is more than a whole
epoch of 2,000 rows at batch size 1 took.  So the arrays of a finished call
go back here, and the next call of the same size reuses them (glibc would
have returned them to the system).

Only arrays of up to KEEP_BYTES are kept, and at most MAX_KEPT of them: a
large model's copies are rare next to its epochs and are not worth holding.
"""

import threading

import numpy as np

KEEP_BYTES = 16 << 20
MAX_KEPT = 4

_lock = threading.Lock()
_kept = []   # arrays no call is using, newest last


def copy_of(arr):
    """A copy of the 1-d array `arr`, in kept memory when some fits."""
    out = None
    with _lock:
        for i in range(len(_kept) - 1, -1, -1):
            if _kept[i].shape == arr.shape and _kept[i].dtype == arr.dtype:
                out = _kept.pop(i)
                break
    if out is None:
        return arr.copy()
    np.copyto(out, arr)
    return out


def give_back(*arrays):
    """Arrays from copy_of that nothing will read again (None is skipped)."""
    with _lock:
        for arr in arrays:
            if arr is not None and arr.nbytes <= KEEP_BYTES:
                _kept.append(arr)
        del _kept[:-MAX_KEPT]


def forget():
    """Drop every kept array (tests)."""
    with _lock:
        _kept.clear()
