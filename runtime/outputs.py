"""Files the runtime writes for people: Grad-CAM overlays (PNG) and raw maps (.npy).

Each file is written under a temporary name in the output directory, then renamed over its
final name, so nobody sees half a file and a rerun replaces the previous run's file whole. A
symbolic link (or anything but a regular file) already at a final name is refused, never
written through. A file that cannot be written becomes that tile's ``error``; the other tiles
carry on.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import stat
from pathlib import Path

import cv2
import numpy as np

from edgehisto.runtime.classifier import TileResult
from edgehisto.runtime.gradcam import gradcam_panel
from edgehisto.runtime.inputs import describe_os_error, file_kind

_STEM_CHARACTERS = 80  # keeps every name well under the usual 255-byte limit
_PATH_ID_DIGITS = 12


class _NotWritten(Exception):
    """One output file could not be written; the message names it and says why."""


def _safe_name(text: str) -> str:
    """Letters, digits, '-', '_' and '+' of ``text``; anything else (separators, dots,
    control characters, undecodable bytes) becomes '_'."""
    return "".join(c if c.isalnum() or c in "-_+" else "_" for c in text)[:_STEM_CHARACTERS] or "_"


def gradcam_file_stem(path: str) -> str:
    """``<stem>.<path id>``: the input's file name made safe, then 12 hex digits of the sha256
    of its path as given, so two inputs never share a name and a rerun finds the same one."""
    path_id = hashlib.sha256(os.fsencode(path)).hexdigest()[:_PATH_ID_DIGITS]
    return f"{_safe_name(Path(path).stem)}.{path_id}"


def _replace_file(out_dir: Path, name: str, payload: bytes) -> Path:
    """Write ``payload`` to ``out_dir / name`` through a temporary file and an atomic rename."""
    target = out_dir / name
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as error:
        raise _NotWritten(f"cannot write {name}: {describe_os_error(error, target)}") from None
    if mode is not None and stat.S_ISLNK(mode):
        raise _NotWritten(f"{name} is a symbolic link; refusing to write through it")
    if mode is not None and file_kind(mode):
        raise _NotWritten(f"{name} is {file_kind(mode)}; refusing to replace it")
    temporary = out_dir / f".{name}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(temporary, flags, 0o644)  # O_EXCL: never opens a file planted there
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(payload)
            os.replace(temporary, target)  # renames over the name; a link planted since is not followed
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    except OSError as error:
        raise _NotWritten(f"cannot write {name}: {describe_os_error(error, target)}") from None
    return target


def _npy_bytes(cam: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, cam.astype(np.float32))
    return buffer.getvalue()


def _png_bytes(rgb: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise _NotWritten("OpenCV could not encode the overlay PNG")
    return encoded.tobytes()


def _fail(result: TileResult, reason: str) -> None:
    message = f"Grad-CAM files not written: {reason}"
    result.error = message if result.error is None else f"{result.error}; {message}"


def write_gradcam_files(results: list[TileResult], out_dir: Path,
                        display_peaks: dict[str, float | None] | None = None) -> list[Path]:
    """For each classified tile and stage: ``<stem>.<path id>.<stage>.gradcam.png`` and ``.npy``.

    The PNG is a panel (``gradcam_panel``): the stage, label and probability, the model-input
    tile beside its JET overlay at a legible size, and a colour bar, drawn on the stage's fixed
    display scale when ``display_peaks`` gives one; the .npy is the float32 map at the target layer's
    resolution. Each result's ``gradcam_files`` lists what was written for it; a write that
    fails sets its ``error`` and the other tiles are still written.

    Returns:
        Every file written.
    """
    display_peaks = display_peaks or {}
    pending = [r for r in results if r.ok and r.image is not None and any(s.cam is not None for s in r.stages)]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        for result in pending:
            _fail(result, f"cannot create directory {out_dir}: {describe_os_error(error, out_dir)}")
        return []
    written = []
    for result in pending:
        stem = gradcam_file_stem(result.path)
        for stage in (s for s in result.stages if s.cam is not None):
            base = f"{stem}.{_safe_name(stage.stage)}.gradcam"
            title = f"{stage.stage}: {stage.label} ({stage.probabilities[stage.label]:.3f})"
            picture = gradcam_panel(result.image, stage.cam, title, peak=display_peaks.get(stage.stage))
            try:
                for name, payload in ((f"{base}.npy", _npy_bytes(stage.cam)), (f"{base}.png", _png_bytes(picture))):
                    written.append(_replace_file(out_dir, name, payload))
                    result.gradcam_files.append(str(written[-1]))
            except _NotWritten as problem:
                _fail(result, str(problem))
    return written
