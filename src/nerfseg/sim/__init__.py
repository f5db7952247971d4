"""The built-in synthetic driving-scene dataset (`nerfseg simulate`).

Modules, in data-flow order:
  config     SimConfig (YAML-loadable dataclasses: scene, LiDAR, camera, nuScenes rig, parallax switches)
  classes    class table: SemanticKITTI raw ids, albedo / texture / remission, nuScenes-lidarseg index
  mesh       triangle primitives (box, cylinder, ellipsoid, quad) and TriMesh (per-triangle labels, colours)
  scene      procedural streets: static mesh + objects moving at constant velocity
  raycast    first-hit ray casting with Embree (embreex), and a dense numpy reference
  rig        frames and transforms, ego motion, pixel rays
  lidar      rotating multi-beam sweep with per-firing time, noise, dropout, remission, de-skew
  camera     ray-cast RGB with shading and texture, ground-truth semantic and depth images
  scribbles  ScribbleKITTI-style sparse stroke labels
  kitti      KITTI-like rig and the SemanticKITTI-layout writer
  nuscenes_writer  nuScenes-like rig (LIDAR_TOP + 6 cameras) and the native nuScenes-layout writer
  simulate   top level: sequences / scenes, progress bar, worker processes
  parallax   LiDAR->camera projection label error measured against the ground-truth images
"""
