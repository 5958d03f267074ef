"""The eight BreaKHis subtypes as painters, each drawing its own architecture into a lesion region.

A painter is ``painter(rng, haem, eosin, zoom, region, angle)``: it paints the subtype's
glands, cells, clefts or mucin inside ``region`` of the two stain maps, in place, at ``zoom``
(structure size relative to 40X), with ``angle`` the stroma's fibre direction in degrees.
``synth_breakhis`` lays the stroma and the elements every subtype shares around it.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgehisto.datasets.synth_he import (
    draw_glands,
    draw_nuclei,
    fibres,
    in_region,
    jittered_grid,
    paint,
    path_lining,
    points_in,
    smooth_noise,
    stroke,
    wandering_path,
)

# (collagen density, stromal cellularity) per subtype: fibroadenoma pink, phyllodes cellular
SUBTYPE_STROMA = {"A": (0.55, 1.0), "F": (0.8, 0.7), "PT": (0.55, 1.6), "TA": (0.5, 1.0),
                  "DC": (0.5, 1.2), "LC": (0.6, 1.0), "MC": (0.5, 0.8), "PC": (0.55, 1.0)}


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
SUBTYPE_PAINTERS = {"A": _adenosis, "F": _fibroadenoma, "PT": _phyllodes, "TA": _tubular_adenoma,
                    "DC": _ductal, "LC": _lobular, "MC": _mucinous, "PC": _papillary}
