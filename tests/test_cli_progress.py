"""The CLI draws library progress as one bar on a terminal and as a few lines anywhere else."""

from __future__ import annotations

import io

from edgehisto.cli_progress import progress_reporter


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def report_two_loops(stream) -> str:
    with progress_reporter(stream) as progress:
        for label in ("fp32 tiles", "int8 tiles"):
            for done in range(0, 101, 5):
                progress(done, 100, label)
            stream.write("a line the command prints next\n")
    return stream.getvalue()


def test_off_a_terminal_each_loop_gets_a_start_and_an_end_line():
    text = report_two_loops(io.StringIO())
    assert text.splitlines() == ["fp32 tiles: 0/100", "fp32 tiles: 100/100", "a line the command prints next",
                                 "int8 tiles: 0/100", "int8 tiles: 100/100", "a line the command prints next"]


def test_on_a_terminal_each_loop_is_one_bar_redrawn_in_place_and_finished_before_the_next_line():
    text = report_two_loops(Terminal())
    lines = text.split("\n")
    assert len(lines) == 5  # bar, line, bar, line, ""
    assert "\r" in lines[0] and "100%" in lines[0] and "fp32 tiles" in lines[0]
    assert lines[1].lstrip("\r") == "a line the command prints next"
    assert "int8 tiles" in lines[2]


def test_a_loop_cut_short_is_closed_when_the_next_label_starts():
    stream = io.StringIO()
    with progress_reporter(stream) as progress:
        progress(10, 100, "fp32 tiles")
        progress(100, 100, "int8 tiles")
    assert stream.getvalue().splitlines() == ["fp32 tiles: 0/100", "int8 tiles: 0/100", "int8 tiles: 100/100"]
