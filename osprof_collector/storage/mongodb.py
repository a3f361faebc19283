"""MongoDB storage: one document per span, one summary document per trace.

spans: _id is the trace_id; each time is a BSON date (milliseconds) plus
    its microsecond; payload keys are escaped; last_seen feeds the TTL.
traces: _id is the base_id; started_us and finished_us are microseconds
    since the UNIX epoch, exact under $min and $max where a BSON date would
    lose the microseconds; finished_at feeds the TTL.
workers: _id is "<host>/<worker_id>"; one heartbeat per collector worker,
    its times in microseconds since the UNIX epoch like the summaries'.

No write takes a lock: each is a single-document update, which MongoDB
applies atomically, built so that a redelivered span changes nothing and
the order of arrival does not matter.
"""

import collections
import datetime
import math
import re
from urllib import parse

from bson import errors as bson_errors
import pymongo
from pymongo import errors
from pymongo import uri_parser

from osprof_collector import spans as spans_mod
from osprof_collector.storage import base
from osprof_collector.storage import mask_password

DEFAULT_DATABASE = "osprofiler"
DUPLICATE_KEY = 11000
UNIX_EPOCH = datetime.datetime(1970, 1, 1)
# A top-level span whose start is still unknown ranks after every started
# one when choosing the root name (as in the SQL driver).
NOT_STARTED = (datetime.datetime.max - UNIX_EPOCH) // datetime.timedelta(
    microseconds=1)

TRACE_INDEXES = [
    pymongo.IndexModel([("started_us", pymongo.DESCENDING),
                        ("_id", pymongo.ASCENDING)]),
    pymongo.IndexModel("services"),
    pymongo.IndexModel("projects"),
    pymongo.IndexModel("root_name"),
    pymongo.IndexModel([("error", pymongo.ASCENDING),
                        ("started_us", pymongo.DESCENDING)]),
    pymongo.IndexModel("duration_ms"),
]


