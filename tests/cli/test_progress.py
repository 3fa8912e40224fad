"""Progress views: rich bars on a terminal, plain throttled lines elsewhere, silence for JSON."""

from __future__ import annotations

import io

from rich.console import Console

from cli.progress import PlainView, ProgressView, RichView, progress_view


def _drive(view: ProgressView) -> None:
    view.note("job abc: mlp, 4 steps on 2 providers")
    for done in range(5):
        view.steps("127.0.0.1:7001", done, 4)
    view.rounds("d" * 64, "dddddddddddd", "step_descent", 1)
    view.rounds("d" * 64, "dddddddddddd", "step_descent", 1)  # polled again: no change
    view.rounds("d" * 64, "dddddddddddd", "graph_open", 6)
    view.transfer("uploaded", 1_500_000, 3_000_000)
    view.transfer("uploaded", 3_000_000, 3_000_000)
    view.finished("d" * 64, "dddddddddddd decided")
    view.close()


def test_rich_view_draws_bars_with_counts_and_units() -> None:
    out = io.StringIO()
    _drive(RichView(Console(file=out, force_terminal=True, width=110)))
    text = out.getvalue()
    assert "\x1b[" in text and "━" in text  # live bars, drawn with cursor control
    for fragment in ("job abc: mlp", "train 127.0.0.1:7001", "4/4 steps",
                     "dispute dddddddddddd graph_open", "round 6", "3.0 MB",
                     "dispute dddddddddddd decided"):
        assert fragment in text, fragment


def test_plain_view_prints_lines_worth_a_line() -> None:
    out = io.StringIO()
    _drive(PlainView(out, every_s=3600))
    lines = out.getvalue().splitlines()
    assert lines == [
        "job abc: mlp, 4 steps on 2 providers",
        "127.0.0.1:7001: step 0/4",          # the start and the end, not every step
        "127.0.0.1:7001: step 4/4",
        "  dispute dddddddddddd: round 1 (step_descent)",  # once, however often polled
        "  dispute dddddddddddd: round 6 (graph_open)",
        "uploaded: 1.5 MB of 3.0 MB",        # the first value and the final one
        "uploaded: 3.0 MB of 3.0 MB",
    ]
    assert "\x1b[" not in out.getvalue() and "\r" not in out.getvalue()


def test_plain_view_reports_intermediate_steps_when_time_passes() -> None:
    out = io.StringIO()
    view = PlainView(out, every_s=0.0)
    for done in range(3):
        view.steps("p", done, 2)
    assert out.getvalue().splitlines() == ["p: step 0/2", "p: step 1/2", "p: step 2/2"]


def test_the_view_follows_the_output() -> None:
    with progress_view(as_json=True, stream=io.StringIO()) as quiet:
        assert type(quiet) is ProgressView
    not_a_tty = io.StringIO()
    with progress_view(as_json=False, stream=not_a_tty) as view:
        assert isinstance(view, PlainView)
        _drive(view)
    assert "step 4/4" in not_a_tty.getvalue()
    silent = io.StringIO()
    with progress_view(as_json=True, stream=silent) as view:
        _drive(view)
    assert silent.getvalue() == ""
