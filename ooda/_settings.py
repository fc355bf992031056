"""The one settings object of an ooda process, made of small grouped dataclasses.

Defaults are the embedded demo's; YAML or environment variables are read only at the edge
(the command line), never inside the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from actuators import GuardSettings
from contracts import ScenarioId
from training import TrainingSettings


@dataclass(frozen=True)
class SloSettings:
    """The user's service-level objectives."""

    p95_ms: float = 150.0
    """Latency objective: the p95 of request latency stays below this."""
    availability: float = 0.999
    """Success objective: at least this share of requests succeed."""

    freshness_s: float = 120.0
    """Freshness objective of asynchronous work: a message a service consumes (from Kafka, from
    a queue) is processed within this many seconds of being produced."""

    @property
    def max_error_rate(self) -> float:
        """The error rate at which availability is exactly at its objective."""
        return 1.0 - self.availability


@dataclass(frozen=True)
class LoopSettings:
    """Cadence of the control loop."""

    tick: timedelta = timedelta(seconds=15)
    """Time between two passes of observe-decide-act-verify."""
    observe_window: timedelta = timedelta(minutes=75)
    """How much recent metric history each tick reads (rolling features need an hour)."""
    family_window: timedelta = timedelta(minutes=15)
    """How far back the metric families (pods, nodes, ...) are read each tick: the runbooks'
    trends look at minutes, not the hour the features need."""
    score_every: timedelta = timedelta(minutes=1)
    """How often anomaly scores are refreshed (the metrics' resolution: a tick between two
    samples reuses the last scores)."""
    forecast_every: timedelta = timedelta(minutes=5)
    """How often the load forecast is refreshed; at once, too, when a service starts to surge
    (``runbooks.surging``; a surge needs a forecast made after it began)."""
    crash_log_lines: int = 100
    """Lines of a crash-looping pod's previous container read as evidence (once per crash)."""
    orient_window: timedelta = timedelta(minutes=60)
    """How much history the orient stage reads when a service shows a symptom: the normal
    its components are judged against, and the newest ``orient_recent``."""
    orient_recent: timedelta = timedelta(minutes=10)
    """The newest minutes orient judges against the ones before (the symptom's onset)."""
    follow_root_cause: bool = True
    """Decide on the diagnosed root cause: a symptom that another service's fault explains is
    left to that service's runbook, and a service's own runbooks are tried for its root cause
    first. Off, each service is decided on its own symptoms in the runbooks' priority order."""
    max_staleness: timedelta = timedelta(minutes=3)
    """Newest sample older than this: the service is not acted on (the data is stale)."""
    api_timeout_s: float = 5.0
    """Timeout of every Kubernetes API call, seconds (a hung API server costs this, once)."""
    max_forecast_growth: float = 5.0
    """A forecast above this many times the highest rate observed in the window is refused
    as untrustworthy rather than scaled to."""
    forecast_in_background: bool = False
    """Ask for a due forecast in a thread and plan on it once it has arrived, so a slow
    forecaster never delays detection: for a loop on the wall clock. Off, the tick waits for
    it, which keeps runs on a simulated clock (the lab, ``ooda chaos``) reproducible."""
    act_in_background: bool = False
    """Run an action that may wait on the cluster for minutes (``Action.waits``: a drain
    paced by PodDisruptionBudgets, an eviction) beside the ticks, and record it at the first
    tick after it returned; meanwhile nothing else acts on its workload or node, and the rest
    of the estate is watched and healed as usual. For a loop on the wall clock; off, the tick
    waits for it (runs on a simulated clock stay reproducible)."""


