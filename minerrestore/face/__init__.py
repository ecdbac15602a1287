"""Face helpers of the restoration pipeline: detect, align, paste back.

Stateless functions over numpy uint8 HxWx3 RGB images::

    faces = detect_faces(rgb)                       # list[Face], 5 landmarks each
    aligned = align_faces(rgb, faces, 512)          # list[AlignedFace(crop, affine, face)]
    restored = [network(a.crop) for a in aligned]   # 512x512 RGB crops
    out = paste_faces(rgb, restored, [a.affine for a in aligned], upscale=2)
"""

from __future__ import annotations

from minerrestore.face.align import (
    FFHQ_BORDER_RGB,
    FFHQ_TEMPLATE_512,
    AlignedFace,
    align_faces,
    aligned_input,
    estimate_affine,
    invert_affine,
    template_for,
    warp_face,
)
from minerrestore.face.detect import (
    DETECTORS,
    Face,
    FaceDetector,
    detect_faces,
    get_center_face,
    get_largest_face,
    load_detector,
)
from minerrestore.face.paste import (
    face_masks,
    load_face_parser,
    paste_faces,
    upscale_image,
    upscaled_size,
)

__all__ = [
    "DETECTORS",
    "FFHQ_BORDER_RGB",
    "FFHQ_TEMPLATE_512",
    "AlignedFace",
    "Face",
    "FaceDetector",
    "align_faces",
    "aligned_input",
    "detect_faces",
    "estimate_affine",
    "face_masks",
    "get_center_face",
    "get_largest_face",
    "invert_affine",
    "load_detector",
    "load_face_parser",
    "paste_faces",
    "template_for",
    "upscale_image",
    "upscaled_size",
    "warp_face",
]
