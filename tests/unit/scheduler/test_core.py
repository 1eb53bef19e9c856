"""The scheduler core, event by event: what each event changes and which actions it returns."""

from __future__ import annotations

from app.scheduler import events as ev
from app.scheduler.core import Core

GIB = 1 << 30


def core(budget: int = 10 * GIB, **limits: float) -> Core:
    specs = [ev.ModelSpec("a", 6 * GIB, 2, ttl=100), ev.ModelSpec("b", 6 * GIB, 2, ttl=100),
             ev.ModelSpec("p", 2 * GIB, 1, pinned=True)]
    return Core(specs, ev.Limits(budget=budget, **limits))  # type: ignore[arg-type]


def loaded(c: Core, model: str, rid: int = 1, now: float = 0.0) -> ev.Grant:
    """Request `model` and finish its load; returns the grant."""
    (load,) = [a for a in c.handle(ev.Arrive(rid, model, 1, now)) if isinstance(a, ev.StartLoad)]
    (grant,) = c.handle(ev.LoadDone(model, load.epoch, 0, now + 1))
    assert isinstance(grant, ev.Grant)
    return grant


def test_reads_do_not_change_anything() -> None:
    c = core()
    loaded(c, "a")
    before = (c.models(), c.reserved(), c.next_wakeup(), c.waiting())
    for _ in range(3):
        c.models(), c.model("a"), c.reserved(), c.next_wakeup()
    assert (c.models(), c.reserved(), c.next_wakeup(), c.waiting()) == before


def test_request_for_unloaded_model_starts_one_load_that_others_join() -> None:
    c = core()
    assert c.handle(ev.Arrive(1, "a", 1, 0.0)) == [ev.StartLoad("a", 1)]
    assert c.handle(ev.Arrive(2, "a", 1, 0.1)) == []  # joins
    assert c.model("a").status == "loading"  # type: ignore[union-attr]
    assert c.reserved() == 6 * GIB
    actions = c.handle(ev.LoadDone("a", 1, 5 * GIB, 2.0))
    assert actions == [ev.Grant(1, "a", 1, 1), ev.Grant(2, "a", 1, 1)]


def test_slots_are_counted_in_sequences() -> None:
    c = core()
    loaded(c, "a")  # rid 1 holds one of two slots
    assert c.handle(ev.Arrive(2, "a", 2, 3.0)) == []  # n=2 does not fit in the free slot
    assert c.handle(ev.Arrive(3, "a", 1, 3.1)) == []  # FIFO: not before the older n=2 request
    assert c.handle(ev.RequestEnded(1, True, 4.0)) == [ev.Grant(2, "a", 1, 2)]
    assert c.handle(ev.RequestEnded(2, True, 5.0)) == [ev.Grant(3, "a", 1, 1)]
    (reject,) = c.handle(ev.Arrive(4, "a", 3, 6.0))
    assert isinstance(reject, ev.Reject)
    assert reject.code == "invalid"
    assert "between 1 and 2" in reject.message


def test_slot_wait_ends_in_busy_with_retry_after() -> None:
    c = core(slot_wait=5.0)
    loaded(c, "a", rid=1)
    c.handle(ev.Arrive(2, "a", 1, 1.0))
    assert c.handle(ev.Arrive(3, "a", 1, 1.0)) == []
    assert c.next_wakeup() == 6.0
    (reject,) = c.handle(ev.Tick(6.0))
    assert isinstance(reject, ev.Reject)
    assert (reject.rid, reject.code, reject.retry_after) == (3, "busy", 5.0)


def test_explicit_load_of_a_busy_model_answers_at_once() -> None:
    c = core()
    loaded(c, "a", rid=1)
    c.handle(ev.Arrive(2, "a", 1, 1.0))  # both slots busy
    assert c.handle(ev.LoadRequest(3, "a", 2.0)) == [ev.Done(3, "a", True)]