@dataclass(frozen=True)
class PolicySettings:
    """When the loop decides to act."""

    anomaly_threshold: float = 0.5
    """Anomaly score at and above which a service counts as anomalous."""
    forecast_quantile: str = "q90"
    """Forecast quantile used for capacity (the upper edge of the 80 % interval)."""
    lead_min: timedelta = timedelta(0)
    """Start of the forecast window the capacity must cover (0: from the next minute on; the
    near term carries a sudden surge, which a forecaster trained on seasonal traffic expects
    to fade further out)."""
    lead_max: timedelta = timedelta(minutes=30)
    """End of the forecast window the capacity must cover."""
    surge_ratio: float = 1.5
    """A surge: the newest request rate at least this many times its mean of the last hour
    (the lab's waves crest at x1.4). Lower, with a test on the newest minute's rise, caught
    ramps a minute earlier but also a wave's noisy minute during a crash loop (2026-12-03)."""
    surge_min_slope: float = 0.2
    """... and still rising by this share of that mean a minute or more (the steeper of the
    newest minute's rise and the last four minutes' fitted slope). Ordinary waves rise a few
    hundredths a minute; two or three overlapping on a daily peak pass x1.5 at 0.12-0.15 (seen
    on fresh seeds' clean weeks, the HPA alone keeping p95 under 140 ms); traffic x2.5-3.5 in
    2-6 minutes rises 0.25-1.25."""
    surge_ratio_alone: float = 2.0
    """... unless the rate stands this many times its hour's mean, rising or not (a surge's
    plateau; above what two waves on top of each other reach)."""
    surge_on_instant_rate: bool = True
    """Judge a surge's level where the rate stands now, its last two scrapes (PromQL's
    ``irate``), not the last minute's mean, which shows a ramp half a minute late; with
    ``surge_instant_climb``. Off: the minute's mean (detected before the unattended run's
    first breach minute 6 and 9 of 20 on seeds 7 and 23, against 13 and 15 on)."""
    surge_instant_climb: float = 0.1
    """... and, read so, still climbing in its last half minute: the rate now at least this
    share of its hour's mean above the last minute's mean (which is centred half a minute
    back; a rate rising ``surge_min_slope`` a minute stands 0.075 above it). Two waves on a
    daily peak (seed 23's clean Monday, 11:43) read x1.54 a minute before their minutes did,
    still rising 0.21 a minute, but their crest stood only 0.075 above: six false actions
    without this test. Traffic x3 stood 0.08-0.41 above at its first surging reading (seeds 7
    and 23, 40 draws). Measured with the runbook on the loop's own snapshots (2026-12-08):
    detected before breach 14 and 16 of 20 with no such test, 13 and 15 at 0.1, 11 and 12 at
    0.15; clean weeks of seeds 23, 31 and 41 (21 days) read no surge at 0.1."""
    instant_rate_min_rps: float = 5.0
    """With ``surge_on_instant_rate``, only for a service whose hour averaged at least this
    many requests a second; below, the minute's mean. At 5 rps two 15 s scrapes count 75
    requests, and x1.5 of that is 4 standard deviations of a Poisson count above it; at 1 rps
    it is 2."""
    ramp_lead: timedelta = timedelta(minutes=3)
    """During a surge, size for where the ramp will stand this far ahead (pod start-up plus
    the next scrape and sync)."""
    max_surge_factor: float = 5.0
    """A ramp is never extrapolated past this many times the rate's mean of the last hour."""
    surge_margin: float = 0.3
    """Raise the floor only when the forecast exceeds what the running pods serve at their
    target by this share: the reactive HPA follows ordinary growth (a daily ramp) itself."""
    default_target_utilisation: float = 0.6
    """CPU utilisation per pod the capacity plan aims at when the HPA names none."""
    limit_utilisation: float = 0.85
    """Capacity exhausted (the HPA floor at its maximum, the load still beyond it): the
    entry's Ingress lets in what the maximum of pods serves at this share of their CPU."""
    scale_in_after: timedelta = timedelta(minutes=10)
    """Observed load must have been low this long before a raised minimum is lowered."""
    rollout_window: timedelta = timedelta(minutes=30)
    """A crash loop in pods of a revision rolled out this recently is blamed on the rollout;
    one that began within this of a change to a ConfigMap the pods read, on the change."""
    crashloop_gap: timedelta = timedelta(minutes=5)
    """A workload free of crash-looping pods for less than this is still in the same crash
    loop (a container runs between its crashes; a replacement starts, then crashes)."""
    change_memory: timedelta = timedelta(hours=24)
    """How long the loop remembers a ConfigMap change it saw (``managedFields`` keep only
    each manager's newest write, so a later edit hides an earlier one)."""
    crash_backoff: tuple[timedelta, timedelta] = (timedelta(seconds=10), timedelta(minutes=5))
    """The kubelet's CrashLoopBackOff: first delay (doubling per restart) and cap; a crash
    loop's start is read back from its restart count with it."""
    spike_error_rate: float = 0.01
    """A 5xx spike: the error share over this (or ``spike_error_factor`` x the objective)..."""
    spike_error_factor: float = 10.0
    """... for ``spike_minutes`` minutes in a row."""
    spike_minutes: int = 2
    """Minutes the error share must stay over the spike level (a dead node's errors last
    less than one: its pods leave the endpoints after the grace period)."""
    rollout_error_lag: timedelta = timedelta(minutes=5)
    """A 5xx spike is blamed on a rollout only when it began this soon after it (the new
    pods take traffic within a couple of minutes)."""
    restart_minutes: int = 3
    """A 5xx spike with no rollout near, logged by the service's own pods, is healed by a
    rollout restart once it has lasted this many minutes (the node, database and upstream
    runbooks, which see their causes within two, have had their turn)."""
    restart_every: timedelta = timedelta(hours=1)
    """A workload restarted less than this ago is not restarted again: a wedge back so soon
    is no wedge a restart heals (the burn is escalated as unexplained)."""
    node_silent_after: timedelta = timedelta(seconds=20)
    """A node whose kubelet heartbeat trails the freshest node's by this much (two of the
    kubelet's 10 s Lease renewals missed, half the node controller's 40 s grace) while a
    service's pods there fail requests is drained before its condition turns NotReady."""
    node_silent_max_share: float = 0.5
    """... unless at least this share of the nodes trail together: then the control plane,
    not the nodes, is the likelier fault, and only the Ready condition is believed (the
    node controller stops evicting in a zone that is mostly out, for the same reason)."""
    retransmit_share: float = 0.01
    """A lossy path: a node retransmitting more than this share of its TCP segments."""
    trend_window: timedelta = timedelta(minutes=5)
    """How far back a resource's trend (disk, memory) is fitted to project when it runs out."""
    trend_min_fit: float = 0.9
    """R² a linear fit must reach before its projection is believed (noise is no trend)."""
    projection_lead: timedelta = timedelta(minutes=10)
    """Act when a resource is projected to run out this soon: time to move pods, with room."""
    disk_eviction_threshold: float = 0.10
    """The kubelets' ``evictionHard`` ``nodefs.available`` (Kubernetes' default 10 %)."""
    latency_inflation: float = 1.1
    """Saturation: p95 at least this many times its own normal (the median of the hour
    before) and projected across the objective within ``projection_lead``, or ..."""
    latency_inflation_alone: float = 1.5
    """... at least this many times its normal, whatever the trend (a histogram's buckets
    make a creeping p95 move in steps, which a line does not always fit), or already at
    ``latency_near_objective`` of the objective in both of its last two minutes ..."""
    latency_near_objective: float = 0.85
    """... this share of the p95 objective: a creep whose steps the line missed, a minute or
    two from the breach."""
    latency_inflation_cool: float = 1.3
    """... or at least this many times its normal while each pod's CPU is no higher than in
    the normal window: waiting no load explains, held under the objective only by pods the
    HPA will take away once a wave has passed (it then breaches at once)."""
    latency_cpu_margin: float = 1.1
    """... while the pods' CPU stays within this factor of the HPA's target (saturation the
    CPU shows is the HPA's to follow, a surge is the surge runbook's) ..."""
    latency_flat_rate: float = 1.1
    """... and the request rate within this factor of its level ten minutes before (a wave of
    load slows a service until the HPA catches up, which is not saturation), unless ..."""
    latency_idle_cpu: float = 0.85
    """... the CPU stays under this share of the HPA's target: then the HPA will not add a pod
    however the load grows."""
    latency_scale_step: float = 1.5
    """A saturated service's floor is raised to this many times its Ready pods, a step at a
    time while the p95 still climbs."""
    latency_hold: timedelta = timedelta(minutes=45)
    """A floor raised for saturation is stepped halfway back only after the p95 stayed well
    inside its objective this long (the slow path may still be there: a probe, not a
    release)."""
    db_read_latency_ms: float = 6.0
    """A slow database: the instance serving a service's reads takes this long per read
    (CloudWatch ``ReadLatency``; 4x a healthy RDS read) ..."""
    db_latency_factor: float = 3.0
    """... and this many times its own quickest minute of the last quarter hour (a database
    that is always that slow is its normal, not an incident) ..."""
    db_service_inflation: float = 1.15
    """... while the service's p95 stands this many times its own normal (the median of the
    hour before): the slow reads are felt."""
    db_write_latency_ms: float = 8.0
    """A sick primary: its writes take this long too (and ``db_latency_factor`` x their
    quickest minute; 2.7x a healthy write); then the writes move to the replica with the
    reads."""
    db_max_replica_lag_s: float = 30.0
    """Largest replica lag a database switch is made at: reads from a replica further
    behind are stale, writes sent to it lose what it has not replayed."""
    db_endpoint: str = "{instance}.{region}.rds.amazonaws.com"
    """DNS name of a database instance's endpoint, from its ``DBInstanceIdentifier`` and
    region (an RDS account puts its hash before the region: write it in)."""
    db_reader_service: str = "{database}-reader"
    """The ExternalName Service a database's reads resolve; its writes resolve the Service
    named as the database (the primary's identifier)."""
    db_cluster: str = "{database}"
    """The Aurora DB cluster of a database, failed over to the replica when the writes move
    ("": none, the replica takes writes as it is)."""

    consumer_min_deficit: float = 0.05
    """Kafka consumer lag: the group consumes at least this share less than is produced ..."""
    consumer_min_lag_s: float = 15.0
    """... its lag stands at this many seconds at least (a rebalance or a commit stalls a
    group for a few) ..."""
    consumer_drain: timedelta = timedelta(minutes=4)
    """... and then consumers are added to keep up with production and drain the backlog
    within this long (never past one per partition)."""
    consumer_target_utilisation: float = 0.8
    """Share of the consumers' measured throughput the sizing plans to use (the rest covers
    uneven partition assignment and the next minutes' growth)."""

    throttled_share: float = 0.01
    """Upstream throttling: an upstream backend answers 429 to more than this share of the
    calling service's attempts for ``spike_minutes`` in a row (each retry waits its
    ``Retry-After``, so a few percent already slow the service), while the service suffers;
    a secondary throttling this much is unhealthy."""
    throttled_latency_inflation: float = 1.2
    """... suffers: its error rate is over the objective, or its p95 stands this many times
    its median over the metrics the loop holds."""
    upstream_retries: int = 2
    """Retries the callers' HTTP client makes of a throttled call (its configuration), to
    tell the first attempts, which a route's weights split, from the retries."""
    upstream_headroom: float = 0.8
    """Send the throttling primary only this share of what it accepted, the rest to the
    secondary."""
    secondary_max_p95_ms: float = 100.0
    """A secondary whose calls' p95 exceeds this is unhealthy: no calls are shifted to it."""

    queue_poison_rps: float = 0.2
    """SQS poison messages: a queue's messages are received this many times a second more
    than they are deleted (receives that fail) ..."""
    queue_poison_minutes: int = 3
    """... for this many minutes in a row; then the messages received more than
    ``queue_poison_receives`` times move to its dead-letter queue."""
    queue_poison_receives: int = 3
    """A message received more often than this without being deleted is poison (CloudWatch
    takes the same three receives out of the age of the oldest message)."""
    queue_dead_letter_after: int = 5
    """While receives keep failing, the queue's RedrivePolicy ``maxReceiveCount`` is lowered to
    this (AWS suggests at least 5), so that SQS dead-letters the poison a redrive pass cannot
    see (in flight) or that is still being sent; it goes back to the count ooda found once
    the queue has stayed fresh for ``queue_scale_in_after`` (0: the policy is left alone)."""
    queue_redrive_max: int = 500
    """The most messages one redrive moves (it looks at twice as many at most)."""
    queue_min_age_s: float = 30.0
    """SQS backlog: the oldest message at least this old (a sub-minute wait is a poll) ...
    while the workers delete fewer than are sent and the age is projected (``trend_window``)
    to pass the freshness objective within ``projection_lead``; then workers are added."""
    queue_drain: timedelta = timedelta(minutes=5)
    """Workers are added to keep up with the sends and drain the backlog within this long."""
    queue_scale_in_after: timedelta = timedelta(minutes=30)
    """A floor raised for a queue goes back, in one step, no sooner than this after it was
    raised, and only while the queue has stayed fresh over the metric window: a worker
    slowdown or a send burst lasts a while and would come back at once."""


