"""Building blocks for synthetic H&E images of any size: stroma, nuclei, glands, paths, optics.

Everything paints two float32 stain maps, haematoxylin and eosin, in place; ``render_rgb``
turns them into an RGB image by Beer-Lambert absorption with the stain vectors of
``synth_idc``. Sizes are in canvas pixels, and callers scale them by a zoom factor, so one
helper draws the same structure at every magnification.
"""

from __future__ import annotations

import cv2
import numpy as np

_SHIFT = 4  # OpenCV fixed-point bits: sub-pixel outlines keep small nuclei round
_ONE = 1 << _SHIFT
# Optical densities of the two stains (RGB absorbance directions), before per-image jitter.
HAEMATOXYLIN = np.array([0.58, 0.73, 0.37])
EOSIN = np.array([0.15, 0.84, 0.52])
_OUTLINE = np.linspace(0, 2 * np.pi, 14, endpoint=False)


def points_in(rng: np.random.Generator, region: np.ndarray, count: int) -> np.ndarray:
    """Uniform random (x, y) points inside a boolean region; none if it is empty."""
    if count <= 0 or not region.any():
        return np.zeros((0, 2))
    ys, xs = np.nonzero(region)
    picks = rng.integers(0, xs.size, count)
    return np.stack([xs[picks], ys[picks]], 1) + rng.uniform(0, 1, (count, 2))


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], feature: float) -> np.ndarray:
    """Zero-mean, unit-spread noise whose blobs are about ``feature`` pixels across."""
    cells = [int(np.ceil(side / max(feature, 1.0))) + 2 for side in shape]
    coarse = rng.standard_normal(cells).astype(np.float32)
    field = cv2.resize(coarse, shape[::-1], interpolation=cv2.INTER_CUBIC)
    return (field - field.mean()) / (field.std() + 1e-6)


def fibres(rng: np.random.Generator, shape: tuple[int, int], zoom: float,
           angle: float) -> np.ndarray:
    """Collagen-like streaks along ``angle`` (degrees), gently bent, unit spread.

    The streaks are drawn on a canvas shrunk with zoom and then enlarged, so they thicken
    with magnification and cost less, not more, at high zoom.
    """
    scale = max(1.0, zoom / 1.5)
    small = (max(8, int(shape[0] / scale)), max(8, int(shape[1] / scale)))
    kernel = np.zeros((9, 9), np.float32)
    kernel[4, :] = 1 / 9
    kernel = cv2.warpAffine(kernel, cv2.getRotationMatrix2D((4, 4), angle, 1.0), (9, 9))
    streaks = cv2.filter2D(rng.standard_normal(small).astype(np.float32), -1, kernel,
                           borderType=cv2.BORDER_REFLECT)
    grid_y, grid_x = np.mgrid[0:small[0], 0:small[1]].astype(np.float32)
    bend = [3 * smooth_noise(rng, small, 25) for _ in range(2)]
    streaks = cv2.remap(streaks, grid_x + bend[0], grid_y + bend[1], cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REFLECT)
    streaks = cv2.resize(streaks, shape[::-1], interpolation=cv2.INTER_LINEAR)
    return (streaks - streaks.mean()) / (streaks.std() + 1e-6)


