"""The configuration file of ``ooda run``: one YAML file describing an estate, validated at the
edge into the settings dataclasses the loop takes.

The file names the regions (a kubeconfig or the in-cluster identity, and a Prometheus), the
services (namespace, selector, Deployment, HPA, SLOs, what they call, and the consumer groups,
queues, databases and upstream APIs they own), the guard and autonomy settings, and where
MLflow, Feast and Ray Serve are. Every mistake is reported at once, each with the path of the
bad key (``services[1].slo.availability: ...``); unknown keys are mistakes too, since a
misspelt ``dry_run`` that is silently ignored is the most expensive typo an operator can make.

Environment variables override the file at the edge only: ``OODA__guard__dry_run=true`` sets
``guard.dry_run``; a number in the path indexes a list (``OODA__regions__0__prometheus__url``).
Values are read as YAML scalars.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from contracts import ActionKind, MetricFamily
from features import PrometheusSettings
from ooda._errors import ConfigError
from ooda._settings import LeaderSettings, OodaSettings, SloSettings
from training import TrainingSettings

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)(ms|s|m|h|d))+\s*$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _duration(value: Any) -> Any:
    """``15s``, ``5m``, ``1h30m`` (Prometheus' and Go's notation) or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str) and _DURATION.match(value):
        return timedelta(seconds=sum(float(n) * _UNIT_S[u] for n, u in _PART.findall(value)))
    raise ValueError(f"not a duration: {value!r} (write 30s, 5m, 1h30m, or seconds)")


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Name = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SloConfig(_Strict):
    """A service's objectives (unset keys: the estate's)."""

    p95_ms: float | None = Field(default=None, gt=0)
    availability: float | None = Field(default=None, gt=0, lt=1)
    freshness_s: float | None = Field(default=None, gt=0)


class PrometheusConfig(_Strict):
    """One region's Prometheus."""

    url: Annotated[str, Field(pattern=r"^https?://\S+$")]
    selector: str = ""
    scrape_interval: Duration = timedelta(seconds=15)
    timeout: Duration = timedelta(seconds=10)
    recipes: dict[str, str] = {}
    family_recipes: dict[MetricFamily, dict[str, str]] = {}


class AwsConfig(_Strict):
    """One region's AWS account (or an AWS-compatible endpoint), for the queue and database
    actions (SQS, RDS). Credentials come from the AWS SDK's own chain (environment, profile,
    the pod's web identity), never from this file."""

    region_name: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    endpoint_url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None
    """An AWS-compatible server for every service (LocalStack, moto); unset: AWS's own."""
    endpoints: dict[
        Literal["sqs", "rds", "route53"], Annotated[str, Field(pattern=r"^https?://\S+$")]
    ] = {}
    """Per service, an endpoint other than ``endpoint_url`` (ElasticMQ for SQS, say)."""
    timeout: Duration = timedelta(seconds=10)
    """Connect and read timeout of each call."""
    max_attempts: int = Field(default=3, ge=1, le=10)
    """Attempts of a call the SDK retries by itself (throttling, 5xx), with its backoff."""


class RegionConfig(_Strict):
    """One region: how to reach its cluster, its Prometheus and, for the queue and database
    actions, its AWS account."""

    name: Name
    namespace: Name | None = None
    """The services' namespace in this region's cluster, where it is not the estate's."""
    kubeconfig: Path | None = None
    context: str | None = None
    in_cluster: bool = False
    prometheus: PrometheusConfig
    aws: AwsConfig | None = None
    nodes_on_demand: bool = False
    """The cluster adds nodes for Pending pods (cluster-autoscaler, Karpenter): drain into
    Pending rather than refuse a drain whose pods fit on no node now."""

    @model_validator(mode="after")
    def _one_identity(self) -> RegionConfig:
        if self.in_cluster and (self.kubeconfig is not None or self.context is not None):
            raise ValueError("in_cluster: true takes no kubeconfig or context")
        return self


class ServiceConfig(_Strict):
    """One service the loop looks after."""

    name: Name
    deployment: Name | None = None
    hpa: Name | None = None
    selector: str | None = None
    calls: list[Name] = []
    slo: SloConfig = SloConfig()
    consumer_groups: list[str] = []
    queues: list[str] = []
    databases: list[str] = []
    upstreams: list[str] = []


class GuardConfig(_Strict):
    """The actuators' guard rails (unset keys: the defaults of ``GuardSettings``)."""

    dry_run: bool = False
    cooldown: Duration | None = None
    max_disruptions_per_workload: int | None = Field(default=None, ge=0)
    breaker_failures: int | None = Field(default=None, ge=1)
    breaker_open_for: Duration | None = None


class AutonomyConfig(_Strict):
    """How much the loop may do alone."""

    propose_only: list[ActionKind] = [ActionKind.RESTORE_CONFIG_KEY]
    failed_heals_per_week: int = Field(default=5, ge=1)


