"""Does restoration make a face better or worse? Whole photos at fixed degradation levels (issue 16).

Whole validation portraits (``../shared/data/faces_hires/congress``, people of the held-out last
10 % of ``../shared/data/faces``: no training face) shrunk to 640 px (the face is about 250 px)
are degraded as whole photos at fixed levels, with per-image seeds
(:func:`~minerrestore.data.degradation.apply_degradation`: blur, downsampling, Gaussian noise
of the given sigma in 0-255 units, JPEG, bilinear resize back to 640 px):

- ``clean``: JPEG 95 only; ``mild``: blur 1, 1.5x down, noise 3, JPEG 85;
  ``moderate``: 2, 3x, 8, 70; ``severe``: 4, 6x, 15, 60;
- ``dark``: the ``miner``-like low light (exposure 0.2, gamma 1.8, shot 6) of a pit camera
  (blur 1.5, 2x down, noise 4, JPEG 75, warm lamp), a row of ``bench_dark.py``.

Each degraded photo is then left as it is (``input``), denoised and sharpened
(``nlm+unsharp``: :func:`minerrestore.baselines.classical_restore`, fixed filter strength) and
restored by :class:`~minerrestore.restore.Restorer` with ``upscale=1`` (``restore``: every other
setting the default; ``restore_f1``: ``fidelity=1.0``; more in :data:`VARIANTS`). Scores on the
face region (the clean photo's largest YuNet box enlarged by 20 %) against the clean photo:
PSNR, SSIM, LPIPS (AlexNet), MobileFaceNet cosine (FFHQ-aligned at the clean photo's landmarks),
dlib ResNet descriptor distance at the clean photo's dlib landmarks (optional: ``pip install
dlib-bin face-recognition-models``), and the share of photos a method brings further from the
person (dlib distance more than 0.02 above the input's) or closer (more than 0.02 below).

    python benchmarks/bench_severity.py                        # 40 people: 15 minutes on 2 idle cores, 30 shared
    python benchmarks/bench_severity.py --images 10 --levels mild severe --out severity.md \\
        --json severity.json --save-dir runs/severity --model weights/stages/default256_d_stage1.safetensors
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from common import (
    SIDE,
    DlibIdentity,
    degrade_seeded,
    dlib_identity,
    grid_row,
    shrink,
    update_card_section,
    validation_portraits,
)

from minerrestore.archs.identity import load_mobilefacenet
from minerrestore.baselines import classical_restore
from minerrestore.data.folders import image_seed
from minerrestore.face import Face, detect_faces
from minerrestore.face.align import estimate_affine, warp_face
from minerrestore.io import read_image, write_image
from minerrestore.metrics.identity import face_crops, face_embeddings
from minerrestore.metrics.lpips import load_lpips, lpips_distance
from minerrestore.metrics.psnr_ssim import psnr, ssim
from minerrestore.restore import Restorer

SEED = 2026
MARGIN = 0.2  # the scored face region: the clean photo's face box, enlarged by this fraction
ALIGNED = 256  # side of the FFHQ-aligned crops the MobileFaceNet cosine compares
DLIB_CHANGE = 0.02  # a dlib distance change larger than this moves a photo further or closer
SHEET_PHOTOS = 3  # photos with contact sheets under --save-dir


def camera(sigma: float, factor: float, noise: float, quality: int) -> dict[str, dict[str, Any]]:
    """Isotropic Gaussian blur, downsampling, Gaussian noise (0-255 sigma) and JPEG parameters."""
    blur = {"kernel_size": 2 * math.ceil(3 * sigma) + 1, "sigma_x": sigma, "sigma_y": sigma, "theta": 0.0}
    return {"blur": blur, "downsample": {"factor": factor}, "noise": {"sigma": noise}, "jpeg": {"quality": quality}}


DARK_LABEL, DARK = grid_row(0.2, 1.8, 6, camera=True)
LEVELS: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "clean": ("JPEG 95", {"jpeg": {"quality": 95}}),
    "mild": ("1, 1.5, 3, 85", camera(1, 1.5, 3, 85)),
    "moderate": ("2, 3, 8, 70", camera(2, 3, 8, 70)),
    "severe": ("4, 6, 15, 60", camera(4, 6, 15, 60)),
    "dark": (DARK_LABEL, DARK),
}
"""Level name -> (label: blur sigma, down x, noise, JPEG q; degradation parameters)."""

VARIANTS: dict[str, dict[str, Any]] = {
    "restore": {},
    "restore_f1": {"fidelity": 1.0},
}
"""Restorer variants: name -> keyword arguments besides ``upscale=1`` (one line adds one)."""

METRICS = ("psnr", "ssim", "lpips", "mfn_cos", "dlib")


def face_region(face: Face, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The face box enlarged by :data:`MARGIN` around its centre, clipped: (x0, y0, x1, y1)."""
    cx, cy = face.center
    half_w, half_h = (1 + MARGIN) * face.width / 2, (1 + MARGIN) * face.height / 2
    height, width = shape[:2]
    return (
        max(0, round(cx - half_w)),
        max(0, round(cy - half_h)),
        min(width, round(cx + half_w)),
        min(height, round(cy + half_h)),
    )


