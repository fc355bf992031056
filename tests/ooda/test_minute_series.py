"""The forecast watch's store of request rates by service and minute behaves as a dict would."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from ooda._minute_series import MinuteGrid, minute_number, minute_numbers, stamp_of

puts = st.lists(
    st.tuples(
        st.sampled_from(["frontend", "checkout", "payments"]),
        st.lists(
            st.tuples(st.integers(1000, 1200), st.floats(0, 1e6, allow_nan=False)),
            min_size=0,
            max_size=30,
        ),
    ),
    max_size=8,
)
SERVICES = np.array(["frontend", "checkout", "payments", "never-seen"])


@settings(max_examples=200, deadline=None)
@given(puts, st.integers(950, 1250), st.integers(950, 1250))
def test_the_grid_answers_as_a_dict_would(
    batches: list[tuple[str, list[tuple[int, float]]]], probe: int, cut: int
) -> None:
    grid, reference = MinuteGrid(), {}
    for service, batch in batches:
        minutes = np.array([m for m, _ in batch], dtype=np.int64)
        values = np.array([v for _, v in batch], dtype=float)
        grid.put(service, minutes, values)
        reference.update({(service, m): v for m, v in batch})
    wanted = np.arange(950, 1251)
    rows = grid.rows_of(SERVICES)
    for service, row in zip(SERVICES, rows, strict=True):
        expected = np.array([reference.get((service, int(m)), np.nan) for m in wanted])
        np.testing.assert_array_equal(grid.get(np.full(len(wanted), row), wanted), expected)
        before = sorted(m for s, m in reference if s == service and m <= probe)
        last = grid.last_at_or_before(np.array([row]), probe)[0]
        assert (np.isnan(last) and not before) or last == reference[(service, before[-1])]
        minutes, values = grid.seen(str(service), until=probe)
        assert list(minutes) == before
        assert list(values) == [reference[(service, m)] for m in before]
    grid.forget_before(cut)
    for service, row in zip(SERVICES, rows, strict=True):
        kept = [reference.get((service, int(m)), np.nan) if m >= cut else np.nan for m in wanted]
        np.testing.assert_array_equal(grid.get(np.full(len(wanted), row), wanted), kept)


def test_minute_numbers_round_trip_and_mark_missing_stamps() -> None:
    stamps = pd.Series(pd.to_datetime(["2026-11-16T06:00:30Z", None, "2026-11-16T06:02:00Z"]))
    numbers = minute_numbers(stamps)
    assert numbers[1] == -1 and numbers[2] - numbers[0] == 2
    assert numbers[0] == minute_number(pd.Timestamp("2026-11-16T06:00:59Z"))
    assert stamp_of(numbers[[0, 2]])[0] == pd.Timestamp("2026-11-16T06:00Z")