@dataclass(frozen=True)
class PredictiveSettings:
    """Predictive scaling: the HPA's floor follows the load forecast, so the HPA itself can
    run hotter (``hpa_target``) without breaching on a ramp it would follow too late."""

    enabled: bool = False
    """Set the floors at all (the loop heals without it; ``ooda chaos --predictive-days``
    turns it on for its week)."""
    hpa_target: float = 0.8
    """The CPU target the HPA runs at under predictive scaling (the estate's own setting;
    the reactive baseline keeps its 60 %)."""
    floor_utilisation: float = 0.75
    """The floor serves the forecast's upper quantile at this share of a pod's CPU, a little
    under ``hpa_target``: the HPA's own target is reached only by load beyond the forecast's
    upper quantile."""
    lead: timedelta = timedelta(minutes=15)
    """The forecast window the floor covers from now (a new pod serves after a minute and a
    half; the HPA scales down over five)."""
    quantile: str = "q90"
    """The forecast quantile the floor serves."""


@dataclass(frozen=True)
class ModelWatchSettings:
    """The live accuracy watch of the forecaster champion (``ooda._model_watch``)."""

    enabled: bool = True
    """Watch at all."""
    window: timedelta = timedelta(days=1)
    """The rolling window the live error is measured over (MASE's denominator is the
    seasonal naive forecast's error on the same points)."""
    judge_after: timedelta = timedelta(days=1)
    """The window the champion is judged on: worse than the baseline over the points that
    came true in the last ``judge_after`` (at least ``min_points`` of them: a broken model is
    caught within the first half hour), and the loop stops using it; back at or below the
    baseline over it, and the loop uses it again. A day: over 30 minutes a good forecaster
    loses to seasonal naive often by chance (``benchmarks/bench_forecast_cv.py``)."""
    min_points: int = 30
    """Forecast points (service-minutes) that must have come true in that window before
    anything is judged."""
    max_ratio: float = 1.0
    """The champion is worse than the baseline when its MAE over the window exceeds the
    baseline's times this (MASE above 1)."""
    rollback: bool = True
    """Move ``@champion`` back to the previous champion when that one forecasts the same
    window better (tags say ooda, why and the numbers); off: fall back only."""
    season: timedelta = timedelta(days=1)
    """The season of the seasonal naive baseline (the same minute yesterday; the value at
    the forecast's origin until a season of history has been seen)."""
    plan_on_best: bool = True
    """Plan capacity, per service, on whichever of the champion, seasonal naive and the last
    value forecast it best over ``window``, the band recalibrated from their errors
    (``ooda._forecast_plan``; a condemned champion is no candidate). Off: on the champion's
    answer while it is trusted, on nothing (the HPA reacts alone) when it is not."""
    min_completed: int = 10
    """Forecasts of the current version that must have come true, at every step, before the
    plan departs from the champion's answer (fewer give nothing to judge or calibrate by; at
    least ``models.MIN_CALIBRATION`` are needed whatever this says)."""


