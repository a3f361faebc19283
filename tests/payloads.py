"""Build notification payloads shaped exactly like osprofiler's own."""

import datetime
import uuid

EPOCH = datetime.datetime(2026, 11, 1, 12, 0, 0)


def ts(ms):
    """EPOCH + ms, formatted the way osprofiler formats timestamps."""
    moment = EPOCH + datetime.timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")


def new_id():
    return str(uuid.uuid4())


def event(name, phase, base_id, trace_id, parent_id, at_ms, info=None,
          project="nova", service="api", host="node-1"):
    payload = {"name": f"{name}-{phase}", "base_id": base_id,
               "trace_id": trace_id, "parent_id": parent_id,
               "timestamp": ts(at_ms), "project": project,
               "service": service, "info": dict(info or {}, host=host)}
    return payload


def call(name, base_id, parent_id, start_ms, stop_ms, trace_id=None,
         stop_info=None, **labels):
    """The start and stop payloads of one traced call."""
    trace_id = trace_id or new_id()
    return (event(name, "start", base_id, trace_id, parent_id, start_ms,
                  **labels),
            event(name, "stop", base_id, trace_id, parent_id, stop_ms,
                  info=stop_info, **labels))
