"""Native fd-2 output is held by one helper, for the image decoder and the export log alike."""

from __future__ import annotations

import os

import pytest

from edgehisto.bundle.native_stderr import native_stderr


def test_what_native_code_writes_on_fd_2_is_held_and_fd_2_comes_back(capfd):
    with native_stderr() as held:
        os.write(2, b"a libpng warning\n")
    os.write(2, b"after the block\n")
    assert held.text == "a libpng warning\n"
    assert capfd.readouterr().err == "after the block\n"


def test_a_capture_inside_a_capture_keeps_each_its_own_lines(capfd):
    with native_stderr() as outer:
        os.write(2, b"converter, before\n")
        with native_stderr() as inner:  # a decode inside an export step
            os.write(2, b"decoder\n")
        os.write(2, b"converter, after\n")
    assert (outer.text, inner.text) == ("converter, before\nconverter, after\n", "decoder\n")
    assert capfd.readouterr().err == ""


def test_a_block_that_raises_still_restores_fd_2_and_keeps_at_most_max_bytes(capfd):
    with pytest.raises(RuntimeError), native_stderr(max_bytes=7) as held:
        os.write(2, b"decoder: damaged\n")
        raise RuntimeError("decode failed")
    os.write(2, b"restored\n")
    assert held.text == "decoder"
    assert capfd.readouterr().err == "restored\n"
