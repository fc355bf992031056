"""Feature definitions of the ooda repo, as module-level objects for the Feast CLI.

The objects come from `features._definitions.build_definitions`, the same function the
library uses, so `feast apply` here and `features.apply()` register identical repos.
"""

from __future__ import annotations

from pathlib import Path

from features._definitions import build_definitions

_definitions = build_definitions(str(Path(__file__).resolve().parent / "data"))

service = _definitions.service
service_metrics_source = _definitions.metrics_source
service_metrics_push = _definitions.push_source
service_metrics = _definitions.service_metrics
service_rolling = _definitions.service_rolling
service_families_source = _definitions.rollup_source
service_families_push = _definitions.rollup_push
service_families = _definitions.service_families
detector_v2 = _definitions.detector_v2
forecaster_v1 = _definitions.forecaster_v1

# One feature view per metric family (pods, nodes, databases, Kafka, queues, upstream APIs),
# with their entities and sources, under the names Feast registers them by.
globals().update({obj.name: obj for obj in _definitions.families.objects()})
