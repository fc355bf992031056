"""Tampering the triggers cannot stop is detected by the hash chain and the anchor."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ooda import AuditEntry, AuditLog
from ooda._audit import AuditError, verify_file

COLUMNS = "id, at, kind, service, action, target, dry_run, outcome, evidence, ref, prev_hash"


def entry(n: int) -> AuditEntry:
    return AuditEntry(
        datetime(2026, 11, 16, 9, tzinfo=UTC) + timedelta(minutes=n),
        "action",
        "checkout",
        "restart_pod",
        f"pod/shop/checkout-{n}",
        False,
        "applied",
        {"n": n},
    )


def make_log(path: Path, rows: int) -> None:
    log = AuditLog(path)
    for n in range(rows):
        log.write(entry(n))
    log.close()


def tamper(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def recomputed_hash(path: Path, row_id: int) -> str:
    """What an SRE can recompute by hand: sha256 over the row's fields as sorted-key JSON."""
    conn = sqlite3.connect(path)
    cursor = conn.execute(f"SELECT {COLUMNS} FROM audit WHERE id = ?", (row_id,))
    names = [d[0] for d in cursor.description]
    row = dict(zip(names, cursor.fetchone(), strict=True))
    conn.close()
    canonical = json.dumps(row, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    make_log(path, 10)
    return path


def test_the_stored_hash_is_the_documented_one(path: Path) -> None:
    conn = sqlite3.connect(path)
    stored = conn.execute("SELECT hash FROM audit WHERE id = 3").fetchone()[0]
    first_prev = conn.execute("SELECT prev_hash FROM audit WHERE id = 1").fetchone()[0]
    conn.close()
    assert stored == recomputed_hash(path, 3)
    assert first_prev == "0" * 64


@pytest.mark.parametrize(
    "change",
    ["outcome = 'hidden'", "dry_run = 1", "evidence = X'00'", "at = 5", "ref = 1"],
)
def test_an_update_after_drop_trigger_is_detected(path: Path, change: str) -> None:
    tamper(path, "DROP TRIGGER audit_no_update", f"UPDATE audit SET {change} WHERE id = 7")
    result = verify_file(path)
    assert not result.ok
    assert result.problems == [
        "row 7: hash mismatch (edited)",
        "trigger audit_no_update is missing (dropped)",
    ]


def test_an_update_that_rehashes_the_row_breaks_the_next_link(path: Path) -> None:
    tamper(path, "DROP TRIGGER audit_no_update", "UPDATE audit SET outcome = 'x' WHERE id = 7")
    tamper(path, f"UPDATE audit SET hash = '{recomputed_hash(path, 7)}' WHERE id = 7")
    assert verify_file(path).problems[0] == (
        "row 8: prev_hash does not match row 7 (a row was removed or inserted)"
    )


def test_deleting_a_middle_row_after_drop_trigger_is_detected(path: Path) -> None:
    tamper(path, "DROP TRIGGER audit_no_delete", "DELETE FROM audit WHERE id = 6")
    result = verify_file(path)
    assert result.rows == 9
    assert result.problems[0] == "ids jump from 5 to 7 (row 6 deleted)"


def test_deleting_the_first_rows_is_detected(path: Path) -> None:
    tamper(path, "DROP TRIGGER audit_no_delete", "DELETE FROM audit WHERE id <= 2")
    assert verify_file(path).problems[0] == "log starts at row 3, not 1 (rows 1-2 deleted)"


@pytest.mark.parametrize("rehash", [False, True])
def test_insert_or_replace_of_an_existing_id_is_detected(path: Path, rehash: bool) -> None:
    # The delete trigger stays: REPLACE deletes without firing it (recursive_triggers is off).
    tamper(
        path,
        "DROP TRIGGER audit_append_only",
        "INSERT OR REPLACE INTO audit SELECT id, at, kind, service, action, target, dry_run,"
        " 'hidden', evidence, ref, prev_hash, hash FROM audit WHERE id = 4",
    )
    if rehash:
        tamper(
            path,
            f"INSERT OR REPLACE INTO audit SELECT {COLUMNS}, "
            f"'{recomputed_hash(path, 4)}' FROM audit WHERE id = 4",
        )
    assert AuditLog(path).entries()[3].outcome == "hidden"
    expected = (
        "row 5: prev_hash does not match row 4 (a row was removed or inserted)"
        if rehash
        else "row 4: hash mismatch (edited)"
    )
    assert verify_file(path).problems[0] == expected


def test_deleting_the_newest_rows_is_detected_by_the_anchor(path: Path) -> None:
    tamper(path, "DROP TRIGGER audit_no_delete", "DELETE FROM audit WHERE id > 7")
    result = verify_file(path)
    assert result.rows == 7
    assert result.problems[0] == "log ends at row 7 but the anchor says 10 rows (truncated)"


def test_putting_an_older_copy_back_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    make_log(path, 5)
    shutil.copy(path, tmp_path / "old.db")
    log = AuditLog(path)
    for n in range(3):
        log.write(entry(n))
    log.close()
    shutil.copy(tmp_path / "old.db", path)
    result = verify_file(path)
    assert (result.ok, result.rows) == (False, 5)
    assert result.problems == ["log ends at row 5 but the anchor says 8 rows (truncated)"]
    with pytest.raises(AuditError, match=r"refusing to append to .*audit\.db: log ends at row 5"):
        AuditLog(path)
    assert verify_file(path) == result, "a refused open must not overwrite the anchor"


def test_rewriting_the_tail_with_a_valid_chain_is_detected_by_the_anchor(path: Path) -> None:
    forged = AuditLog(":memory:")  # the same first 7 rows, then a different history
    for n in [*range(7), 100, 101, 102]:
        forged.write(entry(n))
    rows = forged._conn.execute("SELECT * FROM audit WHERE id > 7").fetchall()
    tamper(path, "DROP TRIGGER audit_no_delete", "DELETE FROM audit WHERE id > 7")
    conn = sqlite3.connect(path)
    conn.executemany(f"INSERT INTO audit VALUES ({', '.join('?' * 12)})", rows)
    conn.commit()
    conn.close()
    assert verify_file(path).problems == [
        "row 10: hash differs from the anchor's (rewritten after it)",
        "trigger audit_no_delete is missing (dropped)",
    ]


def test_a_deleted_anchor_is_reported(path: Path) -> None:
    Path(f"{path}.head").unlink()
    result = verify_file(path)
    assert result.problems == [f"anchor file {path}.head is missing (deleted?)"]
    with pytest.raises(AuditError, match="missing"):
        AuditLog(path)


def test_a_memory_log_keeps_its_anchor_in_memory() -> None:
    log = AuditLog(":memory:")
    for n in range(4):
        log.write(entry(n))
    log._conn.executescript("DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 4;")
    assert log.verify().problems[0] == "log ends at row 3 but the anchor says 4 rows (truncated)"


def test_an_open_log_sees_tampering_by_another_connection(path: Path) -> None:
    log = AuditLog(path)
    assert log.verify().ok
    tamper(path, "DROP TRIGGER audit_no_update", "UPDATE audit SET target = 'x' WHERE id = 2")
    assert log.verify().problems[0] == "row 2: hash mismatch (edited)"
