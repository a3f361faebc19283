"""Real osprofiler events, and osprofiler's own report of them."""

import copy

from osprofiler import notifier
from osprofiler import profiler
from osprofiler.drivers import base as osprofiler_base


def capture(scenario, project="nova", service="api"):
    """Run scenario() under the real profiler; return the payloads it sent,
    with project and service added as osprofiler's messaging driver adds
    them."""
    sent = []

    def notify(info, context=None):
        info["project"], info["service"] = project, service
        sent.append(copy.deepcopy(info))

    previous = notifier.get()
    notifier.set(notify)
    try:
        profiler.init("SECRET_KEY")
        scenario()
        base_id = profiler.get().get_base_id()
    finally:
        profiler.clean()
        notifier.set(previous)
    return base_id, sent


def osprofiler_report(raw_events):
    """What osprofiler's Driver._append_results + _parse_results return."""
    driver = osprofiler_base.Driver("reference://")
    for n in raw_events:
        driver._append_results(n["trace_id"], n["parent_id"], n["name"],
                               n["project"], n["service"], n["info"]["host"],
                               n["timestamp"], n)
    return driver._parse_results()


def assert_same_report(ours, theirs):
    """Node by node: same ids, nesting, offsets, exception and payloads;
    osprofiler cuts names at the first dash, ours are whole."""
    assert ours["info"]["started"] == theirs["info"]["started"]
    assert ours["info"]["finished"] == theirs["info"]["finished"]
    assert ours["info"]["last_trace_started"] == \
        theirs["info"]["last_trace_started"]
    assert ours["info"]["name"] == theirs["info"]["name"] == "total"
    folded = {}
    for name, entry in ours["stats"].items():
        into = folded.setdefault(name.split("-")[0],
                                 {"count": 0, "duration": 0})
        into["count"] += entry["count"]
        into["duration"] += entry["duration"]
    assert folded == theirs["stats"]
    _assert_same_children(ours["children"], theirs["children"])


def _assert_same_children(ours, theirs):
    def key(node):
        return node["info"]["started"], node["trace_id"]
    assert [n["trace_id"] for n in sorted(ours, key=key)] == \
        [n["trace_id"] for n in sorted(theirs, key=key)]
    assert [n["info"]["started"] for n in ours] == \
        [n["info"]["started"] for n in theirs]  # both sorted by start
    for mine, reference in zip(sorted(ours, key=key),
                               sorted(theirs, key=key)):
        assert mine["parent_id"] == reference["parent_id"]
        for field, value in reference["info"].items():
            if field == "name":
                assert mine["info"]["name"].split("-")[0] == value
                assert mine["info"]["name"].startswith(value)
            else:
                assert mine["info"][field] == value, field
        _assert_same_children(mine["children"], reference["children"])
