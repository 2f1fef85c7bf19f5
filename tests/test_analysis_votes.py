"""The vote table: the latest vote counts, rejected statements are only counted, bad votes refused."""

import numpy as np
import pytest

from crossline.analysis.analysis import AnalysisError, Settings
from crossline.analysis.votes import VoteError, vote_table


def test_the_latest_vote_counts_by_time_or_by_order():
    table = vote_table([7, 7, 8], [1, 1, 1], [1, -1, 0], times=[20, 10, 5])
    assert table.matrix().toarray().tolist() == [[1], [0]] and table.values.tolist() == [1, 0]
    table = vote_table([7, 7], [1, 1], [1, -1])
    assert table.values.tolist() == [-1]


def test_rejected_statements_leave_the_table_but_are_counted():
    table = vote_table([1, 1, 2], [10, 11, 11], [1, 1, -1], excluded_statements=[11])
    assert table.statements.tolist() == [10] and table.excluded_statements == 1
    assert table.votes_per_participant().tolist() == [2, 1]
    assert np.array_equal(table.participants, [1, 2])


def test_bad_votes_are_refused_with_what_to_fix():
    with pytest.raises(VoteError, match="1 .agree., -1 .disagree. or 0 .pass."):
        vote_table([1], [1], [5])
    with pytest.raises(VoteError, match="one entry per vote"):
        vote_table([1, 2], [1], [1])


def test_the_smallest_group_shown_is_never_below_three():
    with pytest.raises(AnalysisError, match="at least 3"):
        Settings(min_cohort=2)