class Scorer:
    """Scores whole photos against a clean one on its face region."""

    def __init__(self, dlib: DlibIdentity | None) -> None:
        self.lpips = load_lpips("alex")
        self.mobilefacenet = load_mobilefacenet()
        self.dlib = dlib

    def score(self, clean: np.ndarray, face: Face, outputs: list[np.ndarray]) -> list[dict[str, float | None]]:
        """One dict of :data:`METRICS` per output photo (``dlib`` None without dlib)."""
        x0, y0, x1, y1 = face_region(face, clean.shape)
        reference = clean[y0:y1, x0:x1]
        regions = np.stack([out[y0:y1, x0:x1] for out in outputs])
        references = np.repeat(reference[None], len(outputs), axis=0)
        psnrs = psnr(regions, references).tolist()
        ssims = ssim(regions, references).tolist()
        lpipses = lpips_distance(regions, references, self.lpips).tolist()
        affine = estimate_affine(face.landmarks, ALIGNED)
        aligned = np.stack([warp_face(image, affine, ALIGNED) for image in (clean, *outputs)])
        embeddings = face_embeddings(face_crops(aligned), self.mobilefacenet)
        cosines = (embeddings[1:] @ embeddings[0]).tolist()
        dlibs: list[float | None] = [None] * len(outputs)
        if self.dlib is not None:
            reference = self.dlib.reference(clean, fallback=face.box)
            dlibs = [self.dlib.distance_to(output, reference) for output in outputs]
        columns = zip(psnrs, ssims, lpipses, cosines, dlibs, strict=True)
        return [dict(zip(METRICS, values, strict=True)) for values in columns]


def degraded_photos(
    photos: list[Path], levels: list[str]
) -> Iterator[tuple[int, Path, np.ndarray, Face, dict[str, np.ndarray]]]:
    """Per photo with a face (others are skipped, with a line): its index, path, the clean photo
    shrunk to :data:`~common.SIDE`, its largest face, and its degraded copy per level (seeded
    per photo)."""
    for index, path in enumerate(photos):
        clean = shrink(read_image(path).rgb, SIDE)
        faces = detect_faces(clean)
        if not faces:
            print(f"[{index + 1}/{len(photos)}] {path.name}: no face on the clean photo, skipped", flush=True)
            continue
        face = max(faces, key=lambda f: f.width * f.height)
        degraded = {level: degrade_seeded(clean, LEVELS[level][1], image_seed(SEED, path.name)) for level in levels}
        yield index, path, clean, face, degraded


def scored_records(
    scorer: Scorer, photo: str, level: str, clean: np.ndarray, face: Face, outputs: dict[str, np.ndarray]
) -> list[dict[str, Any]]:
    """One record per output of a degraded photo (``outputs`` starts with the input): its scores
    and ``dlib_change``, its dlib distance minus the input's (None without dlib)."""
    scores = scorer.score(clean, face, list(outputs.values()))
    base = scores[0]["dlib"]
    return [
        {
            "photo": photo,
            "level": level,
            "method": method,
            **values,
            "dlib_change": None if base is None else values["dlib"] - base,
        }
        for method, values in zip(outputs, scores, strict=True)
    ]


