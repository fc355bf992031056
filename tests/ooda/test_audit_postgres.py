"""The audit log in PostgreSQL (Debian's server, started by the tests): the rows and hashes of
the SQLite log, the same append-only rules enforced by the database, tampering found, two
writers keeping one chain, and an unreachable store named without its password."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from lab.servers import PostgresServer, free_port
from ooda._audit import AuditEntry, AuditError, AuditLog, open_audit
from ooda._audit_pg import PostgresAuditLog

AT = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _entries(n: int) -> list[AuditEntry]:
    kinds = ("decision", "intent", "action", "verification")
    return [
        AuditEntry(AT + timedelta(seconds=i), kinds[i % 4], "checkout", "restart_pod",
                   f"pod/shop/checkout-{i}", False, "applied", {"i": i, "why": ["p95", 240.5]},
                   i if i % 4 == 2 else None)
        for i in range(n)
    ]  # fmt: skip


def _hashes(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [h for (h,) in conn.execute("SELECT hash FROM audit ORDER BY id")]


def test_rows_and_hashes_are_those_of_the_sqlite_log(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.database()
    pg, lite = open_audit(url), open_audit(tmp_path / "audit.db")
    assert isinstance(pg, PostgresAuditLog) and isinstance(lite, AuditLog)
    for entry in _entries(12):
        assert pg.write(entry) == lite.write(entry)
    assert pg.entries() == lite.entries()
    assert pg.entries("action", after_id=3) == lite.entries("action", after_id=3)
    assert pg.verify().ok and pg.verify().rows == 12
    with sqlite3.connect(tmp_path / "audit.db") as conn:
        assert _hashes(url) == [h for (h,) in conn.execute("SELECT hash FROM audit ORDER BY id")]
    pg.close()
    again = PostgresAuditLog(url)  # another replica, or a restart: the chain goes on
    assert again.write(_entries(13)[12]) == 13 and again.verify().ok


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit SET outcome = 'refused' WHERE id = 2",
        "DELETE FROM audit WHERE id = 3",
        "TRUNCATE audit",
        "INSERT INTO audit SELECT id + 100, at, kind, service, action, target, dry_run, outcome,"
        " evidence, ref, prev_hash, hash FROM audit WHERE id = 1",
    ],
)
def test_the_database_refuses_to_change_the_log(postgres: PostgresServer, statement: str) -> None:
    url = postgres.database()
    log = PostgresAuditLog(url)
    for entry in _entries(4):
        log.write(entry)
    with (
        psycopg.connect(url) as conn,
        pytest.raises(psycopg.errors.RaiseException, match="append-only"),
    ):
        conn.execute(statement)
    assert log.verify().ok and len(log.entries()) == 4


def test_tampering_past_the_triggers_is_found_and_appending_refused(
    postgres: PostgresServer,
) -> None:
    url = postgres.database()
    log = PostgresAuditLog(url)
    for entry in _entries(6):
        log.write(entry)
    with psycopg.connect(url, autocommit=True) as conn:  # a superuser
        conn.execute("ALTER TABLE audit DISABLE TRIGGER USER")
        conn.execute("UPDATE audit SET outcome = 'refused' WHERE id = 3")
        conn.execute("DELETE FROM audit WHERE id = 6")
    check = log.verify()
    assert not check.ok
    assert "row 3: hash mismatch (edited)" in check.problems
    assert any("anchor says 6 rows (truncated)" in p for p in check.problems)
    assert any("trigger audit_no_change is missing or disabled" in p for p in check.problems)
    with pytest.raises(AuditError, match="truncated"):
        log.write(_entries(7)[6])
    with pytest.raises(AuditError, match="refusing to append"):
        PostgresAuditLog(url)


def test_two_writers_at_once_keep_one_chain(postgres: PostgresServer) -> None:
    """A takeover can overlap the old leader's last write: the anchor's row lock makes them
    take turns."""
    url = postgres.database()
    writers = [PostgresAuditLog(url), PostgresAuditLog(url)]
    ids: list[int] = []

    def append(log: PostgresAuditLog) -> None:
        for entry in _entries(40):
            ids.append(log.write(AuditEntry(**{**entry.__dict__, "ref": None})))

    threads = [threading.Thread(target=append, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(ids) == list(range(1, 81))
    check = writers[0].verify()
    assert check.ok and check.rows == 80, check.problems


def test_an_unreachable_store_is_named_without_its_password() -> None:
    url = f"postgresql://ooda:s3cret@127.0.0.1:{free_port()}/ooda"
    with pytest.raises(AuditError, match="unreachable") as raised:
        open_audit(url)
    assert "s3cret" not in str(raised.value) and "ooda@127.0.0.1" in str(raised.value)


def test_a_store_it_may_not_set_up_is_an_audit_error(postgres: PostgresServer) -> None:
    """A role without CREATE on the schema (PostgreSQL 15's default for a new role)."""
    url = postgres.database()
    role = f"reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
    with pytest.raises(AuditError, match="cannot set it up"):
        PostgresAuditLog(url.replace("ooda@", f"{role}@", 1))