class LoopConfig(_Strict):
    """The loop's cadence."""

    tick: Duration = timedelta(seconds=15)
    api_timeout_s: float = Field(default=5.0, gt=0)
    follow_root_cause: bool = True
    act_in_background: bool = True
    """A drain or an eviction waiting on its budgets runs beside the ticks (false: inside
    them, the loop looking at nothing else meanwhile)."""


class ModelsConfig(_Strict):
    """Where the model platform is."""

    serving_url: Annotated[str, Field(pattern=r"^https?://\S+$")] = "http://127.0.0.1:8000"
    mlflow_tracking_uri: str | None = None
    feast_repo: Path = Path("features/repo/data")


class ForecastWatchConfig(_Strict):
    """The forecaster's live accuracy watch (unset keys: ``ModelWatchSettings``' defaults)."""

    enabled: bool | None = None
    window: Duration | None = None
    judge_after: Duration | None = None
    min_points: int | None = Field(default=None, ge=1)
    max_ratio: float | None = Field(default=None, gt=0)
    rollback: bool | None = None
    plan_on_best: bool | None = None
    min_completed: int | None = Field(default=None, ge=1)


class DetectorWatchConfig(_Strict):
    """The detector's live precision and recall (unset keys: ``DetectorWatchSettings``')."""

    enabled: bool | None = None
    window: Duration | None = None
    lead: Duration | None = None
    min_breach: Duration | None = None
    gap: Duration | None = None
    min_incidents: int | None = Field(default=None, ge=1)
    margin: float | None = Field(default=None, ge=0, le=1)
    refit_every: Duration | None = None
    judge_every: Duration | None = None
    min_baseline_minutes: int | None = Field(default=None, ge=1)


class WatchesConfig(_Strict):
    """The models' live watches: when ooda stops trusting a champion by itself."""

    forecaster: ForecastWatchConfig = ForecastWatchConfig()
    detector: DetectorWatchConfig = DetectorWatchConfig()


def _given(section: BaseModel) -> dict[str, Any]:
    """The keys a file section sets (the rest keep the settings' defaults)."""
    return {k: v for k, v in section.model_dump().items() if v is not None}


class LeaderConfig(_Strict):
    """Leader election of replicas on a Lease (client-go's defaults)."""

    enabled: bool = False
    lease: Name = "ooda-leader"
    namespace: Name | None = None
    lease_duration: Duration = timedelta(seconds=15)
    renew_deadline: Duration = timedelta(seconds=10)
    retry_period: Duration = timedelta(seconds=2)

    @model_validator(mode="after")
    def _ordered(self) -> LeaderConfig:
        if not self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "needs retry_period < renew_deadline < lease_duration (a leader must stop"
                " acting before a standby may take over)"
            )
        return self


class EscalationConfig(_Strict):
    """Where a human is told (Alertmanager's v2 API, a generic webhook)."""

    alertmanager_url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None
    webhook_url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None
    incident_url: str = "ooda://audit/{audit_id}"
    notify: bool = False
    finding_severity: str = Field(default="ticket", pattern=r"^[a-z][a-z0-9_-]*$")
    """The ``severity`` label of the findings opened after heals (route it to a ticket queue)."""
    finding_every: Duration = timedelta(hours=24)
    unexplained_after: Duration = timedelta(minutes=5)
    """A service outside its SLO this long that no runbook explains is escalated."""


class AuditConfig(_Strict):
    """Where the audit log (the state a standby takes over from) lives."""

    path: Path = Path(".ooda/audit.db")
    url: Annotated[str, Field(pattern=r"^postgres(ql)?://\S+$")] | None = None


#: ``probe_prometheus.query``'s default: the share of the blackbox exporter's probes of a
#: region (every prober, every URL labelled with the region) that passed over the last minute.
PROBE_QUERY = 'avg(avg_over_time(probe_success{region="{region}"}[1m]))'


class ProbePrometheusConfig(_Strict):
    """Synthetic probes read from a Prometheus that scrapes the blackbox exporter, rather
    than requested from where ooda runs: probers in several places, and a region judged on
    what all of them saw. Run this Prometheus (and its probers) outside the regions it
    judges, or it falls with the region it should call down."""

    url: Annotated[str, Field(pattern=r"^https?://\S+$")]
    query: str = PROBE_QUERY
    """PromQL whose answer is the share (0-1) of a region's probes that passed;
    ``{region}`` stands for the region's name. No series: no probe answer."""
    timeout: Duration = timedelta(seconds=5)

    @field_validator("query")
    @classmethod
    def _names_the_region(cls, query: str) -> str:
        if "{region}" not in query:
            raise ValueError("must contain {region} to tell the regions apart")
        return query


