"""The kiosk application: one page and a small JSON API over a ``Classifier`` (FastAPI + uvicorn).

Nothing is written to disk: uploads are parsed in memory (bounded by ``guards.BodyLimit``) and
the history of results is an in-memory ring of ``history`` entries. The bundle is verified on this
machine before the first request (``runtime.verify``); a failed check turns the page's banner red,
makes ``/api/health`` answer 503 and ``/api/classify`` refuse to classify.

API (JSON):
    GET  /api/health          200 {"status": "ok", ...} or 503 {"status": "verification failed", ...}
    GET  /api/model           manifest summary, verification, intended use and the model card text
    POST /api/classify        an image (multipart field ``file``, or the raw bytes as the body);
                              200 {"id", "record", "latency_ms", "images"} where ``record`` is what
                              ``edgehisto classify --format json`` prints for that file; a bad image
                              gives 415/422 {"error", "record"}; a full queue 503 + Retry-After
    POST /api/map             a larger image (a field, a mosaic, a slide crop) tiled at the model's input
                              size: 200 {"name", "map": what ``edgehisto map`` writes to summary.json,
                              "image": the map picture, "latency_ms"}; not kept in the history
    GET  /api/latest          {"id": newest result id or null}
    GET  /api/history         newest first: [{"id", "name", "label", "subtype", "source", "time"}]
    GET  /api/results/{id}    one result as /api/classify returned it (404 once it left the ring)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from edgehisto import __version__
from edgehisto.bundle.image_headers import sniff_format
from edgehisto.kiosk.guards import Admission, BodyLimit, Busy, SecurityHeaders, read_bounded, too_large
from edgehisto.kiosk.state import Kiosk, KioskSettings
from edgehisto.kiosk.uploads import display_name, multipart_file
from edgehisto.kiosk.watcher import watch

STATIC = Path(__file__).resolve().parent / "static"
RETRY_AFTER_SECONDS = 2


def create_app(settings: KioskSettings, kiosk: Kiosk | None = None) -> FastAPI:
    """The ASGI application (wrapped in the body limit and the security headers)."""
    kiosk = kiosk or Kiosk.start(settings)
    admission = Admission(settings.workers, settings.queue)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        watching = settings.watch_dir is not None and kiosk.verification["passed"]  # never pretends
        watcher = asyncio.create_task(watch(kiosk, admission, settings)) if watching else None
        yield
        if watcher is not None:
            watcher.cancel()

    # No Swagger page: it loads its script from a CDN, which the kiosk never does (and its CSP blocks).
    app = FastAPI(title="edgehisto kiosk", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json", lifespan=lifespan)
    uploads = Admission(settings.workers + settings.queue, 0)  # bodies held in memory at once
    app.state.kiosk = kiosk

    def busy() -> JSONResponse:
        return JSONResponse({"error": "busy: the classification queue is full, try again shortly"}, 503,
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str):
        # Only the files shipped beside this module, looked up by exact name: no path reaches the disk.
        shipped = {p.name: p for p in STATIC.iterdir() if p.is_file()}
        if name not in shipped:
            return JSONResponse({"error": "not found"}, 404)
        return FileResponse(shipped[name])

    @app.get("/model-card", include_in_schema=False)
    def model_card():
        card = kiosk.bundle.path / "MODEL_CARD.md"
        if not card.is_file():
            return PlainTextResponse("This bundle has no model card.", 404)
        return PlainTextResponse(card.read_text(encoding="utf-8", errors="replace"))

    @app.get("/api/health")
    def health():
        ok = kiosk.verification["passed"]
        body = {"status": "ok" if ok else "verification failed", "verification": kiosk.verification,
                "queue": admission.admitted}
        return JSONResponse(body, 200 if ok else 503)

    @app.get("/api/model")
    def model():
        card = kiosk.bundle.path / "MODEL_CARD.md"
        return {**kiosk.summary(), "model_card": card.read_text(encoding="utf-8") if card.is_file() else None}

    async def received(request: Request) -> tuple[str, bytes] | JSONResponse:
        """The upload's display name and bytes, or the response that refuses it."""
        if not kiosk.verification["passed"]:
            return JSONResponse({"error": "refused: this bundle failed its on-device verification "
                                          "(see /api/health)"}, 503)
        try:
            body = await uploads.run(lambda: read_bounded(request.stream(), settings.max_upload_bytes))
        except Busy:
            return busy()
        if body is None:
            return JSONResponse({"error": too_large(settings.max_upload_bytes)}, 413)
        content_type = request.headers.get("content-type", "")
        name = display_name(request.headers.get("x-filename"))
        if content_type.startswith("multipart/form-data"):
            try:
                raw_name, body = multipart_file(content_type, body)
            except ValueError as error:
                return JSONResponse({"error": str(error)}, 400)
            name = display_name(raw_name)
        return name, body

    async def processed(request: Request, work: Callable[[str, bytes], dict]) -> tuple[bytes, dict] | JSONResponse:
        """The upload's bytes and what ``work(name, bytes)`` made of them on a worker thread, or the refusal."""
        upload = await received(request)
        if isinstance(upload, JSONResponse):
            return upload
        name, body = upload
        try:
            return body, await admission.run(lambda: run_in_threadpool(work, name, body))
        except Busy:
            return busy()

    def unreadable(body: bytes) -> int:
        """415 for bytes of no image format known, 422 for an image that could not be used."""
        return 415 if sniff_format(body) is None else 422

    @app.post("/api/classify")
    async def classify(request: Request):
        done = await processed(request, lambda name, body: kiosk.classify(name, body, "upload"))
        if isinstance(done, JSONResponse):
            return done
        body, entry = done
        if "error" in entry["record"]:
            return JSONResponse({"error": entry["record"]["error"], "record": entry["record"]}, unreadable(body))
        return kiosk.remember(entry)

    @app.post("/api/map")
    async def map_region(request: Request):
        from edgehisto.kiosk.map_view import map_upload

        done = await processed(request, lambda name, body: map_upload(kiosk.classifier, name, body,
                                                                      kiosk.verification["cpu"]))
        if isinstance(done, JSONResponse):
            return done
        body, mapped = done
        return JSONResponse(mapped, unreadable(body)) if "error" in mapped else mapped

    # The ring is read and written on the event loop only: these routes are async on purpose.
    @app.get("/api/latest")
    async def latest():
        return {"id": kiosk.history[0]["id"] if kiosk.history else None}

    @app.get("/api/history")
    async def history():
        return [{"id": e["id"], "name": e["record"]["path"], "label": e["record"].get("label"),
                 "subtype": e["record"].get("subtype"), "source": e["source"], "time": e["time"]}
                for e in kiosk.history]

    @app.get("/api/results/{result_id}")
    async def result(result_id: int):
        found = kiosk.find(result_id)
        return found if found else JSONResponse({"error": f"result {result_id} is no longer kept"}, 404)

    return SecurityHeaders(BodyLimit(app, settings.max_upload_bytes))
