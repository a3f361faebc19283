#!/usr/bin/env bash
# Install osprof-collector and run it end to end on this machine:
# local RabbitMQ (installed and started when missing, as root) → collector
# → SQLite file, fed with real osprofiler traces, then show what was stored.
#
#   tools/quickstart.sh
#
# Environment:
#   OSPROF_COLLECTOR_VENV            virtualenv (default: <repo>/.venv)
#   OSPROF_COLLECTOR_QUICKSTART_DIR  config, database and log
#                                    (default: <repo>/.quickstart)
#   OSPROF_COLLECTOR_QUICKSTART_API_PORT
#                                    port of osprof-api (default: 9411)
#   OSPROF_COLLECTOR_QUICKSTART_VHOST
#                                    RabbitMQ vhost it creates, uses and
#                                    deletes (default: osprof-quickstart)
#   PYTHON                           interpreter for the virtualenv
#
# The collector runs only while this script does; it is stopped with
# SIGTERM (its normal shutdown) when the script ends.

set -euo pipefail

PROG=quickstart
# shellcheck source=tools/run-tests.sh
source "$(dirname "${BASH_SOURCE[0]}")/run-tests.sh"

WORK=${OSPROF_COLLECTOR_QUICKSTART_DIR:-$ROOT/.quickstart}
# A vhost of its own: another consumer of profiler.info on this broker (an
# installed collector, say) cannot take the traces it sends.
VHOST=${OSPROF_COLLECTOR_QUICKSTART_VHOST:-osprof-quickstart}
API_PORT=${OSPROF_COLLECTOR_QUICKSTART_API_PORT:-9411}
API_URL=http://127.0.0.1:$API_PORT/
TRANSPORT_URL=rabbit://guest:guest@127.0.0.1:5672/$VHOST
COLLECTOR_PID=

