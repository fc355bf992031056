"""The contracts' exception tree (drawn in the package docstring)."""

from __future__ import annotations


class ContractError(Exception):
    """Base class of every error raised by the shared contracts."""


class InvalidTimeError(ContractError, ValueError):
    """A time or duration is invalid: a naive datetime, a clock moved backwards."""


class UnknownIdError(ContractError, ValueError):
    """A scenario or action id that is not one of the enums' values."""
