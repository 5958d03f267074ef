"""An upload as the kiosk reads it: a display name, and the file part of a multipart body, in memory."""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath


def display_name(raw: str | None) -> str:
    """The upload's file name for display only: its last path part, at most 120 characters."""
    if not raw:
        return "upload"
    name = PureWindowsPath(PurePosixPath(raw).name).name
    return (name or "upload")[:120]


def multipart_file(content_type: str, body: bytes) -> tuple[str | None, bytes]:
    """(file name, bytes) of the first file part of a multipart/form-data body, parsed in memory.

    Raises ``ValueError`` naming what is wrong (no boundary, no file part, malformed body).
    """
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ValueError("multipart upload without a boundary")
    parts: list[dict] = []
    state = {"field": bytearray(), "value": bytearray()}

    def begin() -> None:
        parts.append({"headers": {}, "data": bytearray()})

    def header_end() -> None:
        parts[-1]["headers"][bytes(state["field"]).lower()] = bytes(state["value"])
        state["field"].clear()
        state["value"].clear()

    callbacks = {
        "on_part_begin": begin, "on_header_end": header_end,
        "on_header_field": lambda d, s, e: state["field"].extend(d[s:e]),
        "on_header_value": lambda d, s, e: state["value"].extend(d[s:e]),
        "on_part_data": lambda d, s, e: parts[-1]["data"].extend(d[s:e]),
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except Exception as error:  # the parser's own errors: a malformed body, whatever the detail
        raise ValueError(f"malformed multipart upload ({type(error).__name__})") from None
    for part in parts:
        _, disposition = parse_options_header(part["headers"].get(b"content-disposition", b""))
        if b"filename" in disposition or disposition.get(b"name") == b"file":
            filename = disposition.get(b"filename")
            return (filename.decode("utf-8", "replace") if filename else None), bytes(part["data"])
    raise ValueError("multipart upload without a file part (send the image as the field 'file')")
