"""Dark pit-camera frames: detection, landmarks, false detections and whole-frame enhancement.

Whole validation portraits (``../shared/data/faces_hires/congress``, people of the held-out
last 10 % of ``../shared/data/faces``: no training face) shrunk to 640 px, darkened over a grid
(exposure, gamma and signal-dependent shot noise as the ``miner`` preset, plus blur, 2x
downsampling, Gaussian noise, JPEG 75 and a warm lamp cast in the last rows). Per row:

- faces found (the clean frame's largest face, IoU > 0.4) by today's single brightened copy
  (``old``) and by :func:`~minerrestore.face.detect_faces` (``new``: brightened copies at
  three scales, merged);
- landmark error: mean distance of the 5 landmarks to the clean frame's, over the distance
  between the eyes (median over found faces);
- false detections on face-free frames (the part of each portrait below the face, the suit
  and background, enlarged to 640 px, and a flat grey frame), darkened the same way;
- the enhanced frame's PSNR / SSIM / LPIPS against the clean frame, whole frame and face
  box, for the dark input, plain gamma (mean luminance to 0.45), CLAHE (on the lightness of
  the gamma-corrected frame) and :func:`~minerrestore.lowlight.enhance_low_light`.

    python benchmarks/bench_dark.py                 # 30 portraits, about 5 minutes on 1 core
    python benchmarks/bench_dark.py --images 10 --no-lpips
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from common import SIDE, degrade_seeded, grid_row, shrink, validation_portraits

from minerrestore.data.folders import image_seed
from minerrestore.face import detect_faces, load_detector
from minerrestore.face.detect import box_iou
from minerrestore.io import read_image
from minerrestore.lowlight import brighten_for_detection, enhance_low_light, mean_luminance
from minerrestore.metrics.psnr_ssim import psnr, ssim

ROWS = [
    grid_row(0.4, 1.5, 3),
    grid_row(0.3, 1.5, 4),
    grid_row(0.25, 1.5, 4),
    grid_row(0.2, 1.8, 6),
    grid_row(0.12, 1.8, 6),
    grid_row(0.25, 1.5, 4, camera=True),
    grid_row(0.2, 1.8, 6, camera=True),
    grid_row(0.12, 1.8, 6, camera=True),
]


def old_detect(rgb: np.ndarray, net: object) -> np.ndarray:
    """Today's detection: one brightened copy when dark (boxes only)."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if mean_luminance(rgb) < 0.25:
        bgr = brighten_for_detection(bgr)
    boxes, _, _ = net(bgr, net.default_threshold)
    sizes = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    return boxes[sizes >= 10]


def gamma_baseline(rgb: np.ndarray) -> np.ndarray:
    """Plain gamma bringing the mean luminance to 0.45."""
    gamma = np.log(0.45) / np.log(np.clip(mean_luminance(rgb), 1e-3, 0.45))
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
    return cv2.LUT(rgb, lut)


def clahe_baseline(rgb: np.ndarray) -> np.ndarray:
    """Gamma, then CLAHE on the LAB lightness (what detection used to see)."""
    return cv2.cvtColor(brighten_for_detection(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)), cv2.COLOR_BGR2RGB)


