"""The incident pages, in a real headless browser (Debian's Chromium, driven by Playwright).

The loop heals a slow database on the lab (seeded); its audit log then holds the incident's
entries and context. ``ooda report`` writes the pages and ``ooda serve-ui`` serves them; the
browser opens the index, follows the link to the incident and finds no console error, the
timeline's stages, the graph with the lab's ground-truth root cause highlighted, the plot and
the log templates that surged. A screenshot is kept in ``.ooda/test-artifacts/``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from contracts import ScenarioId
from lab import Lab, LabSettings, SimClock
from lab.scenarios import scenario
from ooda import AuditLog
from ooda._incident_ui import serve_incidents
from ooda._incidents import incidents
from ooda.cli import main
from tests.conftest import require_server
from tests.ooda._harness import make_loop, run

START = datetime(2025, 1, 8, 8, tzinfo=UTC)
ARTIFACTS = Path(__file__).resolve().parents[2] / ".ooda" / "test-artifacts"


@dataclass(frozen=True)
class Healed:
    audit: Path
    root_cause: str
    service: str


@pytest.fixture(scope="module")
def healed(tmp_path_factory: pytest.TempPathFactory) -> Healed:
    path = tmp_path_factory.mktemp("incident") / "audit.db"
    lab = Lab(LabSettings(seed=4), SimClock(START))
    lab.step(timedelta(minutes=90))
    audit = AuditLog(path)
    loop = make_loop(lab, audit=audit)
    run(lab, loop, 2)
    record = lab.inject(scenario(ScenarioId.DB_READ_LATENCY).draw(np.random.default_rng(4), lab))
    run(lab, loop, 12)
    audit.close()
    return Healed(path, record.root_cause, record.service)


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    executable = shutil.which("chromium")
    if executable is None:
        require_server("no chromium on PATH (make chromium-bins)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


def test_the_incident_is_read_back_with_its_context(healed: Healed) -> None:
    found = incidents(AuditLog(healed.audit))
    assert [i.service for i in found] == [healed.service]
    incident = found[0]
    assert incident.scenario == "db_read_latency" and incident.outcome == "healed"
    assert incident.context["causes"][0]["component"] == healed.root_cause
    assert incident.context["sli_after"]["timestamp"], "the verdict's SLIs"
    assert any("payments-db" in s["template"] for s in incident.context["log_surges"])
    # the database has no pods: its evidence is its users' log lines that name it
    cause = incident.context["causes"][0]
    assert cause["logs"] and all("payments-db" in s["template"] for s in cause["logs"])


def test_report_writes_the_pages_and_refuses_an_unknown_incident(
    healed: Healed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--audit", str(healed.audit), "--out", str(tmp_path)]) == 0
    pages = sorted(p.name for p in tmp_path.iterdir())
    assert pages[-1] == "index.html" and pages[0].startswith("incident-")
    assert main(["report", "--audit", str(healed.audit), "--incident", "999999"]) == 2
    assert "no incident 999999" in capsys.readouterr().out
    assert main(["report", "--audit", str(tmp_path / "missing.db")]) == 2


def test_report_of_one_incident_and_serve_ui_from_the_command_line(
    healed: Healed, tmp_path: Path
) -> None:
    """``ooda report --incident ID`` writes that incident's page beside the index;
    ``ooda serve-ui`` answers the same pages over HTTP until it is stopped."""
    (incident,) = incidents(AuditLog(healed.audit))
    out = tmp_path / "one"
    args = ["report", "--audit", str(healed.audit), "--out", str(out)]
    assert main([*args, "--incident", str(incident.id)]) == 0
    page = out / f"incident-{incident.id}.html"
    assert page.is_file() and (out / "index.html").is_file()
    assert healed.root_cause in page.read_text()
    ui = subprocess.Popen(
        [sys.executable, "-m", "ooda.cli", "serve-ui", "--audit", str(healed.audit),
         "--port", "0"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    try:
        assert ui.stdout is not None
        url = re.search(r"http://\S+/", ui.stdout.readline())
        assert url is not None
        with urllib.request.urlopen(url.group(0), timeout=30) as answer:
            assert f"incident-{incident.id}.html" in answer.read().decode()
    finally:
        ui.terminate()
        ui.wait(timeout=30)


def test_the_page_in_a_browser_shows_the_ground_truth_root_cause(
    healed: Healed, chromium: object
) -> None:
    server = serve_incidents(AuditLog(healed.audit), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page = chromium.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"http://127.0.0.1:{server.server_port}/")
        assert page.locator("#incidents tr").count() == 2  # the header and the incident
        page.locator("#incidents a").first.click()
        page.wait_for_load_state("load")
        stages = page.locator("#timeline li").evaluate_all(
            "items => items.map(i => i.dataset.stage)"
        )
        assert {"symptom", "detection", "diagnosis", "decision", "action", "verification"} <= set(
            stages
        )
        highlighted = page.locator("#graph .root-cause")
        assert highlighted.count() == 1
        assert highlighted.get_attribute("data-node") == healed.root_cause
        assert page.locator("#graph g.node").count() >= 5
        assert page.locator("#sli-plot").evaluate("img => img.complete && img.naturalWidth") > 0
        assert "payments-db" in page.locator("#log-surges").inner_text()
        first = page.locator("#causes tr").nth(1).locator("td")
        assert "payments-db" in first.last.inner_text()  # the top cause's own log evidence
        assert page.locator("#outcome").inner_text() == "healed"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "incident-page.png"), full_page=True)
        assert problems == [], problems
        missing = page.goto(f"http://127.0.0.1:{server.server_port}/incident-999999.html")
        assert missing is not None and missing.status == 404
    finally:
        server.shutdown()
        server.server_close()


def test_the_grafana_dashboard_links_to_the_incident_pages() -> None:
    import json

    dashboard = json.loads((ARTIFACTS.parents[1] / "deploy" / "grafana" / "ooda.json").read_text())
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "ooda_ui")
    assert variable["query"] == "http://127.0.0.1:8080"  # `ooda serve-ui`'s default
    assert [link["url"] for link in dashboard["links"]] == ["${ooda_ui}/"]