class MongoDBDriver(base.StorageDriver):

    expires_natively = True  # TTL indexes

    @classmethod
    def check_url(cls, url):
        try:
            uri_parser.parse_uri(url)
        except (errors.ConfigurationError, ValueError) as exc:
            raise base.ConfigurationError(
                f"{mask_password(url)}: invalid MongoDB URL: "
                f"{_without_password(str(exc), url)}") from None

    def __init__(self, url, ttl=None, create=True, client=None):
        super().__init__(url, ttl, create)
        if client is None:
            self.check_url(url)
        self._owns_client = client is None
        self.client = client
        try:
            if self._owns_client:
                # A reader (a command an operator waits for) gives up
                # sooner than the collector.
                self.client = pymongo.MongoClient(
                    url, serverSelectionTimeoutMS=5000 if create else 2000,
                    tz_aware=False)
            self.database = self.client.get_default_database(DEFAULT_DATABASE)
            self.spans = self.database["spans"]
            self.traces = self.database["traces"]
            self.workers = self.database["workers"]
            self.client.admin.command("ping")
            if not create:
                self._check_store()
                return
            self.spans.create_index("base_id")
            # span_latency() reads one service's spans over a time range
            self.spans.create_index([("service", pymongo.ASCENDING),
                                     ("started_at", pymongo.ASCENDING)])
            # the HTTP API's label and span name lists, and its searches
            self.spans.create_index(
                [(field, pymongo.ASCENDING)
                 for field in ("service", "project", "name", "started_at")])
            self.traces.create_indexes(TRACE_INDEXES)
            if self.ttl is not None:  # readers leave retention alone
                self._expire(self.spans, "last_seen")
                self._expire(self.traces, "finished_at")
        except errors.PyMongoError as exc:
            self.close()
            raise self._error("cannot prepare the database", exc) from None

    def _check_store(self):
        """NoStoreError unless the collector made the collections here."""
        names = set(self.database.list_collection_names())
        if not {self.spans.name, self.traces.name} <= names:
            self.close()
            raise base.NoStoreError(mask_password(self.url))

    def _expire(self, collection, field):
        """Keep the TTL index on field in line with self.ttl (0: none)."""
        name = f"{field}_1"
        current = collection.index_information().get(name, {}).get(
            "expireAfterSeconds")
        if self.ttl > 0 and current is None:
            collection.create_index(field, expireAfterSeconds=self.ttl)
        elif self.ttl > 0 and current != self.ttl:
            # The retention changed: alter the index instead of rebuilding.
            self.database.command("collMod", collection.name, index={
                "keyPattern": {field: 1}, "expireAfterSeconds": self.ttl})
        elif self.ttl <= 0 and current is not None:
            # ttl 0 keeps everything: an index left from before would not.
            collection.drop_index(name)

    def _error(self, what, exc):
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else ""
        # A server selection timeout goes on with pymongo's timeouts and
        # its whole topology: the error is what comes before.
        reason = re.split(r" \(configured timeouts|, Timeout: ", reason)[0]
        return base.StorageError(
            f"{mask_password(self.url)}: {what}: {type(exc).__name__}: "
            f"{_without_password(reason, self.url)}")

    def close(self):
        if self._owns_client and self.client is not None:
            self.client.close()

    # -- writing ---------------------------------------------------------

    def write_spans(self, partial_spans):
        merged = spans_mod.merge_by_trace_id(partial_spans)
        if not merged:
            return
        by_trace = collections.defaultdict(list)
        for span in merged:
            by_trace[span.base_id].append(span)
        # A batch costs the same four commands however many traces it
        # touches (more only to retry a duplicate key race).
        try:
            _upsert(self.spans, [
                pymongo.UpdateOne({"_id": s.trace_id}, _span_update(s),
                                  upsert=True) for s in merged])
            # Counted after this batch's spans are stored: a count covers
            # every span any writer stored before it, so the highest count
            # is exact, and a redelivery after a failed write repairs it.
            counts = self._span_counts(list(by_trace))
            _upsert(self.traces, [
                pymongo.UpdateOne({"_id": base_id}, _summary_update(
                    group, counts.get(base_id, 0)), upsert=True)
                for base_id, group in by_trace.items()])
            # These read the summary, so they follow in a second bulk.
            followups = []
            for base_id, group in by_trace.items():
                followups.append(_duration_update(base_id))
                followups.extend(_root_updates(base_id, group))
            self.traces.bulk_write(followups, ordered=False)
        # BSONError: a document the server would refuse (too large...)
        except (errors.PyMongoError, bson_errors.BSONError) as exc:
            raise self._error("write failed", exc) from None

    def _span_counts(self, base_ids):
        """{base_id: spans stored}, for all these traces in one command:
        one result a trace, all in the first batch."""
        return {doc["_id"]: doc["spans"] for doc in self.spans.aggregate(
            [{"$match": {"base_id": {"$in": base_ids}}},
             {"$group": {"_id": "$base_id", "spans": {"$sum": 1}}}],
            batchSize=len(base_ids) + 1)}

    def write_heartbeat(self, heartbeat):
        try:
            self.workers.replace_one({"_id": heartbeat.worker},
                                     _heartbeat_doc(heartbeat), upsert=True)
        except errors.PyMongoError as exc:
            raise self._error("heartbeat write failed", exc) from None

    # -- reading ---------------------------------------------------------

    def get_spans(self, base_id):
        if not isinstance(base_id, str):
            return []
        try:
            docs = list(self.spans.find({"base_id": base_id}))
        except errors.PyMongoError as exc:
            raise self._error("read failed", exc) from None
        return [_doc_span(doc) for doc in docs]

    def get_span(self, trace_id):
        if not isinstance(trace_id, str):
            return None
        try:
            doc = self.spans.find_one({"_id": trace_id})
        except errors.PyMongoError as exc:
            raise self._error("read failed", exc) from None
        return _doc_span(doc) if doc else None

    def get_start_times(self, trace_ids):
        try:
            docs = list(self.spans.find(
                {"_id": {"$in": list(trace_ids)},
                 "started_at": {"$ne": None}},
                {"started_at": 1, "started_at_microsecond": 1}))
        except errors.PyMongoError as exc:
            raise self._error("read failed", exc) from None
        return {doc["_id"]: _exact(doc, "started_at") for doc in docs}

    def get_trace(self, base_id):
        if not isinstance(base_id, str):
            return None
        try:
            doc = self.traces.find_one({"_id": base_id,
                                        "span_count": {"$gt": 0}})
        except errors.PyMongoError as exc:
            raise self._error("read failed", exc) from None
        return _doc_summary(doc) if doc else None

    def list_traces(self, trace_filter=None, limit=20):
        query = _trace_query(trace_filter or base.TraceFilter())
        if query is None:
            return []
        try:
            docs = list(self.traces.find(query)
                        .sort([("started_us", pymongo.DESCENDING),
                               ("_id", pymongo.ASCENDING)])
                        .limit(limit))
            return self._summaries(docs)
        except errors.PyMongoError as exc:
            raise self._error("read failed", exc) from None

    def _summaries(self, docs):
        """TraceSummary of each summary document, incomplete read from the
        spans of these traces only, through the base_id index."""
        if not docs:
            return []
        incomplete = set(self.spans.distinct("base_id", {
            "base_id": {"$in": [doc["_id"] for doc in docs]},
            "$or": [{"started_at": None}, {"finished_at": None}]}))
        return [_doc_summary(doc, doc["_id"] in incomplete) for doc in docs]

    def stats(self):
        try:
            totals = next(self.traces.aggregate([
                {"$match": {"span_count": {"$gt": 0}}},
                {"$group": {
                    "_id": None, "traces": {"$sum": 1},
                    "spans": {"$sum": "$span_count"},
                    "error_traces": {"$sum": {"$cond": ["$error", 1, 0]}},
                    "first_us": {"$min": "$started_us"},
                    "last_us": {"$max": "$finished_us"}}}]), {})
            per_service = list(self.spans.aggregate([
                {"$group": {"_id": "$service", "spans": {"$sum": 1}}}]))
        except errors.PyMongoError as exc:
            raise self._error("read failed", exc) from None
        # A missing service groups under null, as does an explicit one.
        spans_per_service = collections.Counter()
        for doc in per_service:
            spans_per_service[doc["_id"] or "?"] += doc["spans"]
        return {"traces": totals.get("traces", 0),
                "spans": totals.get("spans", 0),
                "error_traces": totals.get("error_traces", 0),
                "first_event": _from_micros(totals.get("first_us")),
                "last_event": _from_micros(totals.get("last_us")),
                "spans_per_service": dict(spans_per_service)}

    def span_latency(self, service, name=None, project=None, since=None,
                     until=None):
        match = _latency_match(service, name, project, since, until)
        if match is None:
            return []
        try:
            groups = list(self.spans.aggregate([
                {"$match": match},
                {"$group": {"_id": "$name", "count": {"$sum": 1},
                            "total": {"$sum": _DURATION_US},
                            "max": {"$max": _DURATION_US}}}]))
            return base.slowest_first(
                base.SpanLatency(
                    g["_id"], g["count"], g["total"] / g["count"] / 1000,
                    *(p / 1000 for p in self._percentiles(
                        {**match, "name": g["_id"]}, g["count"], g["max"])),
                    g["max"] / 1000)
                for g in groups)
        except errors.PyMongoError as exc:
            raise self._error("read failed", exc) from None

    def _percentiles(self, match, count, largest):
        """base.PERCENTILES of the durations of the spans match finds.
        Each rank needed is read alone ($sort, $skip, $limit: a bounded
        sort on the server), so no array of every duration is ever built
        ($percentile would need MongoDB 7.0)."""
        positions = [(count - 1) * p for p in base.PERCENTILES]
        ranks = {r for h in positions for r in (math.floor(h), math.ceil(h))}
        value = {}
        for rank in ranks:
            found = list(self.spans.aggregate(
                [{"$match": match}, {"$project": {"us": _DURATION_US}},
                 {"$sort": {"us": 1}}, {"$skip": rank}, {"$limit": 1}],
                allowDiskUse=True))
            # none if a purge removed spans since they were counted
            value[rank] = found[0]["us"] if found else largest
        return [value[math.floor(h)] + (h - math.floor(h)) * (
            value[math.ceil(h)] - value[math.floor(h)]) for h in positions]

    def span_labels(self):
        try:
            labels = [(project, service)
                      for service in self._distinct("service", {})
                      for project in self._distinct("project",
                                                    {"service": service})]
        except errors.PyMongoError as exc:
            raise self._error("read failed", exc) from None
        return sorted(labels, key=base.label_order)

    def span_names(self, label):
        project, service = label
        if not base.all_text(project, service):
            return []
        try:
            return self._distinct("name", {"service": service,
                                           "project": project})
        except errors.PyMongoError as exc:
            raise self._error("read failed", exc) from None

    def _distinct(self, field, query):
        """Distinct values of field, None first if a span lacks it (a
        query for None finds both a null and a missing field)."""
        values = sorted(v for v in self.spans.distinct(field, query)
                        if v is not None)
        if self.spans.find_one({**query, field: None}, {"_id": 1}):
            values.insert(0, None)
        return values

    def newest_spans(self, search):
        project, service = search.label
        query = {"service": service, "project": project,
                 "started_at": {"$ne": None}}
        if search.name is not None:
            query["name"] = search.name
        if not base.all_text(project, service, search.name):
            return
        bounds = []
        if search.since is not None:
            bounds.append(_started(search.since, "$gt", "$gte"))
        if search.until is not None:
            bounds.append(_started(search.until, "$lt", "$lte"))
        if bounds:
            query["$and"] = bounds
        fields = ("base_id", "started_at", "started_at_microsecond",
                  "finished_at", "finished_at_microsecond")
        try:
            for doc in (self.spans.find(query, {f: 1 for f in fields})
                        .sort("started_at", pymongo.DESCENDING)
                        .batch_size(200)):
                yield (doc["base_id"], _exact(doc, "started_at"),
                       _exact(doc, "finished_at"))
        except errors.PyMongoError as exc:
            raise self._error("read failed", exc) from None

    def service_links(self, since, until):
        links = collections.Counter()
        failed = collections.Counter()
        try:
            base_ids = [doc["_id"] for doc in self.traces.find(
                {"started_us": {"$gte": _micros(since),
                                "$lte": _micros(until)},
                 "span_count": {"$gt": 0}}, {"_id": 1})]
            for start in range(0, len(base_ids), 500):
                for group in self.spans.aggregate(_links_pipeline(
                        base_ids[start:start + 500])):
                    key = group["_id"]
                    pair = ((key.get("pp"), key.get("ps")),
                            (key.get("cp"), key.get("cs")))
                    if pair[0] != pair[1]:
                        links[pair] += group["calls"]
                        failed[pair] += group["errors"]
        except errors.PyMongoError as exc:
            raise self._error("read failed", exc) from None
        return [base.ServiceLink(parent, child, links[parent, child],
                                 failed[parent, child])
                for parent, child in sorted(
                    links, key=lambda pair: (base.label_order(pair[0]),
                                             base.label_order(pair[1])))]

    def get_heartbeats(self):
        try:
            docs = list(self.workers.find().sort("_id", pymongo.ASCENDING))
        except errors.PyMongoError as exc:
            raise self._error("read failed", exc) from None
        return [_doc_heartbeat(doc) for doc in docs]

    def count_older_than(self, older_than):
        try:
            return self.traces.count_documents(_older_than(older_than))
        except errors.PyMongoError as exc:
            raise self._error("read failed", exc) from None

    def purge(self, older_than):
        removed = 0
        try:
            base_ids = [doc["_id"] for doc in self.traces.find(
                _older_than(older_than), {"_id": 1})]
            for start in range(0, len(base_ids), 500):
                chunk = base_ids[start:start + 500]
                self.spans.delete_many({"base_id": {"$in": chunk}})
                removed += self.traces.delete_many(
                    {"_id": {"$in": chunk}}).deleted_count
        except errors.PyMongoError as exc:
            raise self._error("purge failed", exc) from None
        return removed