@dataclass(frozen=True)
class DetectorWatchSettings:
    """The live precision and recall of the detector champion (``ooda._detector_watch``)."""

    enabled: bool = True
    """Watch at all."""
    window: timedelta = timedelta(hours=6)
    """The rolling window precision and recall are measured over."""
    lead: timedelta = timedelta(minutes=15)
    """A minute called anomalous this close to an incident (before or after) is a true one."""
    min_breach: timedelta = timedelta(minutes=3)
    """An SLO breach this long is an incident (a verified heal is one however short)."""
    gap: timedelta = timedelta(minutes=15)
    """Incident minutes closer than this are one incident."""
    min_incidents: int = 2
    """Incidents in the window before the champion is judged."""
    margin: float = 0.1
    """The champion is condemned when its F1 is below the baseline's by more than this."""
    refit_every: timedelta = timedelta(hours=1)
    """How often the robust z-score baseline is refitted on the rows seen."""
    judge_every: timedelta = timedelta(minutes=1)
    """How often precision and recall are recomputed and the champion judged."""
    min_baseline_minutes: int = 60
    """Calm minutes of feature rows seen before the baseline is first fitted (until then
    nothing is judged)."""


@dataclass(frozen=True)
class LeaderSettings:
    """Leader election of ``ooda run`` replicas (client-go's defaults)."""

    enabled: bool = False
    """Elect a leader at all (a single replica need not)."""
    lease: str = "ooda-leader"
    """Name of the Lease object."""
    namespace: str | None = None
    """Namespace of the Lease (None: the services' namespace)."""
    lease_duration: timedelta = timedelta(seconds=15)
    """How long a standby waits after the last change it saw before it takes the Lease."""
    renew_deadline: timedelta = timedelta(seconds=10)
    """The leader stops acting when it has not renewed for this long."""
    retry_period: timedelta = timedelta(seconds=2)
    """Time between two attempts to acquire or renew."""


