"""Assemble the application and run it locally.

:func:`build_app` is the single place the deployments are wired together with ``.bind()``;
:func:`app_builder` is the same for Ray's own tooling (``serve run serving:app_builder``,
``serve deploy`` / KubeRay ``RayService`` with ``import_path: serving:app_builder`` and
``args``). :func:`start` and :func:`stop` are for the embedded default and tests: they run
Ray on this machine only (loopback, no dashboard, bounded CPUs) and return only once the
endpoints answer, so callers never race the model loading.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import ray
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from serving._api import ScoringAPI
from serving._errors import ServeStartError
from serving._ports import INGRESS_SPAN, PROXY_OFFSET
from serving._scorers import LoadForecaster
from serving._settings import ServingSettings, settings_from_args

#: Serve application name used by :func:`start`.
APP_NAME = "ooda"


@dataclass(frozen=True)
class RunningApp:
    """A started application."""

    #: Base URL of the HTTP endpoints, e.g. ``http://127.0.0.1:8000``.
    url: str
    #: Handle to the ingress deployment.
    handle: DeploymentHandle
    #: Base URL of Serve's proxy, which balances over every ingress replica.
    proxy_url: str


def proxy_port(settings: ServingSettings) -> int:
    """The port Serve's HTTP proxy binds to."""
    if not settings.direct_ingress:
        return settings.port
    return settings.proxy_port or settings.port + PROXY_OFFSET


def _serve_environment(settings: ServingSettings) -> dict[str, str]:
    """Ray Serve's own switches, read from the environment by every Ray process it starts."""
    if not settings.direct_ingress:
        return {}
    return {
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(settings.port),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(settings.port + INGRESS_SPAN - 1),
        # A stopping ingress replica otherwise stays up 30 s for an external load balancer to
        # take it out; on loopback there is none.
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": str(settings.graceful_shutdown_timeout_s),
    }


#: Replicas log warnings and errors only. At INFO, Serve builds an access-log record for every
#: request even with the access log off (a few percent of a one-row score's CPU).
_REPLICA_LOGGING = {"log_level": "WARNING", "enable_access_log": False}


def build_app(settings: ServingSettings) -> Application:
    """The scoring application: the ingress (which holds the detector) bound to the
    forecaster deployment, with the load limits of ``settings``."""
    ingress = ScoringAPI.options(
        num_replicas=settings.ingress_replicas,
        max_ongoing_requests=settings.max_ongoing_requests,
        max_queued_requests=settings.max_queued_requests,
        graceful_shutdown_timeout_s=settings.graceful_shutdown_timeout_s,
        logging_config=_REPLICA_LOGGING,
    )
    forecaster = LoadForecaster.options(
        num_replicas=settings.forecaster_replicas,
        graceful_shutdown_timeout_s=settings.graceful_shutdown_timeout_s,
        logging_config=_REPLICA_LOGGING,
    )
    return ingress.bind(forecaster.bind(settings), settings)


def app_builder(args: dict[str, Any]) -> Application:
    """Application builder for Ray's CLI and config files; ``args`` name settings fields."""
    return build_app(settings_from_args(args, Path.cwd()))


def start(settings: ServingSettings) -> RunningApp:
    """Start Ray (if needed) and Serve on loopback, deploy, and wait for ``/healthz`` 200.

    Raises :class:`ServeStartError` with the last health answer if the application is not
    healthy within ``settings.start_timeout_s``; Serve and Ray are shut down in that case.
    """
    return wait_healthy(deploy(settings), settings)


def deploy(settings: ServingSettings) -> RunningApp:
    """Start Ray (if needed) and Serve on loopback and deploy, without waiting for health.

    The replicas follow the registry: one deployed before its models are registered answers
    503 until they are, then loads them (so Serve's start can overlap the training).
    :class:`ServeStartError` (Ray shut down) when Serve cannot start, a port taken say.
    """
    if not settings.log_to_driver:
        # Ray's driver-side notices (token auth, "Started Serve", app ready) say nothing
        # a user of ooda acts on; errors still come through.
        for name in ("ray", "ray.serve"):
            logging.getLogger(name).setLevel(logging.ERROR)
    if not ray.is_initialized():
        # Set before Ray starts, so the controller and replicas it spawns inherit them.
        os.environ.update(_serve_environment(settings))
        try:
            _init_ray(settings)
        except Exception as exc:
            raise ServeStartError(f"Ray did not start: {_root_cause(exc)}") from exc
    try:
        serve.start(
            http_options={"host": settings.host, "port": proxy_port(settings)},
            # No per-request access log: at hundreds of requests a second it costs CPU and disk.
            logging_config={"log_level": "WARNING", "enable_access_log": False},
        )
        handle = serve.run(build_app(settings), name=APP_NAME, route_prefix="/", blocking=False)
    except Exception as exc:
        # Ray stays up otherwise, holding this start's ports and environment: a retry would
        # join it and never serve on its own ports.
        stop()
        raise ServeStartError(
            f"Serve did not start on {settings.host} (port {settings.port}, proxy "
            f"{proxy_port(settings)}): {_root_cause(exc)}"
        ) from exc
    url = f"http://{settings.host}:{settings.port}"
    return RunningApp(
        url=url, handle=handle, proxy_url=f"http://{settings.host}:{proxy_port(settings)}"
    )


def _raylet_too_slow(exc: BaseException) -> bool:
    """Ray gives its raylet a fixed 30 s to register; on a machine busy with other work it may
    need longer, and a second start usually makes it (a temporary error, unlike a bad
    argument)."""
    return "timed out during startup" in str(exc)


def _shut_down_half_started(_state: RetryCallState) -> None:
    ray.shutdown()


@retry(
    retry=retry_if_exception(_raylet_too_slow),
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=2, max=10),
    before_sleep=_shut_down_half_started,
    reraise=True,
)
def _init_ray(settings: ServingSettings) -> None:
    ray.init(
        num_cpus=settings.ray_num_cpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=settings.log_to_driver,
        logging_level=logging.WARNING if settings.log_to_driver else logging.ERROR,
        # Ray nices its workers to 15; the proxy and replicas are this machine's
        # serving path, not background work, and must not starve behind the loop.
        _system_config={"worker_niceness": 0},
    )


def _root_cause(exc: BaseException) -> str:
    """The innermost error's message: Ray wraps an actor's failure in its own traceback."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__


def wait_healthy(app: RunningApp, settings: ServingSettings) -> RunningApp:
    """``app`` once its ``/healthz`` answers 200; :class:`ServeStartError` (and Serve and
    Ray shut down) when it does not within ``settings.start_timeout_s``."""
    deadline = time.monotonic() + settings.start_timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{app.url}/healthz", timeout=5.0)
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if answer.status_code == 200:
                return app
            last = f"{answer.status_code} {answer.text}"
        time.sleep(0.5)
    stop()
    raise ServeStartError(
        f"{app.url}/healthz not healthy after {settings.start_timeout_s:.0f} s; last answer: {last}"
    )


def stop() -> None:
    """Shut down Ray and the Serve application in it.

    Ray's shutdown ends every Serve process at once: a graceful Serve shutdown first would
    only drain replicas nobody calls any more (a later :func:`start` finds Serve's cached
    client dead and starts afresh).
    """
    ray.shutdown()
