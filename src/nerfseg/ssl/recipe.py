"""What each training method is made of: the parts of the loss it adds (one flag each).

The loop never branches on the method: it asks :func:`recipe_for` once and
:func:`nerfseg.ssl.methods.method_losses` adds the parts the recipe names.
"""

from __future__ import annotations

from dataclasses import dataclass

from nerfseg.ssl.config import Method


@dataclass(frozen=True)
class Recipe:
    """The loss parts of a method.

    Attributes:
        consistency: mean-teacher point pseudo-labels on the unlabeled scan's student view.
        lasermix: labeled and unlabeled scans mixed by laser inclination areas (teacher pseudo-labels on the
            unlabeled areas).
        projection: unlabeled points labeled by projecting them into masks that vote with the teacher's
            classes.
        camera: the teacher renders camera rays, fused with masks into pixel pseudo-labels the student's
            rendered rays are trained on (DESIGN.md steps 8-10).
        geometry: the NeRF head's LiDAR-ray losses on every scan, labeled and unlabeled (DESIGN.md step 6).
    """

    consistency: bool = False
    lasermix: bool = False
    projection: bool = False
    camera: bool = False
    geometry: bool = False

    @property
    def uses_unlabeled(self) -> bool:
        """Draws unlabeled batches."""
        return self.consistency or self.lasermix or self.projection or self.camera or self.geometry

    @property
    def uses_teacher(self) -> bool:
        """Keeps an EMA teacher."""
        return self.consistency or self.lasermix or self.projection or self.camera

    @property
    def uses_head(self) -> bool:
        """Trains the NeRF head."""
        return self.camera or self.geometry

    @property
    def uses_masks(self) -> bool:
        """Reads the cached masks of the unlabeled scans' camera images."""
        return self.projection or self.camera


def recipe_for(method: Method) -> Recipe:
    """The recipe of a method (DESIGN.md, "Baselines")."""
    match method:
        case Method.SUPERVISED:
            return Recipe()
        case Method.MEAN_TEACHER:
            return Recipe(consistency=True)
        case Method.LASERMIX:
            return Recipe(consistency=True, lasermix=True)
        case Method.PROJECTION:
            return Recipe(projection=True)
        case Method.NERF:
            return Recipe(camera=True, geometry=True)
        case Method.NERF_MEAN_TEACHER:
            return Recipe(camera=True, geometry=True, consistency=True)
        case Method.NERF_LASERMIX:
            return Recipe(camera=True, geometry=True, consistency=True, lasermix=True)
        case Method.GEOMETRY:
            return Recipe(geometry=True)
    raise AssertionError(method)  # pragma: no cover
