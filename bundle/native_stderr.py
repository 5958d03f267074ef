"""Capture what native code prints on file descriptor 2, below Python's ``sys.stderr``.

libpng and libjpeg report damage, and tf2onnx, the TFLite converter and the LiteRT interpreter
report everything, by writing to the process's fd 2 from C or C++; no Python logging setting
reaches them. The image decoder turns those lines into its one-line error, the export log filters
them: both hold fd 2 through ``native_stderr``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# fd 2 belongs to the whole process: two threads swapping it at once would restore each other's
# capture file as "stderr". Re-entrant, so a capture inside a capture (same thread) still works.
_fd2_lock = threading.RLock()
# Capture files are kept and reused (creating one costs about as much as decoding a small tile):
# per process id, as a forked child must not share its parent's, and one per nesting depth.
_capture_files: dict[int, list[int]] = {}
_depth = 0  # captures open now; changed only by the thread that holds _fd2_lock


@dataclass
class NativeStderr:
    """What was written to fd 2 during a ``native_stderr`` block; ``text`` is set as the block ends."""

    text: str = ""


def _capture_file(depth: int) -> int:
    """This process's empty capture file for this nesting depth (memory-backed where possible)."""
    files = _capture_files.setdefault(os.getpid(), [])
    if len(files) <= depth:
        if hasattr(os, "memfd_create"):
            files.append(os.memfd_create("edgehisto-native-stderr", os.MFD_CLOEXEC))
        else:
            with tempfile.TemporaryFile() as handle:  # the duplicate outlives the (unlinked) name
                files.append(os.dup(handle.fileno()))
    os.ftruncate(files[depth], 0)
    os.lseek(files[depth], 0, os.SEEK_SET)
    return files[depth]


def _flush_stderr() -> None:
    if sys.stderr is not None:  # None without a console (pythonw, some daemons)
        sys.stderr.flush()


@contextmanager
def native_stderr(max_bytes: int | None = None) -> Iterator[NativeStderr]:
    """Point fd 2 at a capture file while the block runs; the caller decides what to show.

    Nothing written in the block reaches the terminal; when the block ends (raising or not) fd 2
    is restored and the yielded ``NativeStderr.text`` holds what was written, at most ``max_bytes``
    of it if given. Blocks are serialised by a lock, and anything another thread writes to fd 2 in
    that window is captured too. Without an fd 2 at all (a daemon) the block runs uncaptured.
    """
    global _depth
    printed = NativeStderr()
    with _fd2_lock:
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all: nothing can be printed anyway
            yield printed
            return
        capture = _capture_file(_depth)
        _flush_stderr()  # Python's buffered stderr goes where it was meant to, not into the capture
        os.dup2(capture, 2)
        _depth += 1
        try:
            yield printed
        finally:
            _depth -= 1
            _flush_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            size = os.lseek(capture, 0, os.SEEK_CUR)
            data = os.pread(capture, size if max_bytes is None else min(size, max_bytes), 0)
            printed.text = data.decode("utf-8", errors="replace")
