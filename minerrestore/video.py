"""Restore the faces of video files, steadily: the video side of ``minerrestore restore``.

:func:`restore_video` streams a clip through a :class:`~minerrestore.restore.Restorer` one
frame at a time with PyAV (the optional extra ``video``): decode, detect, track, restore,
paste, encode. Nothing holds the clip, so memory does not grow with its length. The output
keeps every frame with its timestamp (variable frame rate included; the encoder works in the
input stream's time base), the frame rate, and the audio stream, whose packets are copied
unchanged. It is written to a temporary file and renamed when complete, so a corrupt or
truncated input leaves no partial output.

Steady faces: :class:`FaceTracker` matches each frame's detections to the tracks of the
previous frames by box overlap, smooths each track's 5 landmarks with a one-euro filter (the
aligned crop, hence the restored face, does not jitter; fast motion is followed without lag)
and keeps restoring a track's face for ``max_missed`` frames in which the detector misses it.

Steady settings: each frame's faces are measured anew (:mod:`minerrestore.severity`), and so
is a dark frame's enhancement (:mod:`minerrestore.lowlight`); :class:`SettingsSmoother` feeds
the restorer running averages instead, per track for the degradation estimate (which sets the
network's share, the denoising and the sharpening of the face) and per clip for the low-light
tone curve and colour gains, so they do not jump from frame to frame with the noise of the
measurement. Written for minerrestore (MIT).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from minerrestore.errors import MinerRestoreError, UsageError
from minerrestore.face.detect import Face
from minerrestore.face.paste import upscaled_size
from minerrestore.io import atomic_path
from minerrestore.severity import DegradationEstimate

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv")
"""Video containers ``restore`` reads (outputs keep the input's container)."""

VIDEO_FOLDER = "restored_videos"
"""Output sub-folder of restored videos."""

VIDEO_CODECS = ("libx264", "mpeg4")
"""Encoders PyAV's wheels ship that the output may use: H.264 (x264, ``crf``) or MPEG-4 Part 2."""

SETTINGS_ALPHA = 0.2
"""Weight of a frame's own measurement in the running average of a track's degradation estimate
and of a clip's low-light parameters (a memory of about 5 frames)."""

_MEASUREMENTS = tuple(f.name for f in fields(DegradationEstimate) if f.type in ("float", float))

_INSTALL_HINT = 'videos need PyAV: pip install "minerrestore[video]"'


class VideoError(MinerRestoreError):
    """A video that cannot be read (corrupt, truncated, no video stream) or written (exit 1)."""


def is_video(path: str | Path) -> bool:
    """Whether ``path`` has a video suffix (:data:`VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def require_av() -> Any:
    """The ``av`` module (PyAV), or a one-line error naming the extra to install."""
    try:
        import av
    except ImportError:
        raise VideoError(_INSTALL_HINT) from None
    return av


@dataclass(frozen=True)
class VideoOptions:
    """How videos are encoded and steadied.

    Attributes:
        codec: ``libx264`` (H.264, the default) or ``mpeg4``.
        crf: x264 constant rate factor, 0 (lossless) ... 51; 18 looks like the input.
        smooth: track faces and smooth their landmarks over time (off: every frame on its own,
            ``steady_settings`` included).
        max_missed: frames a tracked face is still restored when the detector misses it.
        steady_settings: average each track's degradation estimate and the clip's low-light
            parameters over frames (:class:`SettingsSmoother`); off: measured per frame.
    """

    codec: str = "libx264"
    crf: int = 18
    smooth: bool = True
    max_missed: int = 2
    steady_settings: bool = True

    def __post_init__(self) -> None:
        if self.codec not in VIDEO_CODECS:
            raise UsageError(
                f"video codec {self.codec!r} is not one of {', '.join(VIDEO_CODECS)}", settings=("video_codec",)
            )
        if not 0 <= self.crf <= 51:
            raise UsageError(f"video crf must be from 0 to 51, got {self.crf}", settings=("video_crf",))
        if self.max_missed < 0:
            raise UsageError(f"max missed must not be negative, got {self.max_missed}")


# ============================================================================ tracking


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _alpha(cutoff: float) -> float:
    """Smoothing factor of a first-order low-pass at ``cutoff`` cycles per frame."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau)


@dataclass
class OneEuroFilter:
    """One-euro filter (Casiez et al. 2012) on an array, one sample per frame.

    The cutoff rises with speed: the mean displacement of the points (the face's motion, in
    which the detector's independent per-point noise mostly cancels) in units of ``scale``
    (the face's width) per frame. A still face is smoothed hard, a moving one followed closely.
    """

    min_cutoff: float = 0.02
    beta: float = 10.0
    d_cutoff: float = 0.5
    value: np.ndarray | None = None
    speed: np.ndarray | None = None

    def __call__(self, x: np.ndarray, scale: float) -> np.ndarray:
        """Filter the next sample ``x``; returns the smoothed value."""
        x = np.asarray(x, dtype=np.float64)
        if self.value is None:
            self.value, self.speed = x.copy(), np.zeros(x.shape[-1])
            return x
        assert self.speed is not None
        raw_speed = (x - self.value).reshape(-1, x.shape[-1]).mean(axis=0) / max(scale, 1.0)
        self.speed = self.speed + _alpha(self.d_cutoff) * (raw_speed - self.speed)
        cutoff = self.min_cutoff + self.beta * float(np.linalg.norm(self.speed))
        self.value = self.value + _alpha(cutoff) * (x - self.value)
        return self.value


@dataclass
class Track:
    """One face followed over frames: its last face (smoothed landmarks) and missed frames."""

    track_id: int
    face: Face
    landmarks: OneEuroFilter = field(default_factory=OneEuroFilter)
    missed: int = 0


@dataclass
class FaceTracker:
    """Match detections to tracks by box IoU; smooth landmarks; bridge short misses.

    Args:
        max_missed: frames a track's face is still returned without a matching detection.
        min_iou: overlap under which a detection starts a new track.
    """

    max_missed: int = 2
    min_iou: float = 0.3
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 0

    def update(self, faces: Sequence[Face]) -> list[tuple[int, Face]]:
        """The faces of the next frame as (track id, face with smoothed landmarks).

        Tracks missed for at most ``max_missed`` frames are returned with their last face.
        """
        pairs = sorted(
            (
                (box_iou(track.face.box, face.box), t, f)
                for t, track in enumerate(self.tracks)
                for f, face in enumerate(faces)
            ),
            key=lambda item: -item[0],
        )
        matched_tracks: dict[int, int] = {}
        used_faces: set[int] = set()
        for iou, t, f in pairs:
            if iou < self.min_iou:
                break
            if t not in matched_tracks and f not in used_faces:
                matched_tracks[t] = f
                used_faces.add(f)
        kept: list[Track] = []
        for t, track in enumerate(self.tracks):
            if t in matched_tracks:
                face = faces[matched_tracks[t]]
                landmarks = track.landmarks(face.landmarks, face.width).astype(np.float32)
                track.face, track.missed = Face(face.box, face.score, landmarks), 0
            else:
                track.missed += 1
            if track.missed <= self.max_missed:
                kept.append(track)
        for f, face in enumerate(faces):
            if f not in used_faces:
                track = Track(self.next_id, face)
                track.landmarks(face.landmarks, face.width)
                self.next_id += 1
                kept.append(track)
        self.tracks = kept
        return [(track.track_id, track.face) for track in kept]


# ============================================================================ steady settings


@dataclass
class RunningAverage:
    """Exponential moving averages of arrays, one per key; a key's first sample is taken as it is."""

    alpha: float = SETTINGS_ALPHA
    values: dict[Hashable, np.ndarray] = field(default_factory=dict)

    def __call__(self, key: Hashable, value: np.ndarray) -> np.ndarray:
        """Average the next sample of ``key`` in; returns the average."""
        value = np.asarray(value, dtype=np.float64)
        previous = self.values.get(key)
        average = value if previous is None else previous + self.alpha * (value - previous)
        self.values[key] = average
        return average

    def keep(self, keys: Iterable[Hashable]) -> None:
        """Forget every key but ``keys`` (tracks that ended)."""
        kept = set(keys)
        self.values = {key: value for key, value in self.values.items() if key in kept}


@dataclass
class SettingsSmoother:
    """The restorer's per-frame measurements, averaged over time: a track's degradation
    estimate (:meth:`estimate`) and the clip's low-light parameters (:meth:`low_light`)."""

    estimates: RunningAverage = field(default_factory=RunningAverage)
    low_light_params: RunningAverage = field(default_factory=RunningAverage)

    def estimate(self, track_id: int, estimate: DegradationEstimate) -> DegradationEstimate:
        """The track's estimate averaged with this frame's (:meth:`~DegradationEstimate.bounded`)
        measurements; its ``size`` as measured."""
        estimate = estimate.bounded()
        average = self.estimates(track_id, np.array([getattr(estimate, name) for name in _MEASUREMENTS]))
        return replace(estimate, **{name: float(value) for name, value in zip(_MEASUREMENTS, average, strict=True)})

    def low_light(self, name: str, value: np.ndarray) -> np.ndarray:
        """The clip's average of a low-light parameter (:data:`~minerrestore.lowlight.LowLightSteady`)."""
        return self.low_light_params(name, value)


# ============================================================================ the clip


def _even(size: tuple[int, int]) -> tuple[int, int]:
    """(height, width) rounded down to even numbers (4:2:0 video needs them), at least 2."""
    return max(2, size[0] - size[0] % 2), max(2, size[1] - size[1] % 2)


def _open_input(av: Any, path: Path) -> Any:
    try:
        return av.open(str(path), "r")
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(f"{path}: cannot be read as a video ({getattr(exc, 'strerror', None) or exc})") from None


def restore_video(
    restorer: Any,
    path: str | Path,
    out_path: str | Path,
    *,
    options: VideoOptions = VideoOptions(),
    on_frame: Callable[[int, int | None], None] | None = None,
) -> dict[str, Any]:
    """Restore the faces of one video into ``out_path`` (written atomically).

    Args:
        restorer: a :class:`~minerrestore.restore.Restorer`; its ``upscale`` sizes the output.
        path: the input video.
        out_path: the output video (same container as ``path`` is best).
        options: codec, quality and steadying (:class:`VideoOptions`).
        on_frame: called after each frame with (frames done, frames in the clip or None).

    Returns:
        The report entry: frames, frame rate, duration, faces per frame, tracks, audio,
        timings (seconds per stage) and the output.

    Raises:
        VideoError: PyAV missing, or the input cannot be decoded to its end (nothing written).
    """
    av = require_av()
    path, out_path = Path(path), Path(out_path)
    restorer.load()
    timings = dict.fromkeys(("decode", "detect", "restore", "encode"), 0.0)
    faces_per_frame: list[int] = []
    tracker = FaceTracker(options.max_missed) if options.smooth else None
    smoother = SettingsSmoother() if options.smooth and options.steady_settings else None
    with _open_input(av, path) as source:
        if not source.streams.video:
            raise VideoError(f"{path}: no video stream")
        video_in = source.streams.video[0]
        audio_in = source.streams.audio[0] if source.streams.audio else None
        total = video_in.frames or None
        height, width = _even(
            upscaled_size(video_in.codec_context.height, video_in.codec_context.width, restorer.upscale)
        )
        with atomic_path(out_path, protect=(path,)) as temp, av.open(str(temp), "w") as sink:
            video_out = sink.add_stream(options.codec, rate=video_in.average_rate or 25)
            video_out.width, video_out.height, video_out.pix_fmt = width, height, "yuv420p"
            video_out.time_base = video_out.codec_context.time_base = video_in.time_base
            if options.codec == "libx264":
                video_out.options = {"crf": str(options.crf)}
            else:
                video_out.codec_context.qscale = max(2, round(2 + options.crf / 51 * 29))
                video_out.codec_context.flags |= "QSCALE"
            audio_out = sink.add_stream_from_template(audio_in) if audio_in is not None else None
            streams = [video_in] + ([audio_in] if audio_in is not None else [])
            tracks: set[int] = set()
            clock = time.perf_counter()
            try:
                for packet in source.demux(*streams):
                    if packet.stream is audio_in:
                        if packet.dts is not None:
                            packet.stream = audio_out
                            sink.mux(packet)
                        continue
                    for frame in packet.decode():
                        rgb = frame.to_ndarray(format="rgb24")
                        timings["decode"] += time.perf_counter() - clock
                        restored, ids = _restore_frame(restorer, tracker, smoother, rgb, timings)
                        faces_per_frame.append(len(ids))
                        tracks.update(ids)
                        clock = time.perf_counter()
                        out = av.VideoFrame.from_ndarray(
                            np.ascontiguousarray(restored[:height, :width]), format="rgb24"
                        )
                        out.pts = frame.pts if frame.pts is not None else len(faces_per_frame) - 1
                        out.time_base = video_in.time_base
                        sink.mux(video_out.encode(out))
                        timings["encode"] += time.perf_counter() - clock
                        if on_frame is not None:
                            on_frame(len(faces_per_frame), total)
                        clock = time.perf_counter()
                sink.mux(video_out.encode(None))
            except av.error.FFmpegError as exc:
                reason = getattr(exc, "strerror", None) or exc
                raise VideoError(f"{path}: corrupt video after {len(faces_per_frame)} frames ({reason})") from None
            if not faces_per_frame:
                raise VideoError(f"{path}: no frame could be decoded")
            if total is not None and len(faces_per_frame) < total:
                raise VideoError(f"{path}: truncated video: {len(faces_per_frame)} of {total} frames decoded")
        rate = video_in.average_rate
        duration = None if video_in.duration is None else float(video_in.duration * video_in.time_base)
    return {
        "frames": len(faces_per_frame),
        "frame_rate": None if rate is None else round(float(rate), 4),
        "duration": None if duration is None else round(duration, 4),
        "input_size": [video_in.codec_context.width, video_in.codec_context.height],
        "output_size": [width, height],
        "codec": options.codec,
        "audio": None if audio_in is None else audio_in.codec_context.name,
        "smooth": options.smooth,
        "steady_settings": smoother is not None,
        "tracks": len(tracks),
        "face_count": max(faces_per_frame),  # most faces in one frame: 0 when no frame had one
        "faces_per_frame": faces_per_frame,
        "timings": {key: round(value, 4) for key, value in timings.items()},
        "outputs": {VIDEO_FOLDER: str(out_path)},
        "notes": [],
    }


def _restore_frame(
    restorer: Any,
    tracker: FaceTracker | None,
    smoother: SettingsSmoother | None,
    rgb: np.ndarray,
    timings: dict[str, float],
) -> tuple[np.ndarray, list[int]]:
    """One frame restored with the tracker's faces (or its own detections) and the smoother's
    settings; (image, track ids)."""
    clock = time.perf_counter()
    if restorer.aligned:  # every frame is one aligned face: one track
        ids, faces = [0], None
    else:
        faces = restorer.detect(rgb)
        if tracker is not None:
            tracked = tracker.update(faces)
            ids, faces = [track_id for track_id, _ in tracked], [face for _, face in tracked]
        else:
            ids = list(range(len(faces)))
    timings["detect"] += time.perf_counter() - clock
    clock = time.perf_counter()
    steady: dict[str, Any] = {}
    if smoother is not None:
        smoother.estimates.keep(ids)
        steady = {
            "steady_estimate": lambda position, estimate: smoother.estimate(ids[position], estimate),
            "steady_low_light": smoother.low_light,
        }
    result = restorer.restore(rgb, faces=faces, **steady)
    timings["restore"] += time.perf_counter() - clock
    return result.image, ids


def restore_video_file(
    restorer: Any, path: Path, out_path: Path, options: VideoOptions, quiet: bool = True
) -> dict[str, Any]:
    """:func:`restore_video` with a progress bar in frames (rate, ETA) unless ``quiet``."""
    if quiet:
        return restore_video(restorer, path, out_path, options=options)
    from minerrestore.batch import progress_bar

    with progress_bar(False) as progress:
        task = progress.add_task(f"{path.name} (frames)", total=None, rate="")
        start = time.perf_counter()

        def advance(done: int, total: int | None) -> None:
            elapsed = time.perf_counter() - start
            progress.update(task, completed=done, total=total, rate=f"{done / elapsed:.2f} frames/s")

        return restore_video(restorer, path, out_path, options=options, on_frame=advance)


__all__ = [
    "SETTINGS_ALPHA",
    "VIDEO_CODECS",
    "VIDEO_FOLDER",
    "VIDEO_SUFFIXES",
    "FaceTracker",
    "OneEuroFilter",
    "RunningAverage",
    "SettingsSmoother",
    "VideoError",
    "VideoOptions",
    "box_iou",
    "is_video",
    "require_av",
    "restore_video",
    "restore_video_file",
]
