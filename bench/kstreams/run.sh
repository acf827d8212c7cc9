#!/usr/bin/env bash
# End-to-end check and rough timing of picstats-kstreams: produce a backlog of
# valid registrations with known totals, run the Streams app on it once per
# processing guarantee (fresh application id and output topic each time),
# wait for the exact expected final output, and report how long it took.
#
# Usage: bench/kstreams/run.sh [--records N] [--seed S] [--partitions P]
#          [--guarantees "exactly_once_v2 at_least_once"] [--topology dsl|preaggregate]
#          [--commit-interval-ms N] [--threads N] [--bootstrap HOST:PORT]
#
# Without --bootstrap it starts its own one-node broker (scripts/kafka) on free
# ports in a temporary folder and stops it at the end. It builds the jar if
# target/picstats-kstreams.jar is missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
jar=$here/target/picstats-kstreams.jar
kafka=$root/scripts/kafka
java=${JAVA:-java}

records=200000 seed=1 partitions=4 guarantees="exactly_once_v2 at_least_once"
topology=dsl bootstrap="" extra=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --records) records=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    --guarantees) guarantees=$2; shift 2 ;;
    --topology) topology=$2; shift 2 ;;
    --commit-interval-ms|--threads) extra+=("$1" "$2"); shift 2 ;;
    --bootstrap) bootstrap=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

[[ -f $jar ]] || mvn -q -B -f "$here/pom.xml" package -DskipTests

work=$(mktemp -d /tmp/picstats-kstreams-run.XXXXXX)
broker_dir=""
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -n $broker_dir ]] && "$kafka" stop --dir "$broker_dir" >/dev/null 2>&1 || true
}
trap cleanup EXIT

now_ms() { date +%s%3N; }

if [[ -z $bootstrap ]]; then
  read -r p1 p2 p3 < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
for s in ss: s.close()')
  broker_dir=$work/broker
  echo "starting a broker on 127.0.0.1:$p1 in $broker_dir"
  "$kafka" start --dir "$broker_dir" --port "$p1" --external-port "$p2" --controller-port "$p3" >"$work/broker-start.log" 2>&1 \
    || { cat "$work/broker-start.log"; exit 1; }
  bootstrap=127.0.0.1:$p1
fi

run=$(date +%s)-$$
input=picture-$run
echo "producing $records records (seed $seed) to $input ($partitions partitions)"
"$java" -jar "$jar" --produce "$records" --seed "$seed" --partitions "$partitions" \
  --bootstrap "$bootstrap" --input "$input" >"$work/expected.tsv"
echo "expected:"; sed 's/^/  /' "$work/expected.tsv"

status=0
for g in $guarantees; do
  app=picstats-kstreams-$g-$run
  output=stats-$g-$run
  echo "== $g (topology $topology, application id $app, output $output)"
  t0=$(now_ms)
  "$java" -jar "$jar" --await "$work/expected.tsv" --bootstrap "$bootstrap" --output "$output" \
    --timeout-ms 300000 >"$work/$g.await" 2>"$work/$g.await.err" &
  await_pid=$!; pids+=("$await_pid")
  "$java" -jar "$jar" --bootstrap "$bootstrap" --input "$input" --output "$output" \
    --application-id "$app" --guarantee "$g" --topology "$topology" \
    --state-dir "$work/state" "${extra[@]}" >"$work/$g.out" 2>"$work/$g.err" &
  app_pid=$!; pids+=("$app_pid")
  t_running=""
  while kill -0 "$app_pid" 2>/dev/null; do
    if [[ -z $t_running ]] && grep -q '^RUNNING$' "$work/$g.out"; then t_running=$(now_ms); fi
    if ! kill -0 "$await_pid" 2>/dev/null; then break; fi
    sleep 0.05
  done
  if wait "$await_pid"; then ok=yes; else ok=no; status=1; fi
  t_done=$(now_ms)
  [[ -n $t_running ]] || t_running=$t_done
  # CPU time of the app so far (JVM start and JIT included): steadier than
  # wall time on a shared machine.
  cpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f s user, %.1f s sys", $14/hz, $15/hz}' "/proc/$app_pid/stat" 2>/dev/null || echo "?")
  kill -TERM "$app_pid" 2>/dev/null || true
  rc=0; wait "$app_pid" || rc=$?
  echo "  final output correct: $ok (app exit status after SIGTERM: $rc)"
  echo "  start -> RUNNING: $((t_running - t0)) ms; RUNNING -> final output: $((t_done - t_running)) ms; start -> final output: $((t_done - t0)) ms; app CPU $cpu"
  if [[ $ok == no ]]; then
    echo "  got:"; sed 's/^/    /' "$work/$g.await"; tail -20 "$work/$g.err" | sed 's/^/  app: /'
  fi
  # An independent look with the console consumer: the last value of each key.
  if "$kafka" console-consumer --bootstrap-server "$bootstrap" --topic "$output" --from-beginning \
       --isolation-level read_committed --property print.key=true --timeout-ms 5000 \
       >"$work/$g.console" 2>/dev/null || true; then
    awk -F'\t' '{last[$1]=$2} END {for (k in last) print k "\t" last[k]}' "$work/$g.console" | sort >"$work/$g.last"
    if diff <(sort "$work/expected.tsv") "$work/$g.last" >/dev/null; then
      echo "  console consumer: last values = expected ($(wc -l <"$work/$g.console") output records)"
    else
      echo "  console consumer: last values DIFFER:"; sed 's/^/    /' "$work/$g.last"; status=1
    fi
  fi
done
echo "logs in $work"
exit $status
