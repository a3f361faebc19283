"""MongoDBDriver on an in-memory mongomock client, for the contract suite.

mongomock 4.3 cannot run the driver's bulk writes with pymongo >= 4.11:
every UpdateOne hands mongomock's bulk builder a ``sort`` argument it does
not know (TypeError). The driver keeps using pymongo's bulk_write, which a
real server runs; here each collection's bulk_write runs its UpdateOne
operations one at a time through mongomock's update_one and answers with
pymongo's own BulkWriteResult.

MongoDB applies each single-document update atomically; mongomock changes
stored documents in place without a lock, so a lock around every update
gives concurrent writers the server's guarantee. The reads that writers
make (aggregate, count_documents, distinct) take the same lock: mongomock
walks its dict of documents, which another thread's insert would change
under it ("dictionary changed size during iteration"), where a server
answers from a consistent view of each document.
"""

import threading

import mongomock
import pymongo
from pymongo import results

from osprof_collector.storage import mongodb

URL = "mongodb://localhost/osprof_test"


def driver_factory():
    """A callable opening drivers that all share one in-memory server
    (create=False: as storage.open_existing() opens them)."""
    client = _Client(mongomock.MongoClient(URL))
    return lambda ttl=None, create=True: mongodb.MongoDBDriver(
        URL, ttl=ttl, create=create, client=client)


class _Client:
    def __init__(self, client):
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self._client, name)

    def get_default_database(self, default=None):
        return _Database(self._client.get_default_database(default),
                         self._lock)


class _Database:
    def __init__(self, database, lock):
        self._database = database
        self._lock = lock

    def __getattr__(self, name):
        return getattr(self._database, name)

    def __getitem__(self, name):
        return _Collection(self._database[name], self._lock)


class _Collection:
    def __init__(self, collection, lock):
        self._collection = collection
        self._lock = lock

    def __getattr__(self, name):
        return getattr(self._collection, name)

    def aggregate(self, *args, **kwargs):
        with self._lock:
            return self._collection.aggregate(*args, **kwargs)

    def count_documents(self, *args, **kwargs):
        with self._lock:
            return self._collection.count_documents(*args, **kwargs)

    def distinct(self, *args, **kwargs):
        with self._lock:
            return self._collection.distinct(*args, **kwargs)

    def bulk_write(self, requests, ordered=True):
        upserted, matched, modified = [], 0, 0
        for index, request in enumerate(requests):
            if not isinstance(request, pymongo.UpdateOne):
                raise NotImplementedError(f"bulk {type(request).__name__}")
            with self._lock:
                result = self._collection.update_one(
                    request._filter, request._doc,
                    upsert=bool(request._upsert))
            if result.upserted_id is not None:
                upserted.append({"index": index, "_id": result.upserted_id})
            matched += result.matched_count
            modified += result.modified_count
        return results.BulkWriteResult(
            {"nInserted": 0, "nUpserted": len(upserted), "nMatched": matched,
             "nModified": modified, "nRemoved": 0, "upserted": upserted,
             "writeErrors": [], "writeConcernErrors": []},
            acknowledged=True)
