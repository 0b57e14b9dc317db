"""The docs are true: runnable code blocks run, links and mentioned files exist, no personal data is committed.

Runnable blocks. In README.md and the markdown under docs/ (and CLAUDE.md, external/README.md), a code block whose
opening fence line is immediately preceded by the line

    <!-- runnable -->

is run by `test_runnable_blocks`, in order with the other runnable blocks of the same file, like a reader following
the page: python blocks are `exec`'d in one namespace per file, bash blocks run with `bash -euo pipefail`. The
working directory is a scratch directory holding symlinks to the repo's `scripts/`, `configs/`, `examples/`,
`benchmarks/`, `python/`, `Makefile` and `pyproject.toml`, and `.tiny` → the session's tiny checkpoints, so relative
paths in the docs work and outputs (`outputs/...`) land in the scratch directory. The environment: offline
(`HF_HUB_OFFLINE=1`), `THEWORLD_TINY_DIR` = the tiny checkpoints, `HOME`, `TMPDIR`, `HF_HOME` and the rollout prompt
cache inside the scratch area, the test's Python first on `PATH` (`python`, `theworld`). A marker before anything but
a ```bash / ```python fence is an error. Keep runnable blocks to what runs in seconds on the tiny model.

The other checks read every doc file: relative links (and `#anchors`) resolve; every `make TARGET` in code exists in
the Makefile; every `scripts/`, `configs/`, `examples/`, `benchmarks/`, `tests/`, `docs/`, `python/` path exists
(brace lists and globs expanded; `PLACEHOLDER_PATHS` are the documented stand-ins, `name_<x>` is a template, and a
file of another repository is written with that repository in front, `diffusers/scripts/...`, which is not a path of
this one); sample output in a fence without a language is not checked; the generated config reference
is up to date; and no tracked or untracked-but-not-ignored file holds a home-directory path, a path under `/work` or an
e-mail address outside `ALLOWED_EMAIL_DOMAINS`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from theworld.testing import TinyCheckpoints
from theworld.training import config_reference

ROOT = Path(__file__).resolve().parents[1]
RUNNABLE_MARKER = "<!-- runnable -->"
RUNNABLE_LANGUAGES = ("bash", "python")
# Entries of the repo root a runnable block may use from its scratch working directory.
WORKDIR_LINKS = ("scripts", "configs", "examples", "benchmarks", "python", "Makefile", "pyproject.toml")
BLOCK_TIMEOUT = 300  # seconds per bash block; a hang fails the test instead of stalling the suite
# Paths the docs use as stand-ins for "your file" (e.g. `make train-hf CONFIG=configs/x.json`).
PLACEHOLDER_PATHS = {"configs/x.json", "configs/accelerate/X.yaml"}
PATH_PREFIXES = ("scripts", "configs", "examples", "benchmarks", "tests", "docs", "python")
# Files a page's runnable blocks must leave in the scratch directory (what the page tells the reader to look at).
EXPECTED_OUTPUTS = {
    "docs/getting-started.md": (
        "shapes.png",
        "outputs/first-run/model.safetensors",
        "outputs/first-run/checkpoint-2/trainer_state.json",
        "outputs/first-run/logs",
        "outputs/first-run/data_report.json",
        "outputs/eval/blink/first-run+steps0/predictions.jsonl",
    ),
}
# RFC 2606 example domains may appear in docs and tests (e.g. you@example.com).
ALLOWED_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\s`]*)")
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_MAKE = re.compile(r"(?:^|(?<=[\s;&|(]))make((?:\s+[^\s;&|)`]+)+)")
_MAKE_TARGET_LINE = re.compile(r"^(?P<names>[A-Za-z0-9_.-]+(?:\s+[A-Za-z0-9_.-]+)*)\s*:(?!=)")
_PATH = re.compile(r"(?<![\w./~$-])(?P<path>(?:" + "|".join(PATH_PREFIXES) + r")/[\w./{},*+-]*)")
_HEADING = re.compile(r"^(#{1,6})\s+(?P<title>.+?)\s*#*\s*$")
# Built from pieces so that this file does not match its own patterns.
_PERSONAL = re.compile(
    r"(?<![\w.-])(?:/ho" + r"me/[a-z_][\w.-]*|/Use" + r"rs/[A-Za-z][\w.-]*|/wo" + r"rk/)"
    r"|(?P<email>[A-Za-z0-9._%+-]+@(?P<domain>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}))"
)


# ---- reading markdown ----
@dataclass(frozen=True)
class CodeBlock:
    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    source: str
    runnable: bool

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


class MarkerError(ValueError):
    """A runnable marker that is not followed by a bash or python code block."""


def doc_files() -> list[Path]:
    candidates = [ROOT / "README.md", ROOT / "CLAUDE.md", ROOT / "external" / "README.md"]
    return [p for p in candidates if p.is_file()] + sorted((ROOT / "docs").rglob("*.md"))


def parse_markdown(path: Path, text: str) -> tuple[list[CodeBlock], list[tuple[int, str]]]:
    """(code blocks, prose lines with their numbers). Raises `MarkerError` for a misplaced runnable marker."""
    lines = text.splitlines()
    blocks: list[CodeBlock] = []
    prose: list[tuple[int, str]] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line.strip())
        if line.strip() == RUNNABLE_MARKER:
            following = _FENCE.match(lines[index + 1].strip()) if index + 1 < len(lines) else None
            if following is None or following.group("info") not in RUNNABLE_LANGUAGES:
                raise MarkerError(
                    f"{path.relative_to(ROOT)}:{index + 1}: {RUNNABLE_MARKER} must be followed directly by a "
                    f"```bash or ```python block"
                )
        elif fence:
            opening, language = fence.group("fence"), fence.group("info")
            runnable = index > 0 and lines[index - 1].strip() == RUNNABLE_MARKER
            body: list[str] = []
            start = index
            index += 1
            while index < len(lines) and not lines[index].strip().startswith(opening):
                body.append(lines[index])
                index += 1
            source = "\n".join(body) + "\n"
            if runnable:
                source = _dedent_block(body)
            blocks.append(CodeBlock(path, start + 1, language, source, runnable))
        else:
            prose.append((index + 1, line))
        index += 1
    return blocks, prose


def _dedent_block(body: list[str]) -> str:
    """A fenced block inside a list item is indented; its code is not."""
    indents = [len(line) - len(line.lstrip()) for line in body if line.strip()]
    cut = min(indents, default=0)
    return "\n".join(line[cut:] for line in body) + "\n"


def code_texts(blocks: list[CodeBlock], prose: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """Every piece of code: each block's lines and each inline `code` span of the prose."""
    for block in blocks:
        for offset, line in enumerate(block.source.splitlines(), start=1):
            yield block.line + offset, line
    for number, line in prose:
        for match in _INLINE_CODE.finditer(line):
            yield number, match.group(1)


