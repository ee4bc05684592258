"""The controller's work queue: a key is worked on by one worker at a time, queued once however
often it changes, and retried with a doubling backoff until it succeeds."""

from __future__ import annotations

import threading

from runtime.controller.workqueue import WorkQueue


def test_a_key_is_queued_once_and_never_worked_on_twice_at_once() -> None:
    queue = WorkQueue()
    for _ in range(3):
        queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    assert queue.get() == "a"
    queue.add("a")  # changed while being worked on: queued again only when done
    assert queue.get() == "b" and len(queue) == 0
    queue.done("a")
    assert queue.get() == "a"


def test_retries_back_off_doubling_until_forgotten() -> None:
    queue = WorkQueue(base_delay=0.001, max_delay=0.004)
    assert [queue.retry("k") for _ in range(4)] == [0.001, 0.002, 0.004, 0.004]
    queue.forget("k")
    assert queue.retry("k") == 0.001
    assert queue.get() == "k"  # the delayed key arrives


def test_shutdown_releases_waiting_workers() -> None:
    queue = WorkQueue()
    got = []
    worker = threading.Thread(target=lambda: got.append(queue.get()))
    worker.start()
    queue.shutdown()
    worker.join(5)
    assert got == [None]
