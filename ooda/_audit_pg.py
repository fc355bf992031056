"""The audit log in PostgreSQL: one log shared by replicas on different machines.

A standby that takes the Lease rebuilds its memory (pending verifications, breakers, budgets,
interrupted intents) from the audit log, so replicas on different machines need one log they
can all reach; SQLite on a shared volume is not that. The rows, their hashes and the rules are
those of the SQLite log (``ooda._audit``):

* triggers refuse UPDATE, DELETE, TRUNCATE and any INSERT that does not take the next id;
* each row chains the hash of the one before, and ``audit_head`` (the anchor) holds the count
  and last hash, updated in the same transaction as the row;
* a writer locks the anchor row first (``SELECT ... FOR UPDATE``), so two replicas appending at
  once (a takeover) take turns and the chain stays whole.

As with the SQLite log, the chain is not keyed: whoever can rewrite every later row and the
anchor (a database superuser) is not caught.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg

from ooda._audit import (
    _HASHED,
    GENESIS_HASH,
    AuditEntry,
    AuditError,
    AuditVerification,
    _Anchor,
    _chain_problems,
    check_entry,
    entry_of,
    new_row,
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS audit (
    id BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    service TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    dry_run SMALLINT NOT NULL,
    outcome TEXT NOT NULL,
    evidence TEXT NOT NULL,
    ref BIGINT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_head (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    count BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head VALUES (TRUE, 0, '{GENESIS_HASH}') ON CONFLICT DO NOTHING;
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.id IS DISTINCT FROM (SELECT COALESCE(MAX(id), 0) + 1 FROM audit) THEN
            RAISE EXCEPTION 'the audit log is append-only: a row takes the next id';
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only';
END $$;
CREATE OR REPLACE TRIGGER audit_next_id BEFORE INSERT ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE OR REPLACE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE OR REPLACE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
"""
_TRIGGERS = ("audit_next_id", "audit_no_change", "audit_no_truncate")
#: Serialises the schema's creation between replicas starting together.
_SCHEMA_LOCK = 0x00DA_A0D1
_COLUMNS = "at, kind, service, action, target, dry_run, outcome, evidence, ref, id"


def redacted(url: str) -> str:
    """``url`` without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{creds.split(':')[0]}{at}{host}" if at else url


class PostgresAuditLog:
    """The audit log in the database at ``url`` (``postgresql://user@host:port/db``); one per
    process, shared between its threads. AuditError when the database cannot be reached or
    its log no longer reaches its anchor."""

    def __init__(self, url: str, connect_timeout_s: float = 10.0) -> None:
        self.url = url
        self._timeout = connect_timeout_s
        self._lock = threading.Lock()
        self._conn = self._connect()
        try:
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                self._conn.execute(_SCHEMA)
            problems = self._anchor_problems(self._conn)
        except psycopg.Error as exc:
            self._conn.close()
            raise AuditError(f"audit log at {redacted(url)}: cannot set it up: {exc}") from exc
        if problems:
            self._conn.close()
            raise AuditError(
                f"refusing to append to the audit log at {redacted(url)}: {problems[0]}"
            )

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=int(self._timeout))
        except psycopg.Error as exc:
            raise AuditError(f"audit log at {redacted(self.url)} unreachable: {exc}") from exc

    @contextmanager
    def _session(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """The connection (a new one if the last was lost); a database error becomes an
        AuditError naming the store."""
        with self._lock:
            if self._conn.closed or self._conn.broken:
                self._conn = self._connect()
            try:
                yield self._conn
            except psycopg.errors.RaiseException as exc:
                raise AuditError(f"the audit log refused: {exc.diag.message_primary}") from exc
            except psycopg.Error as exc:
                raise AuditError(f"audit log at {redacted(self.url)}: {exc}") from exc

    def write(self, entry: AuditEntry) -> int:
        """Append ``entry`` in one transaction and return its id (ValueError as the SQLite
        log's :meth:`~ooda._audit.AuditLog.write`)."""
        check_entry(entry)
        with self._session() as conn, conn.transaction():
            count, digest = conn.execute(
                "SELECT count, hash FROM audit_head FOR UPDATE"
            ).fetchone() or (0, GENESIS_HASH)
            problems = self._anchor_problems(conn, _Anchor(count, digest), strict=True)
            if problems:
                raise AuditError(f"refusing to append: {problems[0]}")
            row = new_row(entry, _Anchor(count, digest))
            conn.execute(
                f"INSERT INTO audit ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})",
                tuple(row.values()),
            )
            conn.execute("UPDATE audit_head SET count = %s, hash = %s", (row["id"], row["hash"]))
            return int(row["id"])

    def entries(
        self, kind: str | None = None, since: datetime | None = None, after_id: int = 0
    ) -> list[AuditEntry]:
        """Entries in the order written, optionally only one kind, only those at or after
        ``since`` and only those written after the entry ``after_id``."""
        query = f"SELECT {_COLUMNS} FROM audit WHERE id > %s"
        params: tuple[int | str, ...] = (after_id,)
        if kind is not None:
            query += " AND kind = %s"
            params = (after_id, kind)
        with self._session() as conn:
            rows = conn.execute(query + " ORDER BY id", params).fetchall()
        entries = [entry_of(values) for values in rows]
        return entries if since is None else [e for e in entries if e.at >= since]

    def verify(self) -> AuditVerification:
        """Check the triggers, the chain and the anchor in one snapshot."""
        columns = ", ".join((*_HASHED, "hash"))
        with self._session() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            present = {
                name
                for (name,) in conn.execute(
                    "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit'::regclass"
                    " AND NOT tgisinternal AND tgenabled <> 'D'"
                )
            }
            cursor = conn.execute(f"SELECT {columns} FROM audit ORDER BY id")
            names = [d.name for d in cursor.description or []]
            rows, problems = _chain_problems(
                dict(zip(names, values, strict=True)) for values in cursor
            )
            problems += self._anchor_problems(conn)
        problems += [
            f"trigger {name} is missing or disabled" for name in _TRIGGERS if name not in present
        ]
        return AuditVerification(not problems, rows, problems)

    @staticmethod
    def _anchor_problems(
        conn: psycopg.Connection[tuple[Any, ...]],
        anchor: _Anchor | None = None,
        strict: bool = False,
    ) -> list[str]:
        """Whether the table reaches the anchored row and that row has the anchored hash;
        ``strict`` (before an append): it must also end there."""
        if anchor is None:
            head = conn.execute("SELECT count, hash FROM audit_head").fetchone()
            anchor = _Anchor(*head) if head else _Anchor(0, GENESIS_HASH)
        last = conn.execute("SELECT COALESCE(MAX(id), 0) FROM audit").fetchone()
        last_id = int(last[0]) if last else 0
        if anchor.count > last_id:
            ends = f"ends at row {last_id}" if last_id else "is empty"
            return [f"log {ends} but the anchor says {anchor.count} rows (truncated)"]
        if strict and last_id > anchor.count:
            return [f"log has rows past the anchor ({anchor.count + 1}-{last_id}, not ours)"]
        if anchor.count:
            row = conn.execute("SELECT hash FROM audit WHERE id = %s", (anchor.count,)).fetchone()
            if row is not None and row[0] != anchor.hash:
                return [f"row {anchor.count}: hash differs from the anchor's (rewritten after it)"]
        return []

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
