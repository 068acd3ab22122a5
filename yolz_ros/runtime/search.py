"""Search on demand (the node's ``~/find`` action): the thorough multi-scale pass over one frame,
one network pass at a time, so that progress is reported, a cancel is honoured and a time limit
kept between any two passes. Plain Python: no ROS (yolz_ros/ros/find.py wires it to the action).

    goal = check_goal(["mug"], zoom=0, time_limit_s=0, registered=snapshot.names)
    outcome = search(detector, rgb, snapshot, goal, threshold,
                     stop=lambda: "canceled" if cancel_asked else None,
                     on_progress=print)

The passes are Detector.detect_steps': the 1x frame pass, then the zoom pass's tiles (2x: 9,
1.5x: 4, 3x: 25). Each takes the detector's lock on its own, so a node's frames are processed
between them: the stream slows down during a search but does not stop.

How a search ends (Outcome.ended):
  "complete"    every pass done
  "time_limit"  the limit was reached with passes left: what the passes done found (the 1x pass
                always runs); the node reports it as a success with tiles_done < tiles_total
  "canceled"    ``stop()`` returned "canceled" between two passes: what was found so far
  "stopped"     ``stop()`` returned any other reason (e.g. the node was deactivated)
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from yolz_ros.runtime.zoom_pass import MAX_ZOOM, MIN_ZOOM

DEFAULT_ZOOM = 2.0  # a goal's zoom 0: the full 2x pass (9 tiles)
DEFAULT_TIME_LIMIT_S = 10.0  # a goal's time_limit_s 0
MAX_TIME_LIMIT_S = 60.0  # a longer limit is capped to this


class Refused(ValueError):
    """A goal that cannot be searched for; the message says what to fix."""


@dataclass(frozen=True)
class Goal:
    names: Tuple[str, ...]  # the objects searched for, in library order
    indices: Tuple[int, ...]  # their rows in the library snapshot
    zoom: float
    time_limit_s: float
    note: str = ""  # e.g. the time limit was capped


@dataclass(frozen=True)
class Progress:
    done: int  # network passes done, the 1x pass included
    total: int
    best: Optional[Tuple[str, object]]  # (object name, runtime.decode.Peak), or None
    elapsed_s: float


@dataclass(frozen=True)
class Outcome:
    ended: str  # "complete", "time_limit", "canceled" or "stopped"
    reason: str  # why it ended early ("" when complete)
    names: Tuple[str, ...]
    result: object  # runtime.detector.DetectionResult of the passes done
    peaks: List[list]  # per object in ``names``, its peaks at the threshold (Detector.peaks)
    done: int
    total: int
    elapsed_s: float

    @property
    def best(self) -> Optional[Tuple[str, object]]:
        return best_peak(self.names, self.peaks)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{('es' if word.endswith('s') else 's') if n != 1 else ''}"


def check_goal(names: Sequence[str], zoom: float, time_limit_s: float,
               registered: Sequence[str]) -> Goal:
    """A goal's names (empty = every registered object), zoom (0 = DEFAULT_ZOOM) and time limit
    (0 = DEFAULT_TIME_LIMIT_S; capped at MAX_TIME_LIMIT_S) -> Goal; Refused saying what is
    wrong: no objects registered, an unknown name, a zoom or time limit out of range."""
    registered = list(registered)
    if not registered:
        raise Refused("no objects are registered: register one first (~/register_object, "
                      "~/register_from_camera, `ros2 run yolz_ros register`)")
    wanted = [str(n).strip() for n in names]
    if any(not n for n in wanted):
        raise Refused("an empty object name: give registered names, or none for all")
    unknown = [n for n in dict.fromkeys(wanted) if n not in registered]
    if unknown:
        raise Refused(f"no object named {', '.join(repr(n) for n in unknown)}; registered: "
                      + ", ".join(registered))
    chosen = set(wanted) if wanted else set(registered)
    indices = tuple(i for i, n in enumerate(registered) if n in chosen)
    zoom = float(zoom)
    if math.isnan(zoom) or zoom != 0.0 and not MIN_ZOOM <= zoom <= MAX_ZOOM:
        raise Refused(f"zoom {zoom:g} is out of range: {MIN_ZOOM:g} (the 1x pass alone) to "
                      f"{MAX_ZOOM:g}, or 0 for the default {DEFAULT_ZOOM:g}")
    limit = float(time_limit_s)
    if math.isnan(limit) or limit < 0.0:
        raise Refused(f"time_limit_s {limit:g} is out of range: seconds > 0, or 0 for the "
                      f"default {DEFAULT_TIME_LIMIT_S:g} s")
    note = ""
    if limit == 0.0:
        limit = DEFAULT_TIME_LIMIT_S
    elif limit > MAX_TIME_LIMIT_S:
        note = f"time limit {limit:g} s capped to {MAX_TIME_LIMIT_S:g} s"
        limit = MAX_TIME_LIMIT_S
    return Goal(tuple(registered[i] for i in indices), indices, zoom or DEFAULT_ZOOM, limit, note)


def best_peak(names: Sequence[str], peaks: Sequence[list]) -> Optional[Tuple[str, object]]:
    """(name, peak) of the strongest peak of any object, or None when there is none."""
    best = None
    for name, object_peaks in zip(names, peaks):
        for pk in object_peaks:
            if best is None or pk.score > best[1].score:
                best = (name, pk)
    return best


def select(snapshot, goal: Goal):
    """The goal's objects from a library snapshot: (embeddings [K, E], negatives or None)."""
    idx = list(goal.indices)
    embeddings = np.asarray(snapshot.embeddings)[idx]
    negatives = getattr(snapshot, "negatives", None)
    if negatives is not None:
        negatives = [negatives[i] for i in idx]
    return embeddings, negatives


