#!/bin/bash
# kafka-storage.sh of the apache/kafka stand-in image (scripts/compose-test)
exec /opt/kafka/bin/kafka-run-class.sh kafka.tools.StorageTool "$@"
