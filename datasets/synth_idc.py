"""Deterministic synthetic H&E-like IDC tiles, written in the real dataset's layout.

Stains are painted as concentration maps and rendered by Beer-Lambert absorption, so stain
jitter acts like real staining. Classes differ in tissue structure: a positive holds a nest of
large, pleomorphic nuclei, while a third of negatives hold a benign nest of small regular ones.
Colour is not a giveaway, but it is not blind either: a positive always has a dark nest, so
per-channel colour statistics alone reach about 0.8 balanced accuracy on patient-held-out tiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from edgehisto.bundle.progress import Progress, no_progress
from edgehisto.datasets.idc import TILE_SIZE
from edgehisto.datasets.synth_he import EOSIN, HAEMATOXYLIN, points_in, punch_fat
from edgehisto.datasets.synth_output import refuse_used_folder, write_planned

# Optical density per unit stain in RGB, fitted (Macenko-style) to real IDC patches, which
# are redder and more purple than the textbook Ruifrok & Johnston vectors.
# Nuclei are only 1-3 px wide at 50 px; painting at 2x and area-downsampling anti-aliases them.
_SUPERSAMPLE = 2


@dataclass(frozen=True)
class SynthSummary:
    """What a synthesize_idc run wrote."""

    out_dir: Path
    n_tiles: int
    n_positive: int
    n_negative: int
    n_masks: int
    n_undersized: int
    patients: tuple[str, ...]


class _TileSpec(NamedTuple):
    """Where one tile goes and what it shows."""

    patient: str
    x: int
    y: int
    positive: bool
    undersized: bool

    @property
    def relpath(self) -> str:
        """Where the tile goes: PATIENT/CLASS/PATIENT_idx5_xX_yY_classC.png."""
        label = int(self.positive)
        return f"{self.patient}/{label}/{self.patient}_idx5_x{self.x}_y{self.y}_class{label}.png"


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Zero-mean, unit-spread low-frequency noise: a coarse random grid upsampled smoothly."""
    coarse = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    field = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return (field - field.mean()) / (field.std() + 1e-6)


