"""One home for how edgehisto starts Ray: quiet on a normal run, loud on real trouble."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager


class _NoFalseHangWarning(logging.Filter):
    """Drops Ray Data's "no available CPUs, the Dataset job will hang" line on a Ray that edgehisto started.

    Ray Data checks ``ray.available_resources()`` as a dataset starts. A local Ray started here has at
    least one CPU per worker and runs nothing else, so the job cannot hang for CPUs; yet under load the
    check read zero once (why, Ray does not say; six runs of batch under load did not show it again), and the line,
    which reads as a failure, failed that run of the suite's quiet-run check. On a joined cluster it stays.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "does not have any available CPUs" not in record.getMessage()


_FILTER = _NoFalseHangWarning()


@contextmanager
def ray_session(workers: int, address: str | None = None) -> Iterator[None]:
    """Start (or join) Ray for the block, and shut it down after if this block started it.

    ``address``: None starts a local Ray with at least ``workers`` CPUs; ``auto`` or ``ray://host:port``
    joins a cluster. Ray's INFO lines (instance start, the token-auth notice, Ray Data's per-second
    progress log) read as failures to a user, so only WARNING and above show.
    """
    import ray

    owned = not ray.is_initialized()
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    dataset_log = logging.getLogger("ray.data.dataset")
    if owned:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 **({} if address else {"num_cpus": max(workers, os.cpu_count() or 1)}))
        if not address:
            dataset_log.addFilter(_FILTER)
    try:
        yield
    finally:
        if owned:
            dataset_log.removeFilter(_FILTER)
            ray.shutdown()


def worker_bundle(bundle_path: str, bundle_sha256: str):
    """The bundle at ``bundle_path`` loaded on a worker (every file's sha256 checked), refused when its
    manifest differs from the driver's."""
    from edgehisto.bundle.manifest import load_bundle
    from edgehisto.errors import BundleMismatch

    bundle = load_bundle(bundle_path)
    here = bundle.manifest_sha256
    if here != bundle_sha256:
        raise BundleMismatch(f"the bundle at {bundle_path} on this worker differs from the driver's "
                             f"(manifest sha256 {here[:12]}..., expected {bundle_sha256[:12]}...)")
    return bundle
