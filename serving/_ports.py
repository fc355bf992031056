"""Choosing the ports Serve binds, so a start does not lose a race for them.

Serve binds a block of ports: the direct ingress replicas from ``port`` up (Serve retries
within ``RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT``) and the proxy at ``port + 100``. A port
the kernel hands out for "any free port" lies in its ephemeral range, where every outgoing
connection (and Ray's own servers) also draws local ports, so it can be taken before Serve
binds it. Ports below that range and above Ray's worker ports are not handed out that way.

A block found free is not bound yet, and nothing binds most of it until Serve starts a second
replica, so two processes that look at the same time (two test workers, two notebooks) could
both choose it. Each chosen block is written, under a file lock, to a reservation in the
system's temporary folder, named for the process; blocks of live processes are not chosen
again, and a dead process's reservations are dropped.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Ports Serve binds from the base port: the direct ingress block and the proxy.
INGRESS_SPAN = 16
PROXY_OFFSET = 100
#: Ray's worker ports end here (``ray.init``'s ``max_worker_port`` default).
_RAY_WORKER_PORTS_END = 20_000
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_start() -> int:
    try:
        return int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _block(base: int) -> list[int]:
    return [*range(base, base + INGRESS_SPAN), base + PROXY_OFFSET]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


@contextmanager
def _reservations(folder: Path) -> Iterator[set[int]]:
    """The ports of live processes' reservations in ``folder``, under its lock."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        taken: set[int] = set()
        for path in folder.glob("*-*"):
            base, _, pid = path.name.partition("-")
            if not (base.isdigit() and pid.isdigit()):
                continue
            if _alive(int(pid)):
                taken.update(_block(int(base)))
            else:
                path.unlink(missing_ok=True)
        yield taken


def free_serve_port(
    host: str = "127.0.0.1", *, rng: random.Random | None = None, reservations: Path | None = None
) -> int:
    """A base ``port`` for :class:`serving.ServingSettings` whose whole block is free now and
    reserved for this process.

    The block (``port`` … ``port + 15`` and the proxy at ``port + 100``) lies between Ray's
    worker ports and the kernel's ephemeral range, so no outgoing connection takes it later;
    ``reservations`` (default: ``ooda-serve-ports`` in the temporary folder) keeps other
    processes from choosing it while this one lives.
    """
    rng = rng or random.Random()
    folder = reservations or Path(tempfile.gettempdir()) / "ooda-serve-ports"
    high = _ephemeral_start() - PROXY_OFFSET - 1
    if high <= _RAY_WORKER_PORTS_END:
        high = 65_535 - PROXY_OFFSET
    with _reservations(folder) as taken:
        for _ in range(200):
            base = rng.randrange(_RAY_WORKER_PORTS_END, high)
            block = _block(base)
            if taken.isdisjoint(block) and all(_bindable(host, port) for port in block):
                (folder / f"{base}-{os.getpid()}").touch()
                return base
    raise OSError(
        f"no free block of Serve ports on {host} between {_RAY_WORKER_PORTS_END} and {high}"
    )
