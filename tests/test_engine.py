"""Engine invariants: results independent of the thread count and of how
the work is split; prediction equal to a plain NumPy forward pass."""

import copy
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits

import fastsgd
from fastsgd import _engine


@pytest.fixture
def tuning():
    """Restore the engine's tuning knobs after a test changes them."""
    saved = _engine.get_tuning()
    yield _engine.set_tuning
    _engine.set_tuning(**saved)


def _fit(n_threads, batch_size, dtype=np.float64, **params):
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(dtype)
    est = fastsgd.MLPClassifier(hidden_layer_sizes=(128, 32), batch_size=batch_size,
                                learning_rate_init=0.01, max_iter=3, random_state=0,
                                n_threads=n_threads, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


def _assert_bitwise_equal(a, b):
    assert a.loss_curve_ == b.loss_curve_
    for x, y in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda d: d.__name__)
@pytest.mark.parametrize("batch_size", [1, 8, 32, 256, 1797])
def test_results_bitwise_identical_for_any_thread_count(batch_size, dtype):
    one = _fit(1, batch_size, dtype)
    two = _fit(2, batch_size, dtype)
    _assert_bitwise_equal(one, two)


@pytest.mark.parametrize("batch_size", [1, 32, 256])
def test_threads_that_block_at_every_wait_give_the_same_numbers(tuning, batch_size):
    # spin_pauses=0: every wait for a phase or an item blocks in the kernel
    # at once, so every hand-off goes through the futex wake-ups (a lost one
    # would hang the fit); the numbers do not change
    tuning(parallel_min_work=1, probe_rows=0, wake_guard=0, spin_pauses=0)
    before = _engine.team_counts()
    blocking = _fit(2, batch_size)
    # (under pytest -n 2 the helper may not get a CPU during a short fit)
    for _ in range(5):
        counts = _engine.team_counts()
        if counts["helper_items"] > before["helper_items"]:
            break
        _assert_bitwise_equal(blocking, _fit(2, batch_size))
    assert counts["worker_sleeps"] > before["worker_sleeps"]
    assert counts["helper_items"] > before["helper_items"]
    tuning(spin_pauses=4000)
    _assert_bitwise_equal(blocking, _fit(2, batch_size))
    _assert_bitwise_equal(blocking, _fit(1, batch_size))


# how small batches are split: every layer by weights, the partials summed
# in chunks of 4 rows; or only the first (64 x 128 weights), summed in
# chunks of 3 rows, also for batches of 200 rows
SPLITS = {
    "every-layer": dict(split_min_weights=64),
    "first-layer-3-row-sums": dict(split_min_weights=8192, sum_rows=3, split_rows=256),
}


@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("batch_size", [1, 5, 32, 200])
def test_threads_forced_on_tiny_work_still_bitwise_identical(tuning, batch_size, shuffle,
                                                             split):
    # threads split even the smallest batches: the partition into slices and
    # tasks must still not depend on the thread count
    tuning(parallel_min_work=1, slice_rows=16, task_weights=512, task_weights_small=128,
           task_weights_one=128,
           **SPLITS[split])
    one = _fit(1, batch_size, shuffle=shuffle)
    two = _fit(2, batch_size, shuffle=shuffle)
    three = _fit(3, batch_size, shuffle=shuffle)
    _assert_bitwise_equal(one, two)
    _assert_bitwise_equal(one, three)


def test_predict_matches_numpy_forward_pass_and_threads():
    est = _fit(2, 64, activation="tanh")
    X, _ = load_digits(return_X_y=True)
    X = np.vstack([X / 16] * 3)  # several prediction slices
    a = X
    for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        a = a @ W + b
        if i < len(est.coefs_) - 1:
            a = np.tanh(a)
    a = np.exp(a - a.max(axis=1, keepdims=True))
    a /= a.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(est.predict_proba(X), a, rtol=1e-12, atol=1e-15)
    single = est.set_params(n_threads=1).predict_proba(X)
    np.testing.assert_array_equal(est.set_params(n_threads=2).predict_proba(X), single)


def test_engine_rejects_inconsistent_arguments():
    from fastsgd._params import ParamLayout
    layout = ParamLayout([3, 4, 2])
    engine = _engine.Engine(layout.units, layout.coef_offsets, layout.intercept_offsets, 3, 3)
    w = np.zeros(layout.n_params)
    X, Y = np.zeros((5, 3)), np.zeros((5, 2))
    args = (np.empty(0), np.empty(0, dtype=np.int64), 2, 0.1, 0.9, True, 0.0, 1, np.empty(3))
    with pytest.raises(ValueError, match="parameter slab"):
        engine.train_epoch(w[:-1], w[:-1].copy(), X, Y, *args)
    with pytest.raises(ValueError, match="data does not match"):
        engine.train_epoch(w, w.copy(), np.zeros((5, 4)), Y, *args)
    bad_order = (np.empty(0), np.array([0, 7], dtype=np.int64)) + args[2:]
    with pytest.raises(ValueError, match="row order out of range"):
        engine.train_epoch(w, w.copy(), X, Y, *bad_order)


