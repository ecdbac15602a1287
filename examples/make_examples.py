"""Make the degraded example inputs in examples/ (run from the repository root, ../shared beside it).

- ``*_miner.png``: four validation portraits (the last 10 % of ../shared/data/faces in sorted order is held
  out of training) degraded with preset ``miner`` at 256 px. Public domain (US Government works).
  The miner preset's worst draws (blur sigma 10, downsampling x8) leave no detectable face, so for
  each portrait the first seed from 7 on whose result YuNet still detects is kept (whole-photo
  restoration needs a detected face; ``restore --aligned`` takes aligned crops without detection).
- ``*_pit.png``: the 1927 Solvay conference photo and NASA's portrait of Eileen Collins (both public
  domain), darkened, dusted and compressed with ``examples/whole_photo.yml`` at their own size.

Everything is seeded: running it again gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from minerrestore.data.degradation import apply_degradation, prepare_gt, sample_params
from minerrestore.data.folders import image_seed
from minerrestore.face import detect_faces, load_detector
from minerrestore.io import read_image, write_image

ROOT = Path(__file__).resolve().parent
SHARED = ROOT.parent.parent / "shared" / "data"
FACES = ("T000250.jpg", "V000126.jpg", "W000413.jpg", "W000779.jpg")
PHOTOS = ("Solvay_conference_1927.png", "astronaut.png")
SEED = 7


MAX_TRIES = 50


def degrade_file(source: Path, destination: Path, preset: str | Path, size: int | None) -> int:
    """Degrade one image with the first seeded draw of ``preset`` that keeps a detectable face.

    Returns:
        The seed used.
    """
    detector = load_detector("yunet")
    image = read_image(source)
    rgb = prepare_gt(image.rgb, size) if size else image.rgb
    for seed in range(SEED, SEED + MAX_TRIES):
        params = sample_params(preset, np.random.default_rng(image_seed(seed, source.name)))
        degraded = apply_degradation(rgb, params)
        if detect_faces(degraded, detector=detector):
            write_image(destination, degraded, grey=image.is_grey)
            return seed
    raise RuntimeError(f"{source}: no draw of {preset} in {MAX_TRIES} keeps a detectable face")


def main() -> None:
    validation = sorted(p.name for p in (SHARED / "faces").iterdir())[-88:]
    for name in FACES:
        assert name in validation, f"{name} is not in the held-out validation subset"
        seed = degrade_file(SHARED / "faces" / name, ROOT / f"{Path(name).stem}_miner.png", "miner", 256)
        print(f"{name}: seed {seed}")
    for name in PHOTOS:
        degrade_file(SHARED / "examples" / name, ROOT / f"{Path(name).stem}_pit.png", ROOT / "whole_photo.yml", None)


if __name__ == "__main__":
    main()
