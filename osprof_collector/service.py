"""One collector worker process: broker listener → endpoint → store."""

import datetime
import gc
import logging
import os
import socket
import sys
import threading
import time

import amqp.exceptions
import cotyledon
import oslo_messaging

from osprof_collector import broker
from osprof_collector import endpoint as endpoint_mod
from osprof_collector import exits
from osprof_collector import storage
from osprof_collector.storage import base as storage_base

LOG = logging.getLogger(__name__)


def targets(conf):
    """Every topic on every control exchange the services may send to."""
    return [oslo_messaging.Target(topic=topic, exchange=exchange)
            for topic in conf.collector.topics
            for exchange in conf.collector.exchanges]


# What RabbitMQ answers to credentials or a vhost it refuses: retrying
# cannot help, the configuration must change.
BROKER_REFUSALS = (amqp.exceptions.AccessRefused, amqp.exceptions.NotAllowed)


def connect_store(conf):
    """The store, or FatalError if it refuses the URL or stays unreachable
    for [storage] max_retries attempts."""
    url = conf.storage.connection
    try:
        return storage.connect(url, ttl=conf.storage.ttl,
                               max_attempts=conf.storage.max_retries,
                               max_interval=conf.storage.retry_interval_max)
    except storage.ConfigurationError as exc:
        raise exits.FatalError(exits.CONFIG, f"store refused: {exc}") from None
    except storage.StorageError as exc:
        raise exits.FatalError(
            exits.UNAVAILABLE,
            f"store {storage.address(url)} still unreachable after "
            f"{conf.storage.max_retries} attempts ([storage] max_retries): "
            f"{exc}") from None


class CollectorWorker(cotyledon.Service):
    name = "osprof-collector worker"

    def __init__(self, worker_id, conf):
        super().__init__(worker_id)
        self.conf = conf
        self.stats = endpoint_mod.Stats()
        self.stopping = threading.Event()
        self.listener = None
        self.consuming = threading.Event()  # listener.start() returned
        self.store = None
        self.transport = None
        self.host = socket.gethostname()
        self.started_at = datetime.datetime.utcnow()

    def run(self):
        try:
            self._start()
        except exits.FatalError as exc:
            fatal = exc
        else:
            self._run_periodic_tasks()
            return
        # Said outside the except block, so that the log line carries no
        # exception summary: one line. A worker stopped by the master
        # because another met the same error keeps quiet.
        if not self.stopping.is_set():
            exits.report(self.conf, f"Worker {self.worker_id}: {fatal}")
        sys.exit(fatal.status)  # the master then stops the daemon

    def _start(self):
        # Connections are made here, after the fork, never inherited.
        conf = self.conf
        broker.name_the_broker_in_retry_lines(conf)
        self.store = connect_store(conf)
        LOG.info("Worker %s storing in %s", self.worker_id,
                 storage.mask_password(conf.storage.connection))
        self._heartbeat()
        self.transport = oslo_messaging.get_notification_transport(conf)
        endpoint = endpoint_mod.ProfilerEndpoint(
            self.store, self.stats,
            max_info_bytes=conf.collector.max_info_bytes,
            backoff=endpoint_mod.Backoff(
                maximum=conf.collector.requeue_backoff_max,
                stopping=self.stopping))
        self.listener = oslo_messaging.get_batch_notification_listener(
            self.transport, targets(conf), [endpoint], executor="threading",
            allow_requeue=True, pool=conf.collector.pool,
            batch_size=conf.collector.batch_size,
            batch_timeout=conf.collector.batch_timeout)
        # What exists now (modules, connections, configuration) lives as
        # long as the worker: keep it out of the garbage collector's full
        # collections, which scanned it all again and again during a drain
        # (a tenth of a busy worker's CPU).
        gc.freeze()
        try:
            # Connects to the broker, retrying while it is unreachable.
            self.listener.start()
        except BROKER_REFUSALS as exc:
            raise exits.FatalError(
                exits.CONFIG, f"broker {broker.address(conf)} refused the "
                f"connection: {exc}") from None
        self.consuming.set()
        LOG.info("Worker %s consuming topics %s on exchanges %s",
                 self.worker_id, ",".join(conf.collector.topics),
                 ",".join(conf.collector.exchanges))

    def _run_periodic_tasks(self):
        conf = self.conf
        now = time.monotonic()
        # (interval, task), and when each runs next
        tasks = [(conf.collector.heartbeat_interval, self._heartbeat)]
        due = [now + conf.collector.heartbeat_interval]  # run() wrote one
        if conf.collector.stats_interval:
            tasks.append((conf.collector.stats_interval, self._log_stats))
            due.append(now + conf.collector.stats_interval)
        if (self.worker_id == 0 and conf.storage.ttl
                and not self.store.expires_natively):
            tasks.append((conf.storage.purge_interval, self._expire))
            due.append(now)  # what expired while we were down goes first
        while True:
            now = time.monotonic()
            for n, (interval, task) in enumerate(tasks):
                if now >= due[n]:
                    task()
                    due[n] = now + interval
            if self.stopping.wait(max(0, min(due) - time.monotonic())):
                return

    def _log_stats(self):
        LOG.info("Worker %s stats: %s", self.worker_id, self.stats.line())

    def _expire(self):
        try:
            removed = self.store.expire()
        except storage.StorageError as exc:
            LOG.error("Purge of expired traces failed: %s", exc)
            return
        LOG.info("Purged %d traces older than the %d s ttl", removed,
                 self.conf.storage.ttl)

    def _heartbeat(self):
        counts, last_write = self.stats.snapshot()
        heartbeat = storage_base.Heartbeat(
            worker=f"{self.host}/{self.worker_id}", host=self.host,
            pid=os.getpid(), started_at=self.started_at,
            updated_at=datetime.datetime.utcnow(), counts=counts,
            last_write=last_write,
            operations=self.stats.operations.snapshot())
        try:
            self.store.write_heartbeat(heartbeat)
        except Exception as exc:  # health reports must never stop the work
            LOG.error("Worker %s heartbeat write failed: %s", self.worker_id,
                      exc, exc_info=not isinstance(exc, storage.StorageError))

    def terminate(self):
        self.stopping.set()
        if self.consuming.is_set():
            # stop() ends consumption; wait() lets the batches in hand
            # finish, so they are stored and acked before we exit.
            self.listener.stop()
            self.listener.wait()
            self.transport.cleanup()
        # Else start() is still trying to reach the broker: stop() would
        # wait for it, and nothing was received, so nothing is left to ack.
        if self.store is not None:
            self._heartbeat()  # with the final counts
            self.store.close()
        LOG.info("Worker %s stopped: %s", self.worker_id, self.stats.line())
