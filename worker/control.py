"""Listening for cancel requests from gateways.

Each worker process SSUBSCRIBEs to a shard channel of its own
(Keys.control_channel); the leases it takes record that channel in the
stream's metadata, and a gateway's cancel SPUBLISHes the stream id there, so
on a cluster the message reaches one node and one worker, not every node.
Pub/sub is fire and forget, so the `cancel_requested` flag in the stream's
metadata, returned by every write, backs it up (and covers a cancel sent
while the listener was resubscribing).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from worker.generation import Generations

log = logging.getLogger(__name__)


class CancelListener:
    """A thread that cancels local generations named on this worker's channel.

    `client_factory` gives a fresh client on the node serving `channel`
    (asked again at each resubscription: after a failover it is another node)."""

    def __init__(self, client_factory: Callable[[], redis.Redis], channel: str, generations: Generations) -> None:
        self._client_factory = client_factory
        self._channel = channel
        self._generations = generations
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spool-cancel-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        delay = 0.5
        while not self._stopped.is_set():
            try:
                self._listen()
            except redis.RedisError as exc:
                log.warning("cancel listener lost Redis (%s); resubscribing in %.1fs", exc, delay)
            except Exception:
                log.exception("cancel listener failed; resubscribing in %.1fs", delay)
            else:
                continue
            time.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _listen(self) -> None:
        client = self._client_factory()
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.ssubscribe(self._channel)
            while not self._stopped.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message and message["type"] in ("smessage", "message"):
                    stream_id = message["data"].decode()
                    if self._generations.cancel(stream_id):
                        log.info("stream %s: cancel requested", stream_id)
        finally:
            pubsub.close()
            client.close()
