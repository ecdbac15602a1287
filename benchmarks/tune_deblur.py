"""The table behind :attr:`minerrestore.severity.DegradationEstimate.deblur`: deconvolving the photo's face.

``bench_severity.py``'s protocol on *training* people (none of those it scores): ``--images``
photos of ../shared/data/faces_hires whose people training keeps
(:func:`common.training_hires_photos`), shrunk to 640 px, degraded as whole photos at its levels
and seeds, then left as they are (``input``), restored with the defaults but no deblurring
(``no_deblur``: each face's ``photo_blur`` set to 0 through ``Restorer.restore``'s
``steady_estimate`` hook) and with the defaults (``restore``). Scores on the face region as
there; a markdown table on stdout and in ``--out``.

    python benchmarks/tune_deblur.py     # 30 people, 4 levels: about 15 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench_severity import LEVELS, SEED, Scorer, table
from common import SIDE, degrade_seeded, dlib_identity, shrink, training_hires_photos

from minerrestore.data.folders import image_seed
from minerrestore.face import detect_faces, load_detector
from minerrestore.io import read_image
from minerrestore.restore import Restorer
from minerrestore.severity import DegradationEstimate


def without_deblur(_position: int, estimate: DegradationEstimate) -> DegradationEstimate:
    """The face's estimate as if its photo were not blurred (so it is not deconvolved)."""
    return replace(estimate, photo_blur=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=30, help="training photos (default 30)")
    parser.add_argument("--levels", nargs="+", choices=list(LEVELS), default=["clean", "mild", "moderate", "severe"])
    parser.add_argument("--out", type=Path, help="write the markdown table here")
    args = parser.parse_args()
    started = time.perf_counter()
    detector = load_detector("yunet")
    restorer = Restorer(upscale=1)
    scorer = Scorer(dlib_identity())
    records: list[dict[str, Any]] = []
    photos = training_hires_photos(args.images)
    for index, path in enumerate(photos):
        clean = shrink(read_image(path).rgb, SIDE)
        faces = detect_faces(clean, detector=detector)
        if not faces:
            continue
        face = max(faces, key=lambda f: f.width * f.height)
        for level in args.levels:
            degraded = degrade_seeded(clean, LEVELS[level][1], image_seed(SEED, path.name))
            outputs = {
                "input": degraded,
                "no_deblur": restorer.restore(degraded, steady_estimate=without_deblur).image,
                "restore": restorer.restore(degraded).image,
            }
            scores = scorer.score(clean, face, list(outputs.values()))
            base = scores[0]["dlib"]
            for method, values in zip(outputs, scores, strict=True):
                change = None if base is None else values["dlib"] - base
                records.append({"photo": path.name, "level": level, "method": method, **values, "dlib_change": change})
        print(f"[{index + 1}/{len(photos)}] {path.name}", flush=True)
    lines = table(records, args.levels, ["input", "no_deblur", "restore"])
    people = len({r["photo"] for r in records})
    lines.append(f"\n{people} training people, {SIDE} px photos; {time.perf_counter() - started:.0f} s in all.")
    print("\n".join(lines), flush=True)
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
