"""The model input is the same bytes on ARM as on x86: the golden tiles and resizes of every kind.

OpenCV 5.1's aarch64 wheel resized differently from its x86 wheel, and nothing noticed until a
new user's Raspberry Pi failed ``verify``. This runs the preprocessing of every embedded bundle's
golden tiles, the two bit-exact resizes and the colour normalisation on awkward sizes, under QEMU as a Cortex-A72 and
compares them with this machine byte for byte (about 15 s). It needs the emulation cache
(``.ci/emulated-cpus setup``, which ``make test`` runs first); without it the test skips, unless
EDGEHISTO_REQUIRE_EMULATION=1 (set by ``make test``) turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EMULATED = REPO / ".ci" / "emulated-cpus"
CACHE = Path(os.environ.get("EMULATION_CACHE", REPO / ".cache" / "emulation"))

# Prints {case: sha256 of the uint8 model input} as JSON, on whatever CPU runs it.
DIGESTS = r"""
import hashlib, json, sys
import numpy as np
from edgehisto.bundle.preprocess import load_resized, resize_tile, PreprocessSpec
from edgehisto.bundle.resize import EXACT_METHODS
from edgehisto.bundle.manifest import load_bundle
from edgehisto.runtime.registry import embedded_bundles

out = {}
for path in embedded_bundles().values():
    bundle = load_bundle(path)
    tiles = [load_resized(bundle.file(name), bundle.preprocess) for name in bundle.manifest["golden"]["tiles"]]
    out[f"golden:{bundle.path.name}"] = hashlib.sha256(np.stack(tiles).tobytes()).hexdigest()
rng = np.random.default_rng(0)
for height, width in [(460, 700), (230, 350), (224, 224), (50, 50), (37, 50), (9, 7), (1000, 1500)]:
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    for method in EXACT_METHODS:
        for size in [(128, 128), (50, 50), (147, 224)]:
            spec = PreprocessSpec(input_size=size, resize_method=method)
            out[f"{method}:{height}x{width}->{size}"] = hashlib.sha256(resize_tile(image, spec).tobytes()).hexdigest()
    colour = {"method": "channel_stats_exact", "mean": [204, 159, 185], "std": [24, 37, 27]}
    spec = PreprocessSpec(input_size=(128, 128), resize_method="area_exact", colour=colour)
    out[f"colour:{height}x{width}"] = hashlib.sha256(resize_tile(image // 3 + 90, spec).tobytes()).hexdigest()
print(json.dumps(out))
"""


def _emulation_ready() -> bool:
    return (CACHE / "aarch64" / "site-packages" / ".complete").is_file() and \
        (CACHE / "aarch64" / "sysroot" / ".complete").is_file()


def test_preprocessing_is_byte_identical_under_an_emulated_cortex_a72() -> None:
    if not _emulation_ready():
        if os.environ.get("EDGEHISTO_REQUIRE_EMULATION") == "1":
            pytest.fail(f"no emulation cache in {CACHE}: run .ci/emulated-cpus setup")
        pytest.skip("no emulation cache (.ci/emulated-cpus setup)")
    native = subprocess.run([sys.executable, "-c", DIGESTS], capture_output=True, text=True, check=True)
    arm = subprocess.run([str(EMULATED), "run", "cortex-a72", "--", "-c", DIGESTS], capture_output=True, text=True,
                         timeout=600)
    assert arm.returncode == 0, arm.stderr[-2000:]
    x86, aarch64 = json.loads(native.stdout), json.loads(arm.stdout)
    assert len(x86) >= 2 + 2 * 7 * 3 + 7
    assert [case for case in x86 if x86[case] != aarch64.get(case)] == []