def test_idle_model_is_evicted_busy_one_drained() -> None:
    c = core()
    loaded(c, "a", rid=1)
    c.handle(ev.RequestEnded(1, True, 2.0))
    actions = c.handle(ev.Arrive(2, "b", 1, 3.0))
    assert actions == [ev.StopWorker("a", 1, "memory")]
    assert c.reserved() == 6 * GIB  # held until the process is gone
    assert c.handle(ev.WorkerStopped("a", 1, 4.0)) == [ev.StartLoad("b", 1)]
    # b busy, a wanted (no queued requests on b: no swap guard): b drains, then stops
    c.handle(ev.LoadDone("b", 1, 0, 5.0))
    actions = c.handle(ev.Arrive(3, "a", 1, 6.0))
    assert actions == [ev.Drain("b", "memory")]
    assert c.handle(ev.RequestEnded(2, True, 7.0)) == [ev.StopWorker("b", 1, "memory")]


def test_ttl_unloads_idle_model_and_pinned_stays() -> None:
    c = core()
    loaded(c, "a", rid=1)
    (pin_load,) = c.handle(ev.Arrive(2, "p", 1, 0.0))
    c.handle(ev.LoadDone("p", 1, 0, 1.0))
    c.handle(ev.RequestEnded(1, True, 10.0))
    c.handle(ev.RequestEnded(2, True, 10.0))
    assert c.next_wakeup() == 110.0
    assert c.handle(ev.Tick(109.0)) == []
    assert c.handle(ev.Tick(110.0)) == [ev.StopWorker("a", 1, "ttl")]
    assert c.next_wakeup() is None  # p is pinned


def test_too_big_is_refused_with_sizes() -> None:
    c = core(budget=4 * GIB)
    (reject,) = c.handle(ev.Arrive(1, "a", 1, 0.0))
    assert isinstance(reject, ev.Reject)
    assert reject.code == "insufficient_memory"
    assert "needs 6.0 GiB, budget 4.0 GiB" in reject.message


def test_crash_loop_backs_off_then_explicit_load_retries() -> None:
    c = core(crash_limit=3, backoff=5.0)
    now = 0.0
    for attempt in range(1, 4):  # three deaths in a row: each request restarts it
        (start,) = [a for a in c.handle(ev.Arrive(attempt, "a", 1, now))
                    if isinstance(a, ev.StartLoad)]
        actions = c.handle(ev.LoadFailed("a", start.epoch, "SIGILL during warm-up", now + 1))
        assert isinstance(actions[0], ev.MarkFailed)
        assert actions[0].failures == attempt
        assert isinstance(actions[1], ev.Reject)
        assert actions[1].code == "load_failed"
        now += 2
    state = c.model("a")
    assert state is not None
    assert state.status == "failed"
    assert state.retry_at == now - 1 + 5.0
    (reject,) = c.handle(ev.Arrive(10, "a", 1, now))  # no restart: 503 with the reason
    assert isinstance(reject, ev.Reject)
    assert reject.code == "backoff"
    assert "SIGILL during warm-up" in reject.message
    assert reject.retry_after is not None
    assert reject.retry_after > 0
    # explicit load retries now; a success resets nothing until a request ran on it
    assert c.handle(ev.LoadRequest(11, "a", now)) == [ev.StartLoad("a", 4)]
    assert c.handle(ev.LoadDone("a", 4, 0, now + 1)) == [ev.Done(11, "a", True)]
    assert c.model("a").failures == 3  # type: ignore[union-attr]
    c.handle(ev.Arrive(12, "a", 1, now + 2))
    c.handle(ev.RequestEnded(12, True, now + 3))
    assert c.model("a").failures == 0  # type: ignore[union-attr]


def test_backoff_doubles_and_expires() -> None:
    c = core(crash_limit=1, backoff=5.0, backoff_cap=12.0)
    waits = []
    now = 0.0
    for rid in range(1, 5):
        (start,) = c.handle(ev.Arrive(rid, "a", 1, now))
        assert isinstance(start, ev.StartLoad)
        c.handle(ev.LoadFailed("a", start.epoch, "bad", now))
        retry_at = c.model("a").retry_at  # type: ignore[union-attr]
        assert retry_at is not None
        waits.append(retry_at - now)
        now = retry_at  # at expiry the next request tries again
    assert waits == [5.0, 10.0, 12.0, 12.0]


