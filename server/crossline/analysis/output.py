"""An analysis as JSON-ready data and as plain text (pure). Only what the engine let out is here:
suppressed cohorts and cells are already absent, and `suppressed` says why."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from crossline.analysis.analysis import Analysis, Ranked, Tally


def _tally(tally: Tally | None) -> dict[str, Any] | None:
    if tally is None:
        return None
    data = asdict(tally)
    data["p_agree_interval"], data["p_disagree_interval"] = list(tally.p_agree_interval), list(tally.p_disagree_interval)
    return data


def _ranked(items: list[Ranked], texts: dict) -> list[dict[str, Any]]:
    return [{**asdict(item), "text": texts.get(item.statement)} for item in items]


def to_data(analysis: Analysis, texts: dict | None = None) -> dict[str, Any]:
    texts = texts or {}
    return {
        "settings": {"min_group_size": analysis.settings.min_cohort, "seed": analysis.settings.seed},
        "participants": analysis.participants,
        "clustered": analysis.clustered,
        "groups": [asdict(c) for c in analysis.groups],
        "sides": [asdict(c) for c in analysis.sides],
        "silhouettes": {str(k): round(v, 4) for k, v in sorted(analysis.silhouettes.items())},
        "participant_groups": {str(p): g for p, g in analysis.participant_groups.items()},
        "bridging": [{**asdict(b), "text": texts.get(b.statement)} for b in analysis.bridging],
        "one_side_only": _ranked(analysis.one_side_only, texts),
        "consensus": _ranked(analysis.consensus, texts),
        "side_consensus": _ranked(analysis.side_consensus, texts),
        "group_consensus": _ranked(analysis.group_consensus, texts),
        "representative": {g: _ranked(items, texts) for g, items in analysis.representative.items()},
        "divisive": _ranked(analysis.divisive, texts),
        "statements": [
            {"statement": f.statement, "text": texts.get(f.statement), "overall": _tally(f.overall),
             "by_side": {k: _tally(v) for k, v in f.by_side.items()},
             "by_group": {k: _tally(v) for k, v in f.by_group.items()}}
            for f in analysis.statements
        ],
        "suppressed": list(analysis.suppressed),
    }


def _line(number: object, text: str | None, width: int = 100) -> str:
    text = " ".join((text or "").split())
    return f"  [{number}] {text[:width] + ('…' if len(text) > width else '')}"


def to_text(analysis: Analysis, texts: dict | None = None) -> str:
    texts = texts or {}
    out = [f"{analysis.participants} participants, {analysis.clustered} voted enough to be placed in opinion groups."]
    out.append("Opinion groups: " + ", ".join(
        f"{c.name} ({c.members} people)" if c.members is not None else f"{c.name} (not shown: {c.suppressed})"
        for c in analysis.groups) if analysis.groups else "Opinion groups: none")
    if analysis.sides:
        out.append("Sides: " + ", ".join(
            f"{c.name} ({c.members} people)" if c.members is not None else f"{c.name} (not shown: {c.suppressed})"
            for c in analysis.sides))
        out.append("")
        out.append("Bridging: a majority on every side agrees (weakest side's support, 90% interval's lower end)")
        for b in analysis.bridging[:10]:
            out.append(_line(b.statement, texts.get(b.statement)) + f"  — {b.weakest_side} {b.weakest_support:.0%}"
                       f" (≥ {b.weakest_support_low:.0%})")
        if not analysis.bridging:
            out.append("  none")
        out.append("Carried by one side only")
        for r in analysis.one_side_only[:10]:
            out.append(_line(r.statement, texts.get(r.statement)) + f"  — {r.cohort} {r.score:.0%}")
        if not analysis.one_side_only:
            out.append("  none")
    out.append("")
    out.append("Consensus across everyone")
    for r in analysis.consensus:
        out.append(_line(r.statement, texts.get(r.statement)) + f"  — {r.direction}")
    for group, items in analysis.representative.items():
        out.append(f"What sets {group} apart")
        for r in items:
            out.append(_line(r.statement, texts.get(r.statement)) + f"  — {r.direction}")
    out.append("Divisive: where sides or groups differ most (spread in agreement)")
    for r in analysis.divisive:
        out.append(_line(r.statement, texts.get(r.statement)) + f"  — {r.score:.0%}, most agreeing: {r.cohort}")
    if analysis.suppressed:
        out.append("")
        out.append("Not shown, to protect small groups:")
        out.extend(f"  {note}" for note in analysis.suppressed)
    return "\n".join(out) + "\n"
