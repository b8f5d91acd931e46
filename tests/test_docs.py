"""The docs site: code links resolve, toolbox quotes are exact, cited tests exist, strict build passes."""

import doctest
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "hooks"))
import code_links  # noqa: E402

PAGES = sorted(DOCS.rglob("*.md"))
TOOLBOX_LINK = re.compile(
    r"\[`(?P<file>\w+\.m):(?P<line>\d+)`\]"
    r"\(https://github\.com/rasmusbergpalm/DeepLearnToolbox/blob/master/(?:CNN|util)/(?P=file)#L(?P=line)\)"
)
QUOTED = re.compile(TOOLBOX_LINK.pattern + r":\s*`(?P<quote>[^`]+)`")


def test_every_code_link_names_exactly_one_line():
    found = [(page, path, needle) for page in PAGES for path, needle in code_links.links(page.read_text())]
    assert len(found) >= 15, "the derivation links its equations to the code"
    for page, path, needle in found:
        line = code_links.resolve(path, needle)  # raises CodeLinkError naming the needle
        assert needle in (ROOT / path).read_text().splitlines()[line - 1], (page, path, needle)


def test_a_broken_needle_is_reported(tmp_path):
    (tmp_path / "f.py").write_text("a = 1\n# x\n# x\n")
    assert code_links.resolve("f.py", "a = 1", root=tmp_path) == 1
    with pytest.raises(code_links.CodeLinkError, match="not found"):
        code_links.resolve("f.py", "b = 2", root=tmp_path)
    with pytest.raises(code_links.CodeLinkError, match=r"found on lines \[2, 3\]"):
        code_links.resolve("f.py", "# x", root=tmp_path)
    with pytest.raises(code_links.CodeLinkError, match="no file"):
        code_links.resolve("g.py", "x", root=tmp_path)


def test_toolbox_lines_are_quoted_exactly():
    """Each link to a toolbox line is followed by that line, as in the toolbox (tests/octave/ holds copies)."""
    text = (DOCS / "derivation.md").read_text()
    links = list(TOOLBOX_LINK.finditer(text))
    quotes = list(QUOTED.finditer(text))
    assert len(links) >= 12
    assert len(quotes) == len(links), "every toolbox link is followed by ': `the quoted line`'"
    for m in quotes:
        source = (ROOT / "tests" / "octave" / m["file"]).read_text().splitlines()
        assert source[int(m["line"]) - 1].strip() == m["quote"], (m["file"], m["line"])


def test_cited_tests_exist():
    text = (DOCS / "derivation.md").read_text()
    cited = set(re.findall(r"`(test_\w+)`", text))
    module = (ROOT / "tests" / "test_derivation.py").read_text()
    defined = set(re.findall(r"^def (test_\w+)\(", module, flags=re.M))
    assert cited and cited <= defined, cited - defined
    assert defined <= cited, f"tests not cited on the page: {defined - cited}"


def test_docstring_examples_run():
    import convprop.training.explain
    import convprop.engine.network

    for module in (convprop.training.explain, convprop.engine.network):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, module.__name__


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("mkdocs", "mkdocstrings", "material", "pymdownx")),
    reason="the docs extra (mkdocs, mkdocstrings, mkdocs-material) is not installed",
)
def test_strict_docs_build(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(ROOT / "src"))
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "WARNING" not in run.stderr, run.stderr[-3000:]
    page = (tmp_path / "site" / "derivation" / "index.html").read_text()
    assert 'class="arithmatex"' in page and "source/src/convprop/engine/layers/conv.py/#L" in page
    assert (tmp_path / "site" / "api" / "index.html").read_text().count("doc-heading") > 20


def test_hook_links_to_the_repository_when_repo_url_is_set():
    from types import SimpleNamespace

    page = SimpleNamespace(file=SimpleNamespace(src_uri="derivation.md"))
    text = "see [[code:src/convprop/engine/losses.py::e = o - y]] here"
    line = code_links.resolve("src/convprop/engine/losses.py", "e = o - y")
    hosted = code_links.on_page_markdown(text, page, {"repo_url": "https://example.org/x/convprop/", "extra": {}}, None)
    assert hosted == f"see [`losses.py:L{line}`](https://example.org/x/convprop/blob/main/src/convprop/engine/losses.py#L{line}) here"
    local = code_links.on_page_markdown(text, page, {"repo_url": None, "extra": {}}, None)
    assert local == f"see [`losses.py:L{line}`](source/src/convprop/engine/losses.py.md#L{line}) here"
