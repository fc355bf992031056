"""Choosing the ports Serve binds, so a start does not lose a race for them.

Serve binds a block of ports: the direct ingress replicas from ``port`` up (Serve retries
within ``RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT``) and the proxy at ``port + 100``. A port
the kernel hands out for "any free port" lies in its ephemeral range, where every outgoing
connection (and Ray's own servers) also draws local ports, so it can be taken before Serve
binds it. Ports below that range and above Ray's worker ports are not handed out that way.
"""

from __future__ import annotations

import random
import socket
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


def free_serve_port(host: str = "127.0.0.1", *, rng: random.Random | None = None) -> int:
    """A base ``port`` for :class:`serving.ServingSettings` whose whole block is free now.

    The block (``port`` … ``port + 15`` and the proxy at ``port + 100``) lies between Ray's
    worker ports and the kernel's ephemeral range, so no outgoing connection takes it later.
    """
    rng = rng or random.Random()
    high = _ephemeral_start() - PROXY_OFFSET - 1
    if high <= _RAY_WORKER_PORTS_END:
        high = 65_535 - PROXY_OFFSET
    for _ in range(200):
        base = rng.randrange(_RAY_WORKER_PORTS_END, high)
        block = [*range(base, base + INGRESS_SPAN), base + PROXY_OFFSET]
        if all(_bindable(host, port) for port in block):
            return base
    raise OSError(
        f"no free block of Serve ports on {host} between {_RAY_WORKER_PORTS_END} and {high}"
    )