@dataclass(frozen=True)
class EscalationSettings:
    """Where escalations go."""

    alertmanager_url: str | None = None
    """Alertmanager's base URL (alerts go to ``/api/v2/alerts``); None: not used."""
    webhook_url: str | None = None
    """A generic webhook that receives each alert as JSON; None: not used."""
    incident_url: str = "ooda://audit/{audit_id}"
    """Link to the incident, ``{audit_id}`` filled in (a dashboard, the incident page)."""
    notify: bool = False
    """Also send the webhook a notice of every applied action and every heal verified
    (``OodaActionTaken``, ``OodaHealed``, severity info): what ooda did, for the team's chat.
    Alertmanager only ever gets what needs a human."""
    active_for: timedelta = timedelta(hours=1)
    """How long an alert stays firing unless posted again."""
    finding_every: timedelta = timedelta(hours=24)
    """A finding (``OodaFinding``: what the owners must still do after a heal) is opened at
    most once this long per subject and scenario: a leak restarted pod by pod is one."""
    finding_for: timedelta = timedelta(days=7)
    """How long a finding's alert stays open: it is a ticket for the owners' backlog."""
    finding_severity: str = "ticket"
    """The ``severity`` label of a finding, for Alertmanager's routes (not a page)."""
    unexplained_after: timedelta = timedelta(minutes=5)
    """A service outside its SLO this long in a row that no runbook diagnoses, with no action
    of ooda's awaiting its verdict, is escalated (``OodaNeedsHuman``): ooda cannot help it,
    and silence would leave the burn to a human's own alerts."""
    attempts: int = 3
    """Tries per delivery (backoff between them)."""
    timeout: timedelta = timedelta(seconds=5)
    """Per-request timeout."""


