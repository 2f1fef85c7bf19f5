"""The analysis on real Pol.is conversations, through `crossline analyze`, compared with the groups
Pol.is itself found (participants-votes.csv's group-id) by adjusted Rand index."""

from __future__ import annotations

import json

import pytest

from crossline.cli import main
from tests.analysis_support import POLIS_DATA, adjusted_rand_index, agreement_with_polis


def analyze_json(capsys, *args: str) -> dict:
    assert main(["analyze", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_rand_index_helper_knows_identical_and_unrelated_partitions():
    assert adjusted_rand_index([0, 0, 1, 1], ["b", "b", "a", "a"]) == pytest.approx(1.0)
    assert adjusted_rand_index([0, 1, 0, 1, 0, 1], [0, 0, 0, 1, 1, 1]) < 0.1


def test_biodiversity_groups_match_polis(capsys):
    folder = POLIS_DATA / "scoop-hivemind.biodiversity"
    result = analyze_json(capsys, str(folder))
    ari, compared = agreement_with_polis(folder, result["participant_groups"])
    assert len(result["groups"]) == 2  # Pol.is found 2
    assert compared >= 430  # Pol.is clustered 443 of 536
    assert ari >= 0.9, ari  # red-dwarf 0.4.0 reaches 0.78 on the same data


def test_seattle_groups_are_closer_to_polis_than_the_peer(capsys):
    folder = POLIS_DATA / "15-per-hour-seattle"
    result = analyze_json(capsys, str(folder))
    ari, compared = agreement_with_polis(folder, result["participant_groups"])
    assert len(result["groups"]) == 2 and compared == 138
    assert ari >= 0.55, ari  # red-dwarf 0.4.0: 0.46 (see docs/benchmarks.md for why we differ)


def test_rejected_statements_are_left_out_of_every_list(capsys):
    folder = POLIS_DATA / "scoop-hivemind.biodiversity"
    result = analyze_json(capsys, str(folder))
    rejected = {298}  # moderated -1 in comments.csv
    listed = {item["statement"] for key in ("consensus", "divisive") for item in result[key]}
    listed |= {f["statement"] for f in result["statements"]}
    assert not rejected & listed


def test_sides_from_a_csv_give_bridging_across_them(capsys, tmp_path):
    folder = POLIS_DATA / "scoop-hivemind.biodiversity"
    sides = tmp_path / "sides.csv"
    sides.write_text("participant,side\n" + "".join(f"{p},{'North' if p % 2 else 'South'}\n" for p in range(536)))
    result = analyze_json(capsys, str(folder), "--sides", str(sides))
    assert [s["name"] for s in result["sides"]] == ["North", "South"]
    assert result["bridging"], "everyone agrees with some statements, so both halves do"
    for item in result["bridging"]:
        figures = next(f for f in result["statements"] if f["statement"] == item["statement"])
        assert all(2 * t["agree"] > t["seen"] for t in figures["by_side"].values())


def test_bad_input_gets_a_clear_error(capsys, tmp_path):
    assert main(["analyze", str(tmp_path)]) == 2
    assert "comments.csv is missing" in capsys.readouterr().err
    (tmp_path / "comments.csv").write_text("comment-id,moderated,comment-body\n1,0,Hello\n")
    (tmp_path / "votes.csv").write_text("timestamp,comment-id,voter-id,vote\n1,1,7,yes\n")
    assert main(["analyze", str(tmp_path)]) == 2
    assert "votes.csv, line 2: vote must be a whole number, not 'yes'" in capsys.readouterr().err
    (tmp_path / "votes.csv").write_text("timestamp,comment-id,voter-id,vote\n1,1,7,2\n")
    assert main(["analyze", str(tmp_path)]) == 2
    assert "must be 1 (agree), -1 (disagree) or 0 (pass)" in capsys.readouterr().err
    assert main(["analyze", str(POLIS_DATA / "15-per-hour-seattle"), "--min-group-size", "2"]) == 2
    assert "at least 3" in capsys.readouterr().err
