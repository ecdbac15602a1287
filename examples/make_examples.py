"""Make the degraded example inputs in examples/ (run from the repository root, ../shared beside it).

- ``*_miner.png``: four validation portraits (the last 10 % of ../shared/data/faces in sorted order is held
  out of training) degraded with preset ``miner`` at 256 px, each with seed 7 (the image's own draw,
  :func:`~minerrestore.data.folders.image_seed`); no seed is chosen by whether a face is then found.
  The miner preset's worst draws (blur sigma up to 10, downsampling up to x8) leave no detectable face:
  ``restore`` says so for those images (``no face found``) and writes them unrestored.
- ``T000250_dark.png``: the same held-out person's higher-resolution portrait
  (../shared/data/faces_hires/congress) at 640 px, darkened to about 8/255 mean luminance with the
  last row of ``benchmarks/bench_dark.py`` (exposure 0.12, gamma 1.8, shot noise 6, blur 1.5, 2x
  downsampling, noise 4, JPEG 75, warm lamp), noise seeds 7 and 8.
- ``*_pit.png``: the 1927 Solvay conference photo and NASA's portrait of Eileen Collins (both public
  domain), darkened, dusted and compressed with ``examples/whole_photo.yml`` at their own size, seed 7.

Everything is seeded: running it again gives the same bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from minerrestore.data.degradation import apply_degradation, prepare_gt, sample_params
from minerrestore.data.folders import image_seed
from minerrestore.io import read_image, write_image

ROOT = Path(__file__).resolve().parent
SHARED = ROOT.parent.parent / "shared" / "data"
FACES = ("T000250.jpg", "V000126.jpg", "W000413.jpg", "W000779.jpg")
PHOTOS = ("Solvay_conference_1927.png", "astronaut.png")
DARK = "T000250.jpg"
SEED = 7


def degrade_file(source: Path, destination: Path, preset: str | Path, size: int | None) -> None:
    """Degrade one image with the seed-``SEED`` draw of ``preset`` (at ``size`` px square if given)."""
    image = read_image(source)
    rgb = prepare_gt(image.rgb, size) if size else image.rgb
    params = sample_params(preset, np.random.default_rng(image_seed(SEED, source.name)))
    write_image(destination, apply_degradation(rgb, params), grey=image.is_grey)


def make_dark(source: Path, destination: Path) -> None:
    """The dark frame: ``source`` at 640 px through the benchmark's darkest camera row."""
    sys.path.insert(0, str(ROOT.parent / "benchmarks"))
    from bench_dark import ROWS, darken, shrink

    write_image(destination, darken(shrink(read_image(source).rgb), ROWS[-1][1], SEED))


def main() -> None:
    validation = sorted(p.name for p in (SHARED / "faces").iterdir())[-88:]
    for name in FACES:
        assert name in validation, f"{name} is not in the held-out validation subset"
        degrade_file(SHARED / "faces" / name, ROOT / f"{Path(name).stem}_miner.png", "miner", 256)
    make_dark(SHARED / "faces_hires" / "congress" / DARK, ROOT / f"{Path(DARK).stem}_dark.png")
    for name in PHOTOS:
        degrade_file(SHARED / "examples" / name, ROOT / f"{Path(name).stem}_pit.png", ROOT / "whole_photo.yml", None)


if __name__ == "__main__":
    main()