def _older_than(moment):
    """The traces purge() removes: last event before moment."""
    return {"finished_us": {"$lt": _micros(moment)}}


def _upsert(collection, requests):
    """Run upserts as one unordered bulk_write, until all are applied.

    Two writers upserting the same new _id at once can make one of them fail
    with a duplicate key error (the server retries most such upserts, not
    all): that upsert did nothing, and run again it updates the document the
    other writer inserted. Every update is idempotent, so retrying is safe.
    """
    while requests:
        try:
            collection.bulk_write(requests, ordered=False)
            return
        except errors.BulkWriteError as exc:
            details = exc.details
            failed = details["writeErrors"]
            if details["writeConcernErrors"] or any(
                    e["code"] != DUPLICATE_KEY for e in failed):
                raise
            requests = [requests[e["index"]] for e in failed]


def _span_update(span):
    # base_id, parent_id and name are the same in both halves of a span.
    update = {"$setOnInsert": {"base_id": span.base_id,
                               "parent_id": span.parent_id,
                               "name": span.name},
              "$max": {"last_seen": span.last_seen}}
    # Labels come with both halves: $min fills a missing one and, were the
    # halves ever to disagree, keeps the same one whatever the order.
    labels = {field: getattr(span, field)
              for field in ("project", "service", "host")
              if getattr(span, field) is not None}
    if labels:
        update["$min"] = labels
    # Every other field comes from one kind of event only (start or stop)
    # and a redelivered event brings the same values: $set fills what is
    # missing and rewrites what is known with itself.
    fields = {}
    for field in ("started_at", "finished_at"):
        value = getattr(span, field)
        if value is not None:
            fields[field] = value
            # dropped from the BSON date, which keeps milliseconds only
            fields[field + "_microsecond"] = value.microsecond
    for field in ("start_payload", "stop_payload", "error"):
        value = getattr(span, field)
        if value is not None:
            fields[field] = _escape(value)
    update["$set"] = fields
    return update


