"""The ooda exception tree (see the package docstring)."""

from __future__ import annotations


class OodaError(Exception):
    """Base class of the errors raised by the control loop and its command line."""


class ScoringUnavailableError(OodaError):
    """A scoring endpoint could not be reached or refused to answer."""


class BadMetricsError(OodaError):
    """The metric source returned something the loop cannot use."""


class SeriesInputError(OodaError, ValueError):
    """A series file for ``score-series`` / ``forecast-series`` is unreadable or malformed."""


class ChaosError(OodaError, ValueError):
    """A chaos run was asked for something it cannot run (an unknown scenario, negative runs)."""


class ConfigError(OodaError, ValueError):
    """A configuration file is unreadable or invalid; the message names every bad key."""


class RcaInputError(OodaError, ValueError):
    """Root-cause analysis was given a graph, metrics or target it cannot use (names which)."""


class TrainInputError(OodaError, ValueError):
    """``ooda train`` cannot start: no history in Feast, an unknown model, a bad window."""
