"""Pod logs of the lab: what ``kubectl logs`` would show, noise included.

Every pod writes ordinary lines all the time (requests served, cache hits and misses, pool
statistics, the odd slow request and retried call: the noise a template miner must see past),
and, while a fault is active, the lines that fault makes its service write: query timeouts
against a slow database, connection refused, 429s from a throttled upstream, an out-of-memory
error, a missing environment variable at start-up. A pod's log is a pure function of the
lab's seed, the pod and the minute, so reading it twice, or over overlapping windows, gives
the same lines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from contracts import ScenarioId
from lab._faults import FaultRecord

#: (weight, level, template) of a healthy pod's lines; ``{n}``, ``{ms}``, ``{key}``,
#: ``{route}`` and ``{id}`` are filled per line.
NORMAL: tuple[tuple[float, str, str], ...] = (
    (0.55, "INFO", "GET /api/{route} 200 {ms}ms"),
    (0.12, "INFO", "POST /api/{route} 201 {ms}ms"),
    (0.12, "DEBUG", "cache {hit} key={key}"),
    (0.08, "INFO", "connection pool size={n} idle={m}"),
    (0.06, "DEBUG", "health check ok in {ms}ms"),
    (0.04, "WARN", "slow request GET /api/{route} took {slow}ms"),
    (0.03, "WARN", "retrying call to {peer} (attempt 2 of 3) after {ms}ms"),
)
_NORMAL_W = np.array([w for w, _, _ in NORMAL])
_NORMAL_P = _NORMAL_W / _NORMAL_W.sum()
#: The lines a scenario makes the pods of the service it hits write.
FAULT: dict[ScenarioId, tuple[tuple[str, str], ...]] = {
    ScenarioId.DB_READ_LATENCY: (
        ("ERROR", "query timeout after {slow}ms on {cause} (SELECT orders WHERE id={id})"),
        ("WARN", "connection pool to {cause} exhausted: {n} waiting"),
    ),
    ScenarioId.HTTP_5XX_SPIKE: (
        ("ERROR", "upstream connect error: connection refused {peer}:8080"),
        ("ERROR", "POST /api/{route} 503 {ms}ms"),
    ),
    ScenarioId.HTTP_5XX_WEDGED: (
        ("ERROR", "pooled connection to {peer}:5432 reset; request POST /api/{route} failed 503"),
        ("WARN", "connection pool size={n} broken={m}: stale connections kept after failover"),
    ),
    ScenarioId.LATENCY_P95: (("WARN", "request GET /api/{route} timed out after {slow}ms"),),
    ScenarioId.MEMORY_LEAK: (
        ("WARN", "GC overhead limit: heap {n}% used after full collection"),
        ("ERROR", "java.lang.OutOfMemoryError: Java heap space"),
    ),
    ScenarioId.POD_CRASHLOOP: (
        ("FATAL", "panic: runtime error: invalid memory address or nil pointer dereference"),
        ("ERROR", "goroutine {n} [running]: main.(*Server).handle"),
    ),
    ScenarioId.POD_CRASHLOOP_PERSISTENT: (
        ("FATAL", "required environment variable {var} is not set; exiting"),
    ),
    ScenarioId.UPSTREAM_THROTTLING: (
        ("WARN", "{cause} answered 429 Too Many Requests; retry after {n}s"),
    ),
    ScenarioId.KAFKA_CONSUMER_LAG: (
        ("WARN", "consumer poll took {slow}ms; lag on {cause} is {big} messages"),
    ),
    ScenarioId.QUEUE_DEPTH: (("WARN", "receive from {cause} returned 10 messages; backlog {big}"),),
    ScenarioId.PACKET_LOSS: (
        ("WARN", "read tcp {ip}:{port}->{peer}:8080: connection reset by peer"),
    ),
}
#: The variable a crash-looping pod misses when its fault names none.
MISSING_VARIABLE = "PAYMENTS_API_URL"
ROUTES = ("orders", "cart", "pets", "adoptions", "payments", "search")


class PodLogSource:
    """Lines of each pod, minute by minute: ``per_minute`` ordinary lines on average, and
    ``fault_per_minute`` more from each active fault that makes the pod's service log."""

    def __init__(
        self,
        seed: int,
        faults: Sequence[FaultRecord],
        per_minute: float = 30.0,
        fault_per_minute: float = 20.0,
    ) -> None:
        self.seed = seed
        self._faults = faults
        """The lab's own (growing) list of fault records."""
        self.per_minute = per_minute
        self.fault_per_minute = fault_per_minute

    def lines(
        self, pod: str, service: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, str]]:
        """Every line ``pod`` of ``service`` wrote in ``[start, end)``, oldest first."""
        out: list[tuple[datetime, str]] = []
        minute = start.replace(second=0, microsecond=0)
        faults = list(self._faults)
        while minute < end:
            for at, line in self._minute(pod, service, minute, faults):
                if start <= at < end:
                    out.append((at, line))
            minute += timedelta(minutes=1)
        return out

    def _minute(
        self, pod: str, service: str, minute: datetime, faults: list[FaultRecord]
    ) -> list[tuple[datetime, str]]:
        digest = hashlib.blake2b(f"{self.seed}|{pod}|{minute.isoformat()}".encode(), digest_size=8)
        rng = np.random.default_rng(int.from_bytes(digest.digest(), "little"))
        picks = rng.choice(len(NORMAL), size=rng.poisson(self.per_minute), p=_NORMAL_P)
        drawn: list[tuple[str, str, FaultRecord | None]] = [
            (NORMAL[i][1], NORMAL[i][2], None) for i in picks
        ]
        for fault in faults:
            if not _hits(fault, pod, service, minute):
                continue
            templates = FAULT.get(fault.scenario, ())
            for _ in range(rng.poisson(self.fault_per_minute) if templates else 0):
                level, text = templates[int(rng.integers(len(templates)))]
                drawn.append((level, text, fault))
        seconds = np.sort(rng.uniform(0, 60, size=len(drawn)))
        order = rng.permutation(len(drawn))
        lines = []
        for offset, k in zip(seconds, order, strict=True):
            level, text, fault = drawn[k]
            at = minute + timedelta(seconds=float(offset))
            lines.append((at, f"{level} {_fill(text, rng, fault)}"))
        return lines


