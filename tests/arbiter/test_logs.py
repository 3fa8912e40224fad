"""Structured logs: JSON lines that parse, text lines that read, ids on every state change."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from arbiter.errors import StorageError
from arbiter.logs import configure_logging, log_event
from arbiter.state_log import DisputeLog, JobLog
from arbiter.storage import open_database
from arbiter.storage.db import safe_url

DID = "d1" * 32


@pytest.fixture
def capture() -> Iterator[tuple[io.StringIO, str]]:
    """Logging configured as a service does it, into a buffer; restored afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("verde").level)
    buffers = {}

    def use(fmt: str, level: str = "info") -> io.StringIO:
        buffers[fmt] = io.StringIO()
        configure_logging(fmt, level, stream=buffers[fmt])
        return buffers[fmt]

    yield use  # type: ignore[misc]
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved[0]:
        root.addHandler(h)
    root.setLevel(saved[1])
    logging.getLogger("verde").setLevel(saved[2])
    logging.captureWarnings(False)


def _dispute_story(observer: DisputeLog) -> None:
    observer.opened(DID, "j" * 64)
    observer.claimed(DID, "j" * 64, "open", 0)
    observer.advanced(DID, {"type": "answer", "party": "a", "round": 1}, "step_descent",
                      "step_descent", 1)
    observer.advanced(DID, {"type": "timeout", "party": "b", "round": 1}, "step_descent",
                      "step_leaves", 2)
    observer.finished(DID, "decided", {"winner": "a", "losers": ["b"], "reason": "fault",
                                       "keys": {"a": "aa" * 32, "b": "bb" * 32}}, None)


def test_json_lines_parse_and_carry_the_dispute_id(capture) -> None:  # type: ignore[no-untyped-def]
    out = capture("json", "debug")
    _dispute_story(DisputeLog())
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [d["event"] for d in docs] == ["dispute.opened", "dispute.claimed",
                                          "dispute.answer", "dispute.timeout",
                                          "dispute.phase", "dispute.decided"]
    assert all(d["dispute_id"] == DID for d in docs)
    assert [d["level"] for d in docs] == ["info", "info", "debug", "warning", "info", "info"]
    assert docs[-1]["winner_key"] == "aa" * 32 and docs[-1]["reason"] == "fault"
    assert docs[4]["phase"] == "step_leaves" and docs[3]["party"] == "b"
    assert {"ts", "logger", "msg"} <= set(docs[0])


def test_info_level_hides_answers_and_text_reads_as_key_values(capture) -> None:  # type: ignore[no-untyped-def]
    out = capture("text", "info")
    _dispute_story(DisputeLog())
    lines = out.getvalue().splitlines()
    assert len(lines) == 5  # no DEBUG answer line
    assert all(f"dispute_id={DID}" in line for line in lines)
    assert " WARNING " in lines[2] and "party=b" in lines[2]
    assert 'losers=["b"]' in lines[-1]


def test_job_lines_and_other_libraries_share_the_format(capture) -> None:  # type: ignore[no-untyped-def]
    out = capture("json")
    jobs = JobLog()
    jobs.accepted("j" * 64, "mlp", 8)
    jobs.refused("JobSpecError", "job spec: steps must be positive")
    jobs.finished("j" * 64, "done", {"step_s": 1.23456, "commit_s": 0.01}, "")
    jobs.finished("k" * 64, "failed", {}, "RuntimeError: boom")
    logging.getLogger("sqlalchemy.engine").warning("a library warning")
    logging.getLogger("sqlalchemy.engine").info("a library info line: dropped")
    try:
        raise ValueError("inside")
    except ValueError:
        logging.getLogger("verde.x").exception("with a traceback")
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [d["event"] for d in docs] == ["job.accepted", "job.refused", "job.done",
                                          "job.failed", "log", "log"]
    assert docs[2]["step_s"] == 1.235 and docs[3]["level"] == "error"
    assert docs[4]["logger"] == "sqlalchemy.engine"
    assert "ValueError: inside" in docs[5]["exception"]


def test_bad_formats_and_levels_are_refused() -> None:
    with pytest.raises(ValueError, match="log format must be one of text, json"):
        configure_logging("xml")
    with pytest.raises(ValueError, match="log level must be one of"):
        configure_logging("text", "loud")


def test_database_urls_never_show_their_password() -> None:
    assert safe_url("postgresql://verde:s3cret@db/verde") == "postgresql://verde:***@db/verde"
    assert "s3cret" not in safe_url("not a url s3cret")
    with pytest.raises(StorageError) as info:  # nothing listens on port 1
        open_database("postgresql://verde:s3cret@127.0.0.1:1/verde")
    assert "s3cret" not in str(info.value) and "***" in str(info.value)
    with pytest.raises(StorageError) as info:
        open_database("nodriver+://verde:s3cret@x/y")
    assert "s3cret" not in str(info.value)


def test_log_event_skips_disabled_levels() -> None:
    logger = logging.getLogger("verde.test.quiet")
    logger.setLevel(logging.WARNING)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        log_event(logger, logging.INFO, "x.y", "hidden", a=1)
        log_event(logger, logging.WARNING, "x.z", "shown", a=2)
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == ["shown"]
