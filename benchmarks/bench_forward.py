"""512 px CPU forward time: our scheme A against gfpgan's GFPGANv1Clean with identical weights.

Both networks get the same random weights (the official v1.3/v1.4 architecture: channel
multiplier 2, 512 px) and the same inputs, in the same process, timed alternately so that load
from other processes on the machine hits both alike. Noise is fixed in both
(``randomize_noise=False``). For each batch size and precision it prints seconds per face,
the speed-up over the official network in float32 and in the same precision, and the mean
absolute output difference to the official float32 output on the 0-255 scale. Then schemes
B-D relative to A (our code, same channel multiplier and precision).

    python benchmarks/bench_forward.py --repeats 3
    python benchmarks/bench_forward.py --repeats 1 --batch-sizes 1 --precisions float32

Needs the dev dependency ``gfpgan`` (``pip install -e .[dev]``).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import torch

import minerrestore.compat  # noqa: F401  (before gfpgan)
from minerrestore.archs.precision import autocast, bfloat16_native
from minerrestore.archs.profile import count_flops
from minerrestore.archs.restorer import RestorerNet, checkpoint_filter_fn, create_restorer

CPU = torch.device("cpu")


def build_official(size: int, channel_multiplier: int) -> torch.nn.Module:
    """gfpgan's GFPGANv1Clean as released (v1.3/v1.4 settings), random weights."""
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    return GFPGANv1Clean(
        out_size=size,
        num_style_feat=512,
        channel_multiplier=channel_multiplier,
        decoder_load_path=None,
        fix_decoder=False,
        num_mlp=8,
        input_is_latent=True,
        different_w=True,
        narrow=1,
        sft_half=True,
    ).eval()


def official_forward(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: model(x, return_rgb=False, randomize_noise=False)[0]


def our_forward(model: RestorerNet) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: model(x).image


def run(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, precision: str) -> tuple[float, torch.Tensor]:
    """Seconds for one forward, and the float32 output."""
    with torch.inference_mode(), autocast(precision, CPU):
        start = time.perf_counter()
        out = forward(x)
        seconds = time.perf_counter() - start
    return seconds, out.float()


def time_alternately(
    forwards: dict[str, Callable[[torch.Tensor], torch.Tensor]], x: torch.Tensor, precision: str, repeats: int
) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Median seconds per call of each forward (one warm-up call each), and their outputs."""
    outputs = {name: run(forward, x, precision)[1] for name, forward in forwards.items()}
    times: dict[str, list[float]] = {name: [] for name in forwards}
    for _ in range(repeats):
        for name, forward in forwards.items():
            times[name].append(run(forward, x, precision)[0])
    return {name: statistics.median(values) for name, values in times.items()}, outputs


def mean_abs_255(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of two [-1, 1] images on the 0-255 scale (after clamping)."""
    return float(((a.clamp(-1, 1) - b.clamp(-1, 1)).abs() * 127.5).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--channel-multiplier", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    parser.add_argument("--schemes", nargs="*", default=["B", "C", "D"], help="compared with A (empty: skip)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, bfloat16 native: {bfloat16_native(CPU)}")
    print("the machine may be shared with other jobs: compare ratios measured in the same run, not absolute times")

    official = build_official(args.size, args.channel_multiplier)
    ours = create_restorer("A", out_size=args.size, channel_multiplier=args.channel_multiplier).eval()
    ours.load_state_dict(checkpoint_filter_fn(official.state_dict()), strict=True)
    print(
        f"scheme A, channel multiplier {args.channel_multiplier}: {count_flops(ours.config) / 1e9:.1f} GFLOP per face"
    )

    reference: dict[int, torch.Tensor] = {}
    official_fp32: dict[int, float] = {}
    print(
        f"\n{'batch':>5} {'precision':>9} {'official s/face':>15} {'ours s/face':>11} "
        f"{'vs off. fp32':>12} {'vs off. same':>12} {'|ours-off.fp32|':>15} {'|off.-off.fp32|':>15}"
    )
    for batch in args.batch_sizes:
        x = torch.rand(batch, 3, args.size, args.size) * 2 - 1
        for precision in args.precisions:
            forwards = {"official": official_forward(official), "ours": our_forward(ours)}
            times, outputs = time_alternately(forwards, x, precision, args.repeats)
            if precision == "float32":
                reference[batch] = outputs["official"]
                official_fp32[batch] = times["official"]
            ref = reference.get(batch)
            base = official_fp32.get(batch)
            print(
                f"{batch:>5} {precision:>9} {times['official'] / batch:>15.3f} {times['ours'] / batch:>11.3f} "
                + (f"{base / times['ours']:>11.2f}x " if base else f"{'-':>12} ")
                + f"{times['official'] / times['ours']:>11.2f}x "
                + (f"{mean_abs_255(outputs['ours'], ref):>15.3f} " if ref is not None else f"{'-':>15} ")
                + (f"{mean_abs_255(outputs['official'], ref):>15.3f}" if ref is not None else f"{'-':>15}")
            )
    del official

    if args.schemes:
        print(f"\nschemes relative to A (ours, channel multiplier {args.channel_multiplier}, batch 1)")
        x = torch.rand(1, 3, args.size, args.size) * 2 - 1
        for precision in args.precisions:
            forwards = {"A": our_forward(ours)}
            for name in args.schemes:
                forwards[name] = our_forward(
                    create_restorer(name, out_size=args.size, channel_multiplier=args.channel_multiplier).eval()
                )
            times, _ = time_alternately(forwards, x, precision, args.repeats)
            cells = "  ".join(f"{name} {times[name]:.3f} s ({times[name] / times['A']:.2f}x A)" for name in forwards)
            print(f"{precision:>9}: {cells}")
    with contextlib.suppress(AttributeError):
        print(f"\nCPU capability: {torch.backends.cpu.get_cpu_capability()}")


if __name__ == "__main__":
    main()