# ---- the checks (each returns problems as "file:line: what") ----
def github_anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped (but - and _), spaces to hyphens."""
    title = re.sub(r"`([^`]*)`", r"\1", title)
    title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    _, prose = parse_markdown(path, path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for _, line in prose:
        heading = _HEADING.match(line)
        if heading:
            base = github_anchor(heading.group("title"))
            anchor, count = base, 1
            while anchor in found:  # repeated headings get -1, -2, ...
                anchor, count = f"{base}-{count}", count + 1
            found.add(anchor)
    return found


def broken_links(path: Path, prose: list[tuple[int, str]]) -> list[str]:
    problems = []
    for number, line in prose:
        line = _INLINE_CODE.sub("", line)
        for match in _LINK.finditer(line):
            target = match.group("target")
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(ROOT)}:{number}"
            if not resolved.exists():
                problems.append(f"{where}: link to {target!r}: no such file")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                problems.append(f"{where}: link to {target!r}: no heading with that anchor")
    return problems


def makefile_targets(makefile: Path) -> set[str]:
    targets: set[str] = set()
    for line in makefile.read_text().splitlines():
        match = _MAKE_TARGET_LINE.match(line)
        if match and not line.startswith(("\t", " ")):
            targets.update(match.group("names").split())
    return targets


def unknown_make_targets(path: Path, code: list[tuple[int, str]], targets: set[str]) -> list[str]:
    problems = []
    for number, text in code:
        for match in _MAKE.finditer(text):
            words = [w for w in match.group(1).split() if "=" not in w and not w.startswith("-")]
            if words and words[0] not in targets:
                problems.append(f"{path.relative_to(ROOT)}:{number}: make {words[0]}: no such Makefile target")
    return problems


def expand_braces(text: str) -> list[str]:
    match = re.search(r"\{([^{}]*)\}", text)
    if not match:
        return [text]
    head, tail = text[: match.start()], text[match.end() :]
    return list(itertools.chain.from_iterable(expand_braces(head + part + tail) for part in match.group(1).split(",")))


def missing_paths(path: Path, blocks: list[CodeBlock], prose: list[tuple[int, str]], root: Path) -> list[str]:
    """Repo paths mentioned in prose and in code blocks with a language. A fence without one (or `text`) holds
    sample output, where a wrong path may be the point (an error message quoting a typo), so it is not checked."""
    lines = list(prose)
    for block in blocks:
        if block.language not in ("", "text"):
            lines += [(block.line + offset, line) for offset, line in enumerate(block.source.splitlines(), start=1)]
    problems = []
    for number, line in sorted(lines):
        for match in _PATH.finditer(line):
            mention = match.group("path").rstrip(".,:;")
            if mention in PLACEHOLDER_PATHS or line[match.end() : match.end() + 1] == "<":
                continue  # a documented stand-in, or a template such as scripts/evaluate_<name>.py
            for candidate in expand_braces(mention):
                exists = any(root.glob(candidate)) if "*" in candidate else (root / candidate).exists()
                if not exists:
                    problems.append(f"{path.relative_to(root)}:{number}: {candidate}: no such file or directory")
    return problems


def personal_data(name: str, text: str) -> list[str]:
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        for match in _PERSONAL.finditer(line):
            domain = (match.group("domain") or "").lower()
            if match.group("email") and domain.endswith(ALLOWED_EMAIL_DOMAINS):
                continue
            problems.append(f"{name}:{number}: {match.group(0)!r}")
    return problems


# ---- tests: references ----
def _parsed() -> Iterator[tuple[Path, str, list[CodeBlock], list[tuple[int, str]]]]:
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        blocks, prose = parse_markdown(path, text)
        yield path, text, blocks, prose


def test_runnable_markers_sit_on_bash_or_python_blocks() -> None:
    runnable = {
        path.relative_to(ROOT).as_posix(): [b for b in blocks if b.runnable] for path, _, blocks, _ in _parsed()
    }
    # The getting-started page is the docs' end-to-end path: losing its markers would silently stop testing it.
    languages = {block.language for block in runnable["docs/getting-started.md"]}
    assert len(runnable["docs/getting-started.md"]) >= 5 and languages == set(RUNNABLE_LANGUAGES)


def test_relative_links_resolve() -> None:
    problems = [p for path, _, _, prose in _parsed() for p in broken_links(path, prose)]
    assert not problems, "\n".join(problems)


def test_make_targets_in_the_docs_exist() -> None:
    targets = makefile_targets(ROOT / "Makefile")
    assert {"setup", "test", "demo", "train-hf"} <= targets
    problems = []
    for path, _, blocks, prose in _parsed():
        problems += unknown_make_targets(path, list(code_texts(blocks, prose)), targets)
    assert not problems, "\n".join(problems)


def test_mentioned_repo_paths_exist() -> None:
    problems = [p for path, _, blocks, prose in _parsed() for p in missing_paths(path, blocks, prose, ROOT)]
    assert not problems, "\n".join(problems)


def test_checks_catch_broken_docs(tmp_path: Path) -> None:
    """Each check reports a planted mistake (so a passing check means something)."""
    page = ROOT / "docs" / "_planted.md"  # never written: only its name and folder are used
    text = (
        "See [the guide](nowhere.md), [training](training/training.md#no-such-heading) and "
        "[ok](training/training.md#configs).\n"
        "`make no-such-target` and `VENV=x make test`, configs/missing.json, configs/{tiny,nope}.json, configs/x.json,"
        " scripts/evaluate_<name>.py\n"
        "<!-- runnable -->\n```text\nhello\n```\n"
        "```\nerror: configs/typo.json: sample output is not checked\n```\n"
    )
    with pytest.raises(MarkerError, match="must be followed directly by"):
        parse_markdown(page, text)
    blocks, prose = parse_markdown(page, text.replace("```text", "```bash"))
    assert [b.runnable for b in blocks] == [True, False]
    links = broken_links(page, prose)
    assert len(links) == 2 and "nowhere.md" in links[0] and "no heading" in links[1]
    makes = unknown_make_targets(page, list(code_texts(blocks, prose)), makefile_targets(ROOT / "Makefile"))
    assert len(makes) == 1 and "no-such-target" in makes[0]
    paths = missing_paths(page, blocks, prose, ROOT)
    assert [p.split(": ")[1] for p in paths] == ["configs/missing.json", "configs/nope.json"]
    personal = personal_data(
        "x.md", "mail me at jane.doe" + "@uni-somewhere.edu, not you@example.com; /ho" + "me/jane/x"
    )
    assert len(personal) == 2


def test_config_reference_is_up_to_date() -> None:
    page = ROOT / "docs" / "training" / "config-reference.md"
    assert page.read_text(encoding="utf-8") == config_reference.render(), (
        "docs/training/config-reference.md is stale: "
        "python -m theworld.training.config_reference > docs/training/config-reference.md"
    )
    docs = config_reference.key_docs()
    assert [d.name for d in docs if not d.meaning] == [], "every TrainingConfig key needs a comment (or SUPPLEMENT)"
    commented = {name for name, comment in config_reference.source_comments().items() if comment}
    stale = sorted(set(config_reference.SUPPLEMENT) & commented)
    unknown = sorted(set(config_reference.SUPPLEMENT) - {d.name for d in docs})
    assert not stale, f"SUPPLEMENT entries now commented in config.py, delete them: {stale}"
    assert not unknown, f"SUPPLEMENT entries for keys TrainingConfig does not have: {unknown}"


def test_no_personal_paths_or_emails_in_the_repo() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    names = [name for name in listed.split("\0") if name]
    assert len(names) > 50  # the repository, not an empty listing
    problems = []
    for name in names:
        path = ROOT / name
        if not path.is_file():
            continue  # deleted in the work tree
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        problems += personal_data(name, data.decode("utf-8", errors="replace"))
    assert not problems, "\n".join(problems)


# ---- tests: runnable blocks ----
def _runnable_docs() -> list[Path]:
    """Doc files with at least one runnable block (a misplaced marker fails `test_runnable_markers_...`)."""
    found = []
    for path in doc_files():
        try:
            blocks, _ = parse_markdown(path, path.read_text(encoding="utf-8"))
        except MarkerError:
            continue
        if any(block.runnable for block in blocks):
            found.append(path)
    return found


def _scratch(tmp_path: Path, tiny: TinyCheckpoints) -> tuple[Path, dict[str, str]]:
    work = tmp_path / "work"
    work.mkdir()
    for name in WORKDIR_LINKS:
        (work / name).symlink_to(ROOT / name)
    tiny_root = tiny.gemma.parent
    (work / ".tiny").symlink_to(tiny_root, target_is_directory=True)
    for name in ("home", "tmp", "hf_home", "prompt_cache"):
        (tmp_path / name).mkdir()
    env = {
        "THEWORLD_TINY_DIR": str(tiny_root),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HOME": str(tmp_path / "home"),
        "TMPDIR": str(tmp_path / "tmp"),
        "HF_HOME": str(tmp_path / "hf_home"),
        "THEWORLD_PROMPT_CACHE": str(tmp_path / "prompt_cache"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "OMP_NUM_THREADS": "2",
        "TOKENIZERS_PARALLELISM": "false",
    }
    return work, env


@pytest.mark.parametrize("doc", _runnable_docs(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_runnable_blocks(doc: Path, tiny: TinyCheckpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks, _ = parse_markdown(doc, doc.read_text(encoding="utf-8"))
    work, env = _scratch(tmp_path, tiny)
    monkeypatch.chdir(work)
    for key, value in env.items():
        if key != "PATH":
            monkeypatch.setenv(key, value)
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for block in (b for b in blocks if b.runnable):
        if block.language == "python":
            try:
                exec(compile(block.source, block.where, "exec"), namespace)
            except Exception as error:
                pytest.fail(f"{block.where}: python block raised {type(error).__name__}: {error}")
            continue
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.source],
            cwd=work,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )
        output = (result.stdout + result.stderr)[-3000:]
        assert result.returncode == 0, f"{block.where}: bash block exited {result.returncode}:\n{output}"
    # What the page says its commands leave behind.
    for relative in EXPECTED_OUTPUTS.get(doc.relative_to(ROOT).as_posix(), ()):
        assert (work / relative).exists(), f"{doc.relative_to(ROOT)}: the page's commands did not write {relative}"
    if doc.name == "getting-started.md":
        summary = json.loads((work / "outputs/eval/blink/first-run+steps0/summary.json").read_text())
        assert summary["num_items"] == 2 and summary["model"]["model"] == "outputs/first-run"