def _summary_update(group, span_count):
    """Fold one trace's spans of this batch, and its span count, into its
    summary."""
    first = min(s.first_seen for s in group)
    last = max(s.last_seen for s in group)
    return {
        "$min": {"started_us": _micros(first)},
        "$max": {"finished_us": _micros(last),
                 "finished_at": last,  # for the TTL index
                 "error": any(s.error is not None for s in group),
                 # spans are only added, so the highest count is the latest
                 "span_count": span_count},
        "$addToSet": {
            "services": {"$each": sorted({s.service for s in group
                                          if s.service is not None})},
            "projects": {"$each": sorted({s.project for s in group
                                          if s.project is not None})}},
    }


def _duration_update(base_id):
    # Recomputed from the stored bounds after every writer's $min/$max, so
    # the last one to finish leaves it right.
    return pymongo.UpdateOne({"_id": base_id}, [{"$set": {"duration_ms": {
        "$divide": [{"$subtract": ["$finished_us", "$started_us"]}, 1000]}}}])


def _root_updates(base_id, group):
    """Propose the group's earliest-started top-level span as the root.

    The stored root changes only for a candidate ranking before it (earlier
    start, then smaller name): a compare-and-set in one atomic update, so
    concurrent writers end on the earliest whatever the order.
    """
    candidates = [(_micros(s.started_at) if s.started_at else NOT_STARTED,
                   s.name) for s in group if s.parent_id == base_id]
    if not candidates:
        return []
    started_us, name = min(candidates)
    return [pymongo.UpdateOne(
        {"_id": base_id, "$or": [
            {"root_started_us": {"$exists": False}},
            {"root_started_us": {"$gt": started_us}},
            {"root_started_us": started_us, "root_name": {"$gt": name}}]},
        {"$set": {"root_started_us": started_us, "root_name": name}})]


