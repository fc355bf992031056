"""The append-only audit log: every decision, action, verification and escalation, with evidence.

SQLite, because an SRE must be able to open it with any tool after an incident. Append-only is a
safety rule, so it is enforced twice:

* the database refuses change: triggers abort UPDATE, DELETE and any INSERT that does not take the
  next id (which also stops ``INSERT OR REPLACE``: REPLACE deletes without firing the delete
  trigger unless ``recursive_triggers`` is on);
* whatever gets past the triggers (``DROP TRIGGER``, an old copy of the file put back) is detected:
  each row carries the sha256 of its fields and of the previous row's hash, and a sidecar anchor
  ``<db>.head`` records how many rows were written and the last hash, so :meth:`AuditLog.verify`
  and :func:`verify_file` find edited, removed, inserted and truncated rows and name the row.

The chain is not keyed: someone who rewrites every row after the one they changed *and* the anchor
is not caught. Copying the anchor somewhere they cannot write closes that gap.

WAL with ``synchronous=FULL``: an appended row survives a crash once :meth:`AuditLog.write`
returns, and readers (an SRE's ``sqlite3`` shell) do not block the loop.

Replicas on different machines share one log in PostgreSQL instead (``ooda._audit_pg``), with
the same rows, hashes and rules; :class:`AuditStore` is what both offer and :func:`open_audit`
picks one from a path or a ``postgresql://`` URL.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

_TABLE = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    service TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    evidence TEXT NOT NULL,
    ref INTEGER,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"""

_TRIGGERS_SQL = """
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_append_only BEFORE INSERT ON audit
WHEN NEW.id IS NOT (SELECT COALESCE(MAX(id), 0) + 1 FROM audit)
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: a row takes the next id'); END;
"""

_TRIGGERS = ("audit_no_update", "audit_no_delete", "audit_append_only")

#: The columns a row's hash covers, in the order they are stored.
_HASHED = (
    "id",
    "at",
    "kind",
    "service",
    "action",
    "target",
    "dry_run",
    "outcome",
    "evidence",
    "ref",
    "prev_hash",
)

#: The previous hash of the first row.
GENESIS_HASH = "0" * 64

