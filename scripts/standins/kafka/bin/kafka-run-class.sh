#!/bin/bash
# kafka-run-class.sh CLASS [ARGS...] of the apache/kafka stand-in image
# (scripts/compose-test): runs CLASS on the Kafka class path with Debian's
# Java 17. The real image ships Kafka's own, larger scripts instead.
set -euo pipefail
(($#)) || { echo "usage: kafka-run-class.sh CLASS [ARGS...]" >&2; exit 2; }
class=$1
shift
log4j=${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=/opt/kafka/config/tools-log4j2.yaml}
read -r -a heap <<<"${KAFKA_HEAP_OPTS:--Xmx256m}"
read -r -a perf <<<"${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
read -r -a opts <<<"${KAFKA_OPTS:-}"
exec java "${heap[@]}" "${perf[@]}" -Djava.awt.headless=true "$log4j" \
  ${opts[@]+"${opts[@]}"} -cp '/opt/kafka/libs/*' "$class" "$@"
