"""``edgehisto serve``: the kiosk page and API on uvicorn (needs the [kiosk] extra)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import click

from edgehisto.bundle.manifest import PRECISIONS

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("serve")
@click.option("--model", "model", default=None,
              help="An embedded model's name (idc, breakhis) or a bundle directory. Default: the embedded IDC model.")
@click.option("--precision", default="int8", show_default=True, type=click.Choice(PRECISIONS),
              help="int8 is the default here, for a responsive page on a Pi; classify defaults to fp32, the "
                   "reference numbers.")
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to bind. Anything but a loopback address exposes the kiosk to the network.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535))
@click.option("--watch", "watch_dir", default=None, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Classify the newest image that appears directly in this folder (a camera's capture folder).")
@click.option("--max-upload-mb", default=20.0, show_default=True, type=click.FloatRange(0.01, 512),
              help="Refuse uploads larger than this, while they stream.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 8),
              help="Classifications run at once.")
@click.option("--queue", default=4, show_default=True, type=click.IntRange(0, 64),
              help="Classifications that may wait; beyond that the answer is 503 with Retry-After.")
@click.option("--history", default=12, show_default=True, type=click.IntRange(1, 200),
              help="Recent results kept in memory for the page's history strip.")
def serve(model: str | None, precision: str, host: str, port: int, watch_dir: Path | None, max_upload_mb: float,
          workers: int, queue: int, history: int) -> None:
    """Serve the kiosk page and JSON API (verifies the bundle on this machine first).

    Nothing is written to disk: uploads are parsed in memory and results are kept in memory.
    """
    import uvicorn

    from edgehisto.kiosk.app import create_app
    from edgehisto.kiosk.state import Kiosk, KioskSettings

    if not is_loopback(host):
        click.echo(f"warning: binding {host} exposes the kiosk (uploads, results, the model) to every machine "
                   "that can reach this address; it has no login. Use 127.0.0.1 unless the network is trusted.",
                   err=True)
    settings = KioskSettings(model=model, precision=precision, watch_dir=watch_dir,
                             max_upload_bytes=int(max_upload_mb * 2**20), workers=workers, queue=queue,
                             history=history)
    kiosk = Kiosk.start(settings)
    verdict = kiosk.verification
    if verdict["passed"]:
        click.echo(f"verified on this machine ({verdict['cpu']}): golden outputs match", err=True)
    else:
        why = verdict.get("error") or ", ".join(verdict["failed_gates"])
        click.echo(f"warning: the bundle FAILED its on-device verification ({why}); "
                   "the page shows a red banner and classification is refused", err=True)
    click.echo(f"serving {kiosk.summary()['name']} ({precision}) on http://{host}:{port}", err=True)
    uvicorn.run(create_app(settings, kiosk), host=host, port=port, log_level="warning", access_log=False)