stop_collector() {
    local status=$?
    [[ -n $COLLECTOR_PID ]] || return 0
    local pid=$COLLECTOR_PID stat state collector_status=0
    COLLECTOR_PID=
    say "stopping the collector (SIGTERM to $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    # Give it a minute to store and ack what it holds, then insist.
    local deadline=$((SECONDS + 60))
    while [[ -r /proc/$pid/stat ]]; do
        stat=$(<"/proc/$pid/stat") || break
        state=${stat##*) }
        [[ ${state%% *} != Z ]] || break
        if ((SECONDS >= deadline)); then
            say "collector still running after 60s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    wait "$pid" || collector_status=$?
    say "collector exited with status $collector_status"
    rabbitmqctl -q delete_vhost "$VHOST" </dev/null >/dev/null 2>&1 || true
    if ((status == 0 && collector_status != 0)); then
        exit "$collector_status"
    fi
}
trap stop_collector EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for_log() {  # TEXT TIMEOUT
    local deadline=$((SECONDS + $2))
    until grep -qF -- "$1" "$LOG_FILE" 2>/dev/null; do
        if ! kill -0 "$COLLECTOR_PID" 2>/dev/null; then
            tail -n 30 "$LOG_FILE" >&2 || true
            die "the collector exited; its log is above ($LOG_FILE)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$LOG_FILE" >&2 || true
            die "no '$1' in $LOG_FILE after $2s"
        fi
        sleep 0.2
    done
}

# A new, empty vhost each run, so that nothing left by an earlier run is
# counted.
fresh_vhost() {
    rabbitmqctl -q delete_vhost "$VHOST" </dev/null >/dev/null 2>&1 || true
    rabbitmqctl -q add_vhost "$VHOST" </dev/null >/dev/null ||
        die "cannot create the RabbitMQ vhost $VHOST with rabbitmqctl"
    rabbitmqctl -q set_permissions -p "$VHOST" guest '.*' '.*' '.*' \
        </dev/null >/dev/null ||
        die "cannot let user guest use the RabbitMQ vhost $VHOST"
}

cd "$ROOT"
ensure_rabbitmq
fresh_vhost
say "using RabbitMQ vhost $VHOST ($TRANSPORT_URL)"
ensure_venv quickstart -e . osprofiler
BIN=$VENV/bin

mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
CONFIG=$WORK/osprof-collector.conf
LOG_FILE=$WORK/osprof-collector.log
DB=$WORK/traces.db
STORE_URL=sqlite:///$DB
SENT=$WORK/sent.jsonl
# Each run starts from an empty store, so what is shown is this run's.
rm -f "$DB" "$DB-wal" "$DB-shm" "$LOG_FILE" "$SENT"

cat >"$CONFIG" <<EOF
[DEFAULT]
transport_url = $TRANSPORT_URL
log_file = $LOG_FILE

[collector]
batch_timeout = 0.5
stats_interval = 5

[storage]
connection = $STORE_URL

[api]
port = $API_PORT
EOF
say "wrote $CONFIG"

say "starting osprof-collector --config-file $CONFIG"
"$BIN/osprof-collector" --config-file "$CONFIG" </dev/null >>"$LOG_FILE" 2>&1 &
COLLECTOR_PID=$!
wait_for_log "consuming topics" 60
say "collector running (pid $COLLECTOR_PID), consuming profiler.info"

# Real traces, sent by osprofiler's messaging driver the way an OpenStack
# service sends them: to its control exchange, topic profiler.
send() {  # EXCHANGE SERVICE SCENARIO COUNT
    say "sending $4 '$3' trace(s) as $1/$2 through osprofiler"
    "$BIN/python" -m tests.functional.producer "$TRANSPORT_URL" "$@" \
        </dev/null >>"$SENT" 2>"$WORK/producer.err" || {
        cat "$WORK/producer.err" >&2
        die "the osprofiler sender failed"
    }
}
send nova api nested 2
send cinder volume raises 1
send cinder volume dashes 1

say "waiting for the collector to store them"
"$BIN/python" - "$STORE_URL" "$SENT" "$LOG_FILE" <<'EOF' || die "traces not stored in time; see $LOG_FILE"
import json
import re
import sys
import time

from osprof_collector import storage

url, sent, log_file = sys.argv[1:]


def why():
    """What the collector's log says about the spans that did not come."""
    with open(log_file) as log:
        lines = log.read().splitlines()
    stats = [line for line in lines if " stats: " in line]
    problems = [line for line in lines
                if re.search(r" (ERROR|WARNING|CRITICAL) ", line)]
    said = [f"its last statistics: {stats[-1].split(' stats: ', 1)[1]}"
            if stats else "it logged no statistics yet"]
    said += [f"its last problem: {problems[-1]}"] if problems else []
    return "; ".join(said)

with open(sent) as f:
    traces = [json.loads(line) for line in f if line.strip()]
store = storage.get_driver(url)
deadline = time.monotonic() + 60
while True:
    missing = 0
    for trace in traces:
        stored = {s.trace_id: s for s in store.get_spans(trace["base_id"])}
        for span in trace["spans"]:
            got = stored.get(span["trace_id"])
            if (got is None or got.started_at is None
                    or (span["closed"] and got.finished_at is None)):
                missing += 1
    if not missing:
        print(f"all {len(traces)} traces stored")
        break
    if time.monotonic() > deadline:
        total = sum(len(trace["spans"]) for trace in traces)
        print(f"{missing} of {total} spans still missing after 60 s; "
              f"{why()}", file=sys.stderr)
        sys.exit(1)
    time.sleep(0.3)
store.close()
EOF

TRACE="$BIN/osprof-trace --connection $STORE_URL"
FIRST=$(head -n 1 "$SENT" | "$BIN/python" -c \
    'import json, sys; print(json.load(sys.stdin)["base_id"])')
echo
say "$TRACE list"
$TRACE list </dev/null
echo
say "$TRACE show $FIRST"
$TRACE show "$FIRST" </dev/null

# osprof-api on the same store, for a moment: the web UI and Grafana's
# data sources read it (started again by the command printed below).
API_LOG=$WORK/osprof-api.log
say "checking osprof-api on $API_URL"
"$BIN/osprof-api" --config-file "$CONFIG" --log-file "$API_LOG" \
    </dev/null 2>"$WORK/osprof-api.err" &
API_PID=$!
deadline=$((SECONDS + 30))
until grep -qF "Serving" "$API_LOG" 2>/dev/null; do
    if ! kill -0 "$API_PID" 2>/dev/null || ((SECONDS >= deadline)); then
        kill "$API_PID" 2>/dev/null || true
        cat "$WORK/osprof-api.err" >&2
        die "osprof-api did not start on port $API_PORT (set" \
            "OSPROF_COLLECTOR_QUICKSTART_API_PORT for another)"
    fi
    sleep 0.2
done
SERVICES=$("$BIN/python" -c 'import sys, urllib.request
page = urllib.request.urlopen(sys.argv[1]).read().decode()
assert "<title>osprof traces</title>" in page, "no web UI at " + sys.argv[1]
print(urllib.request.urlopen(sys.argv[1] + "api/v2/services").read().decode())' \
    "$API_URL") || { kill "$API_PID"; die "osprof-api did not answer"; }
say "web UI at $API_URL; $API_URL""api/v2/services: $SERVICES"
kill -TERM "$API_PID"
wait "$API_PID" || die "osprof-api did not stop cleanly; see $API_LOG"

echo
say "database: $DB ($STORE_URL)"
say "log:      $LOG_FILE"
say "config:   $CONFIG"
cat <<EOF

osprof-trace is installed in $BIN, which is not on your PATH. To read
this store again:

    export OSPROF_TRACE_CONNECTION=$STORE_URL
    $BIN/osprof-trace list
    $BIN/osprof-trace show $FIRST

Browse them in the web UI, and point Grafana's Zipkin or Jaeger data
source at the same URL:

    $BIN/osprof-api --config-file $CONFIG --log-file $API_LOG
    then open $API_URL

Run it as a service: pip install the project, copy
etc/osprof-collector/osprof-collector.conf.sample to
/etc/osprof-collector/osprof-collector.conf and set [storage] connection,
install etc/systemd/osprof-collector.service, then
"systemctl enable --now osprof-collector" (README.rst, "Installing as a
service").
EOF