#: The kinds of entry, in the order they usually happen for one heal. An "intent" is written before
#: a mutating call and the "action" after it refers to it (``ref``); a "refusal" is a guard or a
#: precondition saying no (not a failure); a "reset" is a human resetting a breaker; a "model"
#: entry is the accuracy watch moving a model alias; a "finding" is what the owners must still
#: do after a verified heal (the cause it worked around).
ENTRY_KINDS = (
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


class AuditError(ValueError):
    """A file is not an ooda audit log, or a log is in a state that must not be appended to."""


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log.

    ``ref`` is the id of the entry this one answers (an action's intent); ``id`` is filled when an
    entry is read back and must be ``None`` when writing, because the log assigns it.
    """

    at: datetime
    kind: str
    service: str
    action: str
    target: str
    dry_run: bool
    outcome: str
    evidence: dict[str, Any]
    ref: int | None = None
    id: int | None = None


@dataclass(frozen=True)
class AuditVerification:
    """What :meth:`AuditLog.verify` found: ``ok`` when ``problems`` is empty."""

    ok: bool
    rows: int
    problems: list[str]


@dataclass(frozen=True)
class _Anchor:
    """How many rows the log had after the last append, and the hash of the last one."""

    count: int
    hash: str


class AuditStore(Protocol):
    """What the loop needs of an audit log, in SQLite or in PostgreSQL."""

    def write(self, entry: AuditEntry) -> int:
        """Append ``entry`` and return its id."""
        ...

    def entries(
        self, kind: str | None = None, since: datetime | None = None, after_id: int = 0
    ) -> list[AuditEntry]:
        """Entries in the order written, filtered."""
        ...

    def verify(self) -> AuditVerification:
        """Check the chain, the anchor and the rules; problems are reported, not raised."""
        ...

    def close(self) -> None:
        """Let go of the database."""
        ...


def check_entry(entry: AuditEntry) -> None:
    """ValueError for an unknown kind or an ``id`` already set (the log assigns ids)."""
    if entry.kind not in ENTRY_KINDS:
        raise ValueError(f"unknown audit entry kind {entry.kind!r}; expected {ENTRY_KINDS}")
    if entry.id is not None:
        raise ValueError(f"audit entry already has id {entry.id}; the log assigns ids")


def new_row(entry: AuditEntry, head: _Anchor) -> dict[str, Any]:
    """The stored row of ``entry`` appended after ``head``, hash included; ValueError for a
    ``ref`` that is not an earlier row."""
    if entry.ref is not None and not 1 <= entry.ref <= head.count:
        raise ValueError(f"audit entry ref {entry.ref} is not an earlier row (1..{head.count})")
    row: dict[str, Any] = {
        "id": head.count + 1,
        "at": entry.at.isoformat(),
        "kind": entry.kind,
        "service": entry.service,
        "action": entry.action,
        "target": entry.target,
        "dry_run": int(entry.dry_run),
        "outcome": entry.outcome,
        "evidence": json.dumps(entry.evidence, default=str, sort_keys=True),
        "ref": entry.ref,
        "prev_hash": head.hash,
    }
    row["hash"] = _row_hash(row)
    return row


def entry_of(values: Sequence[Any]) -> AuditEntry:
    """An entry from ``at, kind, service, action, target, dry_run, outcome, evidence, ref, id``."""
    at, kind, service, action, target, dry, outcome, evidence, ref, rid = values
    return AuditEntry(
        datetime.fromisoformat(at),
        kind,
        service,
        action,
        target,
        bool(dry),
        outcome,
        json.loads(evidence),
        ref,
        rid,
    )


def _row_hash(row: dict[str, Any]) -> str:
    """The sha256 of a row's hashed fields as stored (``repr`` for a type JSON cannot hold)."""
    canonical = json.dumps(
        {name: row[name] for name in _HASHED}, sort_keys=True, separators=(",", ":"), default=repr
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _anchor_path(db: Path | str) -> Path:
    return Path(f"{db}.head")


def _read_anchor(path: Path) -> _Anchor:
    """The anchor in ``path``; AuditError, naming the file, if it is missing or malformed."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise AuditError(f"anchor file {path} is missing (deleted?)") from None
    except (OSError, ValueError) as exc:
        raise AuditError(f"anchor file {path} is unreadable: {exc}") from exc
    count = data.get("count") if isinstance(data, dict) else None
    digest = data.get("hash") if isinstance(data, dict) else None
    if type(count) is not int or count < 0 or not isinstance(digest, str):
        raise AuditError(f"anchor file {path} is malformed: {data!r}")
    return _Anchor(count, digest)


def _write_anchor(path: Path, anchor: _Anchor) -> None:
    """Replace the anchor atomically and durably: write a temporary file, fsync, rename, fsync."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        json.dump({"count": anchor.count, "hash": anchor.hash}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _check_schema(conn: sqlite3.Connection, path: Path | str) -> None:
    """AuditError naming ``path`` unless it holds an audit table with every column this log uses."""
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(audit)")}
    except sqlite3.DatabaseError as exc:
        raise AuditError(f"{path} is not an ooda audit log: {exc}") from exc
    if not columns:
        raise AuditError(f"{path} is not an ooda audit log: it has no audit table")
    missing = [name for name in (*_HASHED, "hash") if name not in columns]
    if missing:
        raise AuditError(
            f"{path} is not an ooda audit log of this version: its audit table lacks {missing}"
        )


def _span(first: int, last: int) -> str:
    return f"row {first}" if first == last else f"rows {first}-{last}"


def _anchor_problems(conn: sqlite3.Connection, anchor: _Anchor) -> list[str]:
    """Whether the table still reaches the anchored row, and that row still has the anchored hash.

    More rows than the anchor counts is not a problem: a crash between the commit and the anchor
    write leaves the table one row ahead, and appending valid rows is what the log is for.
    """
    last_id: int = conn.execute("SELECT COALESCE(MAX(id), 0) FROM audit").fetchone()[0]
    if anchor.count > last_id:
        ends = f"ends at row {last_id}" if last_id else "is empty"
        return [f"log {ends} but the anchor says {anchor.count} rows (truncated)"]
    row = conn.execute("SELECT hash FROM audit WHERE id = ?", (anchor.count,)).fetchone()
    if row is not None and row[0] != anchor.hash:
        return [f"row {anchor.count}: hash differs from the anchor's (rewritten after it)"]
    return []


def _chain_problems(rows: Iterable[dict[str, Any]]) -> tuple[int, list[str]]:
    """Walk the rows in id order: the number of rows, and each gap, broken link and edited row."""
    problems: list[str] = []
    count = prev_id = 0
    prev_hash = GENESIS_HASH
    for row in rows:
        count += 1
        rid = row["id"]
        if rid != prev_id + 1:
            if prev_id == 0:
                problems.append(f"log starts at row {rid}, not 1 ({_span(1, rid - 1)} deleted)")
            else:
                gap = _span(prev_id + 1, rid - 1)
                problems.append(f"ids jump from {prev_id} to {rid} ({gap} deleted)")
        elif row["prev_hash"] != prev_hash:
            if prev_id == 0:
                problems.append(f"row {rid}: prev_hash is not the genesis hash (start rewritten)")
            else:
                problems.append(
                    f"row {rid}: prev_hash does not match row {prev_id}"
                    " (a row was removed or inserted)"
                )
        if _row_hash(row) != row["hash"]:
            problems.append(f"row {rid}: hash mismatch (edited)")
        prev_id, prev_hash = rid, row["hash"]
    return count, problems


def _verify(conn: sqlite3.Connection, anchor: _Anchor | Path) -> AuditVerification:
    """Check triggers, chain and anchor in one read snapshot; problems are reported, not raised."""
    columns = ", ".join((*_HASHED, "hash"))
    conn.execute("BEGIN")
    try:
        present = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit'"
            )
        }
        cursor = conn.execute(f"SELECT {columns} FROM audit ORDER BY id")
        names = [d[0] for d in cursor.description]
        rows, problems = _chain_problems(dict(zip(names, values, strict=True)) for values in cursor)
        try:
            problems += _anchor_problems(
                conn, anchor if isinstance(anchor, _Anchor) else _read_anchor(anchor)
            )
        except AuditError as exc:
            problems.append(str(exc))
        problems += [
            f"trigger {name} is missing (dropped)" for name in _TRIGGERS if name not in present
        ]
    finally:
        conn.execute("COMMIT")
    return AuditVerification(not problems, rows, problems)


def verify_file(path: Path | str) -> AuditVerification:
    """Verify the audit log at ``path`` without writing to it; AuditError if it is not one."""
    file = Path(path)
    if not file.is_file():
        raise AuditError(f"no audit log at {file}: not a file")
    conn = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        _check_schema(conn, file)
        return _verify(conn, _anchor_path(file))
    finally:
        conn.close()


class AuditLog:
    """Writes and reads the audit log in one SQLite file (``:memory:`` for a throwaway one).

    Opening an existing log continues its chain; AuditError if the file is not an audit log, or if
    it no longer reaches its anchor (truncated or an old copy put back): appending would overwrite
    the anchor that proves it. One AuditLog per file; it may be shared between threads.
    """

    def __init__(self, path: Path | str) -> None:
        memory = str(path) == ":memory:"
        if not memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._anchor_file = None if memory else _anchor_path(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_TABLE)
            _check_schema(self._conn, path)
            self._conn.executescript(_TRIGGERS_SQL)
            last = self._conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
            self._head = _Anchor(*(last.fetchone() or (0, GENESIS_HASH)))
            if self._anchor_file is not None:
                self._continue_from_anchor(path, self._anchor_file)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise AuditError(f"{path} is not an ooda audit log: {exc}") from exc
        except AuditError:
            self._conn.close()
            raise

    def _continue_from_anchor(self, path: Path | str, anchor_file: Path) -> None:
        """Refuse a log that no longer reaches its anchor; then anchor the current last row."""
        if self._head.count or anchor_file.exists():
            try:
                problems = _anchor_problems(self._conn, _read_anchor(anchor_file))
            except AuditError as exc:
                problems = [str(exc)]
            if problems:
                raise AuditError(
                    f"refusing to append to {path}: {problems[0]}; keep it as evidence and move"
                    f" it and {anchor_file} aside to start a new log"
                )
        _write_anchor(anchor_file, self._head)

    def write(self, entry: AuditEntry) -> int:
        """Append ``entry`` in one transaction and return its id.

        ValueError for an unknown kind, an ``id`` already set, or a ``ref`` that is not an earlier
        row.
        """
        check_entry(entry)
        with self._lock:
            # Another process (``ooda breaker reset``) may have appended: the transaction takes
            # the write lock first, then reads the chain's head from the table itself.
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                last = self._conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
                self._head = _Anchor(*(last.fetchone() or (0, GENESIS_HASH)))
                new_id = self._append(entry)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            if self._anchor_file is not None:
                _write_anchor(self._anchor_file, self._head)
            return new_id

    def _append(self, entry: AuditEntry) -> int:
        """Insert ``entry`` after the head (inside the caller's transaction)."""
        row = new_row(entry, self._head)
        self._conn.execute(
            f"INSERT INTO audit ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )
        self._head = _Anchor(row["id"], row["hash"])
        return self._head.count

    def entries(
        self, kind: str | None = None, since: datetime | None = None, after_id: int = 0
    ) -> list[AuditEntry]:
        """Entries in the order written, optionally only one kind, only those at or after
        ``since`` and only those written after the entry ``after_id``."""
        query = (
            "SELECT at, kind, service, action, target, dry_run, outcome, evidence, ref, id"
            " FROM audit WHERE id > ?"
        )
        params: tuple[int | str, ...] = (after_id,)
        if kind is not None:
            query += " AND kind = ?"
            params = (after_id, kind)
        with self._lock:
            rows = self._conn.execute(query + " ORDER BY id", params).fetchall()
        entries = [entry_of(values) for values in rows]
        return entries if since is None else [e for e in entries if e.at >= since]

    def verify(self) -> AuditVerification:
        """Check the whole chain and the anchor; tampering is reported in ``problems``."""
        with self._lock:
            return _verify(
                self._conn, self._head if self._anchor_file is None else self._anchor_file
            )

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()


def open_audit(where: str | Path) -> AuditStore:
    """The audit log at ``where``: a ``postgresql://`` URL (replicas on several machines) or
    an SQLite file."""
    if str(where).startswith(("postgresql://", "postgres://")):
        from ooda._audit_pg import PostgresAuditLog

        return PostgresAuditLog(str(where))
    return AuditLog(where)
