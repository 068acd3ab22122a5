"""Tables that code defines, written into the docs between markers.

    python -m tools.docs_tables           # rewrite the tables in place
    python -m tools.docs_tables --check   # exit 1 (and say which) when the docs differ

Tables (each between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` in its page):

- ``params`` in docs/node.md: the node's parameters, from ``yolz_ros.ros.params.PARAMS``
  (``params.markdown_rows()``, what ``python -m yolz_ros.ros.params`` prints);
- ``interfaces`` in docs/node.md: every message, service and action in msg/, srv/ and
  action/, with its first comment line and its fields (request -> response; goal -> result,
  feedback).

tests/unit/test_docs.py runs the check, so a parameter or an interface changed in code without
its page fails the unit tier. Plain Python: no rclpy, no torch.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Callable, Dict, List, Tuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def params_table(root: Path = ROOT) -> List[str]:
    from yolz_ros.ros import params

    return list(params.markdown_rows())


def _fields(lines: List[str]) -> List[str]:
    """`type name` of each field line (comments and constants' values left out)."""
    out = []
    for line in lines:
        code = line.split("#", 1)[0].strip()
        if code:
            typ, name = code.split()[:2]
            out.append(f"{typ} {name.split('=')[0]}")
    return out


def _summary(lines: List[str]) -> str:
    """The file's leading comment, up to its first sentence end or blank comment line."""
    text = []
    for line in lines:
        if not line.startswith("#"):
            break
        body = line.lstrip("#").strip()
        if not body:
            break
        text.append(body)
    joined = " ".join(text)
    m = re.match(r"(.+?\.)(\s|$)", joined)
    return (m.group(1) if m else joined).rstrip(".") + "."


def interfaces_table(root: Path = ROOT) -> List[str]:
    rows = ["| interface | kind | what | fields |", "| --- | --- | --- | --- |"]
    def listed(lines):
        return ", ".join(f"`{f}`" for f in _fields(lines)) or "(none)"

    for folder, kind in (("msg", "message"), ("srv", "service"), ("action", "action")):
        for path in sorted((root / folder).glob(f"*.{folder}")):
            lines = path.read_text().splitlines()
            if kind == "service":
                cut = lines.index("---")
                fields = ", ".join(f"`{f}`" for f in _fields(lines[:cut])) or "(none)"
                fields += " → " + ", ".join(f"`{f}`" for f in _fields(lines[cut + 1:]))
            elif kind == "action":
                cuts = [i for i, line in enumerate(lines) if line == "---"]
                goal, result, feedback = (lines[:cuts[0]], lines[cuts[0] + 1:cuts[1]],
                                          lines[cuts[1] + 1:])
                fields = (f"{listed(goal)} → {listed(result)}; feedback: {listed(feedback)}")
            else:
                fields = ", ".join(f"`{f}`" for f in _fields(lines))
            rows.append(f"| [`yolz_ros/{folder}/{path.stem}`](../{folder}/{path.name}) | {kind} "
                        f"| {_summary(lines)} | {fields} |")
    return rows


# name -> (page, builder)
TABLES: Dict[str, Tuple[str, Callable[[Path], List[str]]]] = {
    "params": ("docs/node.md", params_table),
    "interfaces": ("docs/node.md", interfaces_table),
}


def markers(name: str) -> Tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def replace_block(text: str, name: str, rows: List[str]) -> str:
    """``text`` with the lines between NAME's markers replaced by ``rows``."""
    begin, end = markers(name)
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == begin]
    ends = [i for i, line in enumerate(lines) if line.strip() == end]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise ValueError(f"need exactly one '{begin}' followed by one '{end}' "
                         f"(found {len(starts)} and {len(ends)})")
    body = [row + "\n" for row in rows]
    return "".join(lines[:starts[0] + 1] + body + lines[ends[0]:])


def current_block(text: str, name: str) -> List[str]:
    """The lines now between NAME's markers."""
    begin, end = markers(name)
    lines = text.splitlines()
    i = [k for k, line in enumerate(lines) if line.strip() == begin]
    j = [k for k, line in enumerate(lines) if line.strip() == end]
    if len(i) != 1 or len(j) != 1 or j[0] < i[0]:
        raise ValueError(f"need exactly one '{begin}' followed by one '{end}'")
    return lines[i[0] + 1:j[0]]


def drift(root: Path = ROOT) -> List[str]:
    """One line per table whose page differs from what the code says (empty: all match)."""
    problems = []
    for name, (page, build) in TABLES.items():
        path = root / page
        try:
            have = current_block(path.read_text(), name)
        except (OSError, ValueError) as e:
            problems.append(f"{page}: table '{name}': {e}")
            continue
        want = build(root)
        if have != want:
            changed = [w for w in want if w not in have] + [h for h in have if h not in want]
            problems.append(f"{page}: table '{name}' differs from the code "
                            f"({len(changed)} lines differ, e.g. {changed[:1]})")
    return problems


def write(root: Path = ROOT) -> List[str]:
    """Rewrite every table; the pages changed."""
    changed = []
    for name, (page, build) in TABLES.items():
        path = root / page
        text = path.read_text()
        new = replace_block(text, name, build(root))
        if new != text:
            path.write_text(new)
            changed.append(f"{page} ({name})")
    return changed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 when a table in the docs differs from the code")
    args = ap.parse_args(argv)
    if args.check:
        problems = drift()
        for p in problems:
            print(p)
        if problems:
            print("run: python -m tools.docs_tables")
            return 1
        print("docs tables: up to date")
        return 0
    changed = write()
    print("rewrote: " + ", ".join(changed) if changed else "docs tables: up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
