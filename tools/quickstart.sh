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
#   PYTHON                           interpreter for the virtualenv
#
# The collector runs only while this script does; it is stopped with
# SIGTERM (its normal shutdown) when the script ends.

set -euo pipefail

PROG=quickstart
# shellcheck source=tools/run-tests.sh
source "$(dirname "${BASH_SOURCE[0]}")/run-tests.sh"

WORK=${OSPROF_COLLECTOR_QUICKSTART_DIR:-$ROOT/.quickstart}
TRANSPORT_URL=rabbit://guest:guest@127.0.0.1:5672/
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

cd "$ROOT"
ensure_rabbitmq
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
"$BIN/python" - "$STORE_URL" "$SENT" <<'EOF' || die "traces not stored in time; see $LOG_FILE"
import json
import sys
import time

from osprof_collector import storage

url, sent = sys.argv[1], sys.argv[2]
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
        print(f"{missing} spans still missing", file=sys.stderr)
        sys.exit(1)
    time.sleep(0.3)
store.close()
EOF

echo
if [[ -x $BIN/osprof-trace ]] &&
    LISTING=$("$BIN/osprof-trace" --connection "$STORE_URL" list \
        2>/dev/null </dev/null); then
    say "osprof-trace --connection $STORE_URL list"
    printf '%s\n' "$LISTING"
    FIRST=$(head -n 1 "$SENT" | "$BIN/python" -c \
        'import json, sys; print(json.load(sys.stdin)["base_id"])')
    echo
    say "osprof-trace --connection $STORE_URL show $FIRST"
    "$BIN/osprof-trace" --connection "$STORE_URL" show "$FIRST" </dev/null
else
    say "stored traces (newest first):"
    "$BIN/python" - "$STORE_URL" <<'EOF'
import collections
import sys

from osprof_collector import storage


def ms(start, end):
    if start is None or end is None:
        return "unfinished"
    return f"{(end - start).total_seconds() * 1000:.1f} ms"


def line(span):
    text = f"{span.name} [{span.service or '?'}] {ms(span.started_at, span.finished_at)}"
    if span.error:
        text += (f"  ERROR {span.error.get('etype', '?')}: "
                 f"{span.error.get('message', '')}")
    return text


def order(span):
    return (span.started_at is None, span.started_at or 0, span.trace_id)


store = storage.get_driver(sys.argv[1])
try:
    for trace in store.list_traces(limit=20):
        duration = trace.duration_ms
        print(f"\n{trace.base_id}  {trace.started_at or '?'}  "
              f"{'?' if duration is None else f'{duration:.1f}'} ms  "
              f"{trace.span_count} spans  {','.join(trace.services)}"
              f"{'  ERROR' if trace.error else ''}")
        spans = store.get_spans(trace.base_id)
        ids = {s.trace_id for s in spans}
        children = collections.defaultdict(list)
        for span in spans:
            parent = span.parent_id if span.parent_id in ids else None
            children[parent].append(span)
        seen = set()

        def show(span, depth):
            if span.trace_id in seen:
                return
            seen.add(span.trace_id)
            print("  " * depth + "- " + line(span))
            for child in sorted(children.get(span.trace_id, []), key=order):
                show(child, depth + 1)

        for root in sorted(children.get(None, []), key=order):
            show(root, 1)
        for span in sorted(spans, key=order):  # cycles: never lose a span
            show(span, 1)
finally:
    store.close()
EOF
fi

echo
say "database: $DB ($STORE_URL)"
say "log:      $LOG_FILE"
say "config:   $CONFIG"
cat <<EOF

Run it as a service: pip install the project, copy
etc/osprof-collector/osprof-collector.conf.sample to
/etc/osprof-collector/osprof-collector.conf and set [storage] connection,
install etc/systemd/osprof-collector.service, then
"systemctl enable --now osprof-collector" (README.rst, "Installing as a
service").
EOF
