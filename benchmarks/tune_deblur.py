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

from bench_severity import LEVELS, Scorer, degraded_photos, scored_records, table
from common import SIDE, dlib_identity, training_hires_photos

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
    restorer = Restorer(upscale=1)
    scorer = Scorer(dlib_identity())
    records: list[dict[str, Any]] = []
    photos = training_hires_photos(args.images)
    for index, path, clean, face, levels in degraded_photos(photos, args.levels):
        for level, degraded in levels.items():
            outputs = {
                "input": degraded,
                "no_deblur": restorer.restore(degraded, steady_estimate=without_deblur).image,
                "restore": restorer.restore(degraded).image,
            }
            records += scored_records(scorer, path.name, level, clean, face, outputs)
        print(f"[{index + 1}/{len(photos)}] {path.name}", flush=True)
    lines = table(records, args.levels, ["input", "no_deblur", "restore"])
    people = len({r["photo"] for r in records})
    lines.append(f"\n{people} training people, {SIDE} px photos; {time.perf_counter() - started:.0f} s in all.")
    print("\n".join(lines), flush=True)
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
