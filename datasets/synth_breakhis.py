"""Deterministic synthetic BreaKHis images: 8 subtypes x 4 magnifications, in the real layout.

Each subtype has its own architecture (see the ``_PATTERNS`` functions), drawn inside a lesion
region over stroma that every subtype shares, with fat, vessels, lymphocytes and normal ducts
sprinkled over all of them, so no single colour or element gives the class away. Magnification
scales every structure by ``ZOOM``: at 40X glands are small and many, at 400X a few fill the
field. Images are painted at half resolution as stain maps and enlarged once, which keeps one
700x460 image near 20 ms. Malignant images get a ``<stem>_mask.png`` of the lesion region.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from edgehisto.datasets.breakhis import (
    ALL_SUBTYPES,
    BENIGN_SUBTYPES,
    BINARY_CLASSES,
    MAGNIFICATIONS,
    tile_relpath,
)
from edgehisto.datasets.synth_he import (
    add_fat,
    add_inflammation,
    add_vessel,
    draw_glands,
    draw_nuclei,
    fibres,
    in_region,
    jittered_grid,
    lesion_region,
    paint,
    path_lining,
    points_in,
    render_rgb,
    smooth_noise,
    stroke,
    stroma,
    wandering_path,
)
from edgehisto.errors import DatasetLayoutError

# structure size relative to 40X; sub-linear in magnification so 40X nuclei stay visible
ZOOM = {40: 1.0, 100: 2.0, 200: 3.3, 400: 5.6}
_CANVAS = 2  # painted at 1/2 resolution, then enlarged
# (collagen density, stromal cellularity) per subtype: fibroadenoma pink, phyllodes cellular
_STROMA = {"A": (0.55, 1.0), "F": (0.8, 0.7), "PT": (0.55, 1.6), "TA": (0.5, 1.0),
           "DC": (0.5, 1.2), "LC": (0.6, 1.0), "MC": (0.5, 0.8), "PC": (0.55, 1.0)}
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


def _adenosis(rng, haem, eosin, zoom, region, _angle) -> None:
    """Many small round glands, each with a luminal and a myoepithelial layer."""
    radius = rng.uniform(4.5, 6.5) * zoom
    centres = jittered_grid(rng, region, 2.6 * radius, 0.18)
    count = len(centres)
    axes = radius * rng.uniform(0.75, 1.25, (count, 1)) * rng.uniform(0.7, 1.0, (count, 2))
    eosin[region] *= 1.15  # sclerotic stroma between the glands
    draw_glands(rng, haem, eosin, centres, axes, rng.uniform(0, 180, count),
                wall=0.5 * radius, nucleus=0.9 * zoom)


def _fibroadenoma(rng, haem, eosin, zoom, region, _angle) -> None:
    """Pink, partly myxoid stroma compressing ducts into curved two-layered slits."""
    myxoid = np.clip(smooth_noise(rng, region.shape, 30 * zoom), 0, None)
    eosin *= np.where(region, 1 - 0.35 * np.minimum(myxoid, 1.5), 1).astype(np.float32)
    nucleus = 0.9 * zoom
    paths = []
    for start in points_in(rng, region, int(region.sum() / (32 * zoom) ** 2 + 2)):
        path = wandering_path(rng, start, rng.uniform(0, np.pi), rng.uniform(10, 30) * zoom,
                              2.3 * nucleus, 0.25)
        paths.append(path)
        if rng.random() < 0.4:  # intracanalicular ducts branch like antlers
            fork = path[len(path) // 2]
            paths.append(wandering_path(rng, fork, rng.uniform(0, np.pi),
                                        rng.uniform(5, 15) * zoom, 2.3 * nucleus, 0.25))
    slit = max(0.8 * zoom, 1.0)
    paint(haem, eosin, stroke(region.shape, paths, 2 * slit + 4.8 * nucleus),
          rng.uniform(0.08, 0.15), rng.uniform(0.28, 0.4))
    paint(haem, eosin, stroke(region.shape, paths, slit), 0.01, 0.04)
    _line_with_cells(rng, haem, eosin, region, paths,
                     [slit / 2 + nucleus, slit / 2 + 2.6 * nucleus], nucleus)


def _line_with_cells(rng, haem, eosin, region, paths, offsets, nucleus,
                     elongation=1.5) -> None:
    """Palisaded nuclei beside each path, at the given offsets, standing on it, in region."""
    linings = [path_lining(path, offsets) for path in paths]
    points = np.concatenate([points for points, _ in linings])
    angles = np.concatenate([angles for _, angles in linings])
    points += rng.normal(0, 0.2 * nucleus, points.shape)  # real linings are not ruled lines
    keep = in_region(region, points)
    draw_nuclei(rng, haem, eosin, points[keep], (0.85 * nucleus, nucleus), (0.6, 1.0),
                elongation=elongation, angles=angles[keep])


def _phyllodes(rng, haem, eosin, zoom, region, _angle) -> None:
    """Leaf-like clefts lined by epithelium, pushed apart by hypercellular stroma."""
    extra = points_in(rng, region, int(region.sum() / (30 * zoom**2)))
    draw_nuclei(rng, haem, eosin, extra, (0.7 * zoom, 1.0 * zoom), (0.5, 0.85), elongation=2.2)
    field = smooth_noise(rng, region.shape, 28 * zoom)
    width = rng.uniform(0.05, 0.09)
    cleft = region & ((np.abs(field) < width) | (np.abs(field - 1.0) < width))
    size = int(4.5 * zoom) | 1
    lining = cv2.dilate(cleft.astype(np.uint8), np.ones((size, size), np.uint8)) > 0
    lining &= region & ~cleft
    paint(haem, eosin, lining, rng.uniform(0.1, 0.16), rng.uniform(0.25, 0.38))
    paint(haem, eosin, cleft, 0.01, 0.04)
    cells = points_in(rng, lining, int(lining.sum() / (3 * zoom**2)))
    draw_nuclei(rng, haem, eosin, cells, (0.8 * zoom, 1.0 * zoom), (0.6, 1.0), elongation=1.4)


def _tubular_adenoma(rng, haem, eosin, zoom, region, _angle) -> None:
    """Small round tubules packed back to back with almost no stroma between them."""
    radius = rng.uniform(3.2, 4.4) * zoom
    centres = jittered_grid(rng, region, 2.1 * radius, 0.08)
    count = len(centres)
    axes = radius * rng.uniform([0.9, 0.7], [1.1, 1.0], (count, 2))
    eosin[region] *= 0.6
    draw_glands(rng, haem, eosin, centres, axes, rng.uniform(0, 180, count),
                wall=0.62 * radius, nucleus=0.95 * zoom, myoepithelial=False)


def _ductal(rng, haem, eosin, zoom, region, _angle) -> None:
    """Solid nests and sheets of crowded, large, pleomorphic, dark nuclei."""
    nests = region if rng.random() < 0.3 else (
        region & (smooth_noise(rng, region.shape, 16 * zoom) > rng.uniform(-0.6, 0.2)))
    paint(haem, eosin, nests, rng.uniform(0.18, 0.3), rng.uniform(0.28, 0.42))
    if rng.random() < 0.3:  # cribriform spaces punched into the nests
        holes = np.zeros(region.shape, np.uint8)
        for x, y in points_in(rng, nests, int(nests.sum() / (14 * zoom) ** 2) + 1):
            cv2.circle(holes, (int(x), int(y)), int(rng.uniform(1.2, 2.5) * zoom), 255, -1)
        paint(haem, eosin, nests & (holes > 0), 0.01, 0.05)
        nests = nests & (holes == 0)
    radius = (1.5 * zoom, 2.4 * zoom)
    # a sheet of cells: nuclei crowd, but each keeps some cytoplasm around it
    cells = jittered_grid(rng, nests, rng.uniform(2.1, 2.6) * radius[1], 0.2)
    draw_nuclei(rng, haem, eosin, cells, radius, (0.9, 1.5),
                elongation=1.4, irregularity=0.25)


def _lobular(rng, haem, eosin, zoom, region, angle) -> None:
    """Small discohesive cells in single-file lines along the collagen, some scattered."""
    eosin[region] *= 1.1
    nucleus = 0.95 * zoom
    paths = []
    heading = -np.deg2rad(angle)
    for start in points_in(rng, region, int(region.sum() / (16 * zoom) ** 2) + 2):
        paths.append(wandering_path(rng, start, heading + rng.normal(0, 0.3),
                                    rng.uniform(15, 45) * zoom, 2.8 * nucleus, 0.12))
    cells = np.concatenate(paths + [points_in(rng, region, len(paths) * 3)])
    cells += rng.normal(0, 0.3 * nucleus, cells.shape)
    inside = in_region(region, cells)
    halo = np.zeros_like(haem)
    draw_nuclei(rng, halo, np.ones_like(eosin), cells[inside], (1.6 * nucleus, 1.9 * nucleus),
                (1.0, 1.0))
    paint(haem, eosin, halo > 0, 0.1, rng.uniform(0.2, 0.3))  # a rim of pale cytoplasm
    draw_nuclei(rng, haem, eosin, cells[inside], (0.85 * nucleus, nucleus), (0.8, 1.2))


def _mucinous(rng, haem, eosin, zoom, region, angle) -> None:
    """Pale blue-grey mucin lakes with small clusters of tumour cells floating in them."""
    lakes = region & (smooth_noise(rng, region.shape, 32 * zoom) > rng.uniform(-0.7, 0.0))
    wisps = np.clip(1 + 0.2 * fibres(rng, region.shape, zoom, angle + 60), 0.3, None)
    haem[lakes] = (rng.uniform(0.16, 0.26) * wisps)[lakes]
    eosin[lakes] = (rng.uniform(0.03, 0.07) * wisps)[lakes]
    clumps = np.zeros(region.shape, np.uint8)
    for x, y in points_in(rng, lakes, int(lakes.sum() / (18 * zoom) ** 2) + 1):
        axes = tuple(int(a) for a in rng.uniform(2.0, 5.0, 2) * zoom)
        cv2.ellipse(clumps, (int(x), int(y)), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    clumps = (clumps > 0) & lakes
    paint(haem, eosin, clumps, rng.uniform(0.12, 0.2), rng.uniform(0.3, 0.42))
    count = int(0.5 * clumps.sum() / (np.pi * (1.2 * zoom) ** 2)) + 1
    draw_nuclei(rng, haem, eosin, points_in(rng, clumps, count), (1.0 * zoom, 1.4 * zoom),
                (0.7, 1.1), irregularity=0.15)


def _papillary(rng, haem, eosin, zoom, region, _angle) -> None:
    """Finger-like fronds, each a pink fibrovascular core under stratified columnar cells."""
    paint(haem, eosin, region, 0.015, rng.uniform(0.03, 0.08))  # the cyst the fronds fill
    paths = []
    for start in points_in(rng, region, int(region.sum() / (34 * zoom) ** 2) + 2):
        heading = rng.uniform(0, 2 * np.pi)
        path = wandering_path(rng, start, heading, rng.uniform(20, 45) * zoom, 2.2 * zoom, 0.15)
        paths.append(path)
        if rng.random() < 0.5:
            paths.append(wandering_path(rng, path[len(path) // 2], heading + rng.choice([-1, 1]),
                                        rng.uniform(10, 25) * zoom, 2.2 * zoom, 0.15))
    width = rng.uniform(6.5, 9) * zoom
    core_width = 0.4 * width
    frond = stroke(region.shape, paths, width) & region
    core = stroke(region.shape, paths, core_width) & region
    paint(haem, eosin, frond & ~core, rng.uniform(0.15, 0.24), rng.uniform(0.25, 0.35))
    paint(haem, eosin, core, 0.05, rng.uniform(0.55, 0.8))
    vessel = stroke(region.shape, paths, max(1.0, 0.3 * core_width)) & region
    eosin[vessel] = rng.uniform(0.9, 1.2)  # red cells in the capillary at the core's centre
    offsets = [core_width / 2 + f * (width - core_width) / 2 for f in (0.25, 0.6, 0.9)]
    _line_with_cells(rng, haem, eosin, region, paths, offsets, 1.3 * zoom, elongation=1.8)


# subtype -> painter(rng, haem, eosin, zoom, lesion region, stroma fibre angle), in place
_PATTERNS = {"A": _adenosis, "F": _fibroadenoma, "PT": _phyllodes, "TA": _tubular_adenoma,
             "DC": _ductal, "LC": _lobular, "MC": _mucinous, "PC": _papillary}


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
    if subtype not in _PATTERNS or magnification not in ZOOM:
        raise ValueError(f"need subtype in {ALL_SUBTYPES} and magnification in "
                         f"{MAGNIFICATIONS}; got {subtype!r}, {magnification!r}")
    zoom = ZOOM[magnification]
    shape = (size[0] // _CANVAS, size[1] // _CANVAS)
    density, cellularity = _STROMA[subtype]
    haem, eosin, angle = stroma(rng, shape, zoom, density * rng.uniform(0.8, 1.2),
                                cellularity * rng.uniform(0.7, 1.3))
    region = lesion_region(rng, shape, zoom)
    _shared_elements(rng, haem, eosin, zoom, region)
    _PATTERNS[subtype](rng, haem, eosin, zoom, region, angle)
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


def _write(out_dir: Path, spec: _ImageSpec, image: np.ndarray, mask: np.ndarray | None) -> None:
    """Write an image, and its mask if any, where BreaKHis keeps it."""
    path = out_dir / tile_relpath(*spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = {path: cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
              path.with_name(f"{path.stem}_mask.png"): mask}
    for target, pixels in images.items():
        if pixels is not None and not cv2.imwrite(str(target), pixels):
            raise OSError(f"could not write {target}")


def synthesize_breakhis(
    out_dir: Path,
    n: int,
    seed: int = 0,
    n_patients_per_subtype: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> BreakhisSynthSummary:
    """Write n synthetic images under ``out_dir/BreaKHis_v1/histology_slides/breast``.

    Subtypes take turns (so n >= 32 gives all 8 at all 4 magnifications); malignant images
    also get a ``<stem>_mask.png`` lesion mask. The same seed writes the same bytes.
    """
    out_dir = Path(out_dir)
    if n < 1 or n_patients_per_subtype < 1 or seed < 0:
        raise ValueError(f"need n, n_patients_per_subtype >= 1 and seed >= 0; got n={n}, "
                         f"n_patients_per_subtype={n_patients_per_subtype}, seed={seed}")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise DatasetLayoutError(f"{out_dir} is not empty; synthesize into a new directory")
    rng = np.random.default_rng(seed)
    plan = _plan(rng, n, n_patients_per_subtype)
    # each slide was stained on its own: one haematoxylin and eosin uptake per numeric slide id
    slides = sorted({spec.slide for spec in plan})
    gains = {slide: tuple(np.clip(rng.normal(1, 0.12, 2), 0.7, 1.4).tolist()) for slide in slides}
    every = max(1, n // 100)
    for index, spec in enumerate(plan):
        # one stream per image, so an image depends only on (seed, index), never on its neighbours
        image, mask = render_breakhis_image(
            np.random.default_rng([seed, index]), spec.subtype, spec.magnification,
            stain_gains=gains[spec.slide],
        )
        _write(out_dir, spec, image, mask)
        if progress is not None and ((index + 1) % every == 0 or index + 1 == n):
            progress(index + 1, n)
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
