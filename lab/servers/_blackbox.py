"""A real blackbox exporter on this machine (Debian's ``prometheus-blackbox-exporter``), the
synthetic prober whose ``probe_success`` tells the failover whether a region answers.

Prometheus scrapes it on ``/probe?module=http_2xx&target=<url>`` once per target (the job
:meth:`lab.servers.PrometheusServer.probe` writes); each scrape makes one HTTP request to the
target, and ``probe_success`` is 1 for a 2xx answer within the module's timeout, 0 otherwise.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import yaml

from lab.servers._process import Server, free_port
from lab.servers._prometheus import binary

#: The module every target is probed with: an HTTP GET that must answer 2xx.
HTTP_MODULE = "http_2xx"


class BlackboxExporter(Server):
    """One blackbox exporter with an ``http_2xx`` module; a context manager."""

    def __init__(self, workdir: Path, probe_timeout: timedelta = timedelta(seconds=2)) -> None:
        super().__init__(workdir)
        self.probe_timeout = probe_timeout

    @property
    def address(self) -> str:
        """``host:port`` for Prometheus to scrape."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> BlackboxExporter:
        """Start it and wait until it answers."""
        executable = binary("prometheus-blackbox-exporter")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "blackbox.yml"
        module = {
            "prober": "http",
            "timeout": f"{max(1, round(self.probe_timeout.total_seconds()))}s",
            "http": {"preferred_ip_protocol": "ip4", "valid_status_codes": []},
        }
        config.write_text(yaml.safe_dump({"modules": {HTTP_MODULE: module}}))
        self.port = self.port or free_port()
        self._launch(
            "blackbox_exporter",
            [
                executable,
                f"--config.file={config}",
                f"--web.listen-address={self.address}",
            ],
            timeout,
            ready="/metrics",
        )
        return self
