"""SemanticKITTI and ScribbleKITTI reader and checker.

Layout, exactly as distributed::

    ROOT/sequences/SS/velodyne/FFFFFF.bin     float32 x, y, z, remission (metres, [0, 1])
    ROOT/sequences/SS/labels/FFFFFF.label     uint32 instance << 16 | semantic raw id
    ROOT/sequences/SS/scribbles/FFFFFF.label  ScribbleKITTI's sparse labels, same format
    ROOT/sequences/SS/image_2/FFFFFF.png      left colour camera
    ROOT/sequences/SS/calib.txt               P0..P3 (3x4, rectified), Tr (velodyne -> cam0)
    ROOT/sequences/SS/poses.txt               cam0 pose per scan in the cam0 frame of scan 0 (3x4 rows)
    ROOT/sequences/SS/times.txt               scan time per scan, seconds

Our extensions (written by the built-in simulator; absent from the public dataset)::

    ROOT/sequences/SS/times_image_2.txt       camera capture time per scan, seconds, same clock as times.txt
    ROOT/sequences/SS/semantic_2/FFFFFF.png   per-pixel raw semantic id (16-bit), ground truth
    ROOT/sequences/SS/depth_2/FFFFFF.png      per-pixel depth in millimetres (16-bit, 0 = no hit)

Camera model: ``K`` comes from P2 and ``lidar_to_cam = T_velo_to_cam2 = shift(P2) @ Tr``. When
``times_image_2.txt`` exists the camera is ego-motion compensated: with the LiDAR pose of scan i
``L_i = poses_i @ Tr`` (velodyne -> world), ``L(t)`` interpolated (linear translation, slerp rotation) and
``lidar_to_cam = T_velo_to_cam2 @ inv(L(t_cam)) @ L(t_lidar)``; without it ``t_cam = t_lidar``.
Without ``times.txt`` scan times are taken at KITTI's nominal 10 Hz (``0.1 * frame index``); a
``times.txt`` must increase strictly.

LiDAR-only copies: a sequence without ``image_2/`` or without ``calib.txt`` has no camera (its samples carry
no :class:`CameraFrame`); LiDAR-only training, prediction and evaluation need neither, the camera methods
refuse such scans up front (:meth:`SemanticKittiDataset.missing_cameras`). Every ``image_2/`` PNG of a
sequence has the size of the sequence's first readable one, and ``semantic_2/`` / ``depth_2/`` PNGs the size
of their camera image (:func:`check_camera_sizes`); the reader and ``check-data`` apply the same rules.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nerfseg.data import io
from nerfseg.data.checks import Problem
from nerfseg.data.labelmaps import SEMANTICKITTI, LabelMap
from nerfseg.data.sample import CameraFrame, Sample
from nerfseg.errors import ConfigError, DataError
from nerfseg.geometry.transforms import interpolate_poses, invert_rigid, kitti_camera_from_projection

SPLIT_SEQUENCES: dict[str, tuple[int, ...]] = {
    "train": (0, 1, 2, 3, 4, 5, 6, 7, 9, 10),
    "val": (8,),
    "test": tuple(range(11, 22)),
}
"""The official SemanticKITTI sequence split."""

NUM_FIELDS = 4
CAMERA = "image_2"
CALIB = "calib.txt"
GROUND_TRUTH_DIRS = ("semantic_2", "depth_2")
"""Our extension's per-pixel ground truth beside ``image_2/`` (see the module docstring)."""
NOMINAL_SCAN_PERIOD_S = 0.1


def sequence_name(sequence: int | str) -> str:
    """Two-digit sequence folder name, e.g. 8 -> "08"."""
    return f"{int(sequence):02d}"


