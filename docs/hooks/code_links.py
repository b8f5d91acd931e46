"""MkDocs hook: ``[[code:PATH::NEEDLE]]`` → a link to the one line of PATH that contains NEEDLE.

Line numbers move when code is edited; a needle (a unique substring, such as the equation
comment above a layer's backward) does not. At build time every needle is looked up in the
file, relative to the repository root, and the link is written to that line:

- when ``repo_url`` is set in ``mkdocs.yml``, to ``{repo_url}/blob/{extra.code_ref}/PATH#L{n}``
  (``code_ref`` defaults to ``main``), the usual GitHub line anchor;
- otherwise to a page of the site itself, ``source/PATH/`` (generated here), which shows the
  file with the same ``#L{n}`` anchors.

A needle that is missing or found on more than one line stops the build with an error naming
it. ``tests/test_docs.py`` makes the same check with :func:`resolve`, so a broken link also
fails the tests.
"""

from __future__ import annotations

import html
import posixpath
import re
from pathlib import Path

LINK = re.compile(r"\[\[code:(?P<path>[^:\]]+)::(?P<needle>.+?)\]\]")
ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIR = "source"

_used: set[str] = set()


class CodeLinkError(Exception):
    """A ``[[code:…]]`` link whose needle does not name exactly one line."""


def resolve(path: str, needle: str, root: Path = ROOT) -> int:
    """The 1-based number of the one line of ``root/path`` that contains ``needle``."""
    file = root / path
    if not file.is_file():
        raise CodeLinkError(f"[[code:{path}::{needle}]]: no file {path}")
    hits = [i for i, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1) if needle in line]
    if len(hits) != 1:
        where = "not found" if not hits else f"found on lines {hits}"
        raise CodeLinkError(f"[[code:{path}::{needle}]]: needle {where} in {path}; it must name exactly one line")
    return hits[0]


def links(markdown: str) -> list[tuple[str, str]]:
    """Every (path, needle) of the ``[[code:…]]`` links in a page."""
    return [(m["path"], m["needle"]) for m in LINK.finditer(markdown)]


def _page(path: str) -> str:
    """A Markdown page showing the file, each line with a GitHub-style ``L{n}`` anchor."""
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    width = len(str(len(lines)))
    body = "\n".join(
        f'<span class="code-line" id="L{n}"><a href="#L{n}">{n:>{width}}</a>  {html.escape(text)}</span>'
        for n, text in enumerate(lines, 1)
    )
    return f"# `{path}`\n\n<pre class=\"code-listing\"><code>{body}</code></pre>\n"


def on_pre_build(config, **kwargs):
    _used.clear()


def on_files(files, config, **kwargs):
    """Generate a source page for every file that some page links to (when there is no repo_url)."""
    if config.get("repo_url"):
        return files
    from mkdocs.structure.files import File

    docs = Path(config["docs_dir"])
    paths = sorted({p for md in docs.rglob("*.md") for p, _ in links(md.read_text(encoding="utf-8"))})
    for path in paths:
        if (ROOT / path).is_file():
            files.append(File.generated(config, f"{SOURCE_DIR}/{path}.md", content=_page(path)))
    return files


def on_page_markdown(markdown, page, config, files, **kwargs):
    from mkdocs.exceptions import PluginError

    repo_url = (config.get("repo_url") or "").rstrip("/")
    ref = (config.get("extra") or {}).get("code_ref", "main")

    def replace(match: re.Match) -> str:
        path, needle = match["path"], match["needle"]
        try:
            line = resolve(path, needle)
        except CodeLinkError as exc:
            raise PluginError(f"{page.file.src_uri}: {exc}") from None
        label = f"`{posixpath.basename(path)}:L{line}`"
        if repo_url:
            return f"[{label}]({repo_url}/blob/{ref}/{path}#L{line})"
        target = posixpath.relpath(f"{SOURCE_DIR}/{path}.md", posixpath.dirname(page.file.src_uri) or ".")
        return f"[{label}]({target}#L{line})"

    return LINK.sub(replace, markdown)
