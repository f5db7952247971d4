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
Without ``times.txt`` scan times are taken at KITTI's nominal 10 Hz (``0.1 * frame index``).
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
from nerfseg.errors import DataError
from nerfseg.geometry.transforms import interpolate_poses, invert_rigid, kitti_camera_from_projection

SPLIT_SEQUENCES: dict[str, tuple[int, ...]] = {
    "train": (0, 1, 2, 3, 4, 5, 6, 7, 9, 10),
    "val": (8,),
    "test": tuple(range(11, 22)),
}
"""The official SemanticKITTI sequence split."""

NUM_FIELDS = 4
CAMERA = "image_2"
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
    K: np.ndarray | None  # (3, 3)
    camera_times: np.ndarray | None  # (T,) float64 seconds
    lidar_to_cam: np.ndarray | None  # (T, 4, 4)


def _list_stems(folder: Path, suffix: str) -> list[str]:
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(name[: -len(suffix)] for name in names if name.endswith(suffix))


def _scan_times(folder: Path, count: int) -> np.ndarray:
    path = folder / "times.txt"
    if not path.is_file():
        return NOMINAL_SCAN_PERIOD_S * np.arange(count, dtype=np.float64)
    times = io.read_times(path)
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
    K = camera_times = lidar_to_cam = None
    if (folder / CAMERA).is_dir():
        calib = io.read_kitti_calib(folder / "calib.txt")
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
            if all_times.size > 1 and not (np.diff(all_times) > 0).all():
                raise DataError(folder / "times.txt", "scan times must increase strictly")
            poses = io.read_kitti_poses(folder / "poses.txt")
            if poses.shape[0] != all_times.size:
                raise DataError(
                    folder / "poses.txt",
                    f"has {poses.shape[0]} poses but times.txt has {all_times.size} times",
                )
        K, all_l2c = camera_geometry(calib, all_times, all_cam_times, poses)
        camera_times = (all_cam_times if all_cam_times is not None else all_times)[frame_idx]
        lidar_to_cam = all_l2c[frame_idx]
    return _SequenceInfo(
        folder.name, folder, tuple(frames), scan_times, has_labels, K, camera_times, lidar_to_cam
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
            raise ValueError(f"split must be one of {sorted(SPLIT_SEQUENCES)}, got {split!r}")
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
        if image is not None:
            size = (image.shape[1], image.shape[0])
        else:
            size = _image_size(image_path)
        semantic = info.folder / "semantic_2" / f"{frame}.png"
        depth = info.folder / "depth_2" / f"{frame}.png"
        return CameraFrame(
            name=CAMERA,
            image_path=image_path,
            K=info.K.copy(),
            lidar_to_cam=info.lidar_to_cam[i].copy(),
            timestamp=float(info.camera_times[i]),
            image_size=size,
            image=image,
            semantic_path=semantic if semantic.is_file() else None,
            depth_path=depth if depth.is_file() else None,
        )


def _image_size(path: Path) -> tuple[int, int]:
    """(W, H) of an image from its header; DataError if missing or unreadable."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise DataError(path, "image file not found")
    try:
        with Image.open(path) as image:
            return int(image.size[0]), int(image.size[1])
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(path, f"unreadable image ({err})") from None


# ----------------------------------------------------------------------------------------------- checks


def check_semantickitti(
    root: str | Path,
    label_dir: str | Sequence[str] = "labels",
    label_map: LabelMap = SEMANTICKITTI,
    progress: bool = True,
) -> list[Problem]:
    """Validate every sequence under ``ROOT/sequences`` and return every problem found (empty = valid).

    Checks: scan files (whole number of points, finite values), label files (present for every scan when
    the sequence has ``label_dir``, one per point, only known raw ids, none without a scan), calib.txt
    (present, P0..P3 and Tr well formed), poses.txt / times.txt / times_image_2.txt (parseable, one entry
    per scan), images (present and decodable). ``label_dir`` may name several folders: ScribbleKITTI is
    checked with ("scribbles", "labels") (its scribbles plus the dense validation labels).
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
        problems.extend(_check_sequence_files(folder, label_dirs))
        frames = _list_stems(folder / "velodyne", ".bin")
        present = tuple(name for name in label_dirs if (folder / name).is_dir())
        has_images = (folder / CAMERA).is_dir()
        work.extend((folder, frame, present, has_images) for frame in frames)
    for folder, frame, present, has_images in tqdm(
        work, desc="check-data", unit="scan", disable=not progress, leave=False
    ):
        problems.extend(_check_scan(folder, frame, present, has_images, label_map))
    return problems


def _check_sequence_files(folder: Path, label_dirs: tuple[str, ...]) -> list[Problem]:
    problems = []
    frames = _list_stems(folder / "velodyne", ".bin")
    if not (folder / "velodyne").is_dir():
        problems.append(Problem(folder / "velodyne", "folder not found"))
    elif not frames:
        problems.append(Problem(folder / "velodyne", "no scan files (*.bin)"))
    try:
        _frame_indices(frames, folder)
    except DataError as err:
        problems.append(Problem(err.path, err.problem))
        return problems
    try:
        io.read_kitti_calib(folder / "calib.txt")
    except DataError as err:
        problems.append(Problem(err.path, err.problem))
    count = len(frames)
    counts = {}
    for name, reader in (
        ("times.txt", io.read_times),
        ("poses.txt", io.read_kitti_poses),
        (f"times_{CAMERA}.txt", io.read_times),
    ):
        path = folder / name
        if not path.is_file():
            continue
        try:
            counts[name] = len(reader(path))
        except DataError as err:
            problems.append(Problem(err.path, err.problem))
            continue
        if counts[name] != count:
            problems.append(Problem(path, f"has {counts[name]} entries but the sequence has {count} scans"))
    if (folder / f"times_{CAMERA}.txt").is_file() and not (folder / "poses.txt").is_file():
        problems.append(Problem(folder / "poses.txt", f"needed with times_{CAMERA}.txt but not found"))
    for label_dir in label_dirs:
        orphans = sorted(set(_list_stems(folder / label_dir, ".label")) - set(frames))
        problems.extend(
            Problem(folder / label_dir / f"{s}.label", "label file without a scan") for s in orphans
        )
    return problems


def _check_scan(
    folder: Path, frame: str, label_dirs: tuple[str, ...], has_images: bool, label_map: LabelMap
) -> list[Problem]:
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
    if has_images:
        problems.extend(_check_image(folder / CAMERA / f"{frame}.png"))
    return problems


def _check_image(path: Path) -> list[Problem]:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        return [Problem(path, "image file not found")]
    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        return [Problem(path, f"unreadable image ({err})")]
    return []