@dataclass(frozen=True)
class _SequenceInfo:
    """Per-sequence data read once: scan names and camera geometry for every scan."""

    name: str
    folder: Path
    frames: tuple[str, ...]  # "FFFFFF" stems of velodyne/*.bin, sorted
    scan_times: np.ndarray  # (T,) float64 seconds
    has_labels: bool
    camera_missing: str | None  # why the sequence has no camera (camera_status), None when it has one
    K: np.ndarray | None  # (3, 3)
    camera_times: np.ndarray | None  # (T,) float64 seconds
    lidar_to_cam: np.ndarray | None  # (T, 4, 4)
    image_reference: Path | None  # the image whose size every image_2/ PNG of the sequence must have
    image_size: tuple[int, int] | None  # (W, H) of image_reference


def _count(number: int, noun: str) -> str:
    """``"1 scan"``, ``"3 scans"``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _list_stems(folder: Path, suffix: str) -> list[str]:
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(name[: -len(suffix)] for name in names if name.endswith(suffix))


def read_scan_times(path: Path) -> np.ndarray:
    """(T,) float64 scan times in seconds of a sequence's ``times.txt``; DataError naming the file if it is
    malformed or does not increase strictly (the reader's and ``check-data``'s one rule)."""
    return io.read_times(path, strictly_increasing=True)


def camera_status(folder: Path) -> str | None:
    """None when the sequence ``folder`` has a usable camera (``image_2/`` and ``calib.txt``), else why not:
    ``"no calib.txt and no image_2/"``, ``"no image_2/"`` or ``"image_2/ but no calib.txt"``."""
    has_images, has_calib = (folder / CAMERA).is_dir(), (folder / CALIB).is_file()
    if has_images and has_calib:
        return None
    if not has_images and not has_calib:
        return f"no {CALIB} and no {CAMERA}/"
    return f"no {CAMERA}/" if has_calib else f"{CAMERA}/ but no {CALIB}"


def camera_reference(folder: Path, frames: Sequence[str]) -> tuple[Path, tuple[int, int]] | None:
    """(path, (W, H)) of the first image of ``image_2/`` (in frame order) whose header reads: every image of
    the sequence must have its size. None when no image of ``frames`` reads."""
    present = set(_list_stems(folder / CAMERA, ".png"))
    for frame in frames:
        if frame in present:
            path = folder / CAMERA / f"{frame}.png"
            try:
                return path, io.image_size(path)
            except DataError:
                continue
    return None


def check_camera_sizes(
    folder: Path, frame: str, size: tuple[int, int], reference: tuple[Path, tuple[int, int]] | None
) -> dict[str, Path]:
    """Check the sizes of scan ``frame``'s camera images in the sequence ``folder``.

    Args:
        size: (W, H) pixels of ``image_2/FRAME.png``.
        reference: :func:`camera_reference` of the sequence (None: no size to compare with).
    Returns:
        ``{"semantic_2": path, "depth_2": path}`` of the ground-truth images present beside the image.
    Raises:
        DataError: naming ``image_2/FRAME.png`` if its size differs from the reference image's, or a
            ground-truth PNG whose size differs from its camera image's.
    """
    image_path = folder / CAMERA / f"{frame}.png"
    if reference is not None:
        ref_path, ref_size = reference
        first = f"{ref_path.name}, the sequence's first {CAMERA} image,"
        io.check_image_size(image_path, size, ref_size, first)
    truth = {}
    for name in GROUND_TRUTH_DIRS:
        path = folder / name / f"{frame}.png"
        if path.is_file():
            io.check_image_size(path, io.image_size(path), size, f"its camera image {CAMERA}/{frame}.png")
            truth[name] = path
    return truth


def _scan_times(folder: Path, count: int) -> np.ndarray:
    path = folder / "times.txt"
    if not path.is_file():
        return NOMINAL_SCAN_PERIOD_S * np.arange(count, dtype=np.float64)
    times = read_scan_times(path)
    if times.size < count:
        raise DataError(path, f"has {times.size} times but the sequence has {count} scans")
    return times


def _frame_indices(frames: Sequence[str], folder: Path) -> np.ndarray:
    try:
        return np.array([int(stem) for stem in frames], dtype=np.int64)
    except ValueError:
        raise DataError(
            folder / "velodyne", "scan file names must be frame numbers, e.g. 000123.bin"
        ) from None


def camera_geometry(
    calib: dict[str, np.ndarray],
    scan_times: np.ndarray,
    camera_times: np.ndarray | None = None,
    poses: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Intrinsics and per-scan LiDAR -> camera-2 transforms, ego-motion compensated when possible.

    Args:
        calib: :func:`nerfseg.data.io.read_kitti_calib` output (P2 (3, 4), Tr (4, 4)).
        scan_times: (T,) float64 LiDAR scan times, seconds.
        camera_times: (T,) float64 camera capture times, seconds, or None (then t_cam = t_lidar).
        poses: (T, 4, 4) cam0 poses of ``poses.txt``; required when ``camera_times`` is given.
    Returns:
        K: (3, 3) float64; lidar_to_cam: (T, 4, 4) float64.
    """
    K, shift = kitti_camera_from_projection(calib["P2"])
    velo_to_cam2 = shift @ calib["Tr"]
    count = scan_times.size
    if camera_times is None:
        return K, np.repeat(velo_to_cam2[None], count, axis=0)
    assert poses is not None
    lidar_poses = poses @ calib["Tr"]  # velodyne -> world at each scan time
    at_camera = interpolate_poses(scan_times, lidar_poses, camera_times)
    return K, velo_to_cam2 @ invert_rigid(at_camera) @ lidar_poses