def _trace_query(trace_filter):
    """The query for a TraceFilter, or None if it can match nothing.

    Names must be strings, compared for equality only: a caller's value is
    never read as an operator.
    """
    f = trace_filter
    query = {"span_count": {"$gt": 0}}
    for field, value in (("services", f.service), ("projects", f.project),
                         ("root_name", f.name)):
        if value is not None:
            if not isinstance(value, str):
                return None
            query[field] = value
    started = {}
    if f.since is not None:
        started["$gte"] = _micros(f.since)
    if f.until is not None:
        started["$lt"] = _micros(f.until)
    if started:
        query["started_us"] = started
    if f.errors_only:
        query["error"] = True
    duration = {}
    if f.min_duration_ms is not None:
        duration["$gte"] = f.min_duration_ms
    if f.max_duration_ms is not None:
        duration["$lte"] = f.max_duration_ms
    if duration:
        query["duration_ms"] = duration
    return query


def _links_pipeline(base_ids):
    """Spans of these traces joined to their parent span, counted per
    (parent label, child label)."""
    return [
        {"$match": {"base_id": {"$in": base_ids}}},
        {"$lookup": {"from": "spans", "localField": "parent_id",
                     "foreignField": "_id", "as": "parent"}},
        {"$unwind": "$parent"},
        {"$group": {
            "_id": {"pp": "$parent.project", "ps": "$parent.service",
                    "cp": "$project", "cs": "$service"},
            "calls": {"$sum": 1},
            # an error is a document (true); missing or null gives false
            "errors": {"$sum": {"$cond": [{"$ifNull": ["$error", False]},
                                          1, 0]}}}},
    ]


