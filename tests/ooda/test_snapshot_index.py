"""The snapshot's per-tick index of the metric families: the rows the runbooks ask for per
service and per node are exactly a mask's, in the frame's order, and a node's judgement is
computed once per tick however many services run there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from contracts import MetricFamily
from tests.ooda._snapshots import region_snapshot

AT = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


def _frame() -> pd.DataFrame:
    stamps = [AT - timedelta(minutes=m) for m in (3, 2, 1)]
    rows = [
        {"timestamp": t, "node": node, "value": float(i)}
        for i, t in enumerate(stamps)
        for node in ("n2", "n1", "n3")
    ]
    return pd.DataFrame(rows)


def test_rows_of_are_a_mask_s_rows_in_the_frame_s_order() -> None:
    frame = _frame()
    snap = region_snapshot(AT, {}, families={MetricFamily.NODE: frame})
    for node in ("n1", "n2", "n3"):
        got = snap.rows_of(MetricFamily.NODE, "node", node)
        assert got.equals(frame[frame["node"] == node])
    both = snap.rows_of(MetricFamily.NODE, "node", "n3", "n1")
    assert sorted(both.index) == sorted(frame[frame["node"].isin(["n1", "n3"])].index)
    assert snap.rows_of(MetricFamily.NODE, "node", "absent").empty
    assert snap.rows_of(MetricFamily.POD, "pod", "p1").empty, "no such family"
    assert snap.rows_of(MetricFamily.NODE, "pod", "p1").empty, "no such column"


def test_once_computes_a_key_once_per_snapshot() -> None:
    snap = region_snapshot(AT, {})
    calls: list[str] = []

    def compute() -> int:
        calls.append("x")
        return 42

    assert snap.once(("k", "n1"), compute) == 42 and snap.once(("k", "n1"), compute) == 42
    assert calls == ["x"]
    assert region_snapshot(AT, {}).once(("k", "n1"), compute) == 42 and len(calls) == 2
