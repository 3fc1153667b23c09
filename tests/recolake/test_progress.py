"""The progress bar draws on a terminal only, and erases itself for the step's line."""

from __future__ import annotations

import io

from recolake import logs
from recolake.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_draws_on_a_terminal_and_erases_itself():
    logs.configure(verbose=False)
    out = Terminal()
    with Progress("tuning ALS", total=4, stream=out, width=8) as bar:
        bar.advance(note="ndcg@10=0.0500")
        assert bar.line().startswith("tuning ALS [##......] 1/4 ")
        bar.advance(3)
        assert bar.line().startswith("tuning ALS [########] 4/4 ")
    text = out.getvalue()
    assert "\rtuning ALS [........] 0/4" in text and "ndcg@10=0.0500" in text
    last = text.rsplit("\r", 2)
    assert last[-1] == "" and last[-2].strip() == ""  # the bar is blanked, cursor at column 0


def test_silent_when_not_a_terminal_or_verbose():
    piped = io.StringIO()
    with Progress("evaluating", total=3, stream=piped) as bar:
        bar.advance()
    assert piped.getvalue() == "" and bar.done == 1
    logs.configure(verbose=True)
    try:
        out = Terminal()
        with Progress("evaluating", total=3, stream=out) as bar:
            bar.advance()
        assert out.getvalue() == ""  # log lines would tear a bar apart
    finally:
        logs.configure(verbose=False)


def test_counts_past_an_unknown_total_and_clamps_a_known_one():
    out = Terminal()
    with Progress("publishing", total=2, stream=out, width=4) as bar:
        bar.advance(5)
        assert bar.done == 2 and "[####] 2/2" in bar.line()
    with Progress("batches", total=0, stream=out, width=4) as bar:
        bar.advance(3)
        assert bar.done == 3 and "[....] 3/0" in bar.line()