def draw_nuclei(rng: np.random.Generator, haem: np.ndarray, eosin: np.ndarray,
                centres: np.ndarray, radius: tuple[float, float], darkness: tuple[float, float],
                *, elongation: float = 1.0, angles: np.ndarray | None = None,
                irregularity: float = 0.08) -> None:
    """Add nuclei (14-gons with jittered radii) to the haematoxylin map, in place.

    Args:
        radius: range of the mean radius, in pixels.
        elongation: up to this length/width ratio; ``angles`` (radians) orient the long
            axis, random when None.
        irregularity: relative jitter of the outline (0.3 looks pleomorphic).
    """
    count = len(centres)
    if count == 0:
        return
    radii = rng.uniform(*radius, (count, 1))
    radii = radii * (1 + irregularity * rng.uniform(-1, 1, (count, _OUTLINE.size)))
    stretch = rng.uniform(1.0, elongation, (count, 1))
    turn = rng.uniform(0, np.pi, count) if angles is None else np.asarray(angles)
    ring = radii * (np.cos(_OUTLINE) * stretch + 1j * np.sin(_OUTLINE) / stretch)
    outline = ring * np.exp(1j * turn)[:, None] + (centres[:, 0] + 1j * centres[:, 1])[:, None]
    points = np.rint(np.stack([outline.real, outline.imag], -1) * _ONE).astype(np.int32)
    layer = np.zeros_like(haem)
    for polygon, value in zip(points, rng.uniform(*darkness, count).tolist(), strict=True):
        cv2.fillPoly(layer, [polygon], value, cv2.LINE_8, _SHIFT)
    # chromatin is granular and gathers under the nuclear membrane; a nucleus pushes the pink
    # cytoplasm aside
    rim = layer - cv2.erode(layer, np.ones((3, 3), np.uint8))
    grain = rng.standard_normal(layer.shape, dtype=np.float32)
    layer *= np.clip(1 + 0.25 * grain, 0.4, None)
    haem += layer + 0.5 * rim
    eosin *= np.where(layer > 0, 0.55, 1.0).astype(np.float32)


