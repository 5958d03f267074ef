"""The kiosk's JSON API through FastAPI's test client: same records as the CLI, bounded and safe."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the [kiosk] extra is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from edgehisto.bundle.manifest import MANIFEST  # noqa: E402
from edgehisto.kiosk.app import create_app  # noqa: E402
from edgehisto.kiosk.guards import Admission, Busy  # noqa: E402
from edgehisto.kiosk.state import KioskSettings  # noqa: E402
from edgehisto.kiosk.uploads import display_name, multipart_file  # noqa: E402
from edgehisto.runtime.registry import DEFAULT_MODEL, embedded_bundles  # noqa: E402
from tests.test_exit_codes import run  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(KioskSettings(max_upload_bytes=2 * 2**20))) as test_client:
        yield test_client


def upload(client, path: Path, name: str | None = None):
    return client.post("/api/classify", files={"file": (name or path.name, path.read_bytes(), "image/png")})


def test_a_good_tile_gives_the_record_the_cli_prints_with_identical_probabilities(client, good_tile, tmp_path):
    response = upload(client, good_tile)
    assert response.status_code == 200
    body = response.json()
    cli = run("console script", "classify", good_tile, "--precision", "int8", "--format", "json", cwd=tmp_path)
    (expected,) = json.loads(cli.stdout)
    assert body["record"] == {**expected, "path": good_tile.name}
    assert body["images"]["tile"].startswith("data:image/png;base64,")
    assert set(body["images"]["overlays"]) == {"idc"}
    assert body["latency_ms"] > 0


def test_the_raw_body_works_as_well_as_a_multipart_upload(client, good_tile):
    raw = client.post("/api/classify", content=good_tile.read_bytes(),
                      headers={"Content-Type": "application/octet-stream", "X-Filename": "../../etc/x.png"})
    assert raw.status_code == 200
    assert raw.json()["record"]["path"] == "x.png"  # a display name only, never a path
    assert raw.json()["record"]["probabilities"] == upload(client, good_tile).json()["record"]["probabilities"]


@pytest.mark.parametrize(("case", "status", "message"), [
    ("text_as_png", 415, "not a PNG, JPEG"),
    ("zero_byte", 415, "empty"),
    ("truncated_png", 422, ""),
    ("decompression_bomb", 422, "Mpx limit"),
    ("sixteen_bit", 422, "8-bit"),
])
def test_a_bad_upload_gets_a_4xx_with_one_line_and_the_next_request_still_works(client, bad_tiles, good_tile,
                                                                                  case, status, message):
    response = upload(client, bad_tiles[case])
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error and "\n" not in error and "Traceback" not in error
    assert upload(client, good_tile).status_code == 200


def test_an_oversize_upload_is_refused_while_it_streams(client, good_tile):
    declared = client.post("/api/classify", content=b"\0" * (3 * 2**20),
                           headers={"Content-Type": "application/octet-stream"})
    assert declared.status_code == 413
    assert "2 MB limit" in declared.json()["error"]

    def chunks():  # no Content-Length: the running count must stop it
        for _ in range(64):
            yield b"\0" * 2**16

    streamed = client.post("/api/classify", content=chunks(), headers={"Content-Type": "application/octet-stream"})
    assert streamed.status_code == 413
    assert upload(client, good_tile).status_code == 200


def test_multipart_without_a_file_part_is_a_400(client):
    response = client.post("/api/classify", files={"note": (None, "no image")})
    assert response.status_code == 400
    assert "file part" in response.json()["error"]
    with pytest.raises(ValueError, match="boundary"):
        multipart_file("multipart/form-data", b"")


def test_health_model_and_history_describe_what_is_served(client, good_tile):
    health = client.get("/api/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    model = client.get("/api/model").json()
    manifest = embedded_bundles()[DEFAULT_MODEL] / MANIFEST
    assert model["sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert model["name"] == "idc" and model["precision"] == "int8"
    assert "not a diagnostic device" in model["intended_use"]
    assert model["model_card"].startswith("# Model card")
    posted = upload(client, good_tile).json()
    assert client.get("/api/latest").json() == {"id": posted["id"]}
    assert client.get("/api/history").json()[0]["id"] == posted["id"]
    assert client.get(f"/api/results/{posted['id']}").json()["record"] == posted["record"]
    assert client.get("/api/results/999999").status_code == 404
    assert client.get("/model-card").text.startswith("# Model card")


def test_every_response_carries_the_security_headers_and_static_files_stay_inside(client):
    for path in ("/", "/api/health", "/static/kiosk.js", "/static/nothing"):
        response = client.get(path)
        assert response.headers["content-security-policy"].startswith("default-src 'self'")
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script src=\"/static/kiosk.js\"" in client.get("/").text
    for probe in ("/static/..%2fapp.py", "/static/%2e%2e%2fapp.py", "/static/../app.py"):
        assert client.get(probe).status_code == 404, probe
    page = client.get("/").text
    assert "http://" not in page and "https://" not in page  # no CDN, fonts or analytics


def test_display_names_drop_every_directory_part():
    assert display_name("C:\\Users\\me\\tile.png") == "tile.png"
    assert display_name("../../../etc/passwd") == "passwd"
    assert display_name("") == "upload"


@pytest.fixture
def failing_bundle(tmp_path) -> Path:
    """The default bundle as a CPU that computes other int8 numbers would see it: golden outputs moved."""
    copy = tmp_path / "failing"
    shutil.copytree(embedded_bundles()[DEFAULT_MODEL], copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    expected_file = copy / manifest["golden"]["expected"]
    expected = dict(np.load(expected_file))
    key = next(k for k in expected if k.startswith("int8_probabilities"))
    expected[key] = np.clip(expected[key] + 0.05, 0, 1).astype(expected[key].dtype)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **expected)
    expected_file.write_bytes(buffer.getvalue())
    entry = manifest["files"][manifest["golden"]["expected"]]
    entry.update(sha256=hashlib.sha256(buffer.getvalue()).hexdigest(), bytes=len(buffer.getvalue()))
    (copy / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return copy


def test_a_failed_on_device_check_shows_in_health_and_refuses_classification(failing_bundle, good_tile, tmp_path):
    captures = tmp_path / "captures"
    captures.mkdir()
    shutil.copy(good_tile, captures / "capture.png")
    settings = KioskSettings(model=failing_bundle, watch_dir=captures, watch_interval_s=0.05)
    with TestClient(create_app(settings)) as client:
        health = client.get("/api/health")
        assert health.status_code == 503
        assert health.json()["status"] == "verification failed"
        assert client.get("/api/model").json()["verification"]["passed"] is False
        refused = upload(client, good_tile)
        assert refused.status_code == 503 and "verification" in refused.json()["error"]
        time.sleep(0.5)
        assert client.get("/api/latest").json() == {"id": None}  # the watched capture is not classified either


def test_a_capture_swapped_for_a_link_is_refused_not_followed(tmp_path):
    from edgehisto.kiosk.watcher import read_capture

    secret = tmp_path / "secret.txt"
    secret.write_text("not for the kiosk")
    (tmp_path / "captures").mkdir()
    (tmp_path / "captures" / "capture.png").symlink_to(secret)
    with pytest.raises(OSError):
        read_capture(tmp_path / "captures", "capture.png", 2**20)


@pytest.mark.skipif("breakhis" not in embedded_bundles(), reason="no embedded BreaKHis bundle in this checkout")
def test_the_hierarchy_record_carries_the_subtype_and_every_stage_map(tmp_path):
    from edgehisto.datasets.synth_breakhis import synthesize_breakhis

    synthesize_breakhis(tmp_path / "synth", 8, seed=2)
    image = next(p for p in (tmp_path / "synth").rglob("SOB_M_*.png") if not p.name.endswith("_mask.png"))
    with TestClient(create_app(KioskSettings(model="breakhis"))) as client:
        body = upload(client, image).json()
    record = body["record"]
    assert record["subtype_stage"] in ("benign_subtype", "malignant_subtype")
    assert record["subtype"] in record["subtype_probabilities"]
    assert set(body["images"]["overlays"]) == {"binary", record["subtype_stage"]}


def test_a_full_queue_answers_busy_at_once():
    async def scenario():
        admission = Admission(workers=1, queue=1)
        gate = asyncio.Event()

        async def slow():
            await gate.wait()
            return "done"

        first = asyncio.create_task(admission.run(slow))
        second = asyncio.create_task(admission.run(slow))
        await asyncio.sleep(0.01)
        with pytest.raises(Busy):
            await admission.run(slow)
        gate.set()
        assert await first == "done" and await second == "done"
        assert admission.admitted == 0
        assert await admission.run(slow) == "done"

    asyncio.run(scenario())


def test_the_watched_folder_shows_its_newest_regular_image_only(tmp_path, good_tile):
    folder = tmp_path / "captures"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(good_tile, folder / "sub" / "deeper.png")  # not directly inside: ignored
    settings = KioskSettings(watch_dir=folder, watch_interval_s=0.05)
    with TestClient(create_app(settings)) as client:
        time.sleep(0.5)
        assert client.get("/api/latest").json() == {"id": None}
        shutil.copy(good_tile, folder / "capture-001.png")
        deadline = time.monotonic() + 30
        while client.get("/api/latest").json()["id"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
        (entry,) = client.get("/api/history").json()
        assert entry["name"] == "capture-001.png" and entry["source"] == "watch"
        (folder / "zz-link.png").symlink_to(folder / "capture-001.png")  # links are never read
        time.sleep(0.5)
        assert len(client.get("/api/history").json()) == 1


def test_a_card_that_says_the_model_misses_its_target_puts_that_caveat_beside_every_result(tmp_path):
    import json
    import shutil

    from edgehisto.bundle.manifest_writer import write_manifest
    from edgehisto.runtime.registry import resolve_bundle

    bundle = tmp_path / "bundle"
    shutil.copytree(resolve_bundle("idc").path, bundle)
    card = json.loads((bundle / "model_card.json").read_text())
    card["caveat"] = "on 37 patients it never saw, balanced accuracy 0.70: treat a label as a hint"
    (bundle / "model_card.json").write_text(json.dumps(card))
    write_manifest(bundle, json.loads((bundle / "manifest.json").read_text()))
    with TestClient(create_app(KioskSettings(model=str(bundle)))) as client:
        assert client.get("/api/model").json()["caveat"] == card["caveat"]
    card.pop("caveat")
    (bundle / "model_card.json").write_text(json.dumps(card))
    write_manifest(bundle, json.loads((bundle / "manifest.json").read_text()))
    with TestClient(create_app(KioskSettings(model=str(bundle)))) as client:
        assert client.get("/api/model").json()["caveat"] is None


def test_a_region_posted_to_the_map_route_gives_what_the_map_command_writes(client, good_tile, tmp_path):
    assert upload(client, good_tile).status_code == 200  # a history to compare with, whatever ran before here
    history = client.get("/api/history").json()
    rng = np.random.default_rng(5)
    pixels = np.full((150, 250, 3), 245, np.uint8)
    pixels[25:125, 50:200] = rng.integers(60, 200, (100, 150, 3), dtype=np.uint8) * np.array([0.8, 0.4, 0.9])
    region = tmp_path / "region.png"
    import cv2

    cv2.imwrite(str(region), pixels)
    response = client.post("/api/map", files={"file": ("region.png", region.read_bytes(), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    done = run("console script", "map", region, "--out", tmp_path / "m", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = json.loads((tmp_path / "m" / "summary.json").read_text())
    for key in ("tiles", "positive_fraction", "positive_class", "precision", "bundle_sha256"):
        assert body["map"][key] == written[key], key
    assert body["image"].startswith("data:image/png;base64,")
    assert "id" not in body and client.get("/api/history").json() == history  # maps are not kept in the history
    bad = client.post("/api/map", files={"file": ("x.png", b"not an image", "image/png")})
    assert bad.status_code == 415 and "\n" not in bad.json()["error"]
    small = io.BytesIO()
    small.write(cv2.imencode(".png", pixels[:20, :20])[1].tobytes())
    tiny = client.post("/api/map", files={"file": ("tiny.png", small.getvalue(), "image/png")})
    assert tiny.status_code == 422 and "smaller than one" in tiny.json()["error"]
