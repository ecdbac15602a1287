"""Speed, flicker and memory of ``restore`` on videos (:mod:`minerrestore.video`).

Each case runs in a fresh subprocess on a seeded synthetic 720p clip (shared portraits moving
and zooming with noise, AAC audio; ``tests/test_video.make_clip``) with the ``default``
restorer on the CPU at ``--upscale 1``:

* ``speed``: frames per second with one and with five faces.
* ``flicker``: the mean frame-to-frame change (mean absolute difference, 0-255) of each face's
  region in the output minus that in the input, with tracking and landmark smoothing on and
  off, and with the settings (degradation estimate per track, low-light parameters per clip)
  averaged over frames or measured per frame; lower is steadier, 0 is as steady as the input.
  ``--noise 2,12`` makes the clip's noise alternate per frame (so the per-frame estimates jump),
  ``--crf`` keeps more of it through the clip's encoding.
* ``memory``: peak resident memory of the process (clip making included) and resident memory
  sampled after every restored frame, for a short and a long clip (``--short``, ``--long``
  seconds at ``--rss-rate`` frames per second; the motion repeats every 40 frames, so only the
  length differs): streaming keeps it flat.

Every case also checks that the output has the input's timestamps (hence frame count and
duration) and its audio packets, byte for byte.

    python benchmarks/bench_video.py
    python benchmarks/bench_video.py --only flicker --seconds 2
    python benchmarks/bench_video.py --only flicker --seconds 1 --noise 2,12 --crf 10
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

SIZE = (1280, 720)


def _flicker(source: Path, restored: Path, faces: int) -> float:
    """Mean frame-to-frame change of the face regions, output minus input (streamed)."""
    import av
    import numpy as np

    from tests.test_video import face_boxes

    changes = {"in": [], "out": []}
    with av.open(str(source)) as a, av.open(str(restored)) as b:
        previous = None
        for index, (x_in, x_out) in enumerate(zip(a.decode(video=0), b.decode(video=0), strict=True)):
            current = (
                x_in.to_ndarray(format="rgb24").astype(np.int16),
                x_out.to_ndarray(format="rgb24").astype(np.int16),
            )
            if previous is not None:
                for x, y, side in face_boxes(index, SIZE, faces):
                    for key, now, before in zip(("in", "out"), current, previous, strict=True):
                        region = (slice(y, y + side), slice(x, x + side))
                        changes[key].append(float(np.abs(now[region] - before[region]).mean()))
            previous = current
    return float(np.mean(changes["out"]) - np.mean(changes["in"]))


def _rss_mib() -> float:
    """Resident memory of this process now (MiB, Linux)."""
    with open("/proc/self/statm") as statm:
        return round(int(statm.read().split()[1]) * resource.getpagesize() / 2**20, 1)


def run_case(
    seconds: float,
    rate: int,
    faces: int,
    smooth: bool,
    flicker: bool,
    steady_settings: bool = True,
    noise: Sequence[float] = (4.0,),
    crf: int | None = None,
) -> dict[str, float]:
    """One clip restored in this process: frames, fps, peak RSS (MiB), flicker."""
    import torch

    from minerrestore.restore import Restorer
    from minerrestore.video import VideoOptions, restore_video
    from tests.test_video import audio_packets, make_clip, video_timestamps

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        frames = round(seconds * rate)
        clip = make_clip(
            Path(folder) / "clip.mp4", frames=frames, size=SIZE, faces=faces, rate=rate, noise=noise, crf=crf
        )
        restorer = Restorer(device="cpu", upscale=1.0).load()
        rss: list[float] = []
        start = time.perf_counter()
        info = restore_video(
            restorer,
            clip,
            Path(folder) / "out.mp4",
            options=VideoOptions(smooth=smooth, steady_settings=steady_settings),
            on_frame=lambda done, total: rss.append(_rss_mib()),
        )
        seconds_spent = time.perf_counter() - start
        result = {
            "frames": info["frames"],
            "fps": round(info["frames"] / seconds_spent, 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "restore_rss_mib": {f"frame {n}": rss[n - 1] for n in range(10, len(rss) + 1, 10)} | {"max": max(rss)},
            "mean_faces": round(sum(info["faces_per_frame"]) / info["frames"], 2),
        }
        result["same_timestamps"] = video_timestamps(clip) == video_timestamps(Path(folder) / "out.mp4")
        result["audio_identical"] = audio_packets(clip) == audio_packets(Path(folder) / "out.mp4")
        if flicker:
            result["flicker"] = round(_flicker(clip, Path(folder) / "out.mp4", faces), 3)
    return result


def _subprocess(*case: object) -> dict[str, float]:
    arguments = ["--case", json.dumps(case)]
    output = subprocess.run([sys.executable, __file__, *arguments], check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run the cases and print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="clip length of the speed and flicker cases")
    parser.add_argument("--rate", type=int, default=25)
    parser.add_argument("--short", type=float, default=10.0)
    parser.add_argument("--long", type=float, default=60.0)
    parser.add_argument("--rss-rate", type=int, default=2, help="frame rate of the memory clips (CPU time)")
    parser.add_argument("--noise", default="4", help="noise std of the flicker clip's frames, in turn (comma list)")
    parser.add_argument("--crf", type=int, help="x264 quality of the flicker clip (default: x264's)")
    parser.add_argument("--only", choices=("speed", "flicker", "memory"))
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(*json.loads(args.case))))
        return
    noise = tuple(float(value) for value in args.noise.split(","))
    cases = {
        "speed": [
            ("1 face", (args.seconds, args.rate, 1, True, False)),
            ("5 faces", (args.seconds, args.rate, 5, True, False)),
        ],
        "flicker": [
            ("tracking, steady settings", (args.seconds, args.rate, 1, True, True, True, noise, args.crf)),
            ("tracking, settings per frame", (args.seconds, args.rate, 1, True, True, False, noise, args.crf)),
            ("smoothing off", (args.seconds, args.rate, 1, False, True, False, noise, args.crf)),
        ],
        "memory": [
            (f"{args.short:g} s", (args.short, args.rss_rate, 1, True, False)),
            (f"{args.long:g} s", (args.long, args.rss_rate, 1, True, False)),
        ],
    }
    for kind, runs in cases.items():
        if args.only in (None, kind):
            for label, case in runs:
                print(json.dumps({"case": kind, "label": label, **_subprocess(*case)}), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
