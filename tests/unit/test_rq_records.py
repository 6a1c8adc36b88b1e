"""RecordWriter: RQ's job records written off the answers' path, in batches, in order."""

from __future__ import annotations

import threading

import redis

from worker import rq_records
from worker.rq_books import ENDED, STARTED, STOPPED
from worker.rq_records import RecordWriter


class Job:
    def __init__(self, id_: str) -> None:
        self.id = id_


class Books:
    """Records each batch; the first write waits until `release` is set."""

    def __init__(self, failures: int = 0) -> None:
        self.batches: list[list[tuple[str, str, str | None]]] = []
        self.writing = threading.Event()
        self.release = threading.Event()
        self.failures = failures

    def record(self, records) -> None:
        if not self.batches and not self.writing.is_set():
            self.writing.set()
            self.release.wait(5)
        if self.failures:
            self.failures -= 1
            raise redis.ConnectionError("down")
        self.batches.append([(kind, job.id, status) for kind, job, status in records])


def test_records_that_come_in_during_a_write_go_together_in_the_next_in_order():
    books = Books()
    writer = RecordWriter(books, threading.Event())
    writer.start()
    a, b, c = Job("a"), Job("b"), Job("c")
    writer.started(a)
    assert books.writing.wait(5)
    writer.started(b)
    writer.ended(a, "done")
    writer.started(c)
    writer.stopped(b)
    books.release.set()
    writer.flush()
    assert books.batches == [
        [(STARTED, "a", None)],
        [(STARTED, "b", None), (ENDED, "a", "done"), (STARTED, "c", None), (STOPPED, "b", None)],
    ]
    writer.ended(c, "error")
    writer.close()
    assert books.batches[-1] == [(ENDED, "c", "error")]


def test_a_failed_batch_is_retried_whole(monkeypatch):
    monkeypatch.setattr(rq_records, "ATTEMPTS", 3)
    books = Books(failures=2)
    books.release.set()
    writer = RecordWriter(books, threading.Event())
    monkeypatch.setattr(writer._stopped, "wait", lambda delay: False)  # no backoff sleeps here
    writer.start()
    writer.started(Job("a"))
    writer.close()
    assert books.batches == [[(STARTED, "a", None)]]