def search(detector, rgb: np.ndarray, snapshot, goal: Goal, threshold: float,
           stop: Callable[[], Optional[str]] = lambda: None,
           on_progress: Optional[Callable[[Progress], None]] = None,
           clock: Callable[[], float] = time.monotonic) -> Outcome:
    """The goal's objects in ``rgb``, pass by pass (Detector.detect_steps); between two passes
    ``stop()`` (None: go on; "canceled" or another reason: stop) and the time limit are checked,
    and ``on_progress`` is told the passes done and the best detection so far."""
    start = clock()
    embeddings, negatives = select(snapshot, goal)
    steps = detector.detect_steps(rgb, embeddings, zoom=goal.zoom, negatives=negatives)
    ended, reason = "complete", ""
    result, peaks, done, total = None, [], 0, 0
    try:
        for done, total, result in steps:
            peaks = detector.peaks(result, threshold)
            elapsed = clock() - start
            if on_progress is not None:
                on_progress(Progress(done, total, best_peak(goal.names, peaks), elapsed))
            if done == total:
                break
            why = stop()
            if why:
                ended, reason = ("canceled" if why == "canceled" else "stopped"), why
                break
            if clock() - start >= goal.time_limit_s:
                ended = "time_limit"
                reason = (f"time limit {goal.time_limit_s:g} s reached after "
                          f"{done} of {_plural(total, 'pass')}")
                break
            time.sleep(0)  # let a waiting frame take the detector between two passes
    finally:
        steps.close()
    return Outcome(ended, reason, goal.names, result, peaks, done, total, clock() - start)


def describe(outcome: Outcome, threshold: float) -> str:
    """One line: what was found (or nothing), in how many passes, and why it ended early."""
    best = outcome.best
    count = sum(len(p) for p in outcome.peaks)
    if best is None:
        found = (f"nothing found above the threshold {threshold:.2f} (looked for "
                 + ", ".join(outcome.names) + ")")
    else:
        name, pk = best
        found = (f"found {_plural(count, 'detection')}, best {name!r} {pk.score:.2f} at "
                 f"({pk.peak_x:.0f}, {pk.peak_y:.0f})")
    text = (f"{found}; {outcome.done} of {_plural(outcome.total, 'pass')} in "
            f"{outcome.elapsed_s * 1e3:.0f} ms")
    if outcome.ended != "complete":
        text += f" ({outcome.reason})"
    return text
