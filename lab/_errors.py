"""The lab's exception tree (drawn in the package docstring)."""

from __future__ import annotations

import contracts


class LabError(Exception):
    """Base class of every error raised by the lab (the fake Kubernetes API raises ApiException)."""


class SettingsError(LabError, ValueError):
    """The lab settings are inconsistent (unknown downstream, duplicate names, min > max ...)."""


class UnknownServiceError(LabError, KeyError):
    """A fault or query names a service the estate does not run."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownRegionError(LabError, KeyError):
    """A fleet was asked about a region it does not run, or an outage it does not have."""

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidTimeError(LabError, contracts.InvalidTimeError):
    """A time, duration or range is invalid (naive datetime, non-positive step, end < start)."""


class NoTargetError(LabError):
    """A fault found nothing to act on (e.g. no running pod left to break)."""
