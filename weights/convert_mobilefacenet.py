"""Convert the MobileFaceNet state dict (foamliu/MobileFaceNet, Apache-2.0) to safetensors (run once).

Input: ``mobilefacenet.pt`` (a plain state dict, SHA-256
90a00ba1d8b0b688af3deb731ed53dca582e6106805d1bc3cfdef55f570493f4), loaded with
``weights_only=True``. Output: ``mobilefacenet.safetensors`` with the same keys, checked
to load into :class:`minerrestore.archs.identity.MobileFaceNet` with ``strict=True``.

Usage::

    python weights/convert_mobilefacenet.py ../shared/weights/mobilefacenet/mobilefacenet.pt weights/
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from minerrestore.archs.identity import MobileFaceNet  # noqa: E402
from minerrestore.models.files import load_state_dict, save_state_dict  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state_dict", type=Path, help="mobilefacenet.pt")
    parser.add_argument("out_dir", type=Path, help="destination folder (the repository's weights/)")
    args = parser.parse_args()
    state = load_state_dict(args.state_dict)
    MobileFaceNet().load_state_dict(state, strict=True)
    metadata = {
        "source": "foamliu/MobileFaceNet weights/ (state dict mobilefacenet.pt)",
        "source_sha256": hashlib.sha256(args.state_dict.read_bytes()).hexdigest(),
        "license": "Apache-2.0 (LICENSE.mobilefacenet)",
        "input": "1x3x112x112 RGB, (x/255 - 0.5)/0.5, ArcFace 5-point alignment",
    }
    out = save_state_dict(args.out_dir / "mobilefacenet.safetensors", state, metadata)
    print(f"{out}: {len(state)} tensors")


if __name__ == "__main__":
    main()
