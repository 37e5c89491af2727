"""The initial weights' uniform draws (csrc/fsg_random.c) are numpy's,
bit for bit, and leave the RandomState where numpy would."""

import numpy as np
import pytest

from fastsgd._params import ParamLayout
from fastsgd._mt_uniform import uniform_into


def _numpy_glorot(layout, rng, activation, dtype):
    """scikit-learn's _init_coef, written out with numpy's own draws."""
    factor = 2.0 if activation == "logistic" else 6.0
    coefs, intercepts = [], []
    for fan_in, fan_out in layout.coef_shapes:
        bound = np.sqrt(factor / (fan_in + fan_out))
        coefs.append(rng.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype))
        intercepts.append(rng.uniform(-bound, bound, fan_out).astype(dtype))
    return np.concatenate([a.ravel() for a in coefs + intercepts])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("offset", [0, 1, 311, 312])   # doubles drawn before
@pytest.mark.parametrize("n", [1, 2, 311, 312, 313, 623, 624, 625, 5000])
def test_uniform_draws_equal_numpy_bitwise(n, offset, dtype):
    # the state holds 312 doubles: these sizes and offsets put pairs of
    # words on both sides of a twist
    ours, theirs = np.random.RandomState(7), np.random.RandomState(7)
    ours.random_sample(offset)
    theirs.random_sample(offset)
    expected = theirs.uniform(-0.3, 0.5, n).astype(dtype)
    out = np.full(n, np.nan, dtype=dtype)
    uniform_into(ours, out, -0.3, 0.5)
    np.testing.assert_array_equal(out.view(np.uint8), expected.view(np.uint8))
    # the generator goes on exactly as numpy's
    assert ours.get_state()[2] == theirs.get_state()[2]
    np.testing.assert_array_equal(ours.random_sample(700), theirs.random_sample(700))
    np.testing.assert_array_equal(ours.standard_normal(3), theirs.standard_normal(3))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["relu", "logistic"])
def test_glorot_init_equals_numpy_draws(activation, dtype):
    layout = ParamLayout([784, 128, 33, 10])
    ours = layout.glorot_init(np.random.RandomState(3), activation, dtype)
    theirs = _numpy_glorot(layout, np.random.RandomState(3), activation, dtype)
    assert ours.dtype == dtype
    np.testing.assert_array_equal(ours, theirs)


def test_other_generators_fall_back_to_numpy():
    # a RandomState over another bit generator, or an object that only has
    # uniform(): numpy's draws, through the generator's own method
    out = np.empty(10)
    uniform_into(np.random.RandomState(np.random.PCG64(0)), out, -1.0, 1.0)
    np.testing.assert_array_equal(
        out, np.random.RandomState(np.random.PCG64(0)).uniform(-1.0, 1.0, 10))

    class Counting(np.random.RandomState):
        pass

    sub = Counting(5)
    uniform_into(sub, out, -1.0, 1.0)
    np.testing.assert_array_equal(out, np.random.RandomState(5).uniform(-1.0, 1.0, 10))


def test_empty_output_draws_nothing():
    rng = np.random.RandomState(0)
    uniform_into(rng, np.empty(0), -1.0, 1.0)
    assert rng.get_state()[2] == np.random.RandomState(0).get_state()[2]
