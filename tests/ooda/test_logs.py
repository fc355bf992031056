"""Log evidence with Drain3: a fault's template surges out of noisy logs; noise alone does not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from contracts import ScenarioId
from lab import Lab, LabSettings, SimClock
from lab.scenarios import scenario
from ooda._incidents import cause_logs, pod_log_surges
from ooda._logs import LogTemplates, template_surges
from tests._narrow import name_of

NS = "shop"


def _service_log(lab: Lab, service: str, since_s: int) -> list[str]:
    core = lab.kube.core_v1
    pods = core.list_namespaced_pod(NS, label_selector=f"app={service}").items
    text = "".join(
        core.read_namespaced_pod_log(name_of(p), NS, since_seconds=since_s) for p in pods
    )
    return text.splitlines()


@pytest.mark.parametrize(
    ("scenario_id", "expected"),
    [
        (ScenarioId.DB_READ_LATENCY, "query timeout after <NUM> on payments-db"),
        (ScenarioId.UPSTREAM_THROTTLING, "Too Many Requests"),
        (ScenarioId.HTTP_5XX_SPIKE, "connection refused"),
    ],
)
def test_a_faults_template_surges_out_of_the_noise(scenario_id: ScenarioId, expected: str) -> None:
    lab = Lab(LabSettings(seed=5), SimClock(datetime(2025, 1, 8, 10, tzinfo=UTC)))
    lab.step(timedelta(minutes=35))
    record = lab.inject(scenario(scenario_id).draw(np.random.default_rng(3), lab))
    baseline = _service_log(lab, record.service, 1800)
    lab.step(timedelta(minutes=5))
    recent = _service_log(lab, record.service, 300)
    surges = template_surges(baseline, recent, baseline_minutes=30, recent_minutes=5)
    fault = [x for x in surges if expected in x.template]  # the fault writes one or two
    assert fault and surges.index(fault[0]) < 2, surges
    assert fault[0].baseline == 0 and fault[0].recent >= 20
    noise = ("GET /api", "cache", "health check", "connection pool size")
    assert not any(word in s.template for s in surges for word in noise), surges


def test_noise_alone_surges_nothing() -> None:
    lab = Lab(LabSettings(seed=6), SimClock(datetime(2025, 1, 8, 10, tzinfo=UTC)))
    lab.step(timedelta(minutes=35))
    baseline = _service_log(lab, "checkout", 1800)
    lab.step(timedelta(minutes=5))
    recent = _service_log(lab, "checkout", 300)
    assert template_surges(baseline, recent, baseline_minutes=30, recent_minutes=5) == []


def test_numbers_addresses_and_ids_are_masked_into_one_template() -> None:
    miner = LogTemplates()
    a = miner.add("ERROR query timeout after 838ms on payments-db (SELECT orders WHERE id=297678)")
    b = miner.add("ERROR query timeout after 1041ms on payments-db (SELECT orders WHERE id=1)")
    c = miner.add("WARN read tcp 10.1.2.3:40001->10.0.0.9:8080: connection reset by peer")
    d = miner.add("WARN read tcp 10.1.9.9:51234->10.0.7.1:8080: connection reset by peer")
    assert a == b and c == d and a != c
    with pytest.raises(ValueError, match="positive length"):
        template_surges([], [], baseline_minutes=0, recent_minutes=5)


def test_each_surging_template_is_evidence_for_the_best_ranked_cause_it_names() -> None:
    """A database has no pods: its users' lines naming it are its evidence. A line counts
    once, for the best-ranked cause it names, and a word inside another name is no mention."""
    timeout = {"template": "query timeout on payments-db (SELECT orders)", "score": 6.0}
    pool = {"template": "connection pool to payments-db exhausted", "score": 5.0}
    crash = {"template": "panic: nil map in handler", "score": 4.0}
    surges = {"payments": [timeout, pool], "checkout": [crash]}
    causes: list[dict[str, object]] = [
        {"component": "payments-db", "kind": "database", "owners": ["payments"]},
        {"component": "orders", "kind": "topic", "owners": ["payments"]},
        {"component": "checkout", "kind": "service", "owners": ["checkout"]},
        {"component": "payments", "kind": "database", "owners": ["payments"]},
    ]
    cause_logs(causes, lambda service: surges.get(service, []))
    assert [c["logs"] for c in causes] == [[timeout, pool], [], [crash], []]


def _lines(start: datetime, minutes: float, per_minute: int, text: str) -> list[str]:
    step = 60.0 / per_minute
    count = int(minutes * per_minute)
    return [f"{(start + timedelta(seconds=i * step)).isoformat()} {text} {i}" for i in range(count)]


def test_rates_are_per_pod_minute_of_log_read_so_new_or_cut_logs_fake_no_surge() -> None:
    """Seven pods log the same ordinary line at the same rate. Counted per pod-minute that
    each log covers, nothing surges: not when five of them started after the baseline
    window (a scale-out), nor when one's log was cut by the line cap to its last minutes
    (pooled against the one old pod's baseline, the recent rate is 4x). An ERROR line new in
    the old pod does surge; pods with no baseline alone say nothing."""
    now = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    since = now - timedelta(minutes=10)
    line = "INFO GET /api/orders 200"
    logs = {"old": _lines(now - timedelta(minutes=40), 40, 30, line)}
    logs |= {f"young-{i}": _lines(now - timedelta(minutes=6), 6, 30, line) for i in range(5)}
    logs["cut"] = _lines(now - timedelta(minutes=3), 3, 30, line)
    assert pod_log_surges(lambda p: "\n".join(logs[p]), list(logs), since, now) == []
    logs["old"] += _lines(since, 10, 3, "ERROR pooled connection reset")
    found = pod_log_surges(lambda p: "\n".join(sorted(logs[p])), list(logs), since, now)
    assert [s.template.split()[0] for s in found] == ["ERROR"]
    assert pod_log_surges(lambda p: "\n".join(logs[p]), ["young-0", "cut"], since, now) == []