def face_free(rgb: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """The part of a portrait below its face, enlarged to SIDE px wide (None if too small)."""
    top = int(box[3] + 0.15 * (box[3] - box[1]))
    part = rgb[top:]
    if part.shape[0] < 64:
        return None
    return shrink(part, SIDE)


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def _cells(scores: dict[str, dict[str, list[float]]], key: str, digits: int) -> str:
    return " / ".join(f"{np.mean(values[key]):.{digits}f}" for values in scores.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--no-lpips", action="store_true")
    args = parser.parse_args()
    net = load_detector("yunet")
    lpips_model = None
    if not args.no_lpips:
        from minerrestore.metrics.lpips import load_lpips, lpips_distance

        lpips_model = load_lpips()
    clean = []
    for path in validation_portraits(args.images):
        rgb = shrink(read_image(path).rgb)
        faces = detect_faces(rgb, detector=net)
        if faces:
            face = max(faces, key=lambda f: f.width * f.height)
            clean.append((path.name, rgb, face))
    print(f"{len(clean)} validation portraits at {SIDE} px with a face found on the clean frame")
    empty = [(name, f) for name, rgb, face in clean if (f := face_free(rgb, np.array(face.box))) is not None]
    empty.append(("flat", np.full((480, SIDE, 3), 150, np.uint8)))
    methods = ("input", "gamma", "clahe", "ours")
    header = (
        "| darkening (exposure, gamma, shot) | mean lum. | found old | found new | landmark err. old / new "
        "| false det. old / new | PSNR in / gamma / CLAHE / ours | face PSNR in / gamma / CLAHE / ours "
        "| SSIM in / gamma / CLAHE / ours"
        + ("" if lpips_model is None else " | LPIPS in / gamma / CLAHE / ours")
        + " |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for label, row in ROWS:
        clock = time.perf_counter()
        lum, found_old, found_new, err_old, err_new = [], 0, 0, [], []
        keys = ("psnr", "fpsnr", "ssim", "lpips")
        scores: dict[str, dict[str, list[float]]] = {m: {k: [] for k in keys} for m in methods}
        for name, rgb, face in clean:
            dark = degrade_seeded(rgb, row, image_seed(2026, name))
            lum.append(mean_luminance(dark) * 255)
            ref = np.array(face.box)
            eye = float(np.linalg.norm(face.landmarks[0] - face.landmarks[1]))
            old = old_detect(dark, net)
            found_old += bool(len(old)) and bool((box_iou(ref, old) > 0.4).any())
            new = detect_faces(dark, detector=net)
            match = [f for f in new if box_iou(ref, np.array([f.box]))[0] > 0.4]
            if match:
                found_new += 1
                err_new.append(float(np.linalg.norm(match[0].landmarks - face.landmarks, axis=1).mean()) / eye)
            bgr = brighten_for_detection(cv2.cvtColor(dark, cv2.COLOR_RGB2BGR)) if mean_luminance(dark) < 0.25 else None
            if bgr is not None:
                b, _, marks = net(bgr, net.default_threshold)
                hit = np.flatnonzero(box_iou(ref, b) > 0.4) if len(b) else []
                if len(hit):
                    err_old.append(float(np.linalg.norm(marks[hit[0]] - face.landmarks, axis=1).mean()) / eye)
            outputs = {
                "input": dark,
                "gamma": gamma_baseline(dark),
                "clahe": clahe_baseline(dark),
                "ours": enhance_low_light(dark)[0],
            }
            x0, y0, x1, y1 = (round(v) for v in face.box)
            x0, y0 = max(0, x0), max(0, y0)
            for method, out in outputs.items():
                scores[method]["psnr"].append(float(psnr(out, rgb)))
                scores[method]["fpsnr"].append(float(psnr(out[y0:y1, x0:x1], rgb[y0:y1, x0:x1])))
                scores[method]["ssim"].append(float(ssim(out, rgb)))
                if lpips_model is not None:
                    scores[method]["lpips"].append(float(lpips_distance(out, rgb, lpips_model)[0]))
        false_old = false_new = 0
        for name, frame in empty:
            dark = degrade_seeded(frame, row, image_seed(7, name))
            false_old += len(old_detect(dark, net))
            false_new += len(detect_faces(dark, detector=net))

        n = len(clean)
        line = (
            f"| {label} | {np.mean(lum):.0f}/255 | {found_old}/{n} | {found_new}/{n} "
            f"| {_median(err_old):.3f} / {_median(err_new):.3f} | {false_old} / {false_new} (of {len(empty)}) "
            f"| {_cells(scores, 'psnr', 2)} | {_cells(scores, 'fpsnr', 2)} | {_cells(scores, 'ssim', 3)}"
        )
        if lpips_model is not None:
            line += f" | {_cells(scores, 'lpips', 3)}"
        gain = np.mean(scores["ours"]["psnr"]) - np.mean(scores["input"]["psnr"])
        print(line + f" |  <!-- ours - input {gain:+.2f} dB, {time.perf_counter() - clock:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
