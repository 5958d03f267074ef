"""The PATH arguments of ``classify``: expanding files, directories and glob patterns into tile
inputs in argument order, and reading one tile file safely.

Walks follow links to directories but enter each real directory once, so a symbolic link loop
adds nothing. Only regular files are ever read, and their type and size come from ``stat``
before any byte is: a FIFO never blocks, a device is never opened, a huge or sparse file is
never loaded.
"""

from __future__ import annotations

import errno
import fnmatch
import glob
import os
import stat
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath

from edgehisto.errors import InvalidImage

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
MASK_SUFFIX = "_mask.png"  # lesion masks written by ``synth`` beside their tiles
# A 50x50 tile is a few kB and a 700x460 BreaKHis image under 1 MB; 64 MB leaves room for
# uncompressed TIFF or BMP at the 40 Mpx pixel limit's scale without loading anything absurd.
MAX_TILE_FILE_BYTES = 64 * 2**20
_READ_CHUNK = 1 << 20
_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


@dataclass(frozen=True)
class TileInput:
    """One input, in argument order: a file to classify, or why an argument gave no file."""

    path: str
    error: str | None = None


def describe_os_error(error: OSError, path: str | os.PathLike) -> str:
    """One lower-case phrase for why ``path`` cannot be used (link loop, dangling link, ...)."""
    if error.errno == errno.ELOOP:
        return "symbolic link loop"
    if error.errno == errno.ENOENT:
        return ("dangling symbolic link (its target does not exist)" if os.path.islink(path)
                else "no such file or directory")
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if error.errno == errno.ENOTDIR:
        return "a component of the path is not a directory"
    return (error.strerror or str(error)).lower()


