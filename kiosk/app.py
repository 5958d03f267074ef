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
import collections
import contextlib
import json
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from edgehisto import __version__
from edgehisto.bundle.image_headers import sniff_format
from edgehisto.bundle.manifest import Bundle
from edgehisto.errors import EdgehistoError
from edgehisto.kiosk.guards import Admission, BodyLimit, Busy, SecurityHeaders, read_bounded, too_large
from edgehisto.kiosk.pictures import data_url
from edgehisto.runtime.classifier import Classifier, TileResult
from edgehisto.runtime.gradcam import overlay
from edgehisto.runtime.registry import MODELS_DIR, names_of, resolve_bundle
from edgehisto.runtime.verify import cpu_kind, verify_bundle

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_MAX_UPLOAD_MB = 20
INTENDED_USE = "Research and demonstration, not a diagnostic device."
WATCH_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
RETRY_AFTER_SECONDS = 2


@dataclass
class KioskSettings:
    """What ``edgehisto serve`` configures; every field has the documented default."""

    model: str | Path | None = None  # an embedded model's name, a bundle directory, or the default
    precision: str = "int8"
    watch_dir: Path | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 2**20
    workers: int = 1
    queue: int = 4
    history: int = 12
    watch_interval_s: float = 1.0


@dataclass
class Kiosk:
    """The served model, its on-device verification, and the ring of recent results."""

    settings: KioskSettings
    bundle: Bundle
    classifier: Classifier
    verification: dict
    history: collections.deque = field(default_factory=collections.deque)
    next_id: int = 1

    @classmethod
    def start(cls, settings: KioskSettings) -> Kiosk:
        """Load and verify the bundle (raises ``EdgehistoError`` if it cannot be loaded at all)."""
        bundle = resolve_bundle(settings.model)
        try:
            report = verify_bundle(bundle, precisions=(settings.precision,))
            verification = {"passed": report.passed, "cpu": cpu_kind(),
                            "failed_gates": [g.name for g in report.gates if not g.passed]}
        except EdgehistoError as error:
            verification = {"passed": False, "cpu": cpu_kind(), "failed_gates": [], "error": str(error)}
        classifier = Classifier(bundle, precision=settings.precision, threads=1)
        return cls(settings, bundle, classifier, verification, collections.deque(maxlen=settings.history))

    def summary(self) -> dict:
        """The always-visible facts about the served model."""
        bundle = self.bundle
        card = bundle.path / "MODEL_CARD.md"
        embedded = bundle.path.resolve().parent == MODELS_DIR.resolve()
        exported = bundle.exported_at
        return {
            "name": names_of(bundle.path.name)[0] if embedded else bundle.name,
            "task": bundle.task, "arch": bundle.arch,
            "version": f"exported {(exported if exported is not None else 'at an unknown time')[:10]} by edgehisto "
                       f"{bundle.made_with.get('edgehisto', '?')}",
            "sha256": bundle.manifest_sha256,
            "precision": self.settings.precision,
            "classes": bundle.class_names,
            "routing": bundle.routing,
            "expected_input": bundle.expects,
            "intended_use": _intended_use(card),
            "caveat": _caveat(self.bundle.path / "model_card.json"),
            "has_model_card": card.is_file(),
            "watching": self.settings.watch_dir is not None,
            "verification": self.verification,
            "max_upload_mb": self.settings.max_upload_bytes / 2**20,
        }

    def classify(self, name: str, data: bytes, source: str) -> dict:
        """Classify one encoded image with Grad-CAM; the result entry (``remember`` keeps it).

        Runs on a worker thread; it touches no shared state.
        """
        started = time.perf_counter()
        (result,) = self.classifier.classify_bytes([(name, data)], gradcam=True)
        entry = {"record": result.to_record(), "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                 "source": source, "time": time.strftime("%H:%M:%S")}
        if result.ok:
            entry["images"] = self._images(result)
        return entry

    def remember(self, entry: dict) -> dict:
        """Give an entry its id and put it in the ring. Called on the event loop only, like every
        reader of the ring, so ids are unique and no reader sees the ring change under it."""
        entry["id"] = self.next_id
        self.next_id += 1
        self.history.appendleft(entry)
        return entry

    def _images(self, result: TileResult) -> dict:
        peaks = {n: s.gradcam_display_peak for n, s in self.classifier.stages.items()}
        return {"tile": data_url(result.image),
                "overlays": {s.stage: data_url(overlay(result.image, s.cam, peak=peaks.get(s.stage)))
                             for s in result.stages if s.cam is not None}}

    def find(self, result_id: int) -> dict | None:
        """A result still in the ring, by id."""
        return next((e for e in self.history if e["id"] == result_id), None)


def _intended_use(card: Path) -> str:
    if card.is_file():
        for line in card.read_text(encoding="utf-8", errors="replace").splitlines():
            if "not a diagnostic device" in line:
                return re.sub(r"[*_`]", "", line).strip()
    return INTENDED_USE


def _caveat(card_json: Path) -> str | None:
    """The model card's one-line warning against trusting the model (``caveat``), if it has one."""
    try:
        return json.loads(card_json.read_text(encoding="utf-8")).get("caveat") or None
    except (OSError, ValueError, AttributeError):
        return None


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

    @app.post("/api/classify")
    async def classify(request: Request):
        upload = await received(request)
        if isinstance(upload, JSONResponse):
            return upload
        name, body = upload
        try:
            entry = await admission.run(lambda: run_in_threadpool(kiosk.classify, name, body, "upload"))
        except Busy:
            return busy()
        if "error" in entry["record"]:
            status = 415 if sniff_format(body) is None else 422
            return JSONResponse({"error": entry["record"]["error"], "record": entry["record"]}, status)
        return kiosk.remember(entry)

    @app.post("/api/map")
    async def map_region(request: Request):
        from edgehisto.kiosk.map_view import map_upload

        upload = await received(request)
        if isinstance(upload, JSONResponse):
            return upload
        name, body = upload
        try:
            mapped = await admission.run(lambda: run_in_threadpool(
                map_upload, kiosk.classifier, name, body, kiosk.verification["cpu"]))
        except Busy:
            return busy()
        if "error" in mapped:
            return JSONResponse(mapped, 415 if sniff_format(body) is None else 422)
        return mapped

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
