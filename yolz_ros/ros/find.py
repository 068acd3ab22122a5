"""The ``~/find`` action (yolz_ros/action/Find): search on demand for registered objects on the
newest frame of a camera, with the thorough multi-scale pass (runtime/search.py), while the
stream keeps publishing. Plain Python over the message types: the node creates the ActionServer
and hands ``FindAction.execute`` the goal handle (anything with ``request``,
``is_cancel_requested``, ``publish_feedback``, ``succeed``, ``abort``, ``canceled``).

Choices (docs/node.md, "Search on demand"):
- Every goal is accepted and every refusal is an abort whose result message says why: a rejected
  goal cannot carry a reason. Refused: no objects registered, an unknown name, a zoom or time
  limit out of range, no frame yet from the camera (or an unknown camera), the node inactive
  (lifecycle), a search already running (one at a time: a second goal aborts at once, it is not
  queued; the robot's planner decides whether to wait and ask again).
- The time limit ends the search after the pass that reaches it: the goal succeeds with what the
  passes done found (tiles_done < tiles_total, the message says so). The 1x pass always runs.
- Cancel: honoured between two passes; the goal ends canceled with what was found so far.
- 3D: where the camera has depth (use_depth), the detections are located on the depth image that
  matches the searched frame (taken with the frame, before the search), as ~/detections_3d is
  (Pipeline.located_3d); none when no depth image matches.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from yolz_ros.action import Find
from yolz_ros.msg import ObjectDetection
from yolz_ros.ros.cameras import find_camera
from yolz_ros.ros.outputs import detection2d_array, detection3d_array, object_detections
from yolz_ros.ros.params import detection_threshold
from yolz_ros.ros.pipeline import decode_frame, frame_of
from yolz_ros.runtime.search import Refused, check_goal, describe, search


def feedback_msg(progress) -> Find.Feedback:
    out = Find.Feedback(tiles_done=int(progress.done), tiles_total=int(progress.total),
                        elapsed_ms=float(progress.elapsed_s * 1e3))
    if progress.best is not None:
        name, pk = progress.best
        out.found = True
        out.best = object_detections([name], [[pk]])[0][0]
    else:
        out.best = ObjectDetection()
    return out


class FindAction:
    """``execute(goal_handle) -> Find.Result``. ``core`` gives the node's state: ``active``,
    ``library``, ``settings``, ``detector``, ``pipeline`` (its cameras, 3D, max_image_pixels),
    and ``log``."""

    def __init__(self, core, clock: Callable[[], float] = time.monotonic):
        self.core = core
        self.clock = clock
        self._busy = threading.Lock()

    def execute(self, goal_handle) -> Find.Result:
        started = self.clock()
        request = goal_handle.request
        if not self._busy.acquire(blocking=False):
            return self._refuse(goal_handle, started, "another search is running: one at a time "
                                "(cancel it, or send this goal again when it has ended)")
        try:
            return self._execute(goal_handle, request, started)
        except Exception as exc:  # noqa: BLE001 - the node keeps running; the goal says why
            return self._refuse(goal_handle, started,
                                f"the search failed: {type(exc).__name__}: {exc}")
        finally:
            self._busy.release()

    def _execute(self, goal_handle, request, started) -> Find.Result:
        core = self.core
        if not core.active:
            return self._refuse(goal_handle, started, "the node is inactive (lifecycle): "
                                "activate it first (ros2 lifecycle set <node> activate)")
        snapshot, settings, detector, pipeline = (core.library.snapshot, core.settings,
                                                  core.detector, core.pipeline)
        try:
            goal = check_goal(list(request.names), request.zoom, request.time_limit_s,
                              snapshot.names)
            cam = find_camera(pipeline.cameras, request.camera)
        except (Refused, LookupError) as exc:
            return self._refuse(goal_handle, started, str(exc))
        newest = cam.newest
        if newest is None:
            return self._refuse(goal_handle, started, f"no frame yet from "
                                f"{cam.resolved or cam.topic}: is the camera publishing?")
        msg = newest[0]
        try:
            rgb = decode_frame(msg, pipeline.max_image_pixels)
        except ValueError as exc:
            return self._refuse(goal_handle, started, f"the newest frame of {cam.resolved} "
                                f"cannot be read: {exc}")
        threshold = detection_threshold(settings.threshold, detector.info.default_threshold)
        # the frame's depth image now: the camera's recent ones are gone by the search's end
        depth = pipeline.depth_of(cam, msg.header, settings) if cam.depth is not None else None

        def stop():
            if goal_handle.is_cancel_requested:
                return "canceled"
            if not core.active:
                return "the node was deactivated"
            return None

        outcome = search(detector, rgb, snapshot, goal, threshold, stop=stop,
                         on_progress=lambda p: goal_handle.publish_feedback(feedback_msg(p)),
                         clock=self.clock)
        frame = frame_of(outcome.result, rgb, msg.header, cam.resolved, detector, goal.names,
                         threshold)
        result = Find.Result(header=msg.header, detections=detection2d_array(frame),
                             tiles_done=outcome.done, tiles_total=outcome.total)
        if depth is not None and frame.detections:
            located = pipeline.located_3d(cam, msg.header, frame, settings, depth)
            if located is not None:
                result.detections_3d = detection3d_array(*located)
        message = describe(outcome, threshold)
        if goal.note:
            message += f"; {goal.note}"
        result.message = message
        result.elapsed_ms = (self.clock() - started) * 1e3
        if outcome.ended == "canceled":
            goal_handle.canceled()
        elif outcome.ended == "stopped":
            goal_handle.abort()
        else:
            result.success = True
            goal_handle.succeed()
        core.log.info(f"find {list(goal.names)} on {cam.resolved}: {message}")
        return result

    def _refuse(self, goal_handle, started, message: str) -> Find.Result:
        self.core.log.warning(f"find refused: {message}")
        goal_handle.abort()
        return Find.Result(success=False, message=message,
                           elapsed_ms=(self.clock() - started) * 1e3)
