"""Regenerate the vocabulary table of ``docs/data-format.md`` from the vocabulary files.

Run ``python -m cd7kit.io.vocab_doc [docs/data-format.md]`` after adding codes to
``src/cd7kit/vocab/data/*.csv``: the text between the markers ``<!-- vocab:start -->`` and
``<!-- vocab:end -->`` is replaced by one table row per code (code, name, canonical unit, value type
and levels, SDTM domain/test code, LOINC, usual specimen, plausible range). The document stays
committed text; ``tests/io/test_docs.py`` checks that every code is listed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cd7kit.vocab import load_vocabulary

START, END = "<!-- vocab:start -->", "<!-- vocab:end -->"


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:g}"


def vocabulary_table() -> str:
    """The vocabulary as a Markdown table, grouped by category."""
    vocab = load_vocabulary()
    lines = [
        "| code | name | canonical unit | type (levels) | SDTM | LOINC | specimen | plausible range |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for tc in sorted(vocab, key=lambda c: (c.category, c.code)):
        levels = ", ".join(f"{k}={v:g}" for k, v in tc.levels.items()) if tc.levels else ""
        typ = tc.value_type + (f" ({levels})" if levels else "")
        sdtm = f"{tc.sdtm_domain}.{tc.sdtm_testcd}" if tc.sdtm_domain and tc.sdtm_testcd else ""
        rng = f"{_fmt(tc.plausible_min)}..{_fmt(tc.plausible_max)}" if tc.plausible_min is not None or tc.plausible_max is not None else ""
        name = f"{tc.name} ({tc.category})".replace("|", "/")
        lines.append(f"| `{tc.code}` | {name} | {tc.canonical_unit} | {typ.replace('|', '/')} | {sdtm} | {tc.loinc or ''} | {tc.specimen or ''} | {rng} |")
    return "\n".join(lines)


def update(path: str | Path) -> bool:
    """Rewrite the vocabulary section of ``path``; True if the file changed."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    a, b = text.index(START) + len(START), text.index(END)
    new = text[:a] + "\n" + vocabulary_table() + "\n" + text[b:]
    if new != text:
        p.write_text(new, encoding="utf-8")
        return True
    return False


if __name__ == "__main__":  # pragma: no cover - a maintenance command
    target = sys.argv[1] if len(sys.argv) > 1 else "docs/data-format.md"
    print(f"{target}: {'updated' if update(target) else 'already up to date'}")