def _fibres(rng: np.random.Generator, size: int) -> np.ndarray:
    """Collagen-like texture: white noise smeared along one direction, then gently bent."""
    length = int(rng.integers(5, 12))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    turn = cv2.getRotationMatrix2D(((length - 1) / 2,) * 2, float(rng.uniform(0, 180)), 1.0)
    kernel = cv2.warpAffine(kernel, turn, (length, length))
    noise = rng.standard_normal((size, size)).astype(np.float32)
    streaks = cv2.filter2D(noise, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)
    # a smooth displacement bends the streaks so they do not look ruler-straight
    grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float32)
    map_x = grid_x + 3 * _smooth_noise(rng, size, 3)
    map_y = grid_y + 3 * _smooth_noise(rng, size, 3)
    bent = cv2.remap(streaks, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return (bent - bent.mean()) / (bent.std() + 1e-6)


def _stroma(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Haematoxylin and eosin maps of fibrous stroma, with pale clefts between fibres."""
    density = rng.uniform(0.35, 0.9)
    texture = 0.2 * _fibres(rng, size) + 0.15 * _smooth_noise(rng, size, 3)
    eosin = np.clip(density * (1 + texture), 0.03, None)
    haem = rng.uniform(0.04, 0.2) * np.clip(1 + 0.4 * _smooth_noise(rng, size, 4), 0, None)
    return haem.astype(np.float32), eosin.astype(np.float32)


def _add_fat(rng: np.random.Generator, haem: np.ndarray, eosin: np.ndarray, count: int) -> None:
    """Punch a cluster of white fat vacuoles, separated by thin eosin membranes, in place."""
    size = haem.shape[0]
    cluster = rng.uniform(0, size, 2)  # adipocytes come in lobules, not singly
    punch_fat(rng, haem, eosin, ((tuple(int(c) for c in cluster + rng.normal(0, 0.22 * size, 2)),
                                  tuple(int(a) for a in rng.uniform(0.08, 0.22, 2) * size),
                                  float(rng.uniform(0, 180))) for _ in range(count)))


def _tissue_edge(rng: np.random.Generator, haem: np.ndarray, eosin: np.ndarray) -> None:
    """Blank out the bare slide glass beyond a wavy tissue border, in place."""
    size = haem.shape[0]
    grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * (grid_x - 0.5) + np.sin(angle) * (grid_y - 0.5)
    glass = ramp + 0.08 * _smooth_noise(rng, size, 3) > rng.uniform(0.0, 0.4)
    for stain in (haem, eosin):
        stain[glass] *= 0.03


def _draw_nuclei(rng: np.random.Generator, haem: np.ndarray, eosin: np.ndarray,
                 centres: np.ndarray, radius: tuple[float, float], irregularity: float,
                 darkness: tuple[float, float], stretch: float = 1.0) -> None:
    """Add nuclei to the haematoxylin map in place; overlaps darken, as stacked cells do."""
    layer, scratch = np.zeros_like(haem), np.zeros_like(haem)
    angles = np.linspace(0, 2 * np.pi, 10, endpoint=False)
    # Per nucleus, in this order: a mean radius, a jitter per outline point, an elongation, a turn and
    # a darkness, drawn as one block (the same stream as drawing them a nucleus at a time).
    u = rng.random((len(centres), 3 + angles.size + 1))
    (r_low, r_high), (d_low, d_high) = radius, darkness
    # jittered radii make pleomorphic outlines; stretch makes spindly fibroblasts
    radii = (r_low + (r_high - r_low) * u[:, :1]) * (1 + irregularity * (-1.0 + 2.0 * u[:, 1:1 + angles.size]))
    elongation = 1.0 + (stretch - 1.0) * u[:, -3:-2]
    ring = radii * (np.cos(angles) * elongation + 1j * np.sin(angles) / elongation)
    outline = ring * np.exp(1j * (0.0 + np.pi * u[:, -2:-1])) + (centres[:, :1] + 1j * centres[:, 1:2])
    # fixed point (shift=4) keeps sub-pixel nuclei round instead of blocky
    points = np.rint(np.stack([outline.real, outline.imag], -1) * 16).astype(np.int32)
    # each nucleus is filled on its own and added, so that overlaps sum; only its bounding box changes
    height, width = layer.shape
    low = np.clip((points.min(1) >> 4) - 1, 0, None)
    high = (points.max(1) >> 4) + 2
    for polygon, value, (x0, y0), (x1, y1) in zip(points, (d_low + (d_high - d_low) * u[:, -1]).tolist(),
                                                  low.tolist(), high.tolist(), strict=True):
        if x0 >= width or y0 >= height or x1 <= 0 or y1 <= 0:
            continue  # wholly off the canvas: fillPoly would draw nothing
        cv2.fillPoly(scratch, [polygon], value, shift=4)
        box = scratch[y0:y1, x0:x1]
        layer[y0:y1, x0:x1] += box
        box.fill(0)
    # chromatin is granular, and a nucleus pushes the pink cytoplasm aside
    layer *= np.clip(1 + 0.25 * rng.standard_normal(layer.shape), 0.4, None).astype(np.float32)
    haem += np.minimum(layer, 1.6 * darkness[1])
    eosin *= np.where(layer > 0, 0.5, 1.0).astype(np.float32)


def _blob(rng: np.random.Generator, size: int, radius: float) -> np.ndarray:
    """Irregular blob at a random spot; it may run off the tile, as tumour nests do."""
    cx, cy = rng.uniform(0.1, 0.9, 2) * size
    grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float32)
    stretch = rng.uniform(0.65, 1.5)
    distance = np.hypot((grid_x - cx) * stretch, (grid_y - cy) / stretch) / radius
    # the core survives the noise, so every positive has a lesion to point at
    return (1 - distance + 0.4 * _smooth_noise(rng, size, 5) > 0) | (distance < 0.5)


def _nest(rng: np.random.Generator, haem: np.ndarray, eosin: np.ndarray,
          malignant: bool) -> np.ndarray:
    """Fill a blob with crowded epithelial cells in place and return the blob's mask."""
    size = haem.shape[0]
    if malignant:
        # hard positives (a small focus, or a faint one) keep a CNN well below 100 %
        small = rng.random() < 0.25
        darkness = rng.uniform(0.5, 0.8) if rng.random() < 0.25 else 1.0
        radius = size * (rng.uniform(0.12, 0.2) if small else rng.uniform(0.22, 0.55))
        # high-grade nuclei: about twice a benign cell's, pleomorphic and crowded. At 50 px a
        # benign nucleus is 1-2 px across; radii below ~2 canvas px (1 tile px) fell under the
        # tile's resolution, and a malignant nest looked like a benign one, only darker
        nuclei, irregularity, coverage = (2.0, 3.2), 0.35, rng.uniform(0.7, 1.1)
    else:
        # a benign lobule or lymphoid aggregate: a lesion's colour without its big odd nuclei
        darkness, radius = rng.uniform(0.6, 1.0), size * rng.uniform(0.15, 0.5)
        nuclei, irregularity, coverage = (1.0, 1.6), 0.05, rng.uniform(0.35, 0.55)
    mask = _blob(rng, size, radius)
    # epithelium replaces collagen: little eosin, a purplish cytoplasm haze between nuclei
    eosin[mask] = rng.uniform(0.25, 0.5)
    haem[mask] = rng.uniform(0.45, 1.0) * darkness * 0.5
    # coverage: the share of the nest that nuclei cover (overlaps counted twice)
    count = int(mask.sum() * coverage / (np.pi * np.mean(nuclei) ** 2))
    _draw_nuclei(rng, haem, eosin, points_in(rng, mask, count), nuclei, irregularity,
                 (0.6 * darkness, 1.1 * darkness), 1 + irregularity)
    return mask


def _inflammation(rng: np.random.Generator, haem: np.ndarray, eosin: np.ndarray) -> None:
    """A loose focus of dark round lymphocytes: a few larger nuclei in a benign tile."""
    size = haem.shape[0]
    count = int(rng.integers(8, 45))
    centres = rng.uniform(0, size, 2) + rng.normal(0, rng.uniform(0.08, 0.25) * size, (count, 2))
    _draw_nuclei(rng, haem, eosin, centres, (1.5, 2.6), 0.08, (0.8, 1.3))


def _duct(rng: np.random.Generator, haem: np.ndarray, eosin: np.ndarray) -> None:
    """A benign duct: a pale lumen ringed by one orderly layer of small round nuclei."""
    size = haem.shape[0]
    box = (tuple(rng.uniform(0.15, 0.85, 2) * size), tuple(rng.uniform(0.2, 0.5, 2) * size),
           float(rng.uniform(0, 180)))
    lumen = cv2.ellipse(np.zeros(haem.shape, np.uint8), box, 255, -1) > 0
    wall = cv2.ellipse(np.zeros(haem.shape, np.uint8), box, 255, int(rng.integers(4, 9))) > 0
    lumen &= ~wall
    eosin[wall] = rng.uniform(0.2, 0.45)
    haem[wall] = rng.uniform(0.1, 0.2)
    eosin[lumen] *= 0.05
    haem[lumen] *= 0.1
    centres = points_in(rng, wall, int(wall.sum() * rng.uniform(0.05, 0.09)))
    _draw_nuclei(rng, haem, eosin, centres, (1.3, 2.0), 0.08, (0.7, 1.1))


def _to_rgb(rng: np.random.Generator, haem: np.ndarray, eosin: np.ndarray) -> np.ndarray:
    """Beer-Lambert rendering of both stains with per-tile hue, saturation, intensity jitter."""
    vectors = [np.abs(v + rng.normal(0, 0.07, 3)) for v in (HAEMATOXYLIN, EOSIN)]
    h_vector, e_vector = (v / np.linalg.norm(v) for v in vectors)
    density = (haem[..., None] * rng.uniform(0.65, 1.4) * h_vector
               + eosin[..., None] * rng.uniform(0.6, 1.4) * e_vector
               + rng.uniform(0.02, 0.09))
    # mixing towards grey mimics faded or thin sections
    fade = rng.uniform(0.0, 0.25)
    density = (1 - fade) * density + fade * density.mean(-1, keepdims=True)
    return (255 * np.exp(-density)).astype(np.float32)


def _degrade(rng: np.random.Generator, rgb: np.ndarray, size: int) -> np.ndarray:
    """Optics and scanner nuisance: blur, downsampling, sensor noise and a JPEG round trip."""
    rgb = cv2.GaussianBlur(rgb, (0, 0), rng.uniform(0.3, 1.1))
    rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    rgb = rgb + rng.normal(0, rng.uniform(1, 4), rgb.shape)
    tile = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    quality = [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 96))]
    _, encoded = cv2.imencode(".jpg", cv2.cvtColor(tile, cv2.COLOR_RGB2BGR), quality)
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def render_idc_tile(
    rng: np.random.Generator, positive: bool, size: int = TILE_SIZE
) -> tuple[np.ndarray, np.ndarray | None]:
    """Render one RGB uint8 tile and, for a positive, its 0/255 lesion mask (else None)."""
    canvas = size * _SUPERSAMPLE
    haem, eosin = _stroma(rng, canvas)
    if rng.random() < (0.3 if positive else 0.5):
        _add_fat(rng, haem, eosin, int(rng.integers(2, 14)))
    if rng.random() < 0.15:
        _tissue_edge(rng, haem, eosin)
    stromal = rng.uniform(0, canvas, (int(rng.integers(4, 30)), 2))
    _draw_nuclei(rng, haem, eosin, stromal, (1.0, 1.8), 0.1, (0.5, 1.0), 2.2)
    if rng.random() < (0.15 if positive else 0.3):
        _inflammation(rng, haem, eosin)
    if rng.random() < (0.1 if positive else 0.25):
        _duct(rng, haem, eosin)
    if rng.random() < (0.0 if positive else 0.35):
        _nest(rng, haem, eosin, malignant=False)
    # the lesion goes on last so nothing drawn later contradicts its mask
    mask = _nest(rng, haem, eosin, malignant=True) if positive else None
    tile = _degrade(rng, _to_rgb(rng, haem, eosin), size)
    if mask is None:
        return tile, None
    area = cv2.resize(mask.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    small = np.where(area >= 0.5, 255, 0).astype(np.uint8)
    small[np.unravel_index(np.argmax(area), area.shape)] = 255  # never lose a tiny lesion
    return tile, small


def _plan(rng: np.random.Generator, n: int, n_patients: int, positive_fraction: float,
          undersized_fraction: float) -> list[_TileSpec]:
    """Decide every tile's patient, slide position, class and edge cropping up front."""
    n_patients = min(n_patients, n)
    ids = sorted(rng.choice(np.arange(10000, 100000), n_patients, replace=False))
    counts = 1 + rng.multinomial(n - n_patients, rng.dirichlet(np.full(n_patients, 2.0)))
    owner = np.repeat(np.arange(n_patients), counts)
    # a tumour burden per patient: some are almost all negative, so patient splits matter
    burden = (rng.beta(0.6, 0.8, n_patients) + 0.02)[owner]
    positive = np.zeros(n, bool)
    positive[rng.choice(n, round(n * positive_fraction), replace=False,
                        p=burden / burden.sum())] = True
    undersized = np.zeros(n, bool)
    undersized[rng.choice(n, round(n * undersized_fraction), replace=False)] = True
    # distinct grid cells per slide, on a slide roomy enough to leave tissue gaps
    sides = [int(np.ceil(np.sqrt(2 * c))) + 4 for c in counts]
    cells = np.concatenate([rng.choice(side * side, count, replace=False)
                            for side, count in zip(sides, counts, strict=True)])
    sides = np.repeat(sides, counts)
    # Real IDC patches sit on a TILE_SIZE grid starting at 1.
    xs, ys = TILE_SIZE * (cells % sides) + 1, TILE_SIZE * (cells // sides) + 1
    return [_TileSpec(str(ids[o]), int(x), int(y), bool(p), bool(u))
            for o, x, y, p, u in zip(owner, xs, ys, positive, undersized, strict=True)]


def _restain(tile: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Apply a patient's optical-density gains to a rendered tile."""
    density = -np.log((tile.astype(np.float32) + 1) / 256)
    return np.clip(np.rint(256 * np.exp(-density * gains) - 1), 0, 255).astype(np.uint8)


def _crop_edge(rng: np.random.Generator, tile: np.ndarray,
               mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Cut a tile (and its mask) short, like the patches at a slide's right or bottom edge."""
    axis = int(rng.integers(0, 2))
    length = tile.shape[axis]
    keep = int(rng.integers(max(1, length // 5), length))
    if mask is not None:
        # an edge patch of a positive must still show some of its lesion
        first = int(np.argmax(mask.any(axis=1 - axis)))
        keep = min(max(keep, first + 1), length - 1)
    index = (slice(None),) * axis + (slice(0, keep),)
    return tile[index], None if mask is None else mask[index]


def _check_request(out_dir: Path, n: int, seed: int, n_patients: int,
                   fractions: tuple[float, float]) -> None:
    """Reject arguments that cannot make a dataset, and output that would mix two runs."""
    if n < 1 or n_patients < 1 or seed < 0 or not all(0 <= f <= 1 for f in fractions):
        raise ValueError(f"need n, n_patients >= 1, seed >= 0, fractions in [0, 1]; got "
                         f"n={n}, n_patients={n_patients}, seed={seed}, fractions={fractions}")
    refuse_used_folder(out_dir)


def synthesize_idc(
    out_dir: Path,
    n: int,
    seed: int = 0,
    n_patients: int = 8,
    positive_fraction: float = 0.4,
    undersized_fraction: float = 0.01,
    progress: Progress = no_progress,
) -> SynthSummary:
    """Write n synthetic IDC tiles, with lesion masks for positives, in the real layout."""
    out_dir = Path(out_dir)
    _check_request(out_dir, n, seed, n_patients, (positive_fraction, undersized_fraction))
    rng = np.random.default_rng(seed)
    plan = _plan(rng, n, n_patients, positive_fraction, undersized_fraction)
    patients = tuple(sorted({spec.patient for spec in plan}))
    # each slide was stained and scanned on its own: one optical-density gain per patient
    gains = {p: np.clip(rng.normal(1, 0.08, 3) * rng.uniform(0.85, 1.15), 0.6, 1.5)
             for p in patients}

    def render(tile_rng: np.random.Generator, spec: _TileSpec) -> tuple[str, np.ndarray, np.ndarray | None]:
        tile, mask = render_idc_tile(tile_rng, spec.positive)
        tile = _restain(tile, gains[spec.patient])
        if spec.undersized:
            tile, mask = _crop_edge(tile_rng, tile, mask)
        return spec.relpath, tile, mask

    write_planned(out_dir, seed, plan, render, progress, "synthesizing IDC tiles")
    n_positive = sum(spec.positive for spec in plan)
    return SynthSummary(out_dir, n, n_positive, n - n_positive, n_positive,
                        sum(spec.undersized for spec in plan), patients)
