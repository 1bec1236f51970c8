"""Iteration order of a CPython set of small non-negative ints, for Numba code that must match it.

DeepLabCut's assembler starts filling an animal by iterating ``for idx in assembly._idx`` (a Python
``set`` of joint indices) and pushes candidate links onto a heap in that order; equal affinities
(common: they are rounded to 3 decimals) are then popped in push order. So which animal gets which body
part can depend on CPython's set layout. :func:`set_order` replays CPython's ``set_add_entry`` /
``set_table_resize`` (``Objects/setobject.c``, unchanged from 3.7 to 3.13 for this: a table of 8 slots,
``hash(n) == n``, linear probing of 9 slots when they fit, perturbed probing otherwise, growth to the
smallest power of two above ``4 * used`` when 3/5 full) and returns the order in which iterating the set
yields its elements. Tests check it against the interpreter's own sets.
"""

from __future__ import annotations

import numba
import numpy as np

LINEAR_PROBES = 9
PERTURB_SHIFT = 5


@numba.njit(cache=True, nogil=True)
def _insert_clean(table, mask, key):
    i = key & mask
    perturb = key
    while True:
        if table[i] < 0:
            table[i] = key
            return
        if i + LINEAR_PROBES <= mask:
            for j in range(1, LINEAR_PROBES + 1):
                if table[i + j] < 0:
                    table[i + j] = key
                    return
        perturb >>= PERTURB_SHIFT
        i = (i * 5 + 1 + perturb) & mask


@numba.njit(cache=True, nogil=True)
def set_order(values, n, table, table2, out):
    """Insert ``values[:n]`` (distinct, >= 0) into an emulated CPython set; write its iteration order
    into ``out[:n]``. ``table`` / ``table2``: int64 scratch, at least ``8 * 2**ceil(log2(n+1))`` long."""
    size = 8
    mask = size - 1
    for i in range(size):
        table[i] = -1
    fill = 0
    for t in range(n):
        key = values[t]
        # set_add_entry: the probe sequence is the same as set_insert_clean's for a table without dummies
        found = False
        i = key & mask
        perturb = key
        while not found:
            probes = LINEAR_PROBES if i + LINEAR_PROBES <= mask else 0
            for j in range(probes + 1):
                if table[i + j] < 0:
                    table[i + j] = key
                    found = True
                    break
            if not found:
                perturb >>= PERTURB_SHIFT
                i = (i * 5 + 1 + perturb) & mask
        fill += 1
        if fill * 5 >= mask * 3:
            minused = fill * 4  # used == fill (no deletions)
            newsize = 8
            while newsize <= minused:
                newsize <<= 1
            for q in range(size):
                table2[q] = table[q]
            for q in range(newsize):
                table[q] = -1
            newmask = newsize - 1
            for q in range(size):
                if table2[q] >= 0:
                    _insert_clean(table, newmask, table2[q])
            size = newsize
            mask = newmask
    o = 0
    for q in range(size):
        if table[q] >= 0:
            out[o] = table[q]
            o += 1
    return o


def set_scratch(max_elements: int):
    """Two scratch tables big enough for sets of up to ``max_elements`` elements."""
    size = 8
    while size <= 4 * max(int(max_elements), 1):
        size <<= 1
    return np.empty(2 * size, np.int64), np.empty(2 * size, np.int64)