def file_kind(mode: int) -> str | None:
    """What a non-regular file is ("a FIFO (named pipe)", ...), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _FILE_KINDS if test(mode)), "not a regular file")


def _is_tile(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES and not name.endswith(MASK_SUFFIX)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows links; a loop or a dangling link is not a directory
    except OSError:
        return False


def _walk(root: str, problems: list[TileInput], hidden: bool = True) -> Iterator[tuple[str, list[os.DirEntry]]]:
    """Yield (directory, its entries sorted by name) for root and each directory below it.

    Links to directories are followed, but every real directory (device, inode) is entered
    once, so a link loop ends the walk instead of repeating it. A directory that cannot be
    listed is added to ``problems``.
    """
    visited: set[tuple[int, int]] = set()
    pending = deque([root])
    while pending:  # breadth first: a directory is reached by its shortest path
        directory = pending.popleft()
        try:
            status = os.stat(directory)
            if (status.st_dev, status.st_ino) in visited:
                continue
            visited.add((status.st_dev, status.st_ino))
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as error:
            problems.append(TileInput(directory, f"cannot list directory: {describe_os_error(error, directory)}"))
            continue
        if not hidden:
            entries = [entry for entry in entries if not entry.name.startswith(".")]
        yield directory, entries
        pending.extend(entry.path for entry in entries if _is_dir(entry))


def _tiles_in(directory: str) -> list[TileInput]:
    """Every tile file below a directory, with the subdirectories that could not be listed."""
    problems: list[TileInput] = []
    found = [TileInput(entry.path) for _, entries in _walk(directory, problems)
             for entry in entries if _is_tile(entry.name) and not _is_dir(entry)]
    if not found and not problems:
        return [TileInput(directory, "directory holds no image files")]
    return found + problems


def _pattern_matches(pattern: str) -> tuple[list[str], list[TileInput]]:
    """glob.glob(pattern, recursive=True) without hidden files, on the loop-safe walk."""
    parts = PurePath(pattern).parts
    first_magic = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = str(PurePath(*parts[:first_magic])) if first_magic else os.curdir
    candidates, problems = [base], []
    for index, part in enumerate(parts[first_magic:], start=first_magic):
        last = index == len(parts) - 1
        matches = []
        for directory in candidates:
            if part == "**":
                for below, entries in _walk(directory, problems, hidden=False):
                    matches.append(below)
                    if last:
                        matches += [e.path for e in entries if not _is_dir(e)]
            elif glob.has_magic(part):
                matches += _matching_entries(directory, part, want_dirs=not last)
            elif os.path.lexists(os.path.join(directory, part)):
                matches.append(os.path.join(directory, part))
        candidates = matches
    strip = first_magic == 0  # "./" was only a starting point; the pattern did not say it
    return [path[len(os.curdir) + 1:] if strip and path.startswith(os.curdir + os.sep) else path
            for path in candidates], problems


def _matching_entries(directory: str, part: str, want_dirs: bool) -> list[str]:
    """Names in one directory matching one pattern component, hidden names only if asked."""
    try:
        with os.scandir(directory) as listing:
            entries = list(listing)
    except OSError:
        return []  # not a directory or unreadable: glob.glob skips these silently as well
    return [entry.path for entry in entries
            if fnmatch.fnmatchcase(entry.name, part)
            and (part.startswith(".") or not entry.name.startswith("."))
            and (_is_dir(entry) if want_dirs else True)]


def _tiles_matching(pattern: str) -> list[TileInput]:
    """Every tile file a glob pattern matches, with the directories that could not be listed."""
    matches, problems = _pattern_matches(pattern)
    found = [TileInput(path) for path in matches
             if _is_tile(os.path.basename(path)) and not os.path.isdir(path)]
    if not found and not problems:
        return [TileInput(pattern, "pattern matches no image files")]
    return found + problems


def _expand_one(argument: str) -> list[TileInput]:
    try:
        mode = os.stat(argument).st_mode
    except OSError as error:
        if error.errno == errno.ENOENT and glob.has_magic(argument):
            return sorted(_tiles_matching(argument), key=_path_order)
        return [TileInput(argument, describe_os_error(error, argument))]
    if stat.S_ISDIR(mode):
        return sorted(_tiles_in(argument), key=_path_order)
    return [TileInput(argument)]  # named explicitly: try it even if the suffix is unusual


def _path_order(item: TileInput) -> tuple[str, ...]:
    return PurePath(item.path).parts


def expand_inputs(arguments: list[str]) -> list[TileInput]:
    """Resolve arguments to tile inputs, in argument order, each file once.

    A directory gives its tile files (recursively, ``*_mask.png`` skipped) and a pattern its
    matches, each sorted by path; an argument that names nothing, a directory that cannot be
    listed and a pattern that matches nothing give a ``TileInput`` whose ``error`` says why,
    in the argument's place.
    """
    inputs: list[TileInput] = []
    seen: set[str] = set()
    for argument in arguments:
        for item in _expand_one(argument):
            path = str(Path(item.path)) if item.error is None else item.path
            if item.error is None and path in seen:
                continue
            seen.add(path)
            inputs.append(TileInput(path, item.error))
    return inputs


def read_tile_file(path: str | os.PathLike, max_bytes: int = MAX_TILE_FILE_BYTES) -> bytes:
    """Read a whole tile file, refusing anything but a regular file of at most ``max_bytes``.

    The file is opened non-blocking and checked again through its descriptor, so a FIFO
    swapped in after the first check cannot block either, and a file that grows past the
    limit while being read is refused.

    Raises:
        InvalidImage: not a regular file, or over the size limit.
        OSError: it cannot be opened or read (missing, permission, link loop, ...).
    """
    status = os.stat(path)
    _check_tile_file(status.st_mode, status.st_size, max_bytes)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    descriptor = os.open(path, flags)
    with os.fdopen(descriptor, "rb", buffering=0) as handle:
        status = os.fstat(descriptor)
        _check_tile_file(status.st_mode, status.st_size, max_bytes)
        chunks, total = [], 0
        while chunk := handle.read(min(_READ_CHUNK, max_bytes + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise InvalidImage(f"file grew past the {_megabytes(max_bytes)} tile file limit while being read")
    return b"".join(chunks)


def _check_tile_file(mode: int, size: int, max_bytes: int) -> None:
    kind = file_kind(mode)
    if kind is not None:
        raise InvalidImage(f"{kind}, not a regular file; only regular files are read")
    if size > max_bytes:
        raise InvalidImage(f"file is {_megabytes(size)}, over the {_megabytes(max_bytes)} tile file limit")


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size} bytes"
