"""What a consultation report says (pure): built from the closed consultation's approved
statements and votes, per question, with the analysis engine's small-cell suppression.

The report quotes statements, never their authors, and holds no per-person data. Probabilities
are whole percentages so that the signed JSON means the same to every reader and every language.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from crossline.analysis.analysis import Analysis, Settings, Tally, analyze
from crossline.analysis.votes import vote_table
from crossline.domain.live import shown_by_side

FORMAT = "crossline-report/1"
TOP = 5


@dataclass(frozen=True)
class ReportInput:
    consultation_id: int
    title: str
    line: str
    closed_at_ms: int
    questions: list[tuple[int, int, str]]  # (question id, position, prompt)
    statements: list[tuple[int, int, int, str]]  # approved: (statement id, number, question id, text)
    votes: list[tuple[int, int, int, int]]  # (member id, statement id, value, voted_at ms)
    member_sides: dict[int, str]  # every eligible member -> her side's name
    sides: list[str]
    narrative: str = ""
    version: int = 1
    replaces: dict | None = None  # {"version": n, "sha256": "..."} of the release this corrects
    min_group_size: int = 5
    statements_by_side: dict[str, int] = field(default_factory=dict)
    # Each ended live session of the consultation: {side: (speaking seconds, people who took part)}.
    live_sessions: list[dict[str, tuple[int, int]]] = field(default_factory=list)
    # The hub that releases it, {"server_name", "url"}: `crossline verify` names it to the reader.
    hub: dict[str, str] | None = None


def percent(probability: float) -> int:
    return int(round(100 * probability))


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def method_note(k: int) -> str:
    return (
        "Participants voted agree, disagree or pass on statements written by participants. For each side we count "
        "the votes and estimate how likely a member of that side is to agree, with a 90% range of uncertainty. "
        "A statement is a bridging recommendation when a majority of voters on every side agreed with it; "
        "bridging statements are ranked by the support of the side that supports them least, counting the "
        "uncertainty. Divisive statements are those where the sides' agreement differs most. "
        f"To protect people, no figure is given for any side or group of fewer than {k} people, nor for a "
        f"statement fewer than {k} people of a side voted on."
    )


def _side_view(tally: Tally | None) -> dict | None:
    if tally is None:
        return None
    low, high = tally.p_agree_interval
    return {"agree": tally.agree, "disagree": tally.disagree, "pass": tally.passed, "votes": tally.seen,
            "agree_percent": percent(tally.p_agree), "agree_percent_range": [percent(low), percent(high)]}


def _question(analysis: Analysis, numbers: dict[int, int], texts: dict[int, str]) -> dict:
    figures = {f.statement: f for f in analysis.statements}

    def quoted(statement_id: int) -> dict:
        return {"number": numbers[statement_id], "text": texts[statement_id]}

    def by_side(statement_id: int) -> dict:
        return {side: _side_view(t) for side, t in figures[statement_id].by_side.items()}

    divisive = []
    for statement_id, f in figures.items():
        shown = [t for t in f.by_side.values() if t is not None]
        if len(shown) >= 2:
            spread = max(t.p_agree for t in shown) - min(t.p_agree for t in shown)
            divisive.append((-spread, numbers[statement_id], statement_id))
    divisive.sort()
    return {
        "bridging": [{**quoted(b.statement), "weakest_side": b.weakest_side,
                      "weakest_side_agree_percent": percent(b.weakest_support),
                      "weakest_side_agree_percent_at_least": percent(b.weakest_support_low),
                      "by_side": by_side(b.statement)} for b in analysis.bridging],
        "consensus": [{**quoted(r.statement), "direction": r.direction} for r in analysis.consensus],
        "divisive": [{**quoted(s), "difference_percent": percent(-spread), "by_side": by_side(s)}
                     for spread, _, s in divisive[:TOP] if -spread > 0],
        "one_side_only": [{**quoted(r.statement), "side": r.cohort, "agree_percent": percent(r.score),
                           "by_side": by_side(r.statement)} for r in analysis.one_side_only[:TOP]],
    }


def build_report(source: ReportInput, released_at_ms: int) -> dict:
    k = source.min_group_size
    settings = Settings(min_cohort=k)
    suppressed: list[str] = []
    questions = []
    for question_id, position, prompt in sorted(source.questions, key=lambda q: q[1]):
        statements = [s for s in source.statements if s[2] == question_id]
        ids = {s[0] for s in statements}
        votes = [v for v in source.votes if v[1] in ids and v[0] in source.member_sides]
        table = vote_table([v[0] for v in votes], [v[1] for v in votes], [v[2] for v in votes], [v[3] for v in votes])
        analysis = analyze(table, source.member_sides, settings)
        content = _question(analysis, {s[0]: s[1] for s in statements}, {s[0]: s[3] for s in statements})
        questions.append({"position": position, "prompt": prompt, "statements": len(statements), **content})
        suppressed.extend(f"Question {position}: {note}" for note in analysis.suppressed)
    report = {
        "format": FORMAT,
        "consultation": {"id": source.consultation_id, "title": source.title, "line": source.line,
                         "closed_at": iso(source.closed_at_ms)},
        "version": source.version,
        "replaces": source.replaces,
        "released_at": iso(released_at_ms),
        "min_group_size": k,
        "participation": _participation(source, k, suppressed),
        "questions": questions,
        "narrative": source.narrative,
        "method": method_note(k),
        "suppressed": suppressed,
    }
    if source.hub is not None:
        report["hub"] = source.hub
    if source.live_sessions:
        report["live_sessions"] = _live_sessions(source, k, suppressed)
    return report


def _live_sessions(source: ReportInput, k: int, suppressed: list[str]) -> list[dict]:
    """Speaking time per side in each live session, as counts only; a side with fewer than k people
    in a session is not shown for that session."""
    rows = []
    for number, totals in enumerate(source.live_sessions, start=1):
        shown = shown_by_side({side: s for side, (s, _) in totals.items()},
                              {side: n for side, (_, n) in totals.items()}, k)
        suppressed.extend(f"Live session {number}: speaking time of “{side}” is not shown: fewer than {k} people."
                          for side, seconds in shown.items() if seconds is None)
        rows.append({"session": number, "speaking_seconds_by_side": shown})
    return rows


def _participation(source: ReportInput, k: int, suppressed: list[str]) -> list[dict]:
    voters = {v[0] for v in source.votes}
    rows = []
    for side in source.sides:
        members = [m for m, s in source.member_sides.items() if s == side]
        voted = sum(1 for m in members if m in voters)
        if len(members) < k:
            rows.append({"side": side, "members": None, "voted": None, "statements": None})
            suppressed.append(f"Participation on “{side}” is not shown: fewer than {k} members.")
            continue
        shown_voted = voted if voted >= k or voted == 0 else None
        if shown_voted is None:
            suppressed.append(f"How many voted on “{side}” is not shown: fewer than {k}.")
        rows.append({"side": side, "members": len(members), "voted": shown_voted,
                     "statements": source.statements_by_side.get(side, 0)})
    return rows
