"""Deterministic synthetic BreaKHis images: 8 subtypes x 4 magnifications, in the real layout.

Each subtype has its own architecture (``synth_breakhis_subtypes``), drawn inside a lesion
region over stroma that every subtype shares, with fat, vessels, lymphocytes and normal ducts
sprinkled over all of them, so no single colour or element gives the class away. Magnification
scales every structure by ``ZOOM``: at 40X glands are small and many, at 400X a few fill the
field. Images are painted at half resolution as stain maps and enlarged once, which keeps one
700x460 image near 20 ms. Malignant images get a ``<stem>_mask.png`` of the lesion region.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from edgehisto.bundle.progress import Progress, no_progress
from edgehisto.datasets.breakhis_names import (
    ALL_SUBTYPES,
    BENIGN_SUBTYPES,
    BINARY_CLASSES,
    MAGNIFICATIONS,
    tile_relpath,
)
from edgehisto.datasets.synth_breakhis_subtypes import SUBTYPE_PAINTERS, SUBTYPE_STROMA
from edgehisto.datasets.synth_he import (
    add_fat,
    add_inflammation,
    add_vessel,
    draw_glands,
    lesion_region,
    points_in,
    render_rgb,
    stroma,
)
from edgehisto.datasets.synth_output import refuse_used_folder, write_planned

# structure size relative to 40X; sub-linear in magnification so 40X nuclei stay visible
ZOOM = {40: 1.0, 100: 2.0, 200: 3.3, 400: 5.6}
_CANVAS = 2  # painted at 1/2 resolution, then enlarged
_SECTIONS = ("AB", "CD", "EF", "B", "C", "D", "E", "G", "DE")


@dataclass(frozen=True)
class BreakhisSynthSummary:
    """What a synthesize_breakhis run wrote (``out_dir`` holds ``BreaKHis_v1``)."""

    out_dir: Path
    n_images: int
    binary_counts: dict[str, int]
    subtype_counts: dict[str, int]
    magnification_counts: dict[int, int]
    n_masks: int
    patient_folders: tuple[str, ...]
    slides: tuple[str, ...]


def _shared_elements(rng: np.random.Generator, haem: np.ndarray, eosin: np.ndarray,
                     zoom: float, region: np.ndarray) -> None:
    """Things any breast biopsy shows: fat, vessels and normal ducts outside the lesion."""
    if rng.random() < 0.35:
        add_fat(rng, haem, eosin, zoom)
    if rng.random() < 0.3:
        add_vessel(rng, haem, eosin, zoom)
    outside = ~region
    if rng.random() < 0.35 and outside.any():
        axes = rng.uniform(7, 11) * zoom * np.array([[1, rng.uniform(0.6, 1.0)]])
        draw_glands(rng, haem, eosin, points_in(rng, outside, 1), axes, rng.uniform(0, 180, 1),
                    wall=2.6 * zoom, nucleus=0.9 * zoom)


def render_breakhis_image(
    rng: np.random.Generator,
    subtype: str,
    magnification: int,
    size: tuple[int, int] = (460, 700),
    *,
    stain_gains: tuple[float, float] = (1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray | None]:
    """Render one (height, width, 3) uint8 RGB image of a subtype at a magnification.

    Args:
        size: (height, width); BreaKHis images are 460x700.
        stain_gains: (haematoxylin, eosin) uptake of the slide, shared by its images.
    Returns the image and, for a malignant subtype, its 0/255 lesion mask (else None).
    """
    if subtype not in SUBTYPE_PAINTERS or magnification not in ZOOM:
        raise ValueError(f"need subtype in {ALL_SUBTYPES} and magnification in "
                         f"{MAGNIFICATIONS}; got {subtype!r}, {magnification!r}")
    zoom = ZOOM[magnification]
    shape = (size[0] // _CANVAS, size[1] // _CANVAS)
    density, cellularity = SUBTYPE_STROMA[subtype]
    haem, eosin, angle = stroma(rng, shape, zoom, density * rng.uniform(0.8, 1.2),
                                cellularity * rng.uniform(0.7, 1.3))
    region = lesion_region(rng, shape, zoom)
    _shared_elements(rng, haem, eosin, zoom, region)
    SUBTYPE_PAINTERS[subtype](rng, haem, eosin, zoom, region, angle)
    if rng.random() < 0.3:  # lymphocytes drift over lesion and stroma alike
        add_inflammation(rng, haem, eosin, zoom)
    haem *= stain_gains[0]
    eosin *= stain_gains[1]
    image = render_rgb(rng, haem, eosin, size)
    if subtype in BENIGN_SUBTYPES:
        return image, None
    mask = cv2.resize(region.astype(np.uint8) * 255, size[::-1], interpolation=cv2.INTER_NEAREST)
    return image, mask


class _ImageSpec(NamedTuple):
    """What one synthetic image shows and where it goes."""

    subtype: str
    patient: str
    magnification: int
    seq: int

    @property
    def slide(self) -> str:
        """The numeric slide id: the patient folder id without its section letters."""
        return self.patient.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _patient_ids(rng: np.random.Generator, per_subtype: int) -> dict[str, list[str]]:
    """BreaKHis-style patient folder ids (``14-22549AB``) per subtype, unique numeric ids.

    With three or more patients per subtype, the last folder is a second section of the
    first one's slide (``...AB`` and ``...CD``), as in BreaKHis, so that grouping by folder
    and by numeric slide id differ.
    """
    numbers = rng.choice(np.arange(1000, 30000), len(ALL_SUBTYPES) * per_subtype, replace=False)
    ids = {}
    for index, subtype in enumerate(ALL_SUBTYPES):
        own = []
        for number in numbers[index * per_subtype:(index + 1) * per_subtype].tolist():
            year = 15 if rng.random() < 0.1 else 14
            section = str(rng.choice(_SECTIONS)) if rng.random() < 0.3 else ""
            own.append(f"{year}-{number}{section}")
        if per_subtype >= 3:
            slide = _ImageSpec(subtype, own[0], 40, 1).slide
            own[0], own[-1] = f"{slide}AB", f"{slide}CD"
        ids[subtype] = own
    return ids


def _plan(rng: np.random.Generator, n: int, per_subtype: int) -> list[_ImageSpec]:
    """Subtypes take turns, and within a subtype magnifications cycle fastest.

    So n >= 32 shows every subtype at every magnification. Patients rotate in a Latin
    square (patient = magnification turn + block), so each gets every magnification.
    """
    patients = _patient_ids(rng, per_subtype)
    plan, taken = [], Counter()
    for index in range(n):
        subtype = ALL_SUBTYPES[index % len(ALL_SUBTYPES)]
        turn = index // len(ALL_SUBTYPES)
        step, block = turn % len(MAGNIFICATIONS), turn // len(MAGNIFICATIONS)
        patient = patients[subtype][(step + block) % per_subtype]
        taken[patient, step] += 1
        plan.append(_ImageSpec(subtype, patient, MAGNIFICATIONS[step], taken[patient, step]))
    return plan


def synthesize_breakhis(
    out_dir: Path,
    n: int,
    seed: int = 0,
    n_patients_per_subtype: int = 2,
    progress: Progress = no_progress,
) -> BreakhisSynthSummary:
    """Write n synthetic images under ``out_dir/BreaKHis_v1/histology_slides/breast``.

    Subtypes take turns (so n >= 32 gives all 8 at all 4 magnifications); malignant images
    also get a ``<stem>_mask.png`` lesion mask. The same seed writes the same bytes.
    """
    out_dir = Path(out_dir)
    if n < 1 or n_patients_per_subtype < 1 or seed < 0:
        raise ValueError(f"need n, n_patients_per_subtype >= 1 and seed >= 0; got n={n}, "
                         f"n_patients_per_subtype={n_patients_per_subtype}, seed={seed}")
    refuse_used_folder(out_dir)
    rng = np.random.default_rng(seed)
    plan = _plan(rng, n, n_patients_per_subtype)
    # each slide was stained on its own: one haematoxylin and eosin uptake per numeric slide id
    slides = sorted({spec.slide for spec in plan})
    gains = {slide: tuple(np.clip(rng.normal(1, 0.12, 2), 0.7, 1.4).tolist()) for slide in slides}

    def render(image_rng: np.random.Generator, spec: _ImageSpec) -> tuple[str, np.ndarray, np.ndarray | None]:
        image, mask = render_breakhis_image(image_rng, spec.subtype, spec.magnification,
                                            stain_gains=gains[spec.slide])
        return tile_relpath(*spec), image, mask

    write_planned(out_dir, seed, plan, render, progress, "synthesizing BreaKHis images")
    subtypes = Counter(spec.subtype for spec in plan)
    malignant = sum(subtypes[code] for code in ALL_SUBTYPES if code not in BENIGN_SUBTYPES)
    magnifications = Counter(spec.magnification for spec in plan)
    return BreakhisSynthSummary(
        out_dir=out_dir,
        n_images=n,
        binary_counts=dict(zip(BINARY_CLASSES, (n - malignant, malignant), strict=True)),
        subtype_counts={code: subtypes[code] for code in ALL_SUBTYPES},
        magnification_counts={mag: magnifications[mag] for mag in MAGNIFICATIONS},
        n_masks=malignant,
        patient_folders=tuple(sorted({Path(tile_relpath(*spec)).parts[-3] for spec in plan})),
        slides=tuple(slides),
    )
