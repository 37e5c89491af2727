"""``python -m fastsgd bench``: fastsgd, scikit-learn and PyTorch side by side.

One run trains the same network (default 784-128-10 ReLU, softmax
cross-entropy) on the same generated data with the same SGD (momentum 0.9,
Nesterov, L2 ``alpha`` 1e-4) in each framework, for several batch sizes,
dtypes and thread counts, and reports rows/s, time per epoch, the ratios
fastsgd/scikit-learn and fastsgd/PyTorch and the fraction of the machine's
matrix-product rate (measured in the same run) that fastsgd reaches.

Method
------
* Data: ``make_dataset`` draws standard-normal features and labels from a
  fixed random "teacher" network (numpy, seeded; no downloads), then
  standardises the columns.  Small batches use the first n rows only (the
  same rows for every framework of a group; n is reported).
* Timed: fastsgd and scikit-learn -- ``estimator.fit(X, y)`` with
  ``max_iter=epochs``, ``tol=0`` and ``n_iter_no_change=inf`` (no early
  stop; input validation and weight initialisation are inside ``fit`` and so
  inside the timer).  PyTorch -- only the epoch loop (``randperm``, slice,
  index X and y, ``zero_grad``, forward, ``cross_entropy``, backward,
  ``step``); model, optimiser and tensors are built before the timer.
  Time per epoch = wall time / epochs.
* Each group (dtype, threads, batch size) first warms every framework up on
  a few batches, then runs ``repeats`` rounds interleaved (fastsgd,
  scikit-learn, PyTorch, fastsgd, ...) and reports the median.  Before each
  timed run: gc.collect() (imports are gc.freeze()-d) and a pause of at
  least 30 ms, until the previous framework's spinning threads have gone
  to sleep (at most 0.15 s).
* Threads: fastsgd ``n_threads=k``; scikit-learn and numpy
  ``threadpoolctl.threadpool_limits(k, "blas")``; PyTorch
  ``torch.set_num_threads(k)``.
* Machine limit: the median GFLOP/s of numpy matmul of two large square
  matrices (same dtype and thread count, measured once per repeat inside
  every group, interleaved with the frameworks) divided by the network's
  flops per row: forward 2*sum(F*H), weight gradients 2*sum(F*H), deltas
  through the layers after the first 2*sum_{i>=1}(F_i*H_i).  Bias, activation
  and update work is not counted.

* Online learning (``--stream``): ``partial_fit`` on consecutive 32-row
  chunks of the first 4,000 rows, one batch per call.  The first call (it
  initialises the model) is made before the timer; the rest are timed, with
  their input checks.  PyTorch's counterpart of a call: the chunk's arrays
  become tensors, then one shuffled epoch of the same loop as above.  One
  more row (float32, the most threads) has the chunks arrive 50 ms apart,
  as from a sensor or a queue: 16 timed calls, the median call reported.

``python -m fastsgd bench --help`` lists the options.  Heavy imports (torch,
matplotlib, scikit-learn) happen inside functions.
"""

# the helpers benches/ and tests/ share with the bench
from ._case import (STREAM_CHUNK, STREAM_ROWS, learning_rate_for, make_dataset,
                    rows_for_batch)
from ._cli import main
from ._runners import TorchRunner, TorchStreamRunner

__all__ = ["STREAM_CHUNK", "STREAM_ROWS", "TorchRunner", "TorchStreamRunner",
           "learning_rate_for", "main", "make_dataset", "rows_for_batch"]