@dataclass(frozen=True)
class AutonomySettings:
    """How much the loop may do on its own, bounded by its own record."""

    failed_heals_per_week: int = 5
    """The healer's SLO: fewer than this many failed heals per action kind in a rolling week;
    a kind that reaches it drops to propose-only until old failures age out."""
    budget_window: timedelta = timedelta(days=7)
    """The rolling window of the failed-heal budget."""
    propose_only: frozenset[str] = frozenset({"restore_config_key"})
    """Action kinds that are only ever proposed (a human applies them): by default the edit
    of a person's configuration."""


@dataclass(frozen=True)
class VerifySettings:
    """How an action is judged."""

    deadline: timedelta = timedelta(minutes=10)
    """The SLI must be back within its SLO this soon after the action (a runbook may set its
    own)."""
    healthy_minutes: int = 2
    """Consecutive minutes inside the SLO that count as healed."""


@dataclass(frozen=True)
class ServingClientSettings:
    """How the loop reaches the Ray Serve endpoints."""

    base_url: str = "http://127.0.0.1:8000"
    """Root URL of the ooda Serve application."""
    timeout_s: float = 10.0
    """Per-request timeout."""
    horizon: int = 30
    """Forecast horizon requested, in minutes."""


@dataclass(frozen=True)
class DemoSettings:
    """The embedded demo: how much history, which scenarios, how long each runs."""

    history_days: float = 7.0
    """Simulated days of history the models are trained on."""
    seed: int = 11
    """Seed of the lab (traffic noise, incidents)."""
    warmup: timedelta = timedelta(minutes=10)
    """Live time before a fault is injected."""
    duration: timedelta = timedelta(minutes=45)
    """Live time after the fault is injected."""
    serve_port: int = 8000
    """Port Ray Serve binds to on 127.0.0.1."""
    scenarios: tuple[ScenarioId, ...] = tuple(ScenarioId)
    """The incidents the demo plays, one after the other (each loop on, then off)."""
    workers: int = 0
    """Processes the loop-on runs are spread over (0: one per CPU)."""


