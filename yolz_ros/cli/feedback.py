"""Printing the outcome of a change (register, add views, register from camera, remove) the same
way in every command-line tool: ok/failed and what happened, one line per view when the node's
answer came, the registered objects."""
from __future__ import annotations

from typing import Sequence


def print_outcome(outcome, labels: Sequence[str] = ()) -> int:
    """Print a yolz_ros.ros.client.Outcome; ``labels[i]`` names view i (e.g. its file). Returns
    the exit code: 0 when the change is in the library, 1 otherwise."""
    print(("ok: " if outcome.success else "failed: ") + outcome.message)
    for fb in getattr(outcome.response, "view_feedback", ()):
        label = f" {labels[fb.index]}" if fb.index < len(labels) else ""
        state = "used" if fb.used else "not used"
        line = f"  view {fb.index}{label}: {state}, agreement {fb.agreement:+.3f}"
        print(line + (f" -- {fb.note}" if fb.note else ""))
    negatives = getattr(outcome.response, "num_negative_views", 0)
    if outcome.success and negatives:
        print(f"negative views of the object: {negatives}")
    print("registered objects: " + (", ".join(outcome.names) or "(none)"))
    return 0 if outcome.success else 1
