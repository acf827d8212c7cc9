#!/bin/bash
# kafka-broker-api-versions.sh of the apache/kafka stand-in image (scripts/compose-test)
exec /opt/kafka/bin/kafka-run-class.sh org.apache.kafka.tools.BrokerApiVersionsCommand "$@"