def _hits(fault: FaultRecord, pod: str, service: str, minute: datetime) -> bool:
    """Whether ``fault`` makes ``pod`` write its lines in ``minute``."""
    if fault.injected_at >= minute + timedelta(minutes=1):
        return False
    if fault.ends_at is not None and fault.ends_at <= minute:
        return False
    if fault.scenario in (ScenarioId.POD_CRASHLOOP, ScenarioId.POD_CRASHLOOP_PERSISTENT):
        return fault.target == pod
    return fault.service == service


def _fill(text: str, rng: np.random.Generator, fault: FaultRecord | None) -> str:
    values = {
        "route": ROUTES[int(rng.integers(len(ROUTES)))],
        "ms": int(rng.gamma(2.0, 12.0)) + 1,
        "slow": int(rng.uniform(800, 5000)),
        "hit": "hit" if rng.random() < 0.8 else "miss",
        "key": f"{int(rng.integers(16**6)):06x}",
        "n": int(rng.integers(2, 64)),
        "m": int(rng.integers(0, 16)),
        "big": int(rng.integers(1_000, 90_000)),
        "id": int(rng.integers(10**6)),
        "peer": f"10.0.{int(rng.integers(256))}.{int(rng.integers(256))}",
        "ip": f"10.1.{int(rng.integers(256))}.{int(rng.integers(256))}",
        "port": int(rng.integers(30_000, 60_000)),
        "var": fault.detail if fault is not None and fault.detail else MISSING_VARIABLE,
        "cause": fault.root_cause if fault is not None else "",
    }
    return text.format(**values)


def render(lines: list[tuple[datetime, str]], timestamps: bool) -> str:
    """The body ``read_namespaced_pod_log`` returns: one line each, RFC 3339 stamps if asked."""
    if timestamps:
        body = [
            f"{at.astimezone(UTC).isoformat().replace('+00:00', 'Z')} {line}" for at, line in lines
        ]
    else:
        body = [line for _, line in lines]
    return "".join(f"{line}\n" for line in body)
