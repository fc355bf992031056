"""A real Prometheus server on this machine, as Debian's ``prometheus`` package installs it.

The tests and benchmarks start one per session: it loads a recorded history backfilled with
``promtool`` (so a simulated day is queryable in seconds) and scrapes live targets (the lab's
``/metrics``, ``ooda run``'s own), reloaded in place when targets are added. It binds to
127.0.0.1 on a free port and keeps its TSDB under a work directory it owns.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from lab.servers._errors import BackfillError, ServerMissingError, ServerStartError
from lab.servers._process import Server, free_port

#: Debian's package (``make prometheus-bins`` installs it).
PROMETHEUS_PACKAGE = "prometheus"


def binary(name: str) -> str:
    """The path of an installed server binary (``ServerMissingError`` names the make target)."""
    found = shutil.which(name)
    if found is None:
        raise ServerMissingError(
            f"{name!r} is not installed: `make prometheus-bins` installs Debian's"
            f" {PROMETHEUS_PACKAGE!r} package (and prometheus-alertmanager,"
            " prometheus-blackbox-exporter)"
        )
    return found


def _seconds(span: timedelta) -> str:
    return f"{max(1, round(span.total_seconds()))}s"


class PrometheusServer(Server):
    """One Prometheus server; a context manager, or :meth:`start` / :meth:`stop`.

    ``lookback`` is the query lookback delta (how long a gauge's last sample counts); the
    default is Prometheus' own 5 minutes.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        scrape_interval: timedelta = timedelta(seconds=15),
        lookback: timedelta = timedelta(minutes=5),
    ) -> None:
        super().__init__(workdir)
        self.scrape_interval = scrape_interval
        self.lookback = lookback
        self._jobs: dict[str, dict[str, Any]] = {}

    @property
    def data_dir(self) -> Path:
        """Its TSDB."""
        return self.workdir / "data"

    def backfill(self, openmetrics: str, name: str = "history") -> None:
        """Write ``openmetrics`` (timestamped samples, ``# EOF`` last) into the TSDB as blocks
        with ``promtool tsdb create-blocks-from openmetrics``. A running server is restarted
        so that it loads them."""
        promtool = binary("promtool")
        source = self.workdir / f"{name}.om"
        self.workdir.mkdir(parents=True, exist_ok=True)
        source.write_text(openmetrics)
        result = subprocess.run(
            [
                promtool,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                str(source),
                str(self.data_dir),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        source.unlink()
        if result.returncode != 0:
            raise BackfillError(f"promtool refused {name!r}:\n{result.stdout}{result.stderr}")
        if self._process is not None:
            self.stop()
            self.start()

    def scrape(
        self,
        job: str,
        targets: Sequence[str],
        interval: timedelta | None = None,
        *,
        continues_backfill: bool = False,
    ) -> None:
        """Scrape ``targets`` (``host:port``) as ``job`` (every ``interval``, or the global
        scrape interval); a running server reloads its config.

        ``continues_backfill``: the targets go on where a :meth:`backfill` of their history
        ended. A backfilled series has only the exporter's labels, and the ``job`` and
        ``instance`` a scrape adds would start a second series beside it: a rate whose
        window spans the seam then sums two extrapolated halves, a minute up to half again
        too high or too low. Dropping the two labels keeps one series across the seam (the
        targets' own labels must then tell them apart)."""
        job_config: dict[str, Any] = {
            "job_name": job,
            "static_configs": [{"targets": list(targets)}],
        }
        if continues_backfill:
            job_config["metric_relabel_configs"] = [
                {"action": "labeldrop", "regex": "job|instance"}
            ]
        if interval is not None:
            job_config["scrape_interval"] = _seconds(interval)
            job_config["scrape_timeout"] = _seconds(min(interval, timedelta(seconds=10)))
        self._jobs[job] = job_config
        self._apply()

    def probe(
        self,
        job: str,
        exporter: str,
        targets: Mapping[str, Mapping[str, str]],
        module: str = "http_2xx",
        interval: timedelta | None = None,
    ) -> None:
        """Probe each URL of ``targets`` (URL -> labels of its series, ``region`` say)
        through the blackbox exporter at ``exporter`` (``host:port``) with ``module``, as
        the exporter's documentation configures it: the URL becomes the ``target`` parameter
        and the ``instance`` label, the exporter the address scraped. An empty ``targets``
        removes the job."""
        if not targets:
            self._jobs.pop(job, None)
            self._apply()
            return
        job_config: dict[str, Any] = {
            "job_name": job,
            "metrics_path": "/probe",
            "params": {"module": [module]},
            "static_configs": [
                {"targets": [url], "labels": dict(labels)} for url, labels in targets.items()
            ],
            "relabel_configs": [
                {"source_labels": ["__address__"], "target_label": "__param_target"},
                {"source_labels": ["__param_target"], "target_label": "instance"},
                {"target_label": "__address__", "replacement": exporter},
            ],
        }
        if interval is not None:
            job_config["scrape_interval"] = _seconds(interval)
            job_config["scrape_timeout"] = _seconds(min(interval, timedelta(seconds=10)))
        self._jobs[job] = job_config
        self._apply()

    def _apply(self) -> None:
        """Write the config; a running server reloads it."""
        self._write_config()
        if self._process is not None:
            response = httpx.post(f"{self.url}/-/reload", timeout=10.0)
            if response.status_code != 200:
                raise ServerStartError(f"Prometheus refused its new config: {response.text}")

    def _write_config(self) -> Path:
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": _seconds(self.scrape_interval),
                "scrape_timeout": _seconds(min(self.scrape_interval, timedelta(seconds=10))),
            },
            "scrape_configs": list(self._jobs.values()),
        }
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self, timeout: float = 60.0) -> PrometheusServer:
        """Start it and wait until it answers queries."""
        executable = binary("prometheus")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        self.port = self.port or free_port()
        self._launch(
            "prometheus",
            [
                executable,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.data_dir}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                f"--query.lookback-delta={_seconds(self.lookback)}",
            ],
            timeout,
        )
        return self