def _read_sequence(folder: Path, label_dir: str, need_labels: bool) -> _SequenceInfo:
    frames = _list_stems(folder / "velodyne", ".bin")
    frame_idx = _frame_indices(frames, folder)
    count = int(frame_idx.max()) + 1 if frames else 0
    all_times = _scan_times(folder, count)
    scan_times = all_times[frame_idx] if frames else np.zeros(0)
    has_labels = (folder / label_dir).is_dir()
    if need_labels and not has_labels:
        raise DataError(folder / label_dir, "label folder not found")
    K = camera_times = lidar_to_cam = reference = None
    camera_missing = camera_status(folder)
    if camera_missing is None:
        calib = io.read_kitti_calib(folder / CALIB)
        cam_path = folder / f"times_{CAMERA}.txt"
        poses = None
        all_cam_times = None
        if cam_path.is_file():
            all_cam_times = io.read_times(cam_path)
            if not (folder / "times.txt").is_file():
                raise DataError(folder / "times.txt", f"needed with {cam_path.name} but not found")
            if all_cam_times.size != all_times.size:
                raise DataError(
                    cam_path, f"has {all_cam_times.size} times but times.txt has {all_times.size}"
                )
            poses = io.read_kitti_poses(folder / "poses.txt")
            if poses.shape[0] != all_times.size:
                raise DataError(
                    folder / "poses.txt",
                    f"has {poses.shape[0]} poses but times.txt has {all_times.size} times",
                )
        K, all_l2c = camera_geometry(calib, all_times, all_cam_times, poses)
        camera_times = (all_cam_times if all_cam_times is not None else all_times)[frame_idx]
        lidar_to_cam = all_l2c[frame_idx]
        reference = camera_reference(folder, frames)
    return _SequenceInfo(
        folder.name,
        folder,
        tuple(frames),
        scan_times,
        has_labels,
        camera_missing,
        K,
        camera_times,
        lidar_to_cam,
        None if reference is None else reference[0],
        None if reference is None else reference[1],
    )


