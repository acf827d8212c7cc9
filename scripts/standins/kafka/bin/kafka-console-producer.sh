#!/bin/bash
# kafka-console-producer.sh of the apache/kafka stand-in image (scripts/compose-test)
exec /opt/kafka/bin/kafka-run-class.sh org.apache.kafka.tools.ConsoleProducer "$@"
