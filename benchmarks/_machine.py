"""The machine line every benchmark prints, so a table can be traced to where it ran."""

from __future__ import annotations

import os
import platform
import warnings


def machine_description() -> str:
    """Architecture, CPUs, memory, kernel and Python, in one line."""
    memory = ""
    try:
        with open("/proc/meminfo") as fh:
            kib = int(fh.readline().split()[1])
        memory = f", {kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs{memory}, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def quiet_warnings() -> None:
    """Silence library deprecation notices (SQLAlchemy's under MLflow, ...): they say nothing
    to someone reading a benchmark's tables."""
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", FutureWarning)
