"""The shadow record: what the challenger answered to the requests the champion served.

Ray Serve scores every request with ``@champion`` and answers with it; when ``@challenger``
exists it scores the same inputs off the request path and both answers land here, one row
per service (detector) or per forecast point (forecaster). Nothing reads the challenger's
answers to decide anything; the record is for judging it on live traffic before promotion
(``training.judge_shadow``) and for people (a notebook reads it as a table).

SQLite in WAL mode: several replicas append to one file on a node, readers never block them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

_SCHEMA = """
CREATE TABLE IF NOT EXISTS detector_shadow (
    at TEXT NOT NULL, model TEXT NOT NULL, champion TEXT NOT NULL, challenger TEXT NOT NULL,
    service TEXT NOT NULL, champion_score REAL, challenger_score REAL
);
CREATE TABLE IF NOT EXISTS forecaster_shadow (
    at TEXT NOT NULL, model TEXT NOT NULL, champion TEXT NOT NULL, challenger TEXT NOT NULL,
    service TEXT NOT NULL, timestamp TEXT NOT NULL,
    champion_q10 REAL, champion_q50 REAL, champion_q90 REAL,
    challenger_q10 REAL, challenger_q50 REAL, challenger_q90 REAL
);
"""

#: Columns of each table, in order.
DETECTOR_SHADOW = (
    "at",
    "model",
    "champion",
    "challenger",
    "service",
    "champion_score",
    "challenger_score",
)
FORECASTER_SHADOW = (
    "at",
    "model",
    "champion",
    "challenger",
    "service",
    "timestamp",
    "champion_q10",
    "champion_q50",
    "champion_q90",
    "challenger_q10",
    "challenger_q50",
    "challenger_q90",
)


#: One writer at a time within a process (requests append from a thread pool); other
#: processes wait on SQLite's own lock (``timeout``).
_WRITING = threading.Lock()
_READY: set[Path] = set()


def _connect(path: Path) -> sqlite3.Connection:
    path = Path(path)
    db = sqlite3.connect(path, timeout=30)
    if path not in _READY:
        path.parent.mkdir(parents=True, exist_ok=True)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
        _READY.add(path)
    return db


def append_shadow(path: Path, table: str, rows: Iterable[tuple[object, ...]]) -> int:
    """Append rows to ``detector_shadow`` or ``forecaster_shadow``; how many."""
    columns = {"detector_shadow": DETECTOR_SHADOW, "forecaster_shadow": FORECASTER_SHADOW}
    if table not in columns:
        raise ValueError(f"unknown shadow table {table!r}; known: {sorted(columns)}")
    batch = list(rows)
    if not batch:
        return 0
    marks = ", ".join("?" * len(columns[table]))
    with _WRITING:
        db = _connect(path)
        try:
            with db:
                db.executemany(f"INSERT INTO {table} VALUES ({marks})", batch)
        finally:
            db.close()
    return len(batch)


def read_shadow(path: Path, table: str, model: str | None = None) -> pd.DataFrame:
    """A shadow table as a frame (``at`` and ``timestamp`` as UTC datetimes); empty when
    nothing was recorded."""
    columns = {"detector_shadow": DETECTOR_SHADOW, "forecaster_shadow": FORECASTER_SHADOW}
    if table not in columns:
        raise ValueError(f"unknown shadow table {table!r}; known: {sorted(columns)}")
    if not Path(path).exists():
        return pd.DataFrame(columns=list(columns[table]))
    db = _connect(Path(path))
    try:
        query = f"SELECT * FROM {table}" + (" WHERE model = ?" if model else "")
        frame = pd.read_sql_query(query, db, params=(model,) if model else ())
    finally:
        db.close()
    for column in ("at", "timestamp"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame
