"""Compiled sequential kernels (numba) for the few rules that carry state from one day to the next.

The CRS episode rule (fever starts an episode; once fever-masking therapy is given the grade is driven by
hypotension and hypoxia until a day with none of them) depends on the previous day's state, so it cannot be
written as a column operation. These kernels run over the day grid of *all* subjects at once (one pass,
compiled), which keeps the graders free of Python loops per row.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def crs_episodes(starts, ends, fever, hypo, ox, therapy):  # pragma: no cover - compiled
    """Per day: grade, masked, episode number (0 = none) and closing episode (0 = none).

    ``starts``/``ends`` delimit each subject's rows in the day grid (sorted by subject and day).
    """
    n = fever.shape[0]
    grade = np.zeros(n, np.int64)
    masked = np.zeros(n, np.bool_)
    episode = np.zeros(n, np.int64)
    closes = np.zeros(n, np.int64)
    for s in range(starts.shape[0]):
        is_open = False
        m = False
        ep = 0
        for i in range(starts[s], ends[s]):
            if not is_open:
                if not fever[i]:
                    continue
                is_open = True
                ep += 1
                m = therapy[i]
            elif therapy[i]:
                m = True
            h = hypo[i]
            o = ox[i]
            g = h if h > o else o
            if fever[i]:
                if g < 1:
                    g = 1
            elif not m:
                g = 0
            if (not fever[i]) and ((not m) or (g == 0 and not therapy[i])):
                is_open = False
                m = False
                closes[i] = ep
                continue
            grade[i] = g
            masked[i] = m and not fever[i]
            episode[i] = ep
    return grade, masked, episode, closes


@njit(cache=True)
def fill_gaps(values, starts, ends, max_gap):  # pragma: no cover - compiled
    """Linear interpolation of NaN runs of at most ``max_gap`` days inside each subject's grid.

    Leading and trailing runs (no value on one side) take the nearest value when they are at most
    ``max_gap`` long (zoo::na.approx(maxgap = 7, rule = 2)); longer runs stay NaN.
    """
    out = values.copy()
    for s in range(starts.shape[0]):
        a = starts[s]
        b = ends[s]
        i = a
        while i < b:
            if not np.isnan(values[i]):
                i += 1
                continue
            j = i
            while j < b and np.isnan(values[j]):
                j += 1
            run = j - i
            if run <= max_gap:
                left = values[i - 1] if i > a else np.nan
                right = values[j] if j < b else np.nan
                if np.isnan(left) and np.isnan(right):
                    pass
                elif np.isnan(left):
                    for k in range(i, j):
                        out[k] = right
                elif np.isnan(right):
                    for k in range(i, j):
                        out[k] = left
                else:
                    for k in range(i, j):
                        out[k] = left + (right - left) * (k - i + 1) / (run + 1)
            i = j
    return out


@njit(cache=True)
def longest_runs(flag, known, starts, ends, join_gap):  # pragma: no cover - compiled
    """Per subject: longest run of ``flag`` days (runs separated by < ``join_gap`` non-flag days joined,
    the gap counted), the start index of that run, whether the last run reaches the subject's last known
    day, and the start index of the last run. Unknown days (``known`` False) break runs."""
    ns = starts.shape[0]
    longest = np.zeros(ns, np.int64)
    longest_start = np.full(ns, -1, np.int64)
    last_open = np.zeros(ns, np.bool_)
    last_start = np.full(ns, -1, np.int64)
    for s in range(ns):
        a = starts[s]
        b = ends[s]
        run_start = -1
        run_end = -1  # last flagged index of the current run
        best = 0
        best_start = -1
        for i in range(a, b):
            if not known[i]:
                if run_start >= 0:
                    length = run_end - run_start + 1
                    if length > best:
                        best = length
                        best_start = run_start
                run_start = -1
                run_end = -1
                continue
            if flag[i]:
                if run_start < 0:
                    run_start = i
                elif i - run_end - 1 >= join_gap:
                    length = run_end - run_start + 1
                    if length > best:
                        best = length
                        best_start = run_start
                    run_start = i
                run_end = i
        if run_start >= 0:
            length = run_end - run_start + 1
            if length > best:
                best = length
                best_start = run_start
            last_start[s] = run_start
            # ongoing: no known day after the run's last flagged day
            ongoing = True
            for k in range(run_end + 1, b):
                if known[k]:
                    ongoing = False
                    break
            last_open[s] = ongoing
        longest[s] = best
        longest_start[s] = best_start
    return longest, longest_start, last_open, last_start
