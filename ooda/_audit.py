"""The append-only audit log: every decision, action, verification and escalation, with evidence.

SQLite, because an SRE must be able to open it with any tool after an incident. Append-only is
enforced by the database itself (triggers refuse UPDATE and DELETE), not by convention.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    service TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    evidence TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

#: The kinds of entry, in the order they usually happen for one heal.
ENTRY_KINDS = ("observation", "decision", "action", "verification", "undo", "escalation")


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log."""

    at: datetime
    kind: str
    service: str
    action: str
    target: str
    dry_run: bool
    outcome: str
    evidence: dict[str, Any]


class AuditLog:
    """Writes and reads the audit log in one SQLite file (``:memory:`` for a throwaway one)."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False)
        self._conn.executescript(_SCHEMA)

    def write(self, entry: AuditEntry) -> None:
        """Append ``entry``; raise ValueError for an unknown kind."""
        if entry.kind not in ENTRY_KINDS:
            raise ValueError(f"unknown audit entry kind {entry.kind!r}; expected {ENTRY_KINDS}")
        with self._conn:
            self._conn.execute(
                "INSERT INTO audit (at, kind, service, action, target, dry_run, outcome, evidence)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.at.isoformat(),
                    entry.kind,
                    entry.service,
                    entry.action,
                    entry.target,
                    int(entry.dry_run),
                    entry.outcome,
                    json.dumps(entry.evidence, default=str, sort_keys=True),
                ),
            )

    def entries(self, kind: str | None = None) -> list[AuditEntry]:
        """All entries in the order written, optionally only those of one kind."""
        query = "SELECT at, kind, service, action, target, dry_run, outcome, evidence FROM audit"
        params: tuple[str, ...] = ()
        if kind is not None:
            query += " WHERE kind = ?"
            params = (kind,)
        rows = self._conn.execute(query + " ORDER BY id", params).fetchall()
        return [
            AuditEntry(
                datetime.fromisoformat(at),
                k,
                service,
                action,
                target,
                bool(dry),
                outcome,
                json.loads(evidence),
            )
            for at, k, service, action, target, dry, outcome, evidence in rows
        ]

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()
