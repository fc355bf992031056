from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ooda import AuditEntry, AuditLog


def entry(kind: str = "action", outcome: str = "applied") -> AuditEntry:
    return AuditEntry(
        datetime(2026, 11, 16, 9, tzinfo=UTC),
        kind,
        "checkout",
        "restart_pod",
        "pod/shop/checkout-x",
        False,
        outcome,
        {"restarts": 7},
    )


def test_entries_round_trip_in_order(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    log.write(entry("decision", "approved"))
    log.write(entry("action", "applied"))
    got = log.entries()
    assert [e.kind for e in got] == ["decision", "action"]
    assert got[1].evidence == {"restarts": 7}
    assert got[1].at == datetime(2026, 11, 16, 9, tzinfo=UTC)
    assert [e.kind for e in log.entries("action")] == ["action"]


def test_the_log_refuses_update_and_delete(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    AuditLog(path).write(entry())
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit SET outcome = 'hidden'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit")
    assert AuditLog(path).entries()[0].outcome == "applied"


def test_unknown_kind_is_refused_with_its_name() -> None:
    with pytest.raises(ValueError, match="'oops'"):
        AuditLog(":memory:").write(entry(kind="oops"))
