"""Load check of the kiosk: N concurrent clients send a mixed stream of good and bad images.

Starts the installed ``edgehisto serve`` on a free loopback port, sends ``--requests`` uploads from
``--clients`` threads (one in ``--bad-every`` is a bad file: text, truncated PNG, a decompression
bomb header, or a declared oversize body), retries each 503 after its Retry-After (capped by
``--max-wait``), and samples the server's resident memory every 0.2 s. Reports
p50/p95 latency of the good requests (retries included), throughput, answers by status and the server's peak RSS, and
whether memory stayed flat (the last quarter's mean RSS against the second quarter's). This is a
measurement, not a test: nothing here asserts timings.

    python benchmarks/kiosk_load.py --out bench-output --clients 8 --requests 400
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import cv2
import numpy as np


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def png(pixels: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok
    return encoded.tobytes()


def bomb_header(side: int = 20_000) -> bytes:
    """A PNG that declares side x side pixels: refused from its header."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (len(payload).to_bytes(4, "big") + kind + payload
                + zlib.crc32(kind + payload).to_bytes(4, "big"))
    header = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def payloads(seed: int = 0) -> dict[str, list[bytes]]:
    rng = np.random.default_rng(seed)
    good = [png(rng.integers(0, 256, (50, 50, 3), dtype=np.uint8)) for _ in range(16)]
    good.append(png(rng.integers(0, 256, (460, 700, 3), dtype=np.uint8)))  # a BreaKHis-sized field
    valid = good[0]
    return {"good": good, "text": [b"not,an,image\n" * 10], "truncated": [valid[: len(valid) // 2]],
            "bomb": [bomb_header()], "oversize": [b"\0" * (21 * 2**20)]}


def rss_kb(pid: int, field: str = "VmRSS") -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"edgehisto serve exited: {process.stderr.read()}") from None
            time.sleep(0.3)
    raise SystemExit("edgehisto serve did not become healthy")


def post_once(url: str, body: bytes) -> tuple[int, float]:
    """(status, Retry-After seconds or 0) of one upload; -1 if the connection broke."""
    request = urllib.request.Request(f"{url}/api/classify", data=body, method="POST",
                                     headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
            return response.status, 0.0
    except urllib.error.HTTPError as error:
        error.read()
        return error.code, float(error.headers.get("Retry-After") or 0)
    except OSError:
        return -1, 0.0  # counted, never hidden


def declare_oversize(url: str, size: int) -> int:
    """Declare a body over the limit and send none of it: the answer must come before the body."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.putrequest("POST", "/api/classify")
        connection.putheader("Content-Type", "application/octet-stream")
        connection.putheader("Content-Length", str(size))
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return -1
    finally:
        connection.close()


def send(url: str, kind: str, body: bytes, max_wait_s: float) -> tuple[int, float, int]:
    """(final status, ms until it, 503 answers before it). A 503 is retried after its Retry-After,
    shortened to ``max_wait_s`` so that the check stays bounded in time."""
    started, busy = time.perf_counter(), 0
    while True:
        status, retry_after = (declare_oversize(url, len(body)), 0.0) if kind == "oversize" else post_once(url, body)
        if status != 503 or busy >= 200:
            return status, (time.perf_counter() - started) * 1000, busy
        busy += 1
        time.sleep(min(retry_after, max_wait_s))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-output"))
    parser.add_argument("--model", default=None, help="model name or bundle directory (default: the IDC default)")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--bad-every", type=int, default=4)
    parser.add_argument("--queue", type=int, default=4)
    parser.add_argument("--max-wait", type=float, default=0.1,
                        help="cap on the Retry-After a client honours before retrying a 503 (seconds)")
    args = parser.parse_args()

    port = free_port()
    command = [str(Path(sys.executable).with_name("edgehisto")), "serve", "--port", str(port),
               "--precision", args.precision, "--queue", str(args.queue)]
    if args.model:
        command += ["--model", args.model]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, process)
    data = payloads()
    bad_kinds = [k for k in data if k != "good"]
    plan = []
    for i in range(args.requests):
        kind = bad_kinds[(i // args.bad_every) % len(bad_kinds)] if i % args.bad_every == args.bad_every - 1 else "good"
        plan.append((kind, data[kind][i % len(data[kind])]))
    results: list[tuple[str, int, float]] = []
    retries: list[int] = []
    lock, cursor = threading.Lock(), iter(plan)
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            value = rss_kb(process.pid)
            if value:
                samples.append((time.monotonic(), value))
            time.sleep(0.2)

    def client() -> None:
        while True:
            with lock:
                item = next(cursor, None)
            if item is None:
                return
            status, ms, busy = send(url, item[0], item[1], args.max_wait)
            with lock:
                results.append((item[0], status, ms))
                retries.append(busy)

    watcher = threading.Thread(target=sampler)
    watcher.start()
    rss_before = rss_kb(process.pid)
    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    stop.set()
    watcher.join()
    peak = rss_kb(process.pid, "VmHWM")
    process.terminate()
    process.wait(timeout=30)

    good_ok = [ms for kind, status, ms in results if kind == "good" and status == 200]
    by_kind = collections.defaultdict(collections.Counter)
    for kind, status, _ in results:
        by_kind[kind][str(status)] += 1
    quarter = max(1, len(samples) // 4)
    rss = [v for _, v in samples]
    unexpected_5xx = sum(1 for _, status, _ in results if status >= 500 and status != 503)
    cpu = sorted({f for f in ("avx512_vnni", "avx_vnni", "avx2") if f in Path("/proc/cpuinfo").read_text()})
    report = {
        "machine": {"cpu_flags": cpu, "cores": os.cpu_count(), "python": platform.python_version()},
        "config": vars(args) | {"out": str(args.out)},
        "requests": len(results), "wall_s": round(wall, 2), "throughput_rps": round(len(results) / wall, 1),
        "good_latency_ms": {"p50": round(float(np.percentile(good_ok, 50)), 1),
                            "p95": round(float(np.percentile(good_ok, 95)), 1), "n": len(good_ok)}
        if good_ok else None,
        "answers_by_kind": {k: dict(v) for k, v in by_kind.items()},
        "unexpected_5xx": unexpected_5xx, "busy_503_answers_retried": int(sum(retries)),
        "broken_connections": sum(1 for _, s, _ in results if s == -1),
        "server_rss_mb": {"before": round((rss_before or 0) / 1024, 1), "peak": round((peak or 0) / 1024, 1),
                          "second_quarter_mean": round(float(np.mean(rss[quarter:2 * quarter])) / 1024, 1),
                          "last_quarter_mean": round(float(np.mean(rss[-quarter:])) / 1024, 1)},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kiosk_load.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
