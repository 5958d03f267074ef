"""The capture-folder watcher: the newest image of a camera's folder, classified when it changes.

Only regular files directly inside the folder are read, and never through a link.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from edgehisto.kiosk.guards import Admission, Busy
from edgehisto.kiosk.state import Kiosk, KioskSettings

WATCH_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


def newest_image(folder: Path) -> tuple[str, int, int] | None:
    """(name, mtime_ns, size) of the newest image directly inside ``folder`` (regular files only)."""
    newest = None
    with os.scandir(folder) as entries:
        for entry in entries:
            if Path(entry.name).suffix.lower() not in WATCH_SUFFIXES or entry.name.startswith("."):
                continue
            if not entry.is_file(follow_symlinks=False):
                continue  # links, folders, FIFOs and devices are never read
            stat = entry.stat(follow_symlinks=False)
            key = (stat.st_mtime_ns, entry.name, stat.st_size)
            if newest is None or key > newest:
                newest = key
    return None if newest is None else (newest[1], newest[0], newest[2])


def read_capture(folder: Path, name: str, max_bytes: int) -> bytes:
    """The bytes of ``folder/name`` if it is a regular file of at most ``max_bytes``, read without
    following a link (a capture swapped for a link after the scan is refused, not followed)."""
    directory = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
        descriptor = os.open(name, flags, dir_fd=directory)
    finally:
        os.close(directory)
    with os.fdopen(descriptor, "rb", buffering=0) as handle:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode) or status.st_size > max_bytes:
            raise OSError(f"{name} is not a regular file of at most {max_bytes} bytes")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise OSError(f"{name} grew past {max_bytes} bytes while being read")
    return data


async def watch(kiosk: Kiosk, admission: Admission, settings: KioskSettings) -> None:
    """Classify the newest image of the watched folder whenever it changes (and has stopped growing).

    Every failure is contained: the file is remembered as seen (not retried in a loop), a failed
    capture is shown with its error, and the loop goes on watching.
    """
    seen, pending = None, None
    while True:
        await asyncio.sleep(settings.watch_interval_s)
        try:
            found = await run_in_threadpool(newest_image, settings.watch_dir)
        except OSError:
            continue  # the folder is gone or unreadable for now; keep watching
        if found is None or found == seen:
            continue
        if found != pending:  # wait one interval: a camera may still be writing the file
            pending = found
            continue
        name = found[0]
        try:
            data = await run_in_threadpool(read_capture, settings.watch_dir, name, settings.max_upload_bytes)
            entry = await admission.run(lambda n=name, d=data: run_in_threadpool(kiosk.classify, n, d, "watch"))
        except Busy:
            continue  # try again on the next tick
        except Exception as error:  # noqa: BLE001 - the watcher must outlive any one bad capture
            entry = {"record": {"path": name, "error": f"cannot classify this capture: {error}"[:300]},
                     "latency_ms": 0.0, "source": "watch", "time": time.strftime("%H:%M:%S")}
        kiosk.remember(entry)  # a bad capture is shown too, with its error
        seen, pending = found, None
