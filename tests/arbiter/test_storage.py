"""Storage: migrations, idempotent inserts, leases and optimistic concurrency on both databases."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from arbiter.errors import ConflictingJob, ConflictingResult, LeaseLost, NotFound, StorageError
from arbiter.storage import Store, open_database


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'arbiter.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    db = open_database(url)
    yield Store(db)
    db.close()


def _new_dispute(store: Store) -> str:
    job = uuid.uuid4().hex
    store.put_job(job, '{"job": 1}')
    did = uuid.uuid4().hex
    store.create_dispute(did, job, '{"phase": "steps"}')
    return did


def test_only_one_arbiter_can_claim_a_dispute(store: Store) -> None:
    did = _new_dispute(store)
    first = store.claim("arbiter-a", lease_s=30, dispute_id=did)
    assert first is not None and first.owner == "arbiter-a"
    assert store.claim("arbiter-b", lease_s=30, dispute_id=did) is None


def test_an_expired_lease_is_taken_over_and_the_old_owner_is_fenced(store: Store) -> None:
    did = _new_dispute(store)
    old = store.claim("arbiter-a", lease_s=0.05, dispute_id=did)
    assert old is not None
    time.sleep(0.1)
    new = store.claim("arbiter-b", lease_s=30, dispute_id=did)
    assert new is not None and new.owner == "arbiter-b"
    with pytest.raises(LeaseLost):
        store.advance(old, "arbiter-a", lease_s=30, phase="x", rounds=1,
                      event_kind="round", event_payload_json="{}")
    advanced = store.advance(new, "arbiter-b", lease_s=30, phase="ops", rounds=2,
                             event_kind="round", event_payload_json='{"r": 1}')
    assert (advanced.phase, advanced.rounds) == ("ops", 2)
    assert [e.kind for e in store.events(did)] == ["opened", "round"]


def test_finish_records_the_verdict_and_provider_scores(store: Store) -> None:
    did = _new_dispute(store)
    rec = store.claim("arbiter-a", lease_s=30, dispute_id=did)
    assert rec is not None
    done = store.finish(rec, "arbiter-a", verdict_json='{"winner": "aa"}',
                        certificate_json='{"c": 1}', winners=["aa" * 32], losers=["bb" * 32])
    assert done.status == "decided" and done.owner is None
    assert store.provider_record("aa" * 32)[0] >= 1
    assert store.claim("arbiter-a", lease_s=30, dispute_id=did) is None  # decided: not active


def test_results_are_idempotent_and_conflicts_are_refused(store: Store) -> None:
    job = uuid.uuid4().hex
    store.put_job(job, "{}")
    store.put_result(job, "k" * 64, '{"r": 1}')
    store.put_result(job, "k" * 64, '{"r": 1}')
    with pytest.raises(ConflictingResult, match="different result"):
        store.put_result(job, "k" * 64, '{"r": 2}')
    assert store.results(job) == [("k" * 64, '{"r": 1}')]
    with pytest.raises(ConflictingJob, match="different spec"):
        store.put_job(job, '{"other": 1}')


def test_unknown_ids_raise_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="unknown dispute"):
        store.dispute("nope")
    with pytest.raises(NotFound, match="unknown job"):
        store.job_spec("nope")


def test_bad_urls_get_one_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StorageError, match="not a valid SQLAlchemy URL"):
        open_database("not a url")
    with pytest.raises(StorageError, match="cannot open database"):
        open_database(f"sqlite:///{tmp_path}/missing/dir/x.db")


def test_concurrent_provider_records_are_atomic_increments(store: Store) -> None:
    """Many finishes for one provider from several threads (own sessions) lose no update."""
    import threading

    key = uuid.uuid4().hex * 2
    store.upsert_provider(key)
    recs = []
    for i in range(8):
        did = _new_dispute(store)
        rec = store.claim(f"owner-{i}", lease_s=30, dispute_id=did)
        assert rec is not None
        recs.append((f"owner-{i}", rec))
    threads = [threading.Thread(target=store.finish, args=(rec, owner),
                                kwargs={"verdict_json": "{}", "certificate_json": None,
                                        "winners": [key], "losers": []})
               for owner, rec in recs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.provider_record(key) == (8, 0)


def test_a_released_lease_is_claimed_at_once_by_another_arbiter(store: Store) -> None:
    did = _new_dispute(store)
    rec = store.claim("arbiter-a", lease_s=300, dispute_id=did)
    assert rec is not None
    rec = store.advance(rec, "arbiter-a", lease_s=300, phase="ops", rounds=1,
                        event_kind="answer", event_payload_json='{"n": 1}')
    assert store.claim("arbiter-b", lease_s=300, dispute_id=did) is None  # live lease
    released = store.release(rec, "arbiter-a")
    assert (released.status, released.owner, released.phase) == ("running", None, "ops")
    taken = store.claim("arbiter-b", lease_s=300, dispute_id=did)
    assert taken is not None and taken.owner == "arbiter-b"
    with pytest.raises(LeaseLost):  # the old holder is fenced out, also from releasing
        store.release(released, "arbiter-a")
    store.advance(taken, "arbiter-b", lease_s=300, phase="ops", rounds=2,
                  event_kind="answer", event_payload_json='{"n": 2}')
    from sqlalchemy import select

    from arbiter.storage import DisputeEventRow

    with store.db.sessions() as s:
        owners = [r.owner for r in s.scalars(select(DisputeEventRow).where(
            DisputeEventRow.dispute_id == did).order_by(DisputeEventRow.seq))]
    assert owners == [None, "arbiter-a", "arbiter-b"]  # the opening has no owner


def test_dispute_counts_and_queue_depth(store: Store) -> None:
    before, waiting = store.dispute_counts(), store.waiting_count()
    free, held, done = (_new_dispute(store) for _ in range(3))
    assert store.claim("arbiter-a", lease_s=300, dispute_id=held) is not None
    rec = store.claim("arbiter-a", lease_s=300, dispute_id=done)
    assert rec is not None
    store.finish(rec, "arbiter-a", verdict_json="{}", certificate_json=None, winners=[],
                 losers=[])
    counts = store.dispute_counts()
    assert counts.get("open", 0) == before.get("open", 0) + 1
    assert counts.get("running", 0) == before.get("running", 0) + 1
    assert counts.get("decided", 0) == before.get("decided", 0) + 1
    assert store.waiting_count() == waiting + 1  # only the free one waits for a worker
    assert free
