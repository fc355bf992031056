"""An SQS-compatible endpoint on this machine: moto in server mode, spoken to over HTTP by
boto3 exactly as the real service is (``endpoint_url``), for the queue actions' tests.

``reset`` empties it between tests, so one server serves a whole session.
"""

from __future__ import annotations

import sys
from typing import Any

import httpx

from lab.servers._errors import ServerStartError
from lab.servers._process import Server, free_port


class SqsServer(Server):
    """moto's server (``python -m moto.server``) on 127.0.0.1; a context manager."""

    region = "eu-west-1"

    def start(self, timeout: float = 60.0) -> SqsServer:
        """Start it and wait until it answers."""
        self.port = self.port or free_port()
        self._launch(
            "moto",
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            timeout,
            ready="/moto-api/",
        )
        return self

    def reset(self) -> None:
        """Forget every queue and message."""
        response = httpx.post(f"{self.url}/moto-api/reset", timeout=10)
        if response.status_code != 200:
            raise ServerStartError(f"moto refused a reset: {response.status_code}")

    def client(self) -> Any:
        """A boto3 SQS client for it (fixed test credentials, its region)."""
        import boto3

        return boto3.client(
            "sqs",
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
