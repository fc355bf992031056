"""A public name weighted over two regions, written through any Route 53 client."""

from __future__ import annotations

from typing import Any

NAME = "shop.example.com."
#: (region, weight, address) of each weighted record at start.
REGIONS = (("eu-west-1", 100, "198.51.100.10"), ("eu-central-1", 0, "198.51.100.11"))


def weighted_name(client: Any, zone: str, *extra: dict[str, Any]) -> None:
    """Create ``NAME``'s weighted A records in ``zone`` (and the ``extra`` record sets)."""
    changes = [
        {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": NAME,
                "Type": "A",
                "SetIdentifier": region,
                "Weight": weight,
                "TTL": 60,
                "ResourceRecords": [{"Value": address}],
            },
        }
        for region, weight, address in REGIONS
    ]
    changes += [{"Action": "CREATE", "ResourceRecordSet": record} for record in extra]
    client.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})
