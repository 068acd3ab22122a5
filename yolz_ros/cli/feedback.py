"""Printing a registration answer (RegisterObject, AddViews, RegisterFromCamera responses) the
same way in every command-line tool: outcome, one line per view, the registered objects."""
from __future__ import annotations

from typing import Sequence


def print_registration(response, labels: Sequence[str] = ()) -> int:
    """Print ``response``; ``labels[i]`` names view i (e.g. its file). Returns the exit code."""
    print(("ok: " if response.success else "failed: ") + response.message)
    for fb in response.view_feedback:
        label = f" {labels[fb.index]}" if fb.index < len(labels) else ""
        state = "used" if fb.used else "not used"
        line = f"  view {fb.index}{label}: {state}, agreement {fb.agreement:+.3f}"
        print(line + (f" -- {fb.note}" if fb.note else ""))
    print("registered objects: " + (", ".join(response.names) or "(none)"))
    return 0 if response.success else 1