def _latency_match(service, name, project, since, until):
    """The $match of span_latency(), or None if it can match nothing."""
    match = {"finished_at": {"$ne": None}, "started_at": {"$ne": None}}
    for field, value in (("service", service), ("name", name),
                         ("project", project)):
        if value is not None:
            if not isinstance(value, str):
                return None
            match[field] = value
    bounds = []
    if since is not None:
        bounds.append(_started(since, "$gt", "$gte"))
    if until is not None:
        bounds.append(_started(until, "$lt", "$lt"))
    if bounds:
        match["$and"] = bounds
    return match


def _started(moment, other_ms, same_ms):
    """started_at compared with a moment to the microsecond: the stored
    date has only its millisecond, so within that millisecond the stored
    microsecond decides."""
    millisecond = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    return {"$or": [
        {"started_at": {other_ms: millisecond}},
        {"started_at": millisecond,
         "started_at_microsecond": {same_ms: moment.microsecond}}]}


# A span's exact duration in microseconds: the dates' difference (whole
# milliseconds) and what each time has beyond its millisecond.
_DURATION_US = {"$add": [
    {"$multiply": [{"$subtract": ["$finished_at", "$started_at"]}, 1000]},
    {"$mod": ["$finished_at_microsecond", 1000]},
    {"$multiply": [-1, {"$mod": ["$started_at_microsecond", 1000]}]}]}


def _doc_span(doc):
    return spans_mod.Span(
        trace_id=doc["_id"], base_id=doc["base_id"],
        parent_id=doc["parent_id"], name=doc["name"],
        project=doc.get("project"), service=doc.get("service"),
        host=doc.get("host"), started_at=_exact(doc, "started_at"),
        finished_at=_exact(doc, "finished_at"),
        error=_unescape(doc.get("error")),
        start_payload=_unescape(doc.get("start_payload")),
        stop_payload=_unescape(doc.get("stop_payload")))


def _doc_summary(doc, incomplete=None):
    return base.TraceSummary(
        base_id=doc["_id"], started_at=_from_micros(doc.get("started_us")),
        finished_at=_from_micros(doc.get("finished_us")),
        span_count=doc["span_count"],
        services=sorted(doc.get("services", [])),
        projects=sorted(doc.get("projects", [])), error=bool(doc.get("error")),
        root_name=doc.get("root_name"), incomplete=incomplete)


def _heartbeat_doc(heartbeat):
    last_write = heartbeat.last_write
    return {"host": heartbeat.host, "pid": heartbeat.pid,
            "started_us": _micros(heartbeat.started_at),
            "updated_us": _micros(heartbeat.updated_at),
            "counts": heartbeat.counts,
            "operations": heartbeat.operations,
            "last_write_us": None if last_write is None else _micros(
                last_write)}


def _doc_heartbeat(doc):
    return base.Heartbeat(
        worker=doc["_id"], host=doc["host"], pid=doc["pid"],
        started_at=_from_micros(doc["started_us"]),
        updated_at=_from_micros(doc["updated_us"]), counts=doc["counts"],
        last_write=_from_micros(doc["last_write_us"]),
        operations=doc.get("operations"))


def _exact(doc, field):
    value = doc.get(field)
    if value is None:
        return None
    return value.replace(microsecond=doc[field + "_microsecond"])


def _micros(moment):
    return (moment - UNIX_EPOCH) // datetime.timedelta(microseconds=1)


def _from_micros(micros):
    if micros is None:
        return None
    return UNIX_EPOCH + datetime.timedelta(microseconds=micros)


def _escape(value):
    """Make every key a plain field name, reversibly.

    MongoDB reads a key starting with $ as an operator and a dot as a path:
    % $ and . are percent-encoded, so _unescape() gives back the original.
    """
    if isinstance(value, dict):
        return {k.replace("%", "%25").replace("$", "%24").replace(".", "%2E"):
                _escape(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escape(v) for v in value]
    return value


def _unescape(value):
    if isinstance(value, dict):
        return {parse.unquote(k): _unescape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    return value


def _without_password(text, url):
    """text with the URL's password, if it shows, replaced by ***."""
    try:
        password = parse.urlsplit(url).password
    except ValueError:
        return text
    if not password:
        return text
    return text.replace(password, "***").replace(parse.unquote(password),
                                                 "***")
