"""``ooda chaos``: the contract scripts read, and the instrument's own honesty.

These runs use the RuleScorer so they need no model server; the certification against the
real Ray Serve models runs in ``tests/test_e2e.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from contracts import ScenarioId
from lab.servers import free_port
from ooda import OodaSettings, RuleScorer
from ooda._chaos import ChaosSettings, certified, draw_instance, run_chaos
from ooda._chaos_report import to_json
from ooda._runs import Mode
from ooda.cli import main
from ooda.runbooks import _base as runbooks_base

CERTIFIED = "pod_crashloop,pod_crashloop_persistent,traffic_surge"
SUMMARY_KEYS = {
    "scenario",
    "runs",
    "detected",
    "detected_before_breach",
    "healed",
    "failed_heals",
    "max_actions_per_incident",
    "mttd_s",
    "mttr_s",
    "breach_minutes",
    "pod_minutes",
    "rca_top1",
    "rca_top3",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    work = tmp_path_factory.mktemp("chaos")
    out = work / "chaos.json"
    # Every shipped scenario has a runbook; take one away to see an unrunnable one reported.
    unclaimed = {
        name: book for name, book in runbooks_base._REGISTRY.items() if name != "kafka_consumer_lag"
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runbooks_base, "_REGISTRY", unclaimed)
        code = _run_report(work, out)
    assert code == 0
    data: dict[str, object] = json.loads(out.read_text())
    data["_workdir"] = str(work)
    return data


def _run_report(work: Path, out: Path) -> int:
    return main(
        [
            "--workdir",
            str(work),
            "chaos",
            "--scenarios",
            CERTIFIED + ",kafka_consumer_lag",
            "--runs",
            "1",
            "--seed",
            "5",
            "--clean-week-days",
            "0.1",
            "--scorer",
            "rules",
            "--json",
            str(out),
        ]
    )


def test_the_json_follows_the_contract(report: dict[str, object]) -> None:
    assert report["seed"] == 5
    rows = {r["scenario"]: r for r in report["scenarios"]}  # type: ignore[attr-defined]
    assert list(rows) == [*CERTIFIED.split(","), "kafka_consumer_lag"]
    for row in rows.values():
        assert set(row) >= SUMMARY_KEYS
        assert set(row["breach_minutes"]) == {"on", "off", "reactive"}
        assert set(row["mttd_s"]) == {"on", "reactive"}
    assert rows["kafka_consumer_lag"]["runs"] == 0 and rows["kafka_consumer_lag"]["reason"]
    assert report["clean_week"]["days"] == 0.1  # type: ignore[index]
    assert report["predictive_week"] is None, "asked for no predictive days"
    confusion = report["confusion"]
    assert confusion["pod_crashloop"] == {"pod_crashloop": 1}  # type: ignore[index]
    # The persistent crash loop is diagnosed by the crash-loop runbook, which claims it.
    assert confusion["pod_crashloop_persistent"] == {"pod_crashloop": 1}  # type: ignore[index]
    assert len(report["runs"]) == 3  # type: ignore[arg-type]
    # Root causes are ranked on the unattended run and scored against the lab's truth.
    crash = next(r for r in report["runs"] if r["scenario"] == "pod_crashloop")  # type: ignore[attr-defined]
    assert crash["rca"][0] == crash["root_cause"] == crash["service"]
    assert rows["pod_crashloop"]["rca_top1"] == 1


def test_a_crash_loop_is_healed_and_a_persistent_one_escalated(
    report: dict[str, object],
) -> None:
    rows = {r["scenario"]: r for r in report["scenarios"]}  # type: ignore[attr-defined]
    assert rows["pod_crashloop"]["healed"] == 1
    assert rows["pod_crashloop_persistent"]["healed"] == 0
    assert rows["pod_crashloop_persistent"]["max_actions_per_incident"] == 0  # a config edit
    run = next(r for r in report["runs"] if r["scenario"] == "pod_crashloop_persistent")  # type: ignore[attr-defined]
    assert run["on"]["escalated"]


def test_bad_arguments_exit_2_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chaos", "--scenarios", "pod_crash", "--scorer", "rules"]) == 2
    assert "unknown scenario 'pod_crash'" in capsys.readouterr().out
    assert main(["chaos", "--runs", "-1", "--scorer", "rules"]) == 2
    assert main(["chaos", "--predictive-days", "-1", "--scorer", "rules"]) == 2
    assert "--predictive-days must be >= 0" in capsys.readouterr().out


def test_the_three_modes_start_from_the_same_state() -> None:
    _, instance, inject_at, _ = draw_instance(ChaosSettings(seed=2), ScenarioId.POD_CRASHLOOP, 0)
    again = draw_instance(ChaosSettings(seed=2), ScenarioId.POD_CRASHLOOP, 0)
    assert again[1] == instance and again[2] == inject_at
    other = draw_instance(ChaosSettings(seed=3), ScenarioId.POD_CRASHLOOP, 0)
    assert (other[1], other[2]) != (instance, inject_at)
    result = run_chaos(
        OodaSettings(), ChaosSettings((ScenarioId.POD_CRASHLOOP,), runs=1, seed=2), RuleScorer()
    )
    runs = result.instances[0].runs
    # Same estate when each agent takes over (agents may act during the warm-up).
    before = {m: r.metrics[r.metrics["timestamp"] <= r.started_at] for m, r in runs.items()}
    assert len(before[Mode.ON]) == 3, "one row per service at the start"
    assert before[Mode.ON].equals(before[Mode.OFF]) and before[Mode.OFF].equals(
        before[Mode.REACTIVE]
    )
    assert runs[Mode.OFF].actions == 0
    assert runs[Mode.ON].breach_minutes < runs[Mode.OFF].breach_minutes
    assert not certified(result)[ScenarioId.POD_CRASHLOOP]
    data = to_json(result)
    assert data["scenarios"][0]["healed"] == 1


def test_the_html_page_has_the_scorecard_and_plots(report: dict[str, object]) -> None:
    page = Path(str(report["_workdir"])) / "chaos.html"
    text = page.read_text()
    assert "ooda chaos scorecard" in text and text.count("<img") == 3


@pytest.mark.parametrize(
    "scenario",
    [
        ScenarioId.NODE_NOT_READY,
        ScenarioId.NODE_DISK_PRESSURE,
        ScenarioId.MEMORY_LEAK,
        ScenarioId.HTTP_5XX_SPIKE,
        ScenarioId.PACKET_LOSS,
        ScenarioId.HTTP_5XX_WEDGED,
    ],
)
def test_the_new_runbooks_are_certified_with_the_rules_scorer(scenario: ScenarioId) -> None:
    result = run_chaos(
        OodaSettings(),
        ChaosSettings((scenario,), runs=1, seed=5, clean_week_days=0),
        RuleScorer(),
    )
    assert certified(result) == {scenario: []}
    # No other runbook fired on this scenario's symptoms.
    assert to_json(result)["confusion"] == {scenario.value: {scenario.value: 1}}
    heal = {
        ScenarioId.MEMORY_LEAK: "restart_pod",
        ScenarioId.HTTP_5XX_SPIKE: "rollback_deployment",
        ScenarioId.HTTP_5XX_WEDGED: "rollout_restart",
    }.get(scenario, "drain_node")
    for inst in result.instances:
        on, off = inst.runs[Mode.ON], inst.runs[Mode.OFF]
        assert on.action == heal and on.healed
        assert on.fault_ended_at is not None
        assert off.fault_ended_at is None or on.fault_ended_at < off.fault_ended_at


def test_a_serve_url_nobody_answers_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    args = ["--workdir", str(tmp_path), "chaos", "--scenarios", "pod_crashloop", "--runs", "1"]
    assert main([*args, "--serve-url", url]) == 2
    assert f"{url.removeprefix('http://')}" in capsys.readouterr().out
    assert not (tmp_path / "chaos.html").exists(), "no scorecard from runs nobody scored"


def test_a_serve_that_never_comes_up_exits_2_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ray's start timed out on a busy machine: a message and exit 2, not a traceback."""
    import ooda._cli_loop
    import ooda._platform
    from serving import ServeStartError

    @contextmanager
    def ray_timed_out(*_args: object) -> Iterator[None]:
        raise ServeStartError("Ray did not start: The current node timed out during startup.")
        yield

    monkeypatch.setattr(ooda._cli_loop, "has_champions", lambda _settings: True)
    monkeypatch.setattr(ooda._platform, "serve", ray_timed_out)
    args = ["--workdir", str(tmp_path), "chaos", "--scenarios", "pod_crashloop", "--runs", "1"]
    assert main(args) == 2
    said = " ".join(capsys.readouterr().out.split())
    assert "Ray Serve did not come up" in said and "timed out during startup" in said
    assert not (tmp_path / "chaos.html").exists()


@pytest.mark.parametrize(
    ("command", "name"),
    [
        (["chaos", "--scenarios", "pod_crashloop", "--runs", "1", "--scorer", "rules"], "chaos"),
        (["failover-drill", "--runs", "1"], "failover-drill"),
        (["demo"], "demo"),
    ],
)
def test_a_report_path_that_cannot_be_written_exits_2_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], name: str
) -> None:
    (tmp_path / "file").write_text("")
    assert main(["--workdir", str(tmp_path / "file" / "ooda"), *command]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert f"{name}: cannot create {tmp_path / 'file'}" in out
    if name != "demo":
        (tmp_path / "folder").mkdir()
        json_args = ["--json", str(tmp_path / "folder")]
        assert main(["--workdir", str(tmp_path / "w"), *command, *json_args]) == 2
        assert "folder is a folder, not a file to write" in capsys.readouterr().out
        assert not list((tmp_path / "w").rglob("*.*")), "nothing ran"