@dataclass(frozen=True)
class FailoverSettings:
    """Regional failover and failback of one public name (weighted Route 53 records)."""

    regions: tuple[str, ...] = ("eu-west-1", "eu-central-1")
    """The regions behind the name, home first: the others are standbys, tried in order."""
    hosted_zone_id: str = ""
    """The Route 53 hosted zone of the name (the lab's fleet fills it in)."""
    record: str = "shop.example.com."
    """The public name users resolve: one weighted record per region."""
    entries: tuple[str, ...] = ("frontend",)
    """The services users call: a region's availability and latency are theirs."""
    down_error_rate: float = 0.5
    """A region is down when at least this share of its users' requests fail ..."""
    down_minutes: int = 2
    """... for this many minutes in a row, or its probes fail that long: longer than the
    regional loop takes to heal one service (a restart, a rollback)."""
    brownout_error_rate: float = 0.02
    """A region browns out when at least this share of its users' requests fail (20 times the
    99.9 % objective's budget) ..."""
    brownout_minutes: int = 10
    """... for this many minutes in a row, though it serves (its probes pass): longer than its
    own loop takes to heal a service and verify it, so users move only for what the region
    does not heal itself."""
    hard_down_error_rate: float = 0.9
    """Above this share of failed requests the standby takes the users at once, without
    waiting for its capacity: an overloaded standby beats a dead home."""
    probe_floor: float = 0.9
    """Share of synthetic probes that must succeed for a region to count as serving."""
    max_replica_lag_s: float = 30.0
    """No failover to a standby whose database replicas lag more than this (writes lost)."""
    capacity_share: float = 0.8
    """Before users move, the standby runs at least this share of the pods the home ran in its
    last healthy minute (its HPA floors are raised to get there)."""
    prepare_timeout: timedelta = timedelta(minutes=3)
    """How long users wait for the standby's capacity before they move anyway."""
    failback_after: timedelta = timedelta(minutes=15)
    """The home serves (probes and SLIs) this long before users start moving back."""
    failback_backoff: float = 2.0
    """Each failback the home breaches in a row multiplies that wait by this, so a home that
    fails whenever users arrive costs a few of them a minute every few hours, not every
    quarter of an hour."""
    failback_after_max: timedelta = timedelta(hours=4)
    """The longest wait before a failback, however many aborted before it."""
    failback_steps: tuple[int, ...] = (10, 50, 100)
    """The home's share of the weight, in per cent, at each step of the failback."""
    step_minutes: int = 3
    """Minutes the home meets its SLO at one failback step before the next."""
    weight: int = 100
    """The total weight of the records (Route 53 allows 0..255 per record)."""
    settle: timedelta = timedelta(minutes=1)
    """How long resolvers take to follow new weights (the records' TTL): minutes before it
    do not count for the step's verdict."""


