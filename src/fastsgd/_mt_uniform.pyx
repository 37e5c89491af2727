"""Uniform draws of numpy's legacy RandomState, bit for bit, into an array
(csrc/fsg_random.c): the initial weights without numpy's word-at-a-time
generator.  Falls back to RandomState.uniform for anything else."""

from cython cimport floating

import numpy as np

cdef extern from "fastsgd.h" nogil:
    ctypedef Py_ssize_t fsg_idx
    ctypedef struct fsg_mt19937:
        int pos
    void fsg_mt_uniform_f32(fsg_mt19937 *s, float *out, fsg_idx n, double low,
                            double range) noexcept
    void fsg_mt_uniform_f64(fsg_mt19937 *s, double *out, fsg_idx n, double low,
                            double range) noexcept


cdef bint _layout_checked = False   # numpy's state struct looked as expected


cdef fsg_mt19937 *_state_of(object random_state) except? NULL:
    """The MT19937 state behind a legacy RandomState, or NULL."""
    global _layout_checked
    if type(random_state) is not np.random.RandomState:
        return NULL
    bitgen = random_state._bit_generator
    if type(bitgen) is not np.random.MT19937:
        return NULL
    cdef size_t address = bitgen.ctypes.state_address
    cdef fsg_mt19937 *state = <fsg_mt19937 *> address
    if not _layout_checked:
        # the struct is numpy's, not a documented API: compare it with the
        # documented get_state() once before trusting it
        name, key, pos = random_state.get_state()[:3]
        keys = np.asarray(<unsigned int[:624]> <unsigned int *> address)
        if name != "MT19937" or pos != state.pos or not np.array_equal(keys, key):
            return NULL
        _layout_checked = True
    return state


def uniform_into(random_state, floating[::1] out not None, double low, double high):
    """out[:] = random_state.uniform(low, high, out.size), cast to out's dtype,
    with random_state left where numpy's draw would leave it."""
    if out.shape[0] == 0:
        return   # numpy draws nothing either
    cdef fsg_mt19937 *state = _state_of(random_state)
    if state == NULL:
        np.asarray(out)[:] = random_state.uniform(low, high, out.shape[0])
        return
    with random_state._bit_generator.lock:
        if floating is float:
            fsg_mt_uniform_f32(state, &out[0], out.shape[0], low, high - low)
        else:
            fsg_mt_uniform_f64(state, &out[0], out.shape[0], low, high - low)
