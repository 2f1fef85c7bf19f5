"""Full opinion analysis of 10,000 participants x 2,000 statements x 1,000,000 votes, against the
peer red-dwarf 0.4.0 on the same data in the same run.

    .venv/bin/pip install -e '.[bench]'        # red-dwarf, only for this comparison
    .venv/bin/python -m bench.analysis_speed [--participants 10000] [--statements 2000] [--votes 1000000]

Each implementation runs in a child process of its own, so that its peak memory (the child's
maximum resident set, interpreter and libraries included) is its own. Timed: from vote arrays in
memory to the finished analysis (for red-dwarf: its `run_pipeline`, after its input list of dicts
is built, which is reported apart as loading).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def synthetic_votes(participants: int, statements: int, votes: int, seed: int = 7):
    """Three opinion camps with their own leanings; each participant votes on a random subset
    (heavier and lighter voters); 15% passes. Returns (participant, statement, value, time) arrays."""
    rng = np.random.default_rng(seed)
    camps = rng.integers(0, 3, participants)
    leaning = rng.uniform(-1, 1, (3, statements))
    per_participant = rng.multinomial(votes, rng.dirichlet(np.ones(participants) * 2))
    per_participant = np.minimum(per_participant, statements)
    rows = np.repeat(np.arange(participants), per_participant)
    cols = np.concatenate([rng.choice(statements, n, replace=False) for n in per_participant])
    agree_probability = (1 + leaning[camps[rows], cols]) / 2
    values = np.where(rng.random(len(rows)) < agree_probability, 1, -1)
    values[rng.random(len(rows)) < 0.15] = 0
    times = rng.integers(0, 10**9, len(rows))
    return rows, cols, values, times


def run_ours(data) -> dict:
    from crossline.analysis.analysis import analyze
    from crossline.analysis.votes import vote_table

    started = time.perf_counter()
    table = vote_table(*data)
    result = analyze(table)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "groups": len(result.groups), "clustered": result.clustered}


def run_red_dwarf(data) -> dict:
    import warnings

    warnings.filterwarnings("ignore")
    from reddwarf.implementations.polis import run_pipeline

    rows, cols, values, times = data
    started = time.perf_counter()
    votes = [{"participant_id": int(p), "statement_id": int(s), "vote": int(v), "modified": int(t)}
             for p, s, v, t in zip(rows, cols, values, times, strict=True)]
    loaded = time.perf_counter()
    result = run_pipeline(votes=votes, random_state=42)
    seconds = time.perf_counter() - loaded
    return {"seconds": round(seconds, 3), "loading_seconds": round(loaded - started, 3),
            "groups": len(result.group_comments_stats) if hasattr(result, "group_comments_stats") else None}


def child(implementation: str, participants: int, statements: int, votes: int) -> None:
    data = synthetic_votes(participants, statements, votes)
    result = (run_ours if implementation == "ours" else run_red_dwarf)(data)
    result["votes"] = int(len(data[0]))
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--statements", type=int, default=2_000)
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["ours", "red-dwarf"])
    parser.add_argument("--child", choices=["ours", "red-dwarf"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [str(args.participants), str(args.statements), str(args.votes)]
    if args.child:
        child(args.child, args.participants, args.statements, args.votes)
        return 0
    for implementation in [args.only] if args.only else ["ours", "red-dwarf"]:
        output = subprocess.run([sys.executable, "-m", "bench.analysis_speed", "--child", implementation,
                                 "--participants", sizes[0], "--statements", sizes[1], "--votes", sizes[2]],
                                capture_output=True, text=True, check=True).stdout
        print(implementation, output.strip().splitlines()[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