class SemanticKittiDataset:
    """SemanticKITTI-layout dataset returning :class:`~nerfseg.data.sample.Sample` objects.

    Args:
        root: dataset root (the folder holding ``sequences/``).
        split: "train" (00-07, 09, 10), "val" (08) or "test" (11-21); only sequences present are used.
        label_dir: label folder per sequence: "labels" (SemanticKITTI) or "scribbles" (ScribbleKITTI).
        sequences: explicit sequence numbers overriding ``split``'s.
        load_images: read the camera images now (else call ``CameraFrame.load_image``).
        label_map: raw -> train id table (default: the official SemanticKITTI learning map).

    Sample ids are ``"SS/FFFFFF"``. A sequence without a ``label_dir`` folder gives unlabeled samples
    (``labels is None``), except for the val split, which must be labeled.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        label_dir: str = "labels",
        sequences: Sequence[int] | None = None,
        load_images: bool = False,
        label_map: LabelMap = SEMANTICKITTI,
    ):
        if split not in SPLIT_SEQUENCES:
            choices = ", ".join(SPLIT_SEQUENCES)
            raise ConfigError(f"unknown SemanticKITTI split {split!r}; choose one of {choices}")
        self.root = Path(root)
        self.split = split
        self.label_dir = label_dir
        self.load_images = load_images
        self.label_map = label_map
        wanted = SPLIT_SEQUENCES[split] if sequences is None else tuple(sequences)
        seq_root = self.root / "sequences"
        if not seq_root.is_dir():
            raise DataError(seq_root, "folder not found (expected ROOT/sequences/SS/velodyne/*.bin)")
        folders = [seq_root / sequence_name(s) for s in wanted if (seq_root / sequence_name(s)).is_dir()]
        if not folders:
            names = ", ".join(sequence_name(s) for s in wanted)
            raise DataError(seq_root, f"none of the sequences of split {split!r} ({names}) is present")
        self._sequences = [_read_sequence(f, label_dir, need_labels=split == "val") for f in folders]
        self._index = [(s, i) for s, info in enumerate(self._sequences) for i in range(len(info.frames))]
        if not self._index:
            raise DataError(seq_root, f"no scans (velodyne/*.bin) in the sequences of split {split!r}")

    @classmethod
    def scribblekitti(cls, root: str | Path, split: str = "train", **kwargs) -> SemanticKittiDataset:
        """ScribbleKITTI: train labels from ``scribbles/``; val (08) and test use the dense ``labels/``."""
        label_dir = "scribbles" if split == "train" else "labels"
        return cls(root, split=split, label_dir=label_dir, **kwargs)

    def __len__(self) -> int:
        return len(self._index)

    @property
    def sample_ids(self) -> list[str]:
        return [f"{self._sequences[s].name}/{self._sequences[s].frames[i]}" for s, i in self._index]

    def scan_path(self, index: int) -> Path:
        info, frame = self._locate(index)
        return info.folder / "velodyne" / f"{frame}.bin"

    def missing_cameras(self) -> list[str]:
        """One line per sequence of the dataset without a usable camera, e.g.
        ``"sequences/00 (120 scans: no calib.txt and no image_2/)"``; empty when every scan has its camera."""
        return [
            f"sequences/{info.name} ({_count(len(info.frames), 'scan')}: {info.camera_missing})"
            for info in self._sequences
            if info.camera_missing is not None
        ]

    def label_path(self, index: int) -> Path | None:
        info, frame = self._locate(index)
        return info.folder / self.label_dir / f"{frame}.label" if info.has_labels else None

    def _locate(self, index: int) -> tuple[_SequenceInfo, str]:
        s, i = self._index[index]
        info = self._sequences[s]
        return info, info.frames[i]

    def __getitem__(self, index: int) -> Sample:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        s, i = self._index[index]
        info = self._sequences[s]
        frame = info.frames[i]
        scan_path = info.folder / "velodyne" / f"{frame}.bin"
        points = io.read_points_bin(scan_path, NUM_FIELDS)
        labels = instance_ids = None
        if info.has_labels:
            label_path = info.folder / self.label_dir / f"{frame}.label"
            raw = io.read_label_file(label_path, points.shape[0])
            semantic = (raw & 0xFFFF).astype(np.int64)
            unknown = self.label_map.unknown_raw_ids(semantic)
            if unknown.size:
                raise DataError(label_path, f"unknown raw label ids {unknown.tolist()[:10]}")
            labels = self.label_map.to_train(semantic)
            instance_ids = (raw >> 16).astype(np.int64)
        cameras = []
        if info.K is not None:
            cameras.append(self._camera(info, i, frame))
        return Sample(
            sample_id=f"{info.name}/{frame}",
            points=points,
            labels=labels,
            timestamp=float(info.scan_times[i]),
            cameras=cameras,
            lidar_path=scan_path,
            instance_ids=instance_ids,
        )

    def _camera(self, info: _SequenceInfo, i: int, frame: str) -> CameraFrame:
        image_path = info.folder / CAMERA / f"{frame}.png"
        image = io.read_image(image_path) if self.load_images else None
        size = (image.shape[1], image.shape[0]) if image is not None else io.image_size(image_path)
        reference = None if info.image_reference is None else (info.image_reference, info.image_size)
        truth = check_camera_sizes(info.folder, frame, size, reference)
        return CameraFrame(
            name=CAMERA,
            image_path=image_path,
            K=info.K.copy(),
            lidar_to_cam=info.lidar_to_cam[i].copy(),
            timestamp=float(info.camera_times[i]),
            image_size=size,
            image=image,
            semantic_path=truth.get("semantic_2"),
            depth_path=truth.get("depth_2"),
        )


# ----------------------------------------------------------------------------------------------- checks

def check_semantickitti(
    root: str | Path,
    label_dir: str | Sequence[str] = "labels",
    label_map: LabelMap = SEMANTICKITTI,
    progress: bool = True,
    require_cameras: bool = False,
) -> list[Problem]:
    """Validate every sequence under ``ROOT/sequences`` and return every problem found (no errors = valid).

    Checks: scan files (whole number of points, finite values), label files (present for every scan when
    the sequence has ``label_dir``, one per point, only known raw ids, none without a scan), calib.txt
    (P0..P3 and Tr well formed), poses.txt / times.txt / times_image_2.txt (parseable, one entry per scan,
    times.txt strictly increasing), images (present, decodable, all of the sequence's camera size;
    ``semantic_2/`` / ``depth_2/`` readable 16-bit PNGs of their camera image's size). The per-file rules are
    the reader's own (:func:`read_scan_times`, :func:`check_camera_sizes`, :mod:`nerfseg.data.io`).
    ``label_dir`` may name several folders: ScribbleKITTI is checked with ("scribbles", "labels") (its
    scribbles plus the dense validation labels).

    A sequence without ``calib.txt`` or ``image_2/`` (a LiDAR-only copy) gives one Problem naming the
    sequence folder: a warning (``Problem.warning``), or an error with ``require_cameras``.
    """
    from tqdm import tqdm

    root = Path(root)
    seq_root = root / "sequences"
    if not seq_root.is_dir():
        return [Problem(seq_root, "folder not found (expected ROOT/sequences/SS/velodyne/*.bin)")]
    folders = sorted(p for p in seq_root.iterdir() if p.is_dir())
    if not folders:
        return [Problem(seq_root, "no sequence folders")]
    label_dirs = (label_dir,) if isinstance(label_dir, str) else tuple(label_dir)
    problems: list[Problem] = []
    work = []
    for folder in folders:
        frames = _list_stems(folder / "velodyne", ".bin")
        missing = camera_status(folder)
        if missing is not None:
            scans = _count(len(frames), "scan")
            effect = (
                f"the camera methods cannot use its {scans} (--require-cameras)"
                if require_cameras
                else f"camera supervision is disabled for its {scans}"
            )
            problems.append(Problem(folder, f"{missing} (LiDAR only): {effect}", warning=not require_cameras))
        problems.extend(_check_sequence_files(folder, frames, label_dirs))
        present = tuple(name for name in label_dirs if (folder / name).is_dir())
        reference = camera_reference(folder, frames) if missing is None else None
        work.extend((folder, frame, present, missing is None, reference) for frame in frames)
    for folder, frame, present, cameras, reference in tqdm(
        work, desc="check-data", unit="scan", disable=not progress, leave=False
    ):
        problems.extend(_check_scan(folder, frame, present, label_map))
        if cameras:
            problems.extend(_check_camera(folder, frame, reference))
    return problems


def _check_sequence_files(folder: Path, frames: list[str], label_dirs: tuple[str, ...]) -> list[Problem]:
    problems = []
    if not (folder / "velodyne").is_dir():
        problems.append(Problem(folder / "velodyne", "folder not found"))
    elif not frames:
        problems.append(Problem(folder / "velodyne", "no scan files (*.bin)"))
    try:
        _frame_indices(frames, folder)
    except DataError as err:
        problems.append(Problem(err.path, err.problem))
        return problems
    if (folder / CALIB).is_file():
        _collect(problems, io.read_kitti_calib, folder / CALIB)
    count = len(frames)
    for name, reader in (
        ("times.txt", read_scan_times),
        ("poses.txt", io.read_kitti_poses),
        (f"times_{CAMERA}.txt", io.read_times),
    ):
        path = folder / name
        if not path.is_file():
            continue
        entries = _collect(problems, reader, path)
        if entries is not None and len(entries) != count:
            problems.append(Problem(path, f"has {len(entries)} entries but the sequence has {count} scans"))
    if (folder / f"times_{CAMERA}.txt").is_file():
        for needed in ("poses.txt", "times.txt"):
            if not (folder / needed).is_file():
                problems.append(Problem(folder / needed, f"needed with times_{CAMERA}.txt but not found"))
    for label_dir in label_dirs:
        orphans = sorted(set(_list_stems(folder / label_dir, ".label")) - set(frames))
        problems.extend(
            Problem(folder / label_dir / f"{s}.label", "label file without a scan") for s in orphans
        )
    return problems


def _check_scan(folder: Path, frame: str, label_dirs: tuple[str, ...], label_map: LabelMap) -> list[Problem]:
    problems = []
    scan_path = folder / "velodyne" / f"{frame}.bin"
    num_points = None
    try:
        num_points = io.read_points_bin(scan_path, NUM_FIELDS).shape[0]
    except DataError as err:
        problems.append(Problem(err.path, err.problem))
        size = scan_path.stat().st_size if scan_path.is_file() else 1
        if size % (4 * NUM_FIELDS) == 0:  # whole points, bad values: label lengths can still be checked
            num_points = size // (4 * NUM_FIELDS)
    for label_dir in label_dirs:
        label_path = folder / label_dir / f"{frame}.label"
        try:
            raw = io.read_label_file(label_path, num_points)
            unknown = label_map.unknown_raw_ids(raw & 0xFFFF)
            if unknown.size:
                problems.append(Problem(label_path, f"unknown raw label ids {unknown.tolist()[:10]}"))
        except DataError as err:
            problems.append(Problem(err.path, err.problem))
    return problems


def _check_camera(
    folder: Path, frame: str, reference: tuple[Path, tuple[int, int]] | None
) -> list[Problem]:
    """The problems of scan ``frame``'s camera image and the ground-truth images beside it."""
    from nerfseg.data.ground_truth import read_uint16_png

    problems: list[Problem] = []
    image_path = folder / CAMERA / f"{frame}.png"
    size = _collect(problems, _verified_size, image_path)
    if size is None:
        return problems
    truth = _collect(problems, check_camera_sizes, folder, frame, size, reference)
    for path in (truth or {}).values():
        _collect(problems, read_uint16_png, path)
    return problems


def _verified_size(path: Path) -> tuple[int, int]:
    """(W, H) of an image whose data PIL verifies; DataError naming the file otherwise."""
    from PIL import Image, UnidentifiedImageError

    size = io.image_size(path)
    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(path, f"unreadable image ({err})") from None
    return size


def _collect(problems: list[Problem], check, *args):
    """Run ``check(*args)``; on DataError append a Problem and return None, else return its result."""
    try:
        return check(*args)
    except DataError as err:
        problems.append(Problem(err.path, err.problem))
        return None
