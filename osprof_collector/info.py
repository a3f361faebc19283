"""What osprofiler's info says about a span.

osprofiler's tracing hooks each add an entry to the info of the start
event: its WSGI middleware "request", its requests hook "requests", its
SQLAlchemy hook "db", traced functions "function"; the stop event may
carry results and errors. Events from other senders may put anything
there: an entry that is not a mapping reads as absent.
"""

# What a span is, from the entries of its start info (see kind()).
SERVER = "server"  # a request received through osprofiler's WSGI middleware
HTTP = "http"  # an HTTP call made through osprofiler's requests hook
DB = "db"  # an SQL statement run through osprofiler's SQLAlchemy hook
RPC = "rpc"  # a span named rpc, or a function of a module named *rpc*

# The info keys whose mappings the hooks above write.
HOOK_ENTRIES = ("request", "requests", "db", "function")


def start_info(span):
    return _mapping((span.start_payload or {}).get("info"))


def stop_info(span):
    return _mapping((span.stop_payload or {}).get("info"))


def entry(info, key):
    """info[key] if it is a mapping, else an empty one."""
    return _mapping(info.get(key))


def function_name(span, start=None):
    """The dotted name of a function traced by osprofiler, or None;
    start: the span's start_info(), when the caller has it already."""
    if start is None:
        start = start_info(span)
    name = entry(start, "function").get("name")
    return name if isinstance(name, str) else None


def statement(span):
    """(statement, params) osprofiler's SQLAlchemy hook recorded, or
    (None, None)."""
    db = entry(start_info(span), "db")
    if isinstance(db.get("statement"), str):
        return db["statement"], db.get("params")
    return None, None


def function_module(span, start=None):
    """Where a traced function lives: nova.compute.rpcapi.ComputeAPI for
    nova.compute.rpcapi.ComputeAPI.build_and_run_instance; or None."""
    name = function_name(span, start)
    return name.rsplit(".", 1)[0] if name and "." in name else None


def kind(span, start=None):
    """SERVER, HTTP, DB, RPC or None (anything else); start as for
    function_name()."""
    if start is None:
        start = start_info(span)
    for key, found in (("request", SERVER), ("requests", HTTP), ("db", DB)):
        if isinstance(start.get(key), dict):
            return found
    module = function_module(span, start) or ""
    if span.name == "rpc" or any("rpc" in part.lower()
                                 for part in module.split(".")):
        return RPC
    return None


def _mapping(value):
    return value if isinstance(value, dict) else {}
