"""Drug (agent) and adverse-event term classification for the readers, from ``io/data/agents.yaml``.

The table is data, not code: it lists, for each intervention kind of :data:`cd7kit.data.schema.INTERVENTION_KINDS`,
the agent names and regular expressions that mean it (tocilizumab, corticosteroids, vasopressors,
antipyretics, ...), and for each event kind the adverse-event terms that mean it (cytokine release
syndrome -> ``crs``). The classes follow the ASTCT consensus (Lee et al., Biol Blood Marrow Transplant
2019;25:625-638): vasopressors are counted, inotropes are a kind of their own; tocilizumab and
corticosteroids are anti-cytokine therapy. A category column that names a cd7kit kind always wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml

from cd7kit.data import schema as S


@dataclass(frozen=True)
class _Matcher:
    kind: str
    names: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]

    def matches(self, text: str) -> bool:
        t = text.strip().lower()
        return t in self.names or any(p.search(text) for p in self.patterns)


@dataclass(frozen=True)
class AgentTable:
    """The loaded agent/term table (see ``io/data/agents.yaml``)."""

    categories: dict[str, str]
    kinds: tuple[_Matcher, ...]
    events: tuple[_Matcher, ...]

    def category_kind(self, category: str | None) -> str | None:
        """The intervention kind named by an EXCAT/CMCAT value, or ``None``."""
        if not category:
            return None
        c = str(category).strip()
        low = c.lower().replace(" ", "_").replace("-", "_")
        if low in S.INTERVENTION_KINDS:
            return low
        return self.categories.get(c.upper())

    def agent_kind(self, *texts: str | None) -> str | None:
        """The intervention kind of the first text (CMDECOD, then CMTRT) that the table knows."""
        return _first_match(self.kinds, texts)

    def event_kind(self, category: str | None, *terms: str | None) -> str | None:
        """The event kind named by a category (AECAT) or recognised from a term, or ``None``."""
        if category:
            low = str(category).strip().lower()
            if low in S.EVENT_KINDS:
                return low
        return _first_match(self.events, terms)


def _first_match(matchers: tuple[_Matcher, ...], texts: tuple[str | None, ...]) -> str | None:
    """The kind of the first matcher that matches the first text any matcher knows."""
    for text in texts:
        if not text:
            continue
        for m in matchers:
            if m.matches(str(text)):
                return m.kind
    return None


def _matchers(section: dict, allowed: tuple[str, ...], where: str) -> tuple[_Matcher, ...]:
    out = []
    for kind, spec in (section or {}).items():
        if kind not in allowed:
            raise ValueError(f"{where}: {kind!r} is not one of {allowed}")
        names = frozenset(str(n).strip().lower() for n in spec.get("names", []))
        pats = tuple(re.compile(p, re.I) for p in spec.get("patterns", []))
        out.append(_Matcher(kind, names, pats))
    return tuple(out)


@lru_cache(maxsize=1)
def load_agents() -> AgentTable:
    """Load the shipped agent table (cached)."""
    text = (resources.files("cd7kit.io") / "data" / "agents.yaml").read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    cats = {str(k).upper(): str(v) for k, v in (doc.get("categories") or {}).items()}
    for k, v in cats.items():
        if v not in S.INTERVENTION_KINDS:
            raise ValueError(f"agents.yaml categories: {k} -> {v!r} is not an intervention kind")
    return AgentTable(
        categories=cats,
        kinds=_matchers(doc.get("kinds"), S.INTERVENTION_KINDS, "agents.yaml kinds"),
        events=_matchers(doc.get("events"), S.EVENT_KINDS, "agents.yaml events"),
    )


__all__ = ["AgentTable", "load_agents"]
