"""The README and docs/ against the code and against themselves (no ROS, no torch).

- the tables code defines (node parameters, interfaces) match it (tools/docs_tables.py);
- every relative link in README.md and docs/*.md resolves to a file, and every #anchor to a
  heading (GitHub's slugs) or an explicit id;
- the README names every interface and stays at 200 lines or fewer.
"""
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tools import docs_tables  # noqa: E402

README = ROOT / "README.md"
PAGES = [README] + sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE = re.compile(r"`[^`\n]*`")


def _prose(text: str) -> str:
    """Markdown without fenced blocks and inline code (links there are not links)."""
    return CODE.sub("", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set:
    text = FENCE.sub("", path.read_text())
    seen, out = {}, set()
    for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M):
        slug = _slug(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    out.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", text))
    return out


def links(path: Path):
    for m in LINK.finditer(_prose(path.read_text())):
        target = m.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        yield target


def test_generated_tables_match_the_code():
    problems = docs_tables.drift()
    assert not problems, "\n".join(problems) + "\nrun: python -m tools.docs_tables"


def test_params_table_is_params_markdown_rows():
    """docs/node.md holds exactly the rows yolz_ros.ros.params prints, once each."""
    from yolz_ros.ros import params

    lines = (ROOT / "docs" / "node.md").read_text().splitlines()
    rows = params.markdown_rows()
    assert all(lines.count(r) == 1 for r in rows)
    documented = [m.group(1) for line in lines
                  for m in [re.match(r"^\| `([a-z_]+)` \| (?:string|double|integer|bool|"
                                     r"string_array) \|", line)] if m]
    assert documented == [p.name for p in params.PARAMS]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    broken = []
    for target in links(page):
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading '#{anchor}' in {dest.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_readme_at_most_200_lines():
    n = len(README.read_text().splitlines())
    assert n <= 200, f"README.md has {n} lines; move detail into docs/"


def test_readme_names_every_interface():
    readme = README.read_text()
    kinds = {"msg": "msg", "srv": "srv", "action": "action"}
    files = {k: sorted((ROOT / k).glob(f"*.{ext}")) for k, ext in kinds.items()}
    names = [p.stem for k in kinds for p in files[k]]
    missing = [n for n in names if f"yolz_ros/{n}" not in readme]
    assert not missing, f"README.md does not name these interfaces: {missing}"
    counts = re.search(r"(\w+) interfaces \((\d+) messages, (\d+) services, (\d+) actions?\)",
                       readme)
    assert counts, "README.md should say how many interfaces there are"
    words = dict(zip("one two three four five six seven eight nine ten eleven twelve thirteen "
                     "fourteen fifteen sixteen".split(), range(1, 17)))
    got = tuple(int(counts.group(i)) for i in (2, 3, 4))
    assert got == tuple(len(files[k]) for k in kinds), counts.group(0)
    assert words.get(counts.group(1)) == len(names), counts.group(0)


def test_link_checker_finds_broken_links(tmp_path):
    """The checker itself: a missing file and a missing anchor are caught, code is ignored."""
    (tmp_path / "a.md").write_text("# Title here\n\n## Sub `x` (y)\n")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#sub-x-y) [bad](a.md#nope) [gone](c.md) `[code](d.md)`\n"
                    "```\n[fenced](e.md)\n```\n[web](https://example.com)\n")
    assert list(links(page)) == ["a.md#sub-x-y", "a.md#nope", "c.md"]
    assert anchors(tmp_path / "a.md") == {"title-here", "sub-x-y"}
