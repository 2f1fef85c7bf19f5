"""Properties of the analysis engine, on generated consultations (hypothesis)."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossline.analysis.analysis import Settings, analyze
from crossline.analysis.output import to_data, to_text
from crossline.analysis.votes import vote_table

SIDES = ("Left bank", "Right bank", "Island")


@st.composite
def consultations(draw):
    """Participants on up to three sides (some very small) voting on a few statements, with a
    shared leaning per side so that groups, bridging and divisions all occur."""
    participants = draw(st.integers(4, 40))
    statements = draw(st.integers(2, 12))
    side_sizes = draw(st.lists(st.integers(1, participants), min_size=2, max_size=3))
    sides = {p: SIDES[min(p * len(side_sizes) // participants, len(side_sizes) - 1)] for p in range(participants)}
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    leaning = {side: rng.uniform(-1, 1, statements) for side in SIDES}
    entries = []
    for p in range(participants):
        for s in range(statements):
            if rng.random() < draw(st.sampled_from([0.5, 0.9])) if s == 0 else rng.random() < 0.8:
                lean = leaning[sides[p]][s]
                value = 1 if rng.random() < (1 + lean) / 2 else -1
                if rng.random() < 0.15:
                    value = 0
                entries.append((100 + p, 1000 + s, value, int(rng.integers(0, 10**6))))
    return entries, {100 + p: side for p, side in sides.items()}


def run(entries, sides, k=5):
    table = vote_table([e[0] for e in entries], [e[1] for e in entries], [e[2] for e in entries], [e[3] for e in entries])
    return analyze(table, sides, Settings(min_cohort=k))


quick = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@quick
@given(consultations(), st.randoms(use_true_random=False))
def test_results_do_not_depend_on_the_order_of_votes_or_participants(consultation, random):
    entries, sides = consultation
    shuffled = list(entries)
    random.shuffle(shuffled)
    reordered_sides = dict(random.sample(list(sides.items()), len(sides)))
    assert to_data(run(entries, sides)) == to_data(run(shuffled, reordered_sides))


@quick
@given(consultations(), st.integers(3, 8))
def test_no_suppressed_figure_appears_in_any_output(consultation, k):
    entries, sides = consultation
    analysis = run(entries, sides, k)
    data = to_data(analysis)
    small = {c["name"] for c in data["sides"] + data["groups"] if c["members"] is None}
    for cohort in data["sides"] + data["groups"]:
        assert cohort["members"] is None or cohort["members"] >= k
    for figures in data["statements"]:
        assert not small & (set(figures["by_side"]) | set(figures["by_group"]))
        for tally in [figures["overall"], *figures["by_side"].values(), *figures["by_group"].values()]:
            assert tally is None or tally["seen"] >= k
    assert not small & set(data["participant_groups"].values())
    assert not small & set(data["representative"])
    listed = [r.get("cohort") or r.get("weakest_side") for key in ("divisive", "one_side_only", "bridging") for r in data[key]]
    assert not small & set(listed)
    assert not small & {s for b in data["bridging"] for s in b["support_by_side"]}
    # In the text and JSON, a small cohort's name appears only where we say it is not shown.
    text = to_text(analysis)
    for name in small:
        assert all("not shown" in line for line in text.splitlines() if name in line)
        serialised = json.dumps({k: v for k, v in data.items() if k not in ("sides", "groups", "suppressed")})
        assert name not in serialised


@quick
@given(consultations())
def test_a_bridging_statement_has_majority_support_on_every_side(consultation):
    entries, sides = consultation
    analysis = run(entries, sides, 3)
    latest = {}
    for participant, statement, value, _time in sorted(entries, key=lambda e: e[3]):
        latest[(participant, statement)] = value
    for bridging in analysis.bridging:
        for side in set(sides.values()):
            votes = [v for (p, s), v in latest.items() if s == bridging.statement and sides[p] == side]
            assert 2 * sum(v == 1 for v in votes) > len(votes)
    for item in analysis.one_side_only:
        assert item.statement not in {b.statement for b in analysis.bridging}


@quick
@given(consultations(), st.integers(3, 8))
def test_no_suppressed_side_figure_appears_in_any_report_format(consultation, k):
    import io

    import pypdf

    from crossline.reports.content import ReportInput, build_report
    from crossline.reports.render import to_markdown, to_pdf

    entries, sides = consultation
    statements = sorted({e[1] for e in entries})
    report = build_report(ReportInput(
        consultation_id=1, title="Generated", line="Line", closed_at_ms=0, questions=[(1, 1, "Question?")],
        statements=[(s, n, 1, f"Statement text {n}") for n, s in enumerate(statements, start=1)],
        votes=[(p, s, v, t) for p, s, v, t in entries], member_sides=sides, sides=sorted(set(sides.values())),
        min_group_size=k), released_at_ms=0)
    sizes = {side: sum(1 for s in sides.values() if s == side) for side in set(sides.values())}
    small = {side for side, size in sizes.items() if size < k}
    pdf = to_pdf(report, "FP", "HASH")
    renderings = {
        "markdown": to_markdown(report, "FP", "HASH"),
        "pdf": "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages),
    }
    for name in small:
        assert name not in json.dumps(report["questions"], ensure_ascii=False)
        for text in renderings.values():
            for line in text.splitlines():
                if name in line:
                    assert "not shown" in line or "fewer than" in line, line
    for question in report["questions"]:
        for item in question["bridging"] + question["divisive"] + question["one_side_only"]:
            assert all(v is None or v["votes"] >= k for v in item["by_side"].values())