def contact_sheet(clean: np.ndarray, face: Face, outputs: dict[str, np.ndarray]) -> np.ndarray:
    """Face regions side by side (clean first), each labelled."""
    x0, y0, x1, y1 = face_region(face, clean.shape)
    tiles = []
    for label, image in {"clean": clean, **outputs}.items():
        tile = np.ascontiguousarray(image[y0:y1, x0:x1])
        cv2.putText(tile, label, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 0), 2, cv2.LINE_AA)
        tiles.append(tile)
    return np.concatenate(tiles, axis=1)


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [row[key] for row in rows if row[key] is not None]
    return float(np.mean(values)) if values else None


def _cell(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table(records: list[dict[str, Any]], levels: list[str], methods: list[str]) -> list[str]:
    """The markdown table: means per level and method, and the shares moved by dlib distance."""
    lines = [
        "| level (blur sigma, down x, noise, JPEG q) | method | PSNR ↑ | SSIM ↑ | LPIPS ↓ | MFN cos ↑ | dlib dist ↓ "
        "| further | closer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for level in levels:
        for method in methods:
            rows = [r for r in records if r["level"] == level and r["method"] == method]
            moved = [r["dlib_change"] for r in rows if r["dlib_change"] is not None]
            further = _cell(100 * np.mean([c > DLIB_CHANGE for c in moved]) if moved else None, 0)
            closer = _cell(100 * np.mean([c < -DLIB_CHANGE for c in moved]) if moved else None, 0)
            cells = [_cell(_mean(rows, key), digits) for key, digits in zip(METRICS, (2, 4, 4, 4, 4), strict=True)]
            lines.append(
                f"| {level} ({LEVELS[level][0]}) | {method} | " + " | ".join(cells) + f" | {further} % | {closer} % |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=40, help="validation people (default 40)")
    parser.add_argument("--model", default="default", help="restorer: a catalogue name, a file or a run folder")
    parser.add_argument("--levels", nargs="+", choices=list(LEVELS), default=list(LEVELS))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--out", type=Path, help="write the markdown table here")
    parser.add_argument("--json", type=Path, help="write per-photo scores here")
    parser.add_argument("--card", type=Path, help="also write the table into this model card (its 'severity' markers)")
    parser.add_argument("--save-dir", type=Path, help=f"degraded and restored PNGs of the first {SHEET_PHOTOS} photos")
    args = parser.parse_args()
    started = time.perf_counter()
    restorers = {name: Restorer(model=args.model, upscale=1, **VARIANTS[name]) for name in args.variants}
    scorer = Scorer(dlib_identity())
    methods = ["input", "nlm+unsharp", *args.variants]
    records: list[dict[str, Any]] = []
    photos = validation_portraits(args.images)
    clock = time.perf_counter()
    for index, path, clean, face, levels in degraded_photos(photos, args.levels):
        for level, degraded in levels.items():
            outputs = {"input": degraded, "nlm+unsharp": classical_restore(degraded)}
            outputs.update({name: restorer.restore(degraded).image for name, restorer in restorers.items()})
            records += scored_records(scorer, path.name, level, clean, face, outputs)
            if args.save_dir is not None and index < SHEET_PHOTOS:
                stem = f"{path.stem}_{level}"
                for method, image in outputs.items():
                    write_image(args.save_dir / f"{stem}_{method.replace('+', '_')}.png", image)
                write_image(args.save_dir / f"{stem}_sheet.png", contact_sheet(clean, face, outputs))
        print(f"[{index + 1}/{len(photos)}] {path.name}: {time.perf_counter() - clock:.1f} s", flush=True)
        clock = time.perf_counter()
    lines = table(records, args.levels, methods)
    people = len({r["photo"] for r in records})
    lines.append(f"\n{people} people, {SIDE} px photos; {time.perf_counter() - started:.0f} s in all.")
    print("\n".join(lines), flush=True)
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if args.json is not None:
        args.json.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    if args.card is not None:
        update_card_section(args.card, "severity", lines)


if __name__ == "__main__":
    main()
