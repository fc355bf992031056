from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from training import Incident
from training._pipeline import _gate, label_incidents

T0 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


def test_gate_needs_to_beat_the_baseline_strictly() -> None:
    assert _gate("f1", {"f1": 0.6}, {"f1": 0.4}, None, higher_is_better=True) == (
        True,
        "f1 0.600 > baseline 0.400",
    )
    assert not _gate("f1", {"f1": 0.4}, {"f1": 0.4}, None, higher_is_better=True)[0]


def test_gate_for_errors_prefers_lower_and_checks_the_champion() -> None:
    passed, rule = _gate("mae", {"mae": 5.0}, {"mae": 6.0}, {"mae": 4.5}, higher_is_better=False)
    assert not passed
    assert rule == "mae 5.000 < baseline 6.000 and <= champion 4.500"
    assert _gate("mae", {"mae": 4.5}, {"mae": 6.0}, {"mae": 4.5}, higher_is_better=False)[0]


def test_incidents_label_only_their_services_and_time() -> None:
    ts = pd.date_range(T0, periods=4, freq="1min")
    frame = pd.DataFrame(
        {"event_timestamp": list(ts) * 2, "service": ["checkout"] * 4 + ["frontend"] * 4}
    )
    incidents = [Incident("checkout", T0 + timedelta(minutes=1), T0 + timedelta(minutes=3), "x")]
    assert label_incidents(frame, incidents).tolist() == [0, 1, 1, 0, 0, 0, 0, 0]
    everywhere = [Incident("*", T0, T0 + timedelta(minutes=1), "surge")]
    assert label_incidents(frame, everywhere).tolist() == [1, 0, 0, 0, 1, 0, 0, 0]