class FailoverConfig(_Strict):
    """Regional failover of the public name users resolve (``ooda failover``): its weighted
    Route 53 records (one per region, ``SetIdentifier`` the region's name, home first in
    ``regions``), each region's public health endpoint, and the rules' numbers (unset: the
    defaults of ``FailoverSettings``)."""

    record: Annotated[str, Field(pattern=r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?\.?$")]
    hosted_zone_id: Annotated[str, Field(pattern=r"^(/hostedzone/)?[A-Z0-9]+$")]
    probes: dict[Name, Annotated[str, Field(pattern=r"^https?://\S+$")]] = {}
    """Region -> the URL a synthetic probe requests from where ooda runs (2xx: the region
    serves); or, instead, ``probe_prometheus``."""
    probe_timeout: Duration = timedelta(seconds=5)
    probe_prometheus: ProbePrometheusConfig | None = None
    """The blackbox exporter's ``probe_success`` read from Prometheus, instead of
    ``probes``."""
    entries: list[Name] = []
    """The services users call (unset: the first service)."""
    aws: AwsConfig = AwsConfig(region_name="us-east-1")
    """The account of the hosted zone (Route 53 is global; its API lives in us-east-1)."""
    down_minutes: int | None = Field(default=None, ge=1)
    brownout_error_rate: float | None = Field(default=None, gt=0, lt=1)
    brownout_minutes: int | None = Field(default=None, ge=1)
    failback_after: Duration | None = None
    failback_backoff: float | None = Field(default=None, ge=1)
    failback_after_max: Duration | None = None
    max_replica_lag_s: float | None = Field(default=None, gt=0)


class OodaConfig(_Strict):
    """The whole file."""

    namespace: Name
    regions: list[RegionConfig] = Field(min_length=1)
    services: list[ServiceConfig] = Field(min_length=1)
    slo: SloConfig = SloConfig()
    loop: LoopConfig = LoopConfig()
    guard: GuardConfig = GuardConfig()
    autonomy: AutonomyConfig = AutonomyConfig()
    models: ModelsConfig = ModelsConfig()
    audit: AuditConfig = AuditConfig()
    leader: LeaderConfig = LeaderConfig()
    escalation: EscalationConfig = EscalationConfig()
    watches: WatchesConfig = WatchesConfig()
    failover: FailoverConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OodaConfig:
        for what, names in (
            ("regions", [r.name for r in self.regions]),
            ("services", [s.name for s in self.services]),
        ):
            doubled = sorted({n for n in names if names.count(n) > 1})
            if doubled:
                raise ValueError(f"{what}: {', '.join(doubled)} named more than once")
        known = {s.name for s in self.services}
        for i, service in enumerate(self.services):
            unknown = [c for c in service.calls if c not in known]
            if unknown:
                raise ValueError(
                    f"services[{i}].calls: {', '.join(unknown)} not among the services"
                )
        if self.failover is not None:
            regions = [r.name for r in self.regions]
            if len(regions) < 2:
                raise ValueError("failover: needs two or more regions")
            given = self.failover.probes
            if self.failover.probe_prometheus is not None and given:
                raise ValueError("failover: give probes or probe_prometheus, not both")
            missing = [r for r in regions if r not in given]
            extra = [r for r in given if r not in regions]
            if self.failover.probe_prometheus is None and (missing or extra):
                raise ValueError(
                    f"failover.probes: one per region; missing {missing}, not regions {extra}"
                )
            unknown = [e for e in self.failover.entries if e not in known]
            if unknown:
                raise ValueError(f"failover.entries: {', '.join(unknown)} not among the services")
        return self

    # -- into settings -------------------------------------------------------------------------

    def settings(self, region: str | None = None, base: OodaSettings | None = None) -> OodaSettings:
        """The loop's settings for ``region`` (default: the first), from ``base`` (the
        defaults) with what the file says."""
        base = base or OodaSettings()
        chosen = self.region(region)
        slo = _slo(base.slo, self.slo)
        guard_overrides = {
            key: value
            for key, value in self.guard.model_dump().items()
            if value is not None and key != "dry_run"
        }
        registry = base.training.registry
        if self.models.mlflow_tracking_uri:
            registry = replace(registry, tracking_uri=self.models.mlflow_tracking_uri)
        return replace(
            base,
            namespace=self.namespace,
            region=chosen.name,
            nodes_on_demand=chosen.nodes_on_demand,
            services=tuple(s.name for s in self.services),
            calls={s.name: tuple(s.calls) for s in self.services if s.calls},
            dry_run=self.guard.dry_run or base.dry_run,
            workdir=self.audit.path.parent,
            feature_dir=self.models.feast_repo,
            slo=slo,
            slos={s.name: _slo(slo, s.slo) for s in self.services},
            loop=replace(
                base.loop,
                tick=self.loop.tick,
                api_timeout_s=self.loop.api_timeout_s,
                follow_root_cause=self.loop.follow_root_cause,
                forecast_in_background=True,
                act_in_background=self.loop.act_in_background,
            ),
            guard=replace(base.guard, dry_run=self.guard.dry_run, **guard_overrides),
            autonomy=replace(
                base.autonomy,
                propose_only=frozenset(str(k) for k in self.autonomy.propose_only),
                failed_heals_per_week=self.autonomy.failed_heals_per_week,
            ),
            serving=replace(base.serving, base_url=self.models.serving_url),
            leader=LeaderSettings(**self.leader.model_dump()),
            escalation=replace(base.escalation, **self.escalation.model_dump()),
            watch=replace(base.watch, **_given(self.watches.forecaster)),
            detector_watch=replace(base.detector_watch, **_given(self.watches.detector)),
            training=TrainingSettings(registry=registry)
            if registry is not base.training.registry
            else base.training,
        )

    def failover_settings(self, base: OodaSettings | None = None) -> OodaSettings:
        """The settings of ``ooda failover``: the estate's, with what ``failover`` says."""
        settings = self.settings(base=base)
        given = self.failover
        if given is None:
            raise ConfigError("the configuration has no failover section")
        overrides = {
            key: getattr(given, key)
            for key in (
                "down_minutes",
                "brownout_error_rate",
                "brownout_minutes",
                "failback_after",
                "failback_backoff",
                "failback_after_max",
                "max_replica_lag_s",
            )
            if getattr(given, key) is not None
        }
        failover = replace(
            settings.failover,
            regions=tuple(r.name for r in self.regions),
            hosted_zone_id=given.hosted_zone_id,
            record=given.record if given.record.endswith(".") else given.record + ".",
            entries=tuple(given.entries) or (self.services[0].name,),
            **overrides,
        )
        return replace(settings, failover=failover)

    def region(self, name: str | None = None) -> RegionConfig:
        """The region called ``name`` (default: the first)."""
        if name is None:
            return self.regions[0]
        for region in self.regions:
            if region.name == name:
                return region
        known = ", ".join(r.name for r in self.regions)
        raise ConfigError(f"region {name!r} is not in the configuration (it has {known})")

    def prometheus(self, region: str | None = None) -> PrometheusSettings:
        """``PrometheusSource``'s settings for ``region``, with the services' ownership."""
        chosen = self.region(region)
        prom = chosen.prometheus
        owners: dict[str, dict[str, str]] = {}
        for service in self.services:
            for label, entities in (
                ("consumergroup", service.consumer_groups),
                ("queue_name", service.queues),
                ("dbinstance_identifier", service.databases),
                ("upstream", service.upstreams),
            ):
                for entity in entities:
                    owners.setdefault(label, {})[entity] = service.name
        return PrometheusSettings(
            url=prom.url,
            region=chosen.name,
            selector=prom.selector,
            scrape_interval=prom.scrape_interval,
            timeout=prom.timeout,
            service_recipes=dict(prom.recipes),
            family_recipes={f: dict(c) for f, c in prom.family_recipes.items()},
            owners=owners,
        )


def _slo(base: SloSettings, given: SloConfig) -> SloSettings:
    return replace(base, **{k: v for k, v in given.model_dump().items() if v is not None})


# -- loading ---------------------------------------------------------------------------------


def _where(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not str(part).startswith(("function-", "constrained-")):
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def _message(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key missing"
    text = str(error["msg"]).removeprefix("Value error, ")
    got = error.get("input")
    if got is not None and not isinstance(got, dict | list):
        text += f" (got {got!r})"
    return text


def validate(raw: Any, origin: str = "configuration") -> OodaConfig:
    """``raw`` (parsed YAML) as an :class:`OodaConfig`; ``ConfigError`` lists every bad key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top, got {type(raw).__name__}")
    try:
        return OodaConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [f"  {_where(tuple(e['loc']))}: {_message(e)}" for e in exc.errors()]
        raise ConfigError(f"{origin} is invalid:\n" + "\n".join(lines)) from None


def _override(raw: dict[str, Any], path: list[str], value: Any, name: str) -> None:
    node: Any = raw
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{name}: {part!r} does not index a list of {len(node)}")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(f"{name}: {'.'.join(path[:i])} is not a mapping or a list")


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> OodaConfig:
    """Read, override from ``OODA__...`` variables, validate."""
    environ = os.environ if environ is None else environ
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top, got {type(raw).__name__}")
    for name in sorted(environ):
        if name.startswith("OODA__"):
            parts = [p for p in name.removeprefix("OODA__").split("__") if p]
            if not parts:
                raise ConfigError(f"{name}: names no key")
            _override(raw, [p.lower() for p in parts], yaml.safe_load(environ[name]), name)
    return validate(raw, str(path))