def stroma(rng: np.random.Generator, shape: tuple[int, int], zoom: float, density: float,
           cellularity: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Fibrous stroma: (haematoxylin, eosin, fibre angle in degrees) with spindle nuclei."""
    angle = float(rng.uniform(0, 180))
    texture = 0.15 * fibres(rng, shape, zoom, angle) + 0.18 * smooth_noise(rng, shape, 30 * zoom)
    eosin = np.clip(density * (1 + texture), 0.03, None).astype(np.float32)
    haem = rng.uniform(0.03, 0.1) * np.clip(1 + 0.4 * smooth_noise(rng, shape, 30), 0, None)
    haem = haem.astype(np.float32)
    count = int(cellularity * shape[0] * shape[1] / (150 * zoom**2))
    centres = rng.uniform(0, 1, (count, 2)) * shape[::-1]
    # fibroblasts lie along the collagen
    along = np.deg2rad(-angle) + rng.normal(0, 0.25, count)
    draw_nuclei(rng, haem, eosin, centres, (0.6 * zoom, 0.9 * zoom), (0.5, 0.9),
                elongation=3.0, angles=along)
    return haem, eosin, angle


def paint(haem: np.ndarray, eosin: np.ndarray, region: np.ndarray, h: float, e: float) -> None:
    """Set both stains inside a boolean region, in place (cytoplasm, mucin, lumen ...)."""
    haem[region], eosin[region] = h, e


def ellipse_points(rng: np.random.Generator, centres: np.ndarray, axes: np.ndarray,
                   angles: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Points about ``spacing`` apart along each ellipse, and the outward normal angle at each.

    Args:
        centres, axes: (n, 2) arrays of centres and (a, b) semi-axes; ``angles`` in degrees.
    """
    a, b = axes[:, 0], axes[:, 1]
    perimeter = np.pi * (3 * (a + b) - np.sqrt((3 * a + b) * (a + 3 * b)))
    counts = np.maximum(3, (perimeter / spacing).astype(int))
    owner = np.repeat(np.arange(len(counts)), counts)
    step = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
    t = 2 * np.pi * step / counts[owner] + rng.uniform(0, 2 * np.pi, len(counts))[owner]
    turn = np.exp(1j * np.deg2rad(angles))[owner]
    a, b = a[owner], b[owner]
    points = (a * np.cos(t) + 1j * b * np.sin(t)) * turn + (centres @ [1, 1j])[owner]
    normals = np.angle((b * np.cos(t) + 1j * a * np.sin(t)) * turn)
    return np.stack([points.real, points.imag], 1), normals


def draw_glands(rng: np.random.Generator, haem: np.ndarray, eosin: np.ndarray,
                centres: np.ndarray, axes: np.ndarray, angles: np.ndarray,
                wall: float, nucleus: float, *, myoepithelial: bool = True) -> None:
    """Glands with a pale lumen, a luminal cell layer and, optionally, a myoepithelial one.

    Args:
        centres, axes: (n, 2) arrays of centres and (a, b) semi-axes in pixels; ``angles``
            in degrees. ``wall`` is the epithelium's thickness, ``nucleus`` a luminal
            nucleus radius.
    """
    outer = np.zeros(haem.shape, np.uint8)
    lumen = np.zeros(haem.shape, np.uint8)
    inner = np.maximum(axes - wall, 0.5)
    fixed = np.rint(np.concatenate([centres, axes, inner], 1) * _ONE).astype(int).tolist()
    for (x, y, a, b, a_in, b_in), angle in zip(fixed, angles.tolist(), strict=True):
        cv2.ellipse(outer, (x, y), (a, b), angle, 0, 360, 255, -1, cv2.LINE_8, _SHIFT)
        cv2.ellipse(lumen, (x, y), (a_in, b_in), angle, 0, 360, 255, -1, cv2.LINE_8, _SHIFT)
    epithelium = (outer > 0) & (lumen == 0)
    paint(haem, eosin, epithelium, rng.uniform(0.08, 0.16), rng.uniform(0.28, 0.42))
    paint(haem, eosin, lumen > 0, 0.01, rng.uniform(0.02, 0.08))
    # luminal cells sit on the lumen side when a myoepithelial layer lines the outside, and
    # stand perpendicular to the lining; myoepithelial cells lie flat along it
    depth = wall - 1.1 * nucleus if myoepithelial else 0.5 * wall
    points, normals = ellipse_points(rng, centres, axes - depth, angles, 2.3 * nucleus)
    draw_nuclei(rng, haem, eosin, points, (0.85 * nucleus, nucleus), (0.6, 0.95),
                elongation=1.5, angles=normals)
    if myoepithelial:
        points, normals = ellipse_points(rng, centres, axes - 0.3 * nucleus, angles,
                                         3.5 * nucleus)
        draw_nuclei(rng, haem, eosin, points, (0.5 * nucleus, 0.7 * nucleus), (0.8, 1.2),
                    elongation=2.5, angles=normals + np.pi / 2)


def wandering_path(rng: np.random.Generator, start, angle: float, length: float, step: float,
                   bend: float) -> np.ndarray:
    """(m, 2) points of a random walk from start, heading ``angle`` radians, turning by bend."""
    steps = max(2, int(length / step))
    heading = angle + np.cumsum(rng.normal(0, bend, steps))
    moves = step * np.exp(1j * heading)
    path = complex(*start) + np.concatenate([[0], np.cumsum(moves)])
    return np.stack([path.real, path.imag], 1)


def path_lining(path: np.ndarray, offsets: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Points beside a path at each offset, on both sides, and the path's normal angle there.

    Cells lining a duct or frond are spaced like the path's own points.
    """
    direction = np.gradient(path[:, 0] + 1j * path[:, 1])
    normal = 1j * direction / (np.abs(direction) + 1e-6)
    centre = path[:, 0] + 1j * path[:, 1]
    sides = [centre + sign * offset * normal for offset in offsets for sign in (1, -1)]
    points = np.concatenate(sides)
    angles = np.tile(np.angle(normal), 2 * len(offsets))
    return np.stack([points.real, points.imag], 1), angles


def stroke(shape: tuple[int, int], paths: list[np.ndarray], width: float) -> np.ndarray:
    """Boolean mask of thick round-capped polylines along paths."""
    canvas = np.zeros(shape, np.uint8)
    polylines = [np.rint(path * _ONE).astype(np.int32) for path in paths]
    cv2.polylines(canvas, polylines, False, 255, max(1, int(round(width))), cv2.LINE_8, _SHIFT)
    return canvas > 0


def jittered_grid(rng: np.random.Generator, region: np.ndarray, spacing: float,
                  jitter: float = 0.3) -> np.ndarray:
    """(x, y) points on a hexagonal grid ``spacing`` apart, jittered, inside a region."""
    height, width = region.shape
    grid_x, grid_y = np.meshgrid(np.arange(-spacing, width + spacing, spacing),
                                 np.arange(-spacing, height + spacing, spacing * 0.866))
    grid_x += (np.arange(len(grid_y)) % 2)[:, None] * spacing / 2  # every other row shifts
    points = np.stack([grid_x.ravel(), grid_y.ravel()], 1)
    points += rng.normal(0, jitter * spacing, points.shape)
    return points[in_region(region, points)]


def in_region(region: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Which (x, y) points fall inside a boolean region (points off the canvas do not)."""
    xs, ys = np.floor(points[:, 0]).astype(int), np.floor(points[:, 1]).astype(int)
    on = (xs >= 0) & (ys >= 0) & (xs < region.shape[1]) & (ys < region.shape[0])
    inside = np.zeros(len(points), bool)
    inside[on] = region[ys[on], xs[on]]
    return inside


def lesion_region(rng: np.random.Generator, shape: tuple[int, int], zoom: float) -> np.ndarray:
    """Where the lesion is: a blob that grows with magnification until it fills the field."""
    coverage = rng.uniform(0.45, 0.8) + 0.08 * (zoom - 1)
    if coverage >= 0.97:
        return np.ones(shape, bool)
    grid_y, grid_x = np.ogrid[0:1:shape[0] * 1j, 0:1:shape[1] * 1j]
    centre = rng.uniform(0.25, 0.75, 2)
    field = smooth_noise(rng, shape, 0.5 * shape[0]) - 3 * np.hypot(grid_x - centre[0],
                                                                     grid_y - centre[1])
    return field > np.quantile(field, 1 - coverage)


def add_fat(rng: np.random.Generator, haem: np.ndarray, eosin: np.ndarray, zoom: float) -> None:
    """A lobule of white fat cells with thin pink membranes, in place."""
    cluster = rng.uniform(0, 1, 2) * haem.shape[::-1]
    radius = rng.uniform(6, 10) * zoom
    centres = cluster + rng.normal(0, 2.2 * radius, (int(rng.integers(4, 14)), 2))
    punch_fat(rng, haem, eosin, ((tuple(int(c) for c in centre),
                                  tuple(int(r) for r in rng.uniform(0.7, 1.2, 2) * radius),
                                  float(rng.uniform(0, 180))) for centre in centres))


def punch_fat(rng: np.random.Generator, haem: np.ndarray, eosin: np.ndarray, cells) -> None:
    """Punch white fat vacuoles, each ringed by a thin pink membrane, into both stains, in place.

    Args:
        cells: ``(centre, axes, angle)`` of each fat cell: integer (x, y) and semi-axes in
            pixels, the angle in degrees.
    """
    holes = np.zeros(haem.shape, np.uint8)
    walls = np.zeros(haem.shape, np.uint8)
    for centre, axes, angle in cells:
        cv2.ellipse(holes, centre, axes, angle, 0, 360, 255, -1)
        cv2.ellipse(walls, centre, axes, angle, 0, 360, 255, 1)
    inside = (holes > 0) & (walls == 0)
    haem[inside] *= 0.05
    eosin[inside] *= 0.04
    eosin[walls > 0] = np.maximum(eosin[walls > 0], rng.uniform(0.25, 0.5))


def add_inflammation(rng: np.random.Generator, haem: np.ndarray, eosin: np.ndarray,
                     zoom: float) -> None:
    """A loose focus of small, dark, round lymphocytes, in place."""
    count = int(rng.integers(30, 160))
    spread = rng.uniform(8, 25) * zoom
    centres = rng.uniform(0, 1, 2) * haem.shape[::-1] + rng.normal(0, spread, (count, 2))
    draw_nuclei(rng, haem, eosin, centres, (0.7 * zoom, 0.9 * zoom), (0.9, 1.3))


def add_vessel(rng: np.random.Generator, haem: np.ndarray, eosin: np.ndarray,
               zoom: float) -> None:
    """A small blood vessel: an endothelial ring holding bright red blood cells, in place."""
    centre = rng.uniform(0, 1, 2) * haem.shape[::-1]
    radius = rng.uniform(3, 7) * zoom
    lumen = np.zeros(haem.shape, np.uint8)
    cv2.circle(lumen, tuple(int(c) for c in centre), int(radius), 255, -1)
    paint(haem, eosin, lumen > 0, 0.01, 0.05)
    cells = centre + rng.normal(0, 0.4 * radius, (int(rng.integers(3, 20)), 2))
    blood = np.zeros_like(eosin)  # red cells: the nucleus outline, painted in eosin
    draw_nuclei(rng, blood, np.ones_like(eosin), cells, (0.6 * zoom, 0.8 * zoom), (1.0, 1.4))
    eosin += np.where(lumen > 0, blood, 0)
    ring, normals = ellipse_points(rng, centre[None], np.array([[radius, radius]]),
                                   np.zeros(1), 4 * zoom)
    draw_nuclei(rng, haem, eosin, ring, (0.5 * zoom, 0.7 * zoom), (0.6, 1.0),
                elongation=2.5, angles=normals + np.pi / 2)


def render_rgb(rng: np.random.Generator, haem: np.ndarray, eosin: np.ndarray,
               size: tuple[int, int]) -> np.ndarray:
    """Stain maps -> (height, width, 3) uint8 RGB: stain jitter, blur, uneven light, noise.

    Optical density is ``stains @ vectors``, with per-image jitter of the stain vectors'
    hue, of each stain's strength, of the glass's density and of fading towards grey, all
    folded into one 3x3 matrix so the canvas passes through a single ``cv2.transform``.
    Everything runs at canvas size; only the final uint8 image is enlarged.
    """
    vectors = [np.abs(v + rng.normal(0, 0.07, 3)) for v in (HAEMATOXYLIN, EOSIN)]
    strength = rng.uniform(0.65, 1.4), rng.uniform(0.6, 1.4)
    fade = rng.uniform(0.0, 0.25)  # thin or faded sections drift towards grey
    mix = (1 - fade) * np.eye(3) + fade / 3
    matrix = np.empty((3, 3))
    for column, (vector, gain) in enumerate(zip(vectors, strength, strict=True)):
        matrix[:, column] = mix @ (gain * vector / np.linalg.norm(vector))
    matrix[:, 2] = rng.uniform(0.02, 0.08)  # the glass and mounting medium
    density = cv2.transform(cv2.merge([haem, eosin]), matrix.astype(np.float32))
    # microscope cameras light the centre more than the corners, and a little unevenly
    grid_y, grid_x = np.ogrid[-1:1:haem.shape[0] * 1j, -1:1:haem.shape[1] * 1j]
    shade = rng.uniform(0, 0.12) * (grid_x**2 + grid_y**2) / 2
    shade = shade + 0.02 * smooth_noise(rng, haem.shape, haem.shape[0] / 2)
    density += shade.astype(np.float32)[..., None]
    rgb = cv2.GaussianBlur(255 * cv2.exp(-density), (0, 0), rng.uniform(0.35, 1.0))
    rgb += rng.standard_normal((*haem.shape, 1), dtype=np.float32) * rng.uniform(1.0, 3.5)
    small = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    return cv2.resize(small, size[::-1], interpolation=cv2.INTER_CUBIC)
