from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ooda import AuditEntry, AuditLog
from ooda._audit import ENTRY_KINDS, AuditError, verify_file

T0 = datetime(2026, 11, 16, 9, tzinfo=UTC)


def entry(
    kind: str = "action", outcome: str = "applied", at: datetime = T0, ref: int | None = None
) -> AuditEntry:
    return AuditEntry(
        at,
        kind,
        "checkout",
        "restart_pod",
        "pod/shop/checkout-x",
        False,
        outcome,
        {"restarts": 7},
        ref=ref,
    )


def test_entries_round_trip_in_order(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    log.write(entry("decision", "approved"))
    log.write(entry("action", "applied"))
    got = log.entries()
    assert [e.kind for e in got] == ["decision", "action"]
    assert got[1].evidence == {"restarts": 7}
    assert got[1].at == T0
    assert [e.kind for e in log.entries("action")] == ["action"]


def test_write_returns_increasing_ids_that_entries_read_back() -> None:
    log = AuditLog(":memory:")
    ids = [log.write(entry()) for _ in range(3)]
    assert ids == [1, 2, 3]
    assert [e.id for e in log.entries()] == ids


def test_ref_is_stored_and_read_back(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    intent = log.write(entry("intent", "about to restart"))
    action = log.write(entry("action", "applied", ref=intent))
    got = {e.id: e for e in log.entries()}
    assert got[intent].ref is None
    assert got[action].ref == intent
    assert log.verify().ok


def test_a_ref_to_no_earlier_row_is_refused_with_its_value() -> None:
    log = AuditLog(":memory:")
    log.write(entry())
    with pytest.raises(ValueError, match="ref 2 "):
        log.write(entry(ref=2))


def test_an_entry_with_an_id_is_refused() -> None:
    with pytest.raises(ValueError, match="id 4"):
        AuditLog(":memory:").write(AuditEntry(T0, "action", "s", "a", "t", False, "ok", {}, id=4))


def test_entries_since_keeps_those_at_or_after_it() -> None:
    log = AuditLog(":memory:")
    for minutes in range(3):
        log.write(entry(at=T0 + timedelta(minutes=minutes)))
    since = T0 + timedelta(minutes=1)
    assert [e.id for e in log.entries(since=since)] == [2, 3]
    assert log.entries("decision", since=since) == []


def test_every_kind_is_accepted_in_the_documented_order() -> None:
    assert ENTRY_KINDS == (
        "observation",
        "decision",
        "intent",
        "action",
        "verification",
        "undo",
        "escalation",
        "refusal",
        "reset",
        "context",
        "model",
        "finding",
    )
    log = AuditLog(":memory:")
    for kind in ENTRY_KINDS:
        log.write(entry(kind))
    assert [e.kind for e in log.entries()] == list(ENTRY_KINDS)


def test_the_log_refuses_update_delete_and_replace(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    AuditLog(path).write(entry())
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit SET outcome = 'hidden'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("INSERT OR REPLACE INTO audit SELECT * FROM audit WHERE id = 1")
    assert AuditLog(path).entries()[0].outcome == "applied"


def test_unknown_kind_is_refused_with_its_name() -> None:
    with pytest.raises(ValueError, match="'oops'"):
        AuditLog(":memory:").write(entry(kind="oops"))


def test_a_file_log_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    AuditLog(path).write(entry())
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_a_clean_log_verifies(tmp_path: Path) -> None:
    memory = AuditLog(":memory:")
    log = AuditLog(tmp_path / "audit.db")
    for kind in ("decision", "intent", "action", "verification"):
        memory.write(entry(kind))
        log.write(entry(kind))
    assert memory.verify().ok
    result = log.verify()
    assert (result.ok, result.rows, result.problems) == (True, 4, [])
    log.close()
    assert verify_file(tmp_path / "audit.db") == result


def test_an_empty_log_verifies(tmp_path: Path) -> None:
    AuditLog(tmp_path / "audit.db").close()
    assert verify_file(tmp_path / "audit.db").ok


def test_a_reopened_log_continues_its_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    first = AuditLog(path)
    assert [first.write(entry()) for _ in range(2)] == [1, 2]
    first.close()
    again = AuditLog(path)
    assert again.write(entry("verification", "healed")) == 3
    assert again.verify().ok
    again.close()
    assert verify_file(path).rows == 3


def test_writes_from_several_threads_form_one_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    ids: list[int] = []

    def writer() -> None:
        for _ in range(20):
            ids.append(log.write(entry()))

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(ids) == list(range(1, 81))
    assert log.verify() == verify_file(tmp_path / "audit.db")
    assert log.verify().ok


def test_verify_file_refuses_a_sqlite_file_that_is_not_an_audit_log(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(AuditError, match=r"other.db is not an ooda audit log"):
        verify_file(path)


def test_verify_file_refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, " * 100)
    with pytest.raises(AuditError, match=r"notes.txt is not an ooda audit log"):
        verify_file(path)
    with pytest.raises(AuditError, match=r"missing.db"):
        verify_file(tmp_path / "missing.db")


def test_a_log_from_before_the_hash_chain_is_refused_naming_what_it_lacks(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE audit (id INTEGER PRIMARY KEY, at TEXT, kind TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(AuditError, match=r"lacks.*'prev_hash'"):
        AuditLog(path)
