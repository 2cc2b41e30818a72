"""voxtool.windows.plan_windows: every frame in exactly one core, equal windows, balanced cores."""

from __future__ import annotations

import numpy as np
import pytest

from voxtool.windows import plan_windows


@pytest.mark.parametrize("balance", [False, True])
@pytest.mark.parametrize("total,chunk,context,multiple", [(3003, 1000, 64, 1), (1000, 256, 64, 32), (700, 100, 30, 1),
                                                          (33, 0, 0, 32), (50, 100, 10, 1)])  # fmt: skip
def test_cores_cover_every_frame_once(total, chunk, context, multiple, balance):
    length, windows = plan_windows(total, chunk, context, multiple, balance=balance)
    assert length % multiple == 0
    covered = np.zeros(total, dtype=int)
    for w in windows:
        assert 0 <= w.start <= w.core_start < w.core_stop <= w.start + length
        assert w.start + length <= -(-total // multiple) * multiple  # no window reads past the padded end
        covered[w.core_start : w.core_stop] += 1
    assert np.all(covered == 1)


def test_balanced_cores_are_equal_and_no_larger_than_asked():
    _, plain = plan_windows(3003, 1000, 64)
    length, balanced = plan_windows(3003, 1000, 64, balance=True)
    assert [w.core_stop - w.core_start for w in plain] == [1000, 1000, 1000, 3]
    assert [w.core_stop - w.core_start for w in balanced] == [751, 751, 751, 750]
    assert length == 751 + 2 * 64
    w = balanced[1]
    row = np.arange(w.start, w.start + length)
    np.testing.assert_array_equal(w.core(row), np.arange(w.core_start, w.core_stop))
