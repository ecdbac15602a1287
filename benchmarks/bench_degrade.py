"""Benchmark: ``minerrestore degrade`` (preset ``paper``, 512 px) against a plain basicsr loop.

Both sides do the same work per image, folder to folder: read a face, centre-crop and
resize it to 512 x 512, degrade it with Eq. 14 of the paper (Gaussian blur sigma
U[0.2, 10] with 41 taps, downsampling U[1, 8] and back, Gaussian noise U[0, 15], JPEG
U[60, 100]), and write the ground truth and the degraded image as PNG.

- baseline: the straightforward single-process loop over basicsr's functions
  (``random_mixed_kernels``, ``cv2.filter2D``, ``random_add_gaussian_noise``,
  ``random_add_jpg_compression``, ``basicsr.utils.imwrite``), as GFP-GAN's
  ``FFHQDegradationDataset`` strings them together;
- ours: :func:`minerrestore.data.pairs.degrade_folder` with ``--workers`` processes
  (recorded parameters, manifest, atomic writes included).

Run from the repository root (faces from ../shared/data/faces, else synthetic)::

    python benchmarks/bench_degrade.py --count 200 --workers 2

It prints images per second for both, measured in the same run, and their ratio, plus
the CPU time per image of each side (which, unlike images per second, hardly depends on
what else the machine is running).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED_FACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "faces"


def make_inputs(folder: Path, count: int) -> None:
    """Copy ``count`` shared faces into ``folder`` (synthetic 225x275 noise-free images if absent)."""
    from PIL import Image

    folder.mkdir(parents=True)
    faces = sorted(SHARED_FACES.glob("*.jpg"))[:count] if SHARED_FACES.is_dir() else []
    for face in faces:
        shutil.copy(face, folder / face.name)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:275, 0:225] / 275.0
    for index in range(len(faces), count):
        base = np.stack([xx, yy, xx * yy], axis=2) * rng.uniform(120, 255, 3)
        Image.fromarray(base.astype(np.uint8)).save(folder / f"synthetic{index:04d}.jpg", quality=95)


def baseline_loop(source: Path, out: Path, size: int) -> int:
    """A straightforward loop over basicsr's degradation functions; returns the number of pairs."""
    import cv2
    from basicsr.data import degradations
    from basicsr.utils import imwrite

    count = 0
    for path in sorted(source.glob("*.jpg")):
        img = cv2.imread(str(path)).astype(np.float32) / 255.0
        height, width = img.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        gt = cv2.resize(img[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_CUBIC)
        kernel = degradations.random_mixed_kernels(
            ["iso"], [1.0], 41, (0.2, 10.0), (0.2, 10.0), [-math.pi, math.pi], noise_range=None
        )
        lq = cv2.filter2D(gt, -1, kernel)
        scale = np.random.uniform(1.0, 8.0)
        lq = cv2.resize(lq, (int(size // scale), int(size // scale)), interpolation=cv2.INTER_LINEAR)
        lq = degradations.random_add_gaussian_noise(lq, (0.0, 15.0))
        lq = degradations.add_jpg_compression(lq, int(np.random.randint(60, 101)))
        lq = cv2.resize(lq, (size, size), interpolation=cv2.INTER_LINEAR)
        imwrite(np.clip(gt * 255.0, 0, 255).round().astype(np.uint8), str(out / "gt" / f"{path.stem}.png"))
        imwrite(np.clip(lq * 255.0, 0, 255).round().astype(np.uint8), str(out / "lq" / f"{path.stem}.png"))
        count += 1
    return count


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished worker processes."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="number of faces")
    parser.add_argument("--workers", type=int, default=2, help="our worker processes")
    parser.add_argument("--size", type=int, default=512, help="ground-truth size in pixels")
    args = parser.parse_args()

    import minerrestore.compat  # noqa: F401  (imported before timing: basicsr takes seconds to import)

    # isort: split
    import basicsr.data.degradations  # noqa: F401

    from minerrestore.data.degradation import DegradationSettings
    from minerrestore.data.pairs import degrade_folder

    with tempfile.TemporaryDirectory(prefix="bench_degrade_") as temp:
        root = Path(temp)
        make_inputs(root / "in", args.count)

        start, cpu = time.perf_counter(), cpu_seconds()
        done = baseline_loop(root / "in", root / "basicsr", args.size)
        baseline_seconds, baseline_cpu = time.perf_counter() - start, cpu_seconds() - cpu

        start, cpu = time.perf_counter(), cpu_seconds()
        settings = DegradationSettings(preset="paper", size=args.size)
        report = degrade_folder(root / "in", root / "ours", settings, workers=args.workers, quiet=True)
        ours_seconds, ours_cpu = time.perf_counter() - start, cpu_seconds() - cpu
        assert len(report.done) == done == args.count, report.failed[:3]

    baseline_rate, ours_rate = done / baseline_seconds, done / ours_seconds
    print(f"images: {done} faces -> {args.size} px pairs, preset paper; load average {os.getloadavg()[0]:.1f}")
    print(f"basicsr loop (1 process): {baseline_rate:7.2f} images/s  CPU {1000 * baseline_cpu / done:5.1f} ms/image")
    print(
        f"minerrestore ({args.workers} workers):  {ours_rate:7.2f} images/s  CPU {1000 * ours_cpu / done:5.1f} ms/image"
    )
    print(f"ratio ours / basicsr:     {ours_rate / baseline_rate:7.2f}x images/s")


if __name__ == "__main__":
    main()
