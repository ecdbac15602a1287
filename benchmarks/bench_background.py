"""Memory and time of the tiled Real-ESRGAN background (``restore --bg-upsampler realesrgan``).

Peak resident memory of this process, measured in a fresh subprocess per case, for a frame
upsampled by :func:`minerrestore.background.tiled_upscale`:

* ``full-tile``: the official x2plus / x4plus size (64 channels, 23 blocks, random weights) on
  ONE tile of ``--tile`` pixels with its overlap: the network's share of the memory, which does
  not grow with the frame.
* ``frame``: a whole ``--width`` x ``--height`` frame (6000x4000 by default) with a one-block
  network: the frame's share (input, the uint8 output, one tile at a time).

    python benchmarks/bench_background.py
    python benchmarks/bench_background.py --tile 200 --scale 4
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def run_case(case: str, width: int, height: int, tile: int, scale: int) -> dict[str, float]:
    """One case in this process: seconds and peak RSS (MiB)."""
    import numpy as np
    import torch

    from minerrestore.archs.rrdbnet import RRDBNet
    from minerrestore.background import DEFAULT_OVERLAP, tiled_upscale

    torch.manual_seed(0)
    align = 2 if scale == 2 else 1
    if case == "full-tile":
        net = RRDBNet(scale).eval()
        side = tile + 2 * DEFAULT_OVERLAP
        image = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    else:
        net = RRDBNet(scale, num_feat=8, num_block=1, num_grow_ch=4).eval()
        image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    clock = time.perf_counter()
    output = tiled_upscale(net, image, scale, tile=tile if case == "frame" else 0, align=align)
    seconds = time.perf_counter() - clock
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "case": case,
        "input": list(image.shape[:2]),
        "output": list(output.shape[:2]),
        "seconds": seconds,
        "peak_rss_mib": peak,
    }


def main() -> None:
    """Run each case in a subprocess and print one JSON line per case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--tile", type=int, default=400)
    parser.add_argument("--scale", type=int, default=2, choices=(2, 4))
    parser.add_argument("--case", choices=("full-tile", "frame"))
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.width, args.height, args.tile, args.scale)))
        return
    for case in ("full-tile", "frame"):
        command = [sys.executable, __file__, "--case", case, *sys.argv[1:]]
        print(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
