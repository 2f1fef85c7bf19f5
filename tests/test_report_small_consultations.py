"""Drafting a report never fails on a consultation too small to analyse (one voter, one statement,
nobody at all): such a report says so and shows nothing that could single anyone out."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from crossline.reports.content import ReportInput, build_report

SIDES = ["Left bank", "Right bank"]


def small_consultation(voters: int, statements: int, values: list[int]) -> ReportInput:
    member_sides = {m: SIDES[m % 2] for m in range(voters)}
    votes = [(m, 10 + s, values[(m * statements + s) % len(values)], 1000 + m)
             for m in range(voters) for s in range(statements)]
    return ReportInput(
        consultation_id=1, title="Small", line="Nistru", closed_at_ms=1_790_000_000_000,
        questions=[(5, 1, "Q?")], statements=[(10 + s, s + 1, 5, f"s{s}") for s in range(statements)],
        votes=votes, member_sides=member_sides, sides=SIDES, narrative="", statements_by_side={})


def test_a_consultation_with_one_voter_gives_a_report_with_no_groups():
    report = build_report(small_consultation(1, 3, [1, -1, 0]), released_at_ms=1_790_000_100_000)
    (question,) = report["questions"]
    assert question["statements"] == 3 and question["bridging"] == [] and question["consensus"] == []


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.integers(0, 4), st.integers(0, 3), st.lists(st.sampled_from([1, -1, 0]), min_size=1, max_size=6))
def test_any_tiny_consultation_gives_a_report(voters, statements, values):
    report = build_report(small_consultation(voters, statements, values), released_at_ms=1_790_000_100_000)
    assert report["questions"][0]["statements"] == statements