@dataclass(frozen=True)
class OodaSettings:
    """Everything one ooda process needs; pass it down explicitly."""

    namespace: str = "shop"
    """Kubernetes namespace of the services."""
    region: str = "eu-west-1"
    """Region the loop looks after."""
    nodes_on_demand: bool = False
    """The region's cluster adds nodes for Pending pods (cluster-autoscaler, Karpenter): a
    drain whose serving pods fit on no node goes ahead, and they wait Pending for the node it
    adds. Off: such a drain is refused and escalated (only more room lifts it)."""
    services: tuple[str, ...] = ("frontend", "checkout", "payments")
    """Services the loop looks after."""
    calls: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {"frontend": ("checkout",), "checkout": ("payments",)}
    )
    """The call graph: the services each service calls (a slow callee makes its callers slow
    too; a runbook acts where the slowness starts)."""
    dry_run: bool = False
    """Decide and log, but change nothing in the cluster."""
    workdir: Path = Path(".ooda")
    """Audit log, reports and other run output."""
    feature_dir: Path = Path("features/repo/data")
    """Data directory of the Feast repo (offline parquet, online SQLite, registry)."""
    slo: SloSettings = field(default_factory=SloSettings)
    """Service-level objectives (of every service without its own in ``slos``)."""
    slos: dict[str, SloSettings] = field(default_factory=dict)
    """Objectives of the services that have their own."""
    loop: LoopSettings = field(default_factory=LoopSettings)
    """Loop cadence."""
    policy: PolicySettings = field(default_factory=PolicySettings)
    """Decision thresholds."""
    verify: VerifySettings = field(default_factory=VerifySettings)
    """Verification of actions."""
    guard: GuardSettings = field(default_factory=GuardSettings)
    """Guard rails of the actuators."""
    autonomy: AutonomySettings = field(default_factory=AutonomySettings)
    """Failed-heal budget and propose-only kinds."""
    predictive: PredictiveSettings = field(default_factory=PredictiveSettings)
    """Floors that follow the load forecast (off by default)."""
    watch: ModelWatchSettings = field(default_factory=ModelWatchSettings)
    """The forecaster's live accuracy: fall back and roll back when it goes bad."""
    detector_watch: DetectorWatchSettings = field(default_factory=DetectorWatchSettings)
    """The detector's live precision and recall: fall back to a robust z-score when worse."""
    leader: LeaderSettings = field(default_factory=LeaderSettings)
    """Leader election of ``ooda run`` replicas (off: a single replica)."""
    escalation: EscalationSettings = field(default_factory=EscalationSettings)
    """Where the alerts of failed heals, open breakers and proposals go (none by default)."""
    serving: ServingClientSettings = field(default_factory=ServingClientSettings)
    """Scoring endpoints."""
    training: TrainingSettings = field(default_factory=TrainingSettings)
    """Training pipelines and registry."""
    demo: DemoSettings = field(default_factory=DemoSettings)
    """The embedded demo."""
    failover: FailoverSettings = field(default_factory=FailoverSettings)
    """Regional failover and failback (``ooda failover-drill``)."""

    def slo_for(self, service: str) -> SloSettings:
        """The objectives of ``service``."""
        return self.slos.get(service, self.slo)