def test_worker_death_while_serving_counts_and_queued_requests_reload() -> None:
    c = core()
    loaded(c, "a", rid=1)
    c.handle(ev.Arrive(2, "a", 1, 1.0))
    c.handle(ev.Arrive(3, "a", 1, 1.0))  # waits for a slot
    actions = c.handle(ev.WorkerExited("a", 1, "killed by SIGKILL", 2.0))
    assert actions[0] == ev.MarkFailed("a", 1, "serving", "killed by SIGKILL", 1, None)
    assert actions[1:] == [ev.StartLoad("a", 2)]  # the waiting request reloads it
    assert c.reserved() == 6 * GIB
    assert c.handle(ev.RequestEnded(1, False, 2.1)) == []  # slots went with the worker
    assert c.handle(ev.LoadDone("a", 2, 0, 3.0)) == [ev.Grant(3, "a", 2, 1)]


def test_request_ending_on_a_dead_worker_marks_it_failed_before_the_exit_event() -> None:
    c = core()
    loaded(c, "a", rid=1)
    (mark,) = c.handle(ev.RequestEnded(1, False, 2.0))
    assert isinstance(mark, ev.MarkFailed)
    assert c.handle(ev.WorkerExited("a", 1, "exit code -9", 2.1)) == []
    assert c.model("a").failure == "exit code -9"  # type: ignore[union-attr]
    assert c.model("a").failures == 1  # type: ignore[union-attr]


def test_unload_waits_for_running_requests() -> None:
    c = core()
    loaded(c, "a", rid=1)
    assert c.handle(ev.UnloadRequest(2, "a", 1.0)) == [ev.Drain("a", "api")]
    assert c.handle(ev.RequestEnded(1, True, 2.0)) == [ev.StopWorker("a", 1, "api")]
    assert c.handle(ev.WorkerStopped("a", 1, 3.0)) == [ev.Done(2, "a", True)]
    assert c.handle(ev.UnloadRequest(3, "a", 4.0)) == [ev.Done(3, "a", False)]


def test_catalog_add_and_remove_a_loaded_model() -> None:
    c = core()
    loaded(c, "a", rid=1)
    c.handle(ev.Arrive(2, "a", 1, 1.0))
    c.handle(ev.Arrive(3, "a", 1, 1.0))
    new = ev.ModelSpec("c", GIB, 1)
    actions = c.handle(ev.CatalogChanged((new,), ("a",), 2.0))
    assert ev.Reject(3, "a", "not_found", "The model 'a' was removed") in actions
    assert ev.Drain("a", "removed") in actions
    assert [m.model_id for m in c.models()] == ["b", "c", "p"]
    c.handle(ev.RequestEnded(1, True, 3.0))
    assert c.handle(ev.RequestEnded(2, True, 3.0)) == [ev.StopWorker("a", 1, "removed")]
    assert c.handle(ev.WorkerStopped("a", 1, 4.0)) == [ev.Forget("a")]
    assert c.reserved() == 0
    (reject,) = c.handle(ev.Arrive(5, "a", 1, 5.0))
    assert isinstance(reject, ev.Reject)
    assert reject.code == "not_found"


def test_queue_bound() -> None:
    c = core(max_waiting=1)
    c.handle(ev.Arrive(1, "a", 1, 0.0))
    (reject,) = c.handle(ev.Arrive(2, "a", 1, 0.0))
    assert isinstance(reject, ev.Reject)
    assert reject.code == "queue_full"


def test_cancelled_waiter_leaves_the_queue() -> None:
    c = core()
    c.handle(ev.Arrive(1, "a", 1, 0.0))
    c.handle(ev.Cancelled(1, 0.5))
    assert c.waiting() == 0
    assert c.handle(ev.LoadDone("a", 1, 0, 1.0)) == []  # no one to grant
