"""A real Alertmanager on this machine (Debian's ``prometheus-alertmanager``), routing every
alert to one webhook receiver, for the tests of ooda's escalation.

Clustering is off (no gossip port) and it groups with a 1 s wait, so an alert posted to its
v2 API reaches the receiver within seconds.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from lab.servers._process import Server, free_port
from lab.servers._prometheus import binary


class AlertmanagerServer(Server):
    """One Alertmanager sending every alert to ``webhook_url``; a context manager."""

    def __init__(self, workdir: Path, webhook_url: str) -> None:
        super().__init__(workdir)
        self.webhook_url = webhook_url

    def start(self, timeout: float = 60.0) -> AlertmanagerServer:
        """Start it and wait until it is ready."""
        executable = binary("prometheus-alertmanager")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "alertmanager.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "route": {
                        "receiver": "hook",
                        "group_by": ["alertname", "service"],
                        "group_wait": "1s",
                        "group_interval": "1s",
                        "repeat_interval": "1h",
                    },
                    "receivers": [
                        {
                            "name": "hook",
                            "webhook_configs": [{"url": self.webhook_url, "send_resolved": False}],
                        }
                    ],
                }
            )
        )
        self.port = self.port or free_port()
        self._launch(
            "alertmanager",
            [
                executable,
                f"--config.file={config}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            timeout,
        )
        return self