def test_set_tuning_rejects_unknown_knobs_and_bad_values(tuning):
    with pytest.raises(KeyError, match="unknown tuning knob"):
        tuning(no_such_knob=1)
    with pytest.raises(ValueError, match="must be >= 1"):
        tuning(slice_rows=0)
    tuning(slice_rows=32)
    assert _engine.get_tuning()["slice_rows"] == 32
    tuning(probe_rows=0)   # 0 switches the team/alone probes off
    with pytest.raises(ValueError, match="must be >= 0"):
        tuning(probe_rows=-1)
    # this stop's knobs: 0 is meaningful (block at once; blocks in order)
    for knob in ("spin_pauses", "hidden_reverse", "hidden_merge", "hidden_private"):
        with pytest.raises(ValueError, match=f"'{knob}' must be >= 0"):
            tuning(**{knob: -1})
    tuning(spin_pauses=0, hidden_reverse=0, hidden_merge=0, hidden_private=0)
    assert _engine.get_tuning()["spin_pauses"] == 0


def _small_batch_epochs(engine, n_threads, epochs=2, batch_size=4, n=1200):
    rng = np.random.RandomState(0)
    layout = fastsgd._params.ParamLayout([64, 256, 10])
    X = rng.normal(size=(n, 64))
    Y = np.eye(10)[rng.randint(10, size=n)]
    w = layout.glorot_init(rng, "relu", np.float64)
    v = np.zeros_like(w)
    order = rng.permutation(n).astype(np.int64)
    for _ in range(epochs):
        engine.train_epoch(w, v, X, Y, np.empty(0), order, batch_size, 0.001, 0.9, True,
                           1e-4, n_threads, np.empty(n // batch_size))
    return w, v


def _fresh_small_batch_engines(tuning):
    """Threads on for tiny work, no wake guard, no remembered verdicts;
    returns a maker of engines for _small_batch_epochs' network."""
    tuning(parallel_min_work=1, wake_guard=0)
    _engine.forget_adapt_memory()
    layout = fastsgd._params.ParamLayout([64, 256, 10])
    return lambda: _engine.Engine(layout.units, layout.coef_offsets,
                                  layout.intercept_offsets, 3, 3)


def test_small_batches_probe_team_and_alone_without_changing_results(tuning):
    # the master times the team against itself alone and runs the faster;
    # every batch is counted on one side, and the numbers are those of 1 thread
    # (the wake guard could run a whole epoch alone, outside the probes)
    make = _fresh_small_batch_engines(tuning)
    probed = make()
    w2, v2 = _small_batch_epochs(probed, 2)
    stats = probed.adapt_stats()
    assert stats["team_batches"] + stats["solo_batches"] == 2 * 1200 // 4
    assert stats["solo_batches"] >= 16 and stats["team_batches"] >= 16
    w1, v1 = _small_batch_epochs(make(), 1)
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(v1, v2)
    tuning(probe_rows=0)
    unprobed = make()
    _small_batch_epochs(unprobed, 2)
    assert unprobed.adapt_stats()["solo_batches"] == 0


def test_new_engine_trusts_a_recent_verdict_for_its_shape(tuning):
    # a run of fits makes a new engine each time: the second engine of a
    # shape starts with the first one's verdict instead of probing
    make = _fresh_small_batch_engines(tuning)
    first = make()
    _small_batch_epochs(first, 2, epochs=1)
    verdict = first.adapt_stats()["run_solo"]
    second = make()
    w2, v2 = _small_batch_epochs(second, 2, epochs=1, n=120)   # 30 batches
    stats = second.adapt_stats()
    assert stats["run_solo"] == verdict
    assert stats["solo_batches" if verdict else "team_batches"] == 30
    w1, v1 = _small_batch_epochs(make(), 1, epochs=1, n=120)
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(v1, v2)
    # another batch size, or no memory: a probe (16 batches each way) first
    for batch_size in (4, 5):
        if batch_size == 4:
            _engine.forget_adapt_memory()
        third = make()
        _small_batch_epochs(third, 2, epochs=1, batch_size=batch_size)
        assert third.adapt_stats()["solo_batches"] >= 16


def test_large_batches_without_room_for_group_buffers_take_the_phase_2_path(tuning):
    # the gradient groups of a large batch may not fit their memory cap: the
    # engine must then run the phase-2 products, exactly as when large
    # batches are told not to accumulate at all (the row-split path: this
    # one-hidden-layer network would otherwise split by hidden units)
    tuning(hidden_rows=0)
    X, y = load_digits(return_X_y=True)

    def fit():
        est = fastsgd.MLPClassifier(hidden_layer_sizes=(1024,), batch_size=512, max_iter=2,
                                    learning_rate_init=0.01, random_state=0, n_threads=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return est.fit(X / 16, y)

    tuning(group_mib=1)            # 2 groups x 77k float64 parameters > 1 MiB
    capped = fit()
    tuning(group_mib=256, accumulate_rows=100000)
    phase2 = fit()
    tuning(accumulate_rows=128)
    grouped = fit()
    _assert_bitwise_equal(capped, phase2)
    # the grouped path sums in another order, so the comparison above could
    # have failed had the cap been ignored
    assert any(not np.array_equal(a, b) for a, b in zip(capped.coefs_, grouped.coefs_))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda d: d.__name__)
def test_asking_for_the_next_rows_in_the_update_leaves_the_weights_alone(tuning, dtype):
    # large batches: the update runs in chunks with a prefetch of the next
    # batch's rows before each, so only the partial sums of w^2 (the loss's
    # L2 term) are grouped differently; the weights are the same bits, 1 or 2
    # threads, B=256 of 1797 rows (gradient groups, 6 of 7 batches have a
    # next batch to ask for)
    with pytest.raises(ValueError, match="update_asks"):
        tuning(update_asks=2)
    tuning(update_asks=0)
    cold = _fit(2, 256, dtype, alpha=1e-2)
    tuning(update_asks=1)
    asked = _fit(2, 256, dtype, alpha=1e-2)
    for x, y in zip(cold.coefs_ + cold.intercepts_, asked.coefs_ + asked.intercepts_):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_allclose(asked.loss_curve_, cold.loss_curve_, rtol=1e-5)
    _assert_bitwise_equal(asked, _fit(1, 256, dtype, alpha=1e-2))


def _check_x_epoch(X, order, batch_size, n_threads, check_x=True):
    """One epoch of a 256-64-3 network on X (300 rows) with check_x; returns
    (status, batches done, params after)."""
    rng = np.random.RandomState(1)
    layout = fastsgd._params.ParamLayout([X.shape[1], 64, 3])
    params = layout.glorot_init(rng, "relu", X.dtype)
    Y = np.eye(3, dtype=X.dtype)[rng.randint(3, size=X.shape[0])]
    engine = _engine.Engine(layout.units, layout.coef_offsets, layout.intercept_offsets,
                            fastsgd._params.ACTIVATION_CODES["relu"],
                            fastsgd._params.OUTPUT_CODES["softmax"])
    status, done, _ = engine.train_epoch(
        params, np.zeros_like(params), X, Y, np.empty(0, X.dtype), order, batch_size,
        1e-3, 0.9, True, 1e-4, n_threads, np.empty(X.shape[0]), check_x)
    return status, done, params


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
@pytest.mark.parametrize("batch_size", [1, 8, 32, 100, 300])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_check_x_finds_bad_value_on_every_gather_path(tuning, dtype, batch_size, n_threads):
    # every way a row reaches the engine's gather buffers checks it: the
    # master's first gather, the next batch's gather (alone, or by columns
    # in the team's update tasks, fused at one row), the row slices of
    # large batches; the epoch stops at the batch that gathered it, or one
    # of the two before (which gathered the next batch's rows, or, in the
    # idle end of its update phase, the rows of the batch after: gather_tail)
    tuning(wake_guard=0)
    _assert_check_x_stops_at_bad_values(dtype, batch_size, n_threads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
@pytest.mark.parametrize("batch_size", [100, 300])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_check_x_finds_bad_value_in_hidden_unit_blocks(tuning, dtype, batch_size, n_threads):
    # the 64 hidden units in 4 blocks: each thread gathers its own copy of
    # every chunk (train_batch_hidden), and each copy checks
    tuning(wake_guard=0, hidden_width=16, hidden_any_blas=1)
    _assert_check_x_stops_at_bad_values(dtype, batch_size, n_threads)


def _assert_check_x_stops_at_bad_values(dtype, batch_size, n_threads):
    rng = np.random.RandomState(0)
    X = rng.standard_normal((300, 256)).astype(dtype)
    order = rng.permutation(300).astype(np.int64)
    status, done, _ = _check_x_epoch(X, order, batch_size, n_threads)
    assert status == _engine.Status.STATUS_OK and done == -(-300 // batch_size)
    for position in (0, 1, 150, 299):    # 150: in the solo probe at batch 8
        for value in (np.nan, np.inf, -np.inf):
            bad = X.copy()
            bad[order[position], rng.randint(256)] = value
            status, done, _ = _check_x_epoch(bad, order, batch_size, n_threads)
            assert status == _engine.Status.STATUS_NONFINITE_X, (position, value)
            assert done in (position // batch_size - 1, position // batch_size,
                            position // batch_size + 1)
            # unchecked, the same epoch runs on (and diverges or not)
            status, _, _ = _check_x_epoch(bad, order, batch_size, n_threads, check_x=False)
            assert status != _engine.Status.STATUS_NONFINITE_X


@pytest.mark.parametrize("batch_size", [1, 8, 100])
def test_check_x_changes_no_number(batch_size):
    rng = np.random.RandomState(0)
    X = rng.standard_normal((300, 256))
    order = rng.permutation(300).astype(np.int64)
    checked = _check_x_epoch(X, order, batch_size, 2, check_x=True)[2]
    unchecked = _check_x_epoch(X, order, batch_size, 2, check_x=False)[2]
    np.testing.assert_array_equal(checked, unchecked)


def test_check_x_needs_gathered_rows():
    X = np.zeros((300, 256))
    with pytest.raises(ValueError, match="check_x needs an explicit row order"):
        _check_x_epoch(X, np.empty(0, np.int64), 32, 1)


@pytest.mark.parametrize("batch_size", [2, 8, 32])
def test_next_batch_gathered_during_the_small_layers_changes_no_number(tuning, batch_size):
    # with a team, the next batch's rows are gathered either by the update
    # tasks or in a phase of their own while the master runs the small
    # layers (gather_early); either way the numbers are those of 1 thread
    tuning(wake_guard=0, probe_rows=0)
    rng = np.random.RandomState(0)
    X = rng.standard_normal((300, 256))
    order = rng.permutation(300).astype(np.int64)
    alone = _check_x_epoch(X, order, batch_size, 1, check_x=False)[2]
    early = _check_x_epoch(X, order, batch_size, 2, check_x=False)[2]
    tuning(gather_early=0)
    by_tasks = _check_x_epoch(X, order, batch_size, 2, check_x=False)[2]
    np.testing.assert_array_equal(early, alone)
    np.testing.assert_array_equal(by_tasks, alone)


@pytest.mark.parametrize("n_threads", [2, 3])
@pytest.mark.parametrize("batch_size", [2, 8, 32, 37])
def test_idle_threads_gathering_ahead_change_no_number(tuning, batch_size, n_threads):
    # a thread out of update tasks gathers the batch after next into the
    # blocks it has finished (gather_tail); the gather phase skips those.
    # Small tasks (many blocks to hand over), an epoch whose last batch is
    # short, three threads on two cores, four shuffles: the numbers are
    # those of 1 thread and of a team that never gathers ahead
    # (never solo, even when other processes crowd the cores: a team that
    # runs alone has no tail to gather in)
    tuning(wake_guard=0, probe_rows=0, solo_wait_percent=10**6, task_weights_small=1024)
    rng = np.random.RandomState(1)
    X = rng.standard_normal((2001, 256))
    runs = {}
    for key, threads, tail in (("alone", 1, 1), ("tail", n_threads, 1),
                               ("no-tail", n_threads, 0)):
        tuning(tail_gather=tail)
        order_rng = np.random.RandomState(2)
        before = _engine.tail_gather_count()
        runs[key] = [_check_x_epoch(X, order_rng.permutation(2001).astype(np.int64),
                                    batch_size, threads, check_x=False)[2]
                     for _ in range(4)]
        runs[key + " blocks"] = _engine.tail_gather_count() - before
    for epoch in range(4):
        np.testing.assert_array_equal(runs["tail"][epoch], runs["alone"][epoch])
        np.testing.assert_array_equal(runs["no-tail"][epoch], runs["alone"][epoch])
    assert runs["alone blocks"] == 0 and runs["no-tail blocks"] == 0
    assert runs["tail blocks"] > 0


@pytest.mark.parametrize("batch_size", [1, 8])
def test_master_keeping_the_small_layers_changes_no_number(tuning, batch_size):
    # the first layer (64 x 128) is split by weights and the rest is not:
    # the master updates the small layers and the intercepts itself
    # (master_tail) or every thread claims every task; the numbers are
    # those of 1 thread either way
    tuning(split_min_weights=8192, parallel_min_work=1, wake_guard=0, probe_rows=0)
    alone = _fit(1, batch_size)
    tail = _fit(2, batch_size)
    tuning(master_tail=0)
    shared = _fit(2, batch_size)
    _assert_bitwise_equal(tail, alone)
    _assert_bitwise_equal(shared, alone)


@pytest.mark.parametrize("batch_size", [1, 8])
def test_last_big_layer_listed_from_its_end_changes_only_rounding(tuning, batch_size):
    # small batches list the blocks of the last layer split by weights (here
    # the first, 64 x 128) last rows first (reverse_last), so the teammate,
    # claiming from the back, starts away from the small layers the master
    # updates; the numbers are those of 1 thread, and the blocks' sum of
    # partials is only added in another order
    tuning(split_min_weights=8192, parallel_min_work=1, wake_guard=0, probe_rows=0,
           task_weights_one=512, task_weights_small=512)
    alone = _fit(1, batch_size)
    team = _fit(2, batch_size)
    _assert_bitwise_equal(team, alone)
    blocks = [b for b in team._engine_cache[1].task_blocks() if b[0] == 0]
    assert len(blocks) > 2
    assert [b[1] for b in blocks] == sorted((b[1] for b in blocks), reverse=True)
    assert blocks[0][2] == 64 and blocks[-1][1] == 0
    tuning(reverse_last=0)
    forward = _fit(2, batch_size)
    blocks = [b for b in forward._engine_cache[1].task_blocks() if b[0] == 0]
    assert [b[1] for b in blocks] == sorted(b[1] for b in blocks)
    assert team.loss_curve_[0] == pytest.approx(forward.loss_curve_[0], rel=1e-6)


@pytest.mark.parametrize("n,block,least", [(784, 61, 16), (784, 112, 32), (100, 10, 3),
                                           (64, 2, 1), (7, 3, 1)])
def test_taper_rows_cover_the_rows_largest_at_the_ends(n, block, least):
    sizes = _engine.taper_rows(n, block, least)
    assert sum(sizes) == n and min(sizes) >= min(least, n // 2)
    # the two halves each shrink towards the middle
    half = len(_engine.taper_rows(n, block, least)) // 2
    front, back = sizes[:half], sizes[half:][::-1]
    for part in (front, back):
        assert all(a >= b for a, b in zip(part[1:-1], part[2:]))
    assert max(sizes) in (sizes[0], sizes[-1])


def test_batches_of_one_row_use_tapered_blocks(tuning):
    # B=1 on 2 threads with tapered blocks (task_weights_one small enough for
    # many blocks on the digits network) gives the numbers of 1 thread.  The
    # blocks differ from equal ones, and so does the rounding of the
    # layer's sum of block partials: the first epoch agrees to rounding,
    # and later ones drift apart (B=1 at this rate amplifies any rounding)
    tuning(task_weights_one=256, split_min_weights=8192, wake_guard=0, probe_rows=0)
    alone = _fit(1, 1)
    team = _fit(2, 1)
    _assert_bitwise_equal(team, alone)
    tuning(taper_one=0)
    equal = _fit(2, 1)
    assert team.loss_curve_ != equal.loss_curve_
    assert team.loss_curve_[0] == pytest.approx(equal.loss_curve_[0], rel=1e-6)


@pytest.fixture
def phase_timing():
    """Phase timing on, counters cleared; off and cleared afterwards."""
    _engine.phase_times(reset=True)
    _engine.phase_timing(True)
    yield
    _engine.phase_timing(False)
    _engine.phase_times(reset=True)


@pytest.mark.parametrize("batch_size", [1, 32, 300])
def test_phase_timing_accounts_for_every_batch_and_changes_no_number(tuning, phase_timing,
                                                                    batch_size):
    # a team that never goes solo, on paths through the split phases (1, 32)
    # and the row slices (300): each batch is counted once, the team's items
    # show up on both sides, and the parts fit inside the batches' time
    tuning(wake_guard=0, probe_rows=0, solo_wait_percent=10**6, parallel_min_work=1,
           accumulate_rows=64)
    X = np.random.RandomState(3).standard_normal((3000, 256))
    order = np.random.RandomState(4).permutation(3000).astype(np.int64)
    main = "slices" if batch_size > 64 else "tasks"
    # (with the other core busy, a woken helper may wait milliseconds for
    # it, and the master may take every item of a short epoch: epochs of
    # a few ms, and a few tries)
    for _ in range(20):
        timed = _check_x_epoch(X, order, batch_size, 2, check_x=False)[2]
        times = _engine.phase_times(reset=True)
        assert times["batches"] == -(-3000 // batch_size)
        row = times["phases"][main]
        if row["helper_items_us"] > 0:
            break
    assert row["master_items_us"] > 0 and row["helper_items_us"] > 0
    assert row["master_work_us"] >= row["master_items_us"]
    assert times["phase1_us"] <= times["batch_us"]
    team_us = sum(r["master_work_us"] + r["master_wait_us"] for r in times["phases"].values())
    assert team_us <= times["batch_us"] * 1.01
    # off: nothing counted, and the same numbers as with it on and alone
    _engine.phase_timing(False)
    untimed = _check_x_epoch(X, order, batch_size, 2, check_x=False)[2]
    assert _engine.phase_times()["batches"] == 0
    alone = _check_x_epoch(X, order, batch_size, 1, check_x=False)[2]
    np.testing.assert_array_equal(timed, untimed)
    np.testing.assert_array_equal(timed, alone)


@pytest.mark.parametrize("batch_size", [1, 8, 32, 256])
def test_prefetch_hint_for_the_batch_after_next_changes_no_number(tuning, batch_size):
    # the hint only says where the rows asked for ahead should wait (at 256
    # rows, the next batch's, asked for in the update)
    tuning(wake_guard=0, probe_rows=0, parallel_min_work=1)
    X = np.random.RandomState(5).standard_normal((600, 256))
    order = np.random.RandomState(6).permutation(600).astype(np.int64)
    runs = []
    for hint in (0, 1, 2, 3):
        tuning(ahead_hint=hint)
        runs.append(_check_x_epoch(X, order, batch_size, 2, check_x=False)[2])
    for params in runs[1:]:
        np.testing.assert_array_equal(params, runs[0])
    for bad in (-1, 4):
        with pytest.raises(ValueError, match="ahead_hint"):
            tuning(ahead_hint=bad)


def test_stretches_without_a_slow_teammate_are_counted(tuning):
    # adapt_team leaves the team out when the master waits for it too long
    # (here: at all); the bench reads the count as a crowd sign
    tuning(wake_guard=0, probe_rows=0, parallel_min_work=1, solo_wait_percent=0)
    X = np.random.RandomState(7).standard_normal((3000, 256))
    order = np.random.RandomState(8).permutation(3000).astype(np.int64)
    before = _engine.crowd_stats()["solo_stretches"]
    alone_by_waits = _check_x_epoch(X, order, 32, 2, check_x=False)[2]
    assert _engine.crowd_stats()["solo_stretches"] > before
    tuning(solo_wait_percent=10**6)
    before = _engine.crowd_stats()["solo_stretches"]
    team = _check_x_epoch(X, order, 32, 2, check_x=False)[2]
    assert _engine.crowd_stats()["solo_stretches"] == before
    np.testing.assert_array_equal(alone_by_waits, team)


def test_team_counts_say_who_ran_the_items(tuning):
    # the bench keeps these per group: a 2-thread fit whose helper ran no
    # item ran at 1-thread speed, whatever else it looked like
    tuning(wake_guard=0, probe_rows=0, parallel_min_work=1,   # (and the crowd guard)
           solo_wait_percent=10**6)
    X = np.random.RandomState(7).standard_normal((3000, 256))
    order = np.random.RandomState(8).permutation(3000).astype(np.int64)
    # (under pytest -n 2 the helper may not get a CPU during a short epoch)
    for _ in range(5):
        before = _engine.team_counts()
        _check_x_epoch(X, order, 100, 2, check_x=False)
        team = {k: v - before[k] for k, v in _engine.team_counts().items()}
        assert team["batches"] == 30 and team["solo_batches"] == 0
        if team["helper_items"] > 0:
            break
    assert team["master_items"] > 0 and team["helper_items"] > 0
    before = _engine.team_counts()
    _check_x_epoch(X, order, 100, 1, check_x=False)
    alone = {k: v - before[k] for k, v in _engine.team_counts().items()}
    assert alone["batches"] == alone["solo_batches"] == 30
    assert alone["helper_items"] == 0 and alone["worker_sleeps"] == 0


def _wide_fit(n_threads, batch_size, dtype=np.float64, sw=None, **params):
    """Digits on one hidden layer of 300 units: 64 x 300 weights take the
    hidden-unit blocks at batches over split_rows (five blocks of 64 units,
    the last of 44)."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(dtype)
    est = fastsgd.MLPClassifier(hidden_layer_sizes=(300,), batch_size=batch_size,
                                learning_rate_init=0.02, max_iter=2, random_state=0,
                                n_threads=n_threads, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y, sample_weight=sw)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda d: d.__name__)
@pytest.mark.parametrize("batch_size,shuffle", [(65, True), (300, True), (300, False),
                                                (1797, True)])
def test_hidden_unit_blocks_bitwise_identical_for_any_thread_count(tuning, batch_size,
                                                                    shuffle, dtype):
    # one chunk (65 rows); float64 three chunks of 100, float32 two of 150
    # (gathered, or X in place); the full batch in float64 chunks of 120
    # rows (the last 117), float32 of 225 (the last 222); with any BLAS
    tuning(wake_guard=0, hidden_any_blas=1)
    _engine.phase_timing(True)
    _engine.phase_times(reset=True)
    try:
        one = _wide_fit(1, batch_size, dtype, shuffle=shuffle)
        phases = _engine.phase_times(reset=True)["phases"]
        two = _wide_fit(2, batch_size, dtype, shuffle=shuffle)
        three = _wide_fit(3, batch_size, dtype, shuffle=shuffle)
    finally:
        _engine.phase_timing(False)
    assert phases["hidden"]["master_items_us"] > 0 and "slices" not in phases
    _assert_bitwise_equal(one, two)
    _assert_bitwise_equal(one, three)
    # the row-split path sums in another order: the blocks did the work
    tuning(hidden_rows=0)
    rows = _wide_fit(1, batch_size, dtype, shuffle=shuffle)
    assert any(not np.array_equal(a, b) for a, b in zip(one.coefs_, rows.coefs_))


@pytest.mark.parametrize("grad_rows", [32, 24])   # (64 features: 2 row blocks, or 3, the last 16)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda d: d.__name__)
def test_odd_blocks_updating_from_the_last_row_change_no_weight(tuning, dtype, grad_rows):
    # hidden_reverse: odd blocks form and apply W1's gradient from its last
    # rows (two threads then do not write the same rows at once); every
    # weight comes out the same, and so for any thread count
    tuning(wake_guard=0, hidden_any_blas=1, hidden_reverse=0, hidden_grad_rows=grad_rows)
    forward = _wide_fit(1, 300, dtype)
    tuning(hidden_reverse=1)
    for n_threads in (1, 2):
        _assert_bitwise_equal(forward, _wide_fit(n_threads, 300, dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda d: d.__name__)
@pytest.mark.parametrize("batch_size,shuffle,merged", [
    (100, True, 17),    # 18 batches a epoch, the last of 97 rows: every boundary
    (300, False, 5),    # several chunks a batch, X in place
    (35, True, 50),     # the last batch (12 rows) takes the small-batch path
])
def test_next_batch_forward_in_the_last_phase_changes_no_weight(tuning, dtype, batch_size,
                                                                shuffle, merged):
    # hidden_merge: a batch's last phase also runs the next batch's first
    # forward.  The weights come out bitwise the same as with a phase of its
    # own, for any thread count, and one phase a batch boundary is saved
    tuning(wake_guard=0, hidden_any_blas=1, hidden_merge=0)
    before = _engine.team_counts()["hidden_phases"]
    apart = _wide_fit(1, batch_size, dtype, shuffle=shuffle)
    phases_apart = _engine.team_counts()["hidden_phases"] - before
    tuning(hidden_merge=1)
    for n_threads in (1, 2):
        before = _engine.team_counts()["hidden_phases"]
        joined = _wide_fit(n_threads, batch_size, dtype, shuffle=shuffle)
        phases_joined = _engine.team_counts()["hidden_phases"] - before
        _assert_bitwise_equal(apart, joined)
        assert phases_apart - phases_joined == merged * joined.n_iter_


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda d: d.__name__)
@pytest.mark.parametrize("batch_size,shuffle,least", [
    (35, True, 8),     # 51 batches of blocks, then one of 12 rows on the other path
    (100, False, 8),   # X in place; the last batch 97 rows
    (300, True, 1),    # several chunks a batch
    (1797, True, 8),   # the full batch: 15 float64 chunks, 8 float32
])
def test_blocks_own_copies_of_w1_change_no_weight(tuning, dtype, batch_size, shuffle, least):
    # hidden_private: on a team, W1 and its velocities live in a copy per
    # block during the epoch (the blocks then share no row); every weight,
    # velocity and loss comes out bitwise the same as in params' layout
    tuning(wake_guard=0, hidden_any_blas=1, hidden_private=0)
    shared = _wide_fit(2, batch_size, dtype, shuffle=shuffle)
    tuning(hidden_private=least)
    for n_threads in (2, 3):
        own = _wide_fit(n_threads, batch_size, dtype, shuffle=shuffle)
        _assert_bitwise_equal(shared, own)
        np.testing.assert_array_equal(shared._optimizer.velocity, own._optimizer.velocity)
        # training goes on from the weights as left (partial_fit, warm start)
        X, y = load_digits(return_X_y=True)
        X = (X / 16).astype(dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tuning(hidden_private=0)
            a = copy.deepcopy(shared).partial_fit(X, y)
            tuning(hidden_private=least)
            b = copy.deepcopy(own).partial_fit(X, y)
        _assert_bitwise_equal(a, b)


def test_bad_row_mid_epoch_leaves_blocks_model_unchanged(tuning, monkeypatch):
    # the engine finds a NaN row while W1 lives in the blocks' copies: the
    # epoch ends early, and the model is as it was before the call
    monkeypatch.setattr(fastsgd._base, "_EPOCH_CHECK_VALUES", 0)
    tuning(wake_guard=0, hidden_any_blas=1, hidden_private=1)
    est = _wide_fit(2, 65)
    before = [a.copy() for a in est.coefs_ + est.intercepts_]
    velocity = est._optimizer.velocity.copy()
    X, y = load_digits(return_X_y=True)
    X = X / 16
    X[1500, 3] = np.nan
    with pytest.raises(ValueError, match="^Input X contains NaN"):
        est.partial_fit(X, y)
    for a, b in zip(before, est.coefs_ + est.intercepts_):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(velocity, est._optimizer.velocity)


def test_hidden_unit_blocks_from_32_rows(tuning):
    # batches of more than hidden_min_rows (31) rows take the blocks; at
    # 24 rows the small-batch split was faster, at 32 as fast with the vCPUs
    # near and faster far apart
    tuning(wake_guard=0, hidden_any_blas=1)
    seen = {}
    _engine.phase_timing(True)
    try:
        for batch_size in (31, 32):
            _engine.phase_times(reset=True)
            _wide_fit(2, batch_size)
            seen[batch_size] = _engine.phase_times(reset=True)["phases"]
    finally:
        _engine.phase_timing(False)
    assert "hidden" not in seen[31] and "tasks" in seen[31]
    assert "hidden" in seen[32]
    with pytest.raises(ValueError, match="'hidden_min_rows' must be >= 1"):
        tuning(hidden_min_rows=0)


def test_hidden_unit_blocks_with_sample_weights_bitwise_identical(tuning):
    sw = np.random.RandomState(0).uniform(0.1, 3.0, size=1797)
    tuning(wake_guard=0, hidden_any_blas=1)
    _assert_bitwise_equal(_wide_fit(1, 200, sw=sw), _wide_fit(2, 200, sw=sw))


def test_hidden_unit_blocks_need_two_blocks_and_one_hidden_layer(tuning):
    # a layer of one block, or two hidden layers, keep the row split
    tuning(wake_guard=0, hidden_width=512, hidden_any_blas=1)
    _engine.phase_timing(True)
    _engine.phase_times(reset=True)
    try:
        _wide_fit(2, 200)
        one_block = _engine.phase_times(reset=True)["phases"]
        tuning(hidden_width=64)
        _fit(2, 256)   # (128, 32)
        two_layers = _engine.phase_times(reset=True)["phases"]
    finally:
        _engine.phase_timing(False)
    assert "hidden" not in one_block and "slices" in one_block
    assert "hidden" not in two_layers and "slices" in two_layers


def _ran_hidden_blocks():
    _engine.phase_timing(True)
    _engine.phase_times(reset=True)
    try:
        _wide_fit(2, 200)
        return "hidden" in _engine.phase_times(reset=True)["phases"]
    finally:
        _engine.phase_timing(False)


def test_hidden_unit_blocks_only_with_small_matrix_kernels_by_default(tuning, monkeypatch):
    # the blocks' small products are fast only in OpenBLAS's small-matrix
    # kernels: without them (as the BLAS reports it) the row split runs
    from fastsgd import _threads
    tuning(wake_guard=0)
    monkeypatch.setattr(_threads, "_small_matrix", False)
    assert not _ran_hidden_blocks()
    monkeypatch.setattr(_threads, "_small_matrix", True)
    assert _ran_hidden_blocks()
    monkeypatch.setattr(_threads, "_small_matrix", False)
    tuning(hidden_any_blas=1)
    assert _ran_hidden_blocks()


def test_openblas_forced_to_haswell_kernels_has_no_small_matrix_kernels():
    # Haswell's kernels have no small-matrix paths (and run on any x86-64
    # with AVX2; elsewhere the variable is ignored and the answer is False
    # all the same, as no other architecture is listed)
    code = ("from fastsgd._threads import blas_small_matrix_kernels; "
            "print(blas_small_matrix_kernels())")
    env = dict(os.environ, OPENBLAS_CORETYPE="Haswell")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=120, check=True).stdout.strip()
    assert out == "False"


@pytest.mark.parametrize("libs, expected", [
    # scipy's own OpenBLAS decides; another BLAS loaded beside it does not
    ([("/x/scipy.libs/libscipy_openblas.so", "openblas", "SkylakeX"),
      ("/x/mkl/lib/libmkl_rt.so", "mkl", None)], True),
    ([("/x/scipy.libs/libscipy_openblas.so", "openblas", "Haswell"),
      ("/x/numpy.libs/libscipy_openblas64_.so", "openblas", "SkylakeX")], False),
    # no library of scipy's own (a system BLAS): every one must qualify
    ([("/usr/lib/libopenblas.so", "openblas", "SkylakeX")], True),
    ([("/usr/lib/libopenblas.so", "openblas", "SkylakeX"),
      ("/usr/lib/libblis.so", "blis", None)], False),
    ([], False),
])
def test_small_matrix_kernels_are_those_of_scipys_blas(monkeypatch, libs, expected):
    import threadpoolctl

    from fastsgd import _threads
    info = [dict(user_api="blas", filepath=path, internal_api=api, architecture=arch)
            for path, api, arch in libs]
    monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda: info)
    monkeypatch.setattr(_threads, "_small_matrix", None)
    assert _threads.blas_small_matrix_kernels() is expected
