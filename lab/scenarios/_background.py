"""Background noise of a chaos run: ordinary events that must NOT be acted on.

A loop that restarts pods after every deploy, or pins the HPA floor at every little bump of
traffic, would score well on faults and still be a bad neighbour; these events are the
negatives. A benign rollout puts a new image tag on a random service (same behaviour: pods
are replaced in a surge rollout, nothing fails); a traffic wave lifts external traffic by
x1.2-1.4 over 10-20 minutes (at every entry service), which the reactive HPA absorbs; a
config edit flips a feature flag in a random service's ConfigMap (``kubectl edit``), which
breaks nothing. Config edits draw from a child of the random stream, so adding them left the
draws of every other event (and of the scenario instances after them) as they were.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from lab._faults import BackgroundEvent, ramp_multiplier
from lab._kube_net import config_map_name

if TYPE_CHECKING:
    from lab._estate import Lab


def _next_image(image: str, bump: int) -> str:
    """``image`` with its tag's last numeric part raised by ``bump`` (1.4.2 -> 1.4.3)."""
    repo, _, tag = image.rpartition(":")
    parts = tag.split(".")
    if parts[-1].isdigit():
        parts[-1] = str(int(parts[-1]) + bump)
        return f"{repo}:{'.'.join(parts)}"
    return f"{image}.{bump}"


def plan_background(
    lab: Lab,
    rng: np.random.Generator,
    start: datetime,
    end: datetime,
    *,
    rollouts: int | None = None,
    waves: int | None = None,
    config_edits: int | None = None,
) -> list[BackgroundEvent]:
    """Benign rollouts, traffic waves and config edits in ``[start, end)``, ordered by time;
    uses ``rng``."""
    cfg = lab.settings.background
    span_s = (end - start).total_seconds()
    hours = span_s / 3600.0
    if rollouts is None:
        rollouts = int(rng.poisson(cfg.rollouts_per_hour * hours))
    if waves is None:
        waves = int(rng.poisson(cfg.waves_per_hour * hours))
    t0 = start.astimezone(UTC)
    events: list[BackgroundEvent] = []
    bumps = dict.fromkeys(lab.services, 0)
    for offset in np.sort(rng.uniform(0.0, span_s, rollouts)):
        service = lab.services[int(rng.integers(len(lab.services)))]
        bumps[service] += 1
        image = _next_image(lab.cluster.deployments[service].current.image, bumps[service])
        at = t0 + timedelta(seconds=round(float(offset)))
        events.append(BackgroundEvent("rollout", service, at, None, 1.0, image))
    for _ in range(waves):
        factor = float(rng.uniform(*cfg.wave_factor_range))
        length = timedelta(seconds=round(60.0 * float(rng.uniform(*cfg.wave_minutes_range))))
        latest = max(0.0, span_s - length.total_seconds())
        at = t0 + timedelta(seconds=round(float(rng.uniform(0.0, latest))))
        detail = f"x{factor:.2f} over {length.total_seconds() / 60:.0f} min"
        events.append(
            BackgroundEvent("traffic_wave", lab.entries[0], at, at + length, factor, detail)
        )
    edits_rng = rng.spawn(1)[0]
    if config_edits is None:
        config_edits = int(edits_rng.poisson(cfg.config_edits_per_hour * hours))
    for offset in np.sort(edits_rng.uniform(0.0, span_s, config_edits)):
        service = lab.services[int(edits_rng.integers(len(lab.services)))]
        flags = f"checkout-v2={'on' if edits_rng.random() < 0.5 else 'off'}"
        at = t0 + timedelta(seconds=round(float(offset)))
        events.append(BackgroundEvent("config_edit", service, at, None, 1.0, flags))
    events.sort(key=lambda e: e.at)
    return events


def fire_background(lab: Lab, event: BackgroundEvent) -> None:
    """Make ``event`` happen now and record it."""
    if event.kind == "rollout":
        t = lab.clock_s
        dep = lab.cluster.deployments[event.service]
        lab.cluster.roll_out(dep, event.detail, t)
        dep.generation += 1
        lab.cluster.reconcile(t)
    elif event.kind == "config_edit":
        name = config_map_name(event.service)
        flags = {"FEATURE_FLAGS": event.detail}
        lab.kube.core_v1.edit_config_map(name, flags, "kubectl-edit", lab.clock_s)
    lab.note_background(event)


def wave_multiplier(event: BackgroundEvent, t: float) -> float:
    """Traffic factor of a wave at epoch second ``t``: up over its first half, down after."""
    assert event.ends_at is not None
    start = event.at.timestamp()
    total = event.ends_at.timestamp() - start
    return ramp_multiplier(t - start, event.magnitude, total / 2, total)
