"""What the bench measures: the network, the SGD settings, the data, and
how many rows and epochs each batch size gets."""

import math


N_FEATURES = 784
N_CLASSES = 10
HIDDEN = (128,)
ALPHA = 1e-4
MOMENTUM = 0.9
SEED = 0
LINEAR_ROWS = 5000
STREAM_ROWS = 4000   # online learning: partial_fit on consecutive chunks
STREAM_CHUNK = 32
STREAM_PAUSED_CALLS = 16    # ...and chunks that arrive STREAM_PAUSE_S apart
STREAM_PAUSE_S = 0.05


def rows_for_batch(batch_size, rows):
    """Rows used for a batch size: the slow frameworks need fewer rows at
    small batches to keep the run short.  ``batch_size`` None is full batch."""
    if batch_size is None:
        return rows
    if batch_size <= 1:
        return min(rows, 2000)
    if batch_size < 32:
        return min(rows, 5000)
    return rows


def learning_rate_for(batch_size):
    """0.01 from batch 32 up; 0.001 below (momentum 0.9 with 0.01 diverges at
    batch 1 on standardised 784-feature data)."""
    return 0.01 if batch_size >= 32 else 0.001


def auto_epochs(batch_size, n_rows):
    """Epochs per timed fit when --epochs is 'auto': one epoch while an epoch
    is many updates, two from batch 128 up (and for full batch) so that
    per-fit overhead (a few ms against epochs of 50 ms or more) is amortised.
    (Three made the default run ~40 s longer.)"""
    return 1 if batch_size < 128 and batch_size < n_rows else 2


def flops_per_row(units):
    """Matrix-product flops per training row of a network with these layer
    sizes: forward 2*sum(F*H), weight gradients 2*sum(F*H), and the deltas
    back through every layer but the first 2*sum_{i>=1}(F_i*H_i)."""
    fh = [f * h for f, h in zip(units[:-1], units[1:])]
    return 4 * sum(fh) + 2 * sum(fh[1:])


def make_dataset(n_rows, n_features=N_FEATURES, n_classes=N_CLASSES, seed=SEED):
    """Deterministic classification data: standardised float64 features and
    int64 labels in 0..n_classes-1 drawn from a random teacher network
    (tanh hidden layer, Gumbel noise on its logits).  Every class occurs
    among the first 200 rows, so any prefix used by the benchmark has all
    classes (the three frameworks then build the same output layer)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features))
    # a little shared structure so the features are not all independent
    mix = rng.standard_normal((n_features, 16)) / 4.0
    X += rng.standard_normal((n_rows, 16)) @ mix.T
    w1 = rng.standard_normal((n_features, 64)) / math.sqrt(n_features)
    w2 = rng.standard_normal((64, n_classes)) * 2.0
    logits = np.tanh(X @ w1) @ w2 + rng.gumbel(size=(n_rows, n_classes))
    y = np.argmax(logits, axis=1).astype(np.int64)
    k = min(n_rows, 200)
    missing = np.setdiff1d(np.arange(n_classes), y[:k])
    if k >= n_classes and missing.size:
        y[np.arange(missing.size) * 7 % k] = missing  # force all classes early
    X -= X.mean(axis=0)
    X /= X.std(axis=0)
    return X, y
