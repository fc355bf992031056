"""The forecast watch's store of request rates by minute behaves as a dict of minutes would."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from ooda._minute_series import MinuteSeries, minute_number, minute_numbers, stamp_of

puts = st.lists(
    st.lists(
        st.tuples(st.integers(1000, 1200), st.floats(0, 1e6, allow_nan=False)),
        min_size=0,
        max_size=30,
    ),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(puts, st.integers(950, 1250), st.integers(950, 1250))
def test_the_series_answers_as_a_dict_would(
    batches: list[list[tuple[int, float]]], probe: int, cut: int
) -> None:
    series, reference = MinuteSeries(), {}
    for batch in batches:
        minutes = np.array([m for m, _ in batch], dtype=np.int64)
        values = np.array([v for _, v in batch], dtype=float)
        series.put(minutes, values)
        reference.update(dict(batch))
    wanted = np.arange(950, 1251)
    expected = np.array([reference.get(int(m), np.nan) for m in wanted])
    np.testing.assert_array_equal(series.get(wanted), expected)
    before = [m for m in reference if m <= probe]
    assert series.last_at_or_before(probe) == (reference[max(before)] if before else None)
    minutes, values = series.seen(until=probe)
    assert list(minutes) == sorted(before)
    assert list(values) == [reference[m] for m in sorted(before)]
    series.forget_before(cut)
    kept = {m: v for m, v in reference.items() if m >= cut}
    np.testing.assert_array_equal(
        series.get(wanted), np.array([kept.get(int(m), np.nan) for m in wanted])
    )


def test_minute_numbers_round_trip_and_mark_missing_stamps() -> None:
    stamps = pd.Series(pd.to_datetime(["2026-11-16T06:00:30Z", None, "2026-11-16T06:02:00Z"]))
    numbers = minute_numbers(stamps)
    assert numbers[1] == -1 and numbers[2] - numbers[0] == 2
    assert numbers[0] == minute_number(pd.Timestamp("2026-11-16T06:00:59Z"))
    assert stamp_of(numbers[[0, 2]])[0] == pd.Timestamp("2026-11-16T06:00Z")
