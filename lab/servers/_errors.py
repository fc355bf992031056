"""The exception tree of ``lab.servers`` (drawn in the package docstring)."""

from __future__ import annotations

from lab._errors import LabError


class ServerError(LabError):
    """Root of the errors of the servers the lab starts."""


class ServerMissingError(ServerError):
    """A server's binary is not installed (its make target installs it)."""


class ServerStartError(ServerError):
    """A server exited or did not become ready; the message ends with its log's tail."""


class BackfillError(ServerError):
    """``promtool`` refused a history to backfill; the message carries its output."""
