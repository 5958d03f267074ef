"""ASGI guards of the kiosk: a request-body limit (declared, then counted while it streams), security headers,
and bounded admission of classification work (a full queue answers 503 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

# Only this origin's scripts, styles and images (plus the data: URLs of overlays); no framing.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


async def _send_json(send, status: int, payload: dict, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *SECURITY_HEADERS, *headers]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse a request whose declared Content-Length is over ``limit`` bytes with 413, before reading it.

    A body without a declared length (chunked) is counted as it streams by ``read_bounded``.
    """

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        """Answer 413 for an over-long declared body; pass everything else through."""
        if scope["type"] == "http":
            declared = dict(scope.get("headers", [])).get(b"content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
                return await _send_json(send, 413, {"error": too_large(self.limit)})
        await self.app(scope, receive, send)


def too_large(limit: int) -> str:
    """The one-line refusal of an upload over ``limit`` bytes."""
    return f"upload over the {limit / 2**20:g} MB limit"


async def read_bounded(chunks, limit: int) -> bytes | None:
    """The body from an async iterator of chunks, or None as soon as it passes ``limit`` bytes."""
    parts, total = [], 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


class SecurityHeaders:
    """Add ``SECURITY_HEADERS`` to every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        """Pass the request through, adding the headers to its response start."""
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(event):
            if event["type"] == "http.response.start":
                present = {name.lower() for name, _ in event.get("headers", [])}
                event = {**event, "headers": [*event.get("headers", []),
                                              *(h for h in SECURITY_HEADERS if h[0] not in present)]}
            await send(event)

        await self.app(scope, receive, with_headers)


class Busy(Exception):
    """The work queue is full; the caller answers 503 with ``Retry-After``."""


class Admission:
    """At most ``workers`` jobs run and ``queue`` more wait; anything beyond is refused at once."""

    def __init__(self, workers: int, queue: int):
        self._running = asyncio.Semaphore(workers)
        self._capacity = workers + queue
        self._admitted = 0

    @property
    def admitted(self) -> int:
        """Jobs running or waiting now."""
        return self._admitted

    async def run(self, job: Callable[[], Awaitable]):
        """Run ``job`` when a worker is free; raise ``Busy`` if the queue is full."""
        if self._admitted >= self._capacity:
            raise Busy
        self._admitted += 1
        try:
            async with self._running:
                return await job()
        finally:
            self._admitted -= 1
