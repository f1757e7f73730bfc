"""The docs site: builds without warnings, covers the API, runs its examples."""

import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

import optaxswap

ROOT = pathlib.Path(__file__).parents[1]
DOCS = ROOT / "docs"


def _pages():
    return sorted(
        path
        for path in DOCS.rglob("*.md")
        if "_build" not in path.relative_to(DOCS).parts
    )


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            str(DOCS),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return completed, out


def test_docs_build_with_warnings_as_errors(built_site):
    completed, _ = built_site
    assert completed.returncode == 0, completed.stderr


def test_every_docs_page_becomes_a_page_of_the_site(built_site):
    _, out = built_site
    for page in _pages():
        html = out / page.relative_to(DOCS).with_suffix(".html")
        assert html.is_file(), html


def test_site_shows_the_demo_picture(built_site):
    _, out = built_site
    assert (out / "_images" / "demo.png").is_file()
    assert "demo.png" in (out / "index.html").read_text()


def test_copy_buttons_leave_out_the_doctest_prompts(built_site):
    _, out = built_site
    assert "copybutton.js" in (out / "getting-started.html").read_text()
    copy_script = (out / "_static" / "copybutton.js").read_text()
    prompts = re.search(r"formatCopyText\(text, '(.*?)', true", copy_script)
    assert prompts, "the prompts are not given as a regular expression"
    pattern = re.compile("^(" + prompts[1].replace("\\\\", "\\") + ")(.*)")
    copied = [
        match[2]
        for line in (">>> for step in range(3):", "...     x = step", "...", "2")
        if (match := pattern.match(line))
    ]
    assert copied == ["for step in range(3):", "    x = step", ""]


def test_api_reference_documents_every_public_name():
    api = (DOCS / "api.md").read_text()
    documented = re.findall(
        r"^\.\. auto(?:function|class|module|data):: optaxswap\.(\w+)\s*$",
        api,
        flags=re.MULTILINE,
    )
    assert sorted(documented) == sorted(set(documented)), "a name is listed twice"
    missing = set(optaxswap.__all__) - set(documented)
    assert not missing, f"add these public names to docs/api.md: {sorted(missing)}"
    unknown = set(documented) - set(optaxswap.__all__)
    assert not unknown, f"docs/api.md lists names not in __all__: {sorted(unknown)}"


def _load_conf():
    spec = importlib.util.spec_from_file_location("docs_conf", DOCS / "conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    return conf


def test_toctree_globs_that_match_no_page_are_dropped():
    conf = _load_conf()
    source = [
        "# Title\n\n"
        "```{toctree}\n:glob:\n\nhowto/*\nno-such-folder/*\nno-such-page*\n```\n\n"
        "A sentence that ends a line with a star *\n"
    ]
    conf._drop_empty_globs(None, "index", source)
    assert source[0] == (
        "# Title\n\n"
        "```{toctree}\n:glob:\n\nhowto/*\n```\n\n"
        "A sentence that ends a line with a star *\n"
    )


def test_pytest_collects_the_examples_of_every_docs_page_that_has_them():
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "docs"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    collected = set(re.findall(r"^(docs/\S+\.md)::", completed.stdout, re.MULTILINE))
    with_examples = {
        str(page.relative_to(ROOT)) for page in _pages() if ">>> " in page.read_text()
    }
    assert with_examples <= collected


def test_readme_sets_up_and_runs_the_demo_in_one_line_and_shows_its_picture():
    readme = (ROOT / "README.md").read_text()
    first_command = re.search(r"```bash\n(.*?)\n", readme)[1]
    assert first_command == (
        'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[demo]"'
        " && optaxswap demo"
    )
    assert "](docs/demo.png)" in readme
    assert (DOCS / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
