#!/usr/bin/env bash
# The jars of a single-node Apache Kafka broker (KRaft) from Maven Central, into
# ${OODA_KAFKA_CACHE:-~/.cache/ooda/kafka}/<version>/libs; a no-op once they are there.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
cache="${OODA_KAFKA_CACHE:-$HOME/.cache/ooda/kafka}/$version"
if [ -f "$cache/libs/.complete" ]; then
  exit 0
fi
command -v mvn >/dev/null || { echo "mvn is needed to fetch the Kafka jars" >&2; exit 1; }
rm -rf "$cache/libs"
mkdir -p "$cache/libs"
mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$cache/libs"
touch "$cache/libs/.complete"
echo "Kafka $version: $(ls "$cache/libs" | wc -l) jars in $cache/libs"
