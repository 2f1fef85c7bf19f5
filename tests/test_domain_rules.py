from __future__ import annotations

import pytest

from crossline.domain import rules
from crossline.domain.records import Invitation
from crossline.errors import Gone, InvalidInput


def invitation(**changes) -> Invitation:
    values = dict(id=1, line_id=1, side_id=1, roles=frozenset({"participant"}), created_by=1,
                  created_at=0, expires_at=1_000, used_at=None, member_id=None)
    return Invitation(**{**values, **changes})


def test_an_unused_invitation_before_expiry_is_usable():
    assert rules.check_invitation_usable(invitation(), now_ms=999).id == 1


@pytest.mark.parametrize(
    "found, now, says",
    [
        (None, 0, "not valid"),
        (invitation(used_at=5, member_id=2), 10, "already been used"),
        (invitation(), 1_000, "expired"),
    ],
)
def test_unusable_invitations_say_why(found, now, says):
    with pytest.raises(Gone, match=says):
        rules.check_invitation_usable(found, now)


def test_sides_need_two_distinct_names():
    assert rules.parse_sides("Left bank\nRight bank") == ["Left bank", "Right bank"]
    assert rules.parse_sides("Armenia, Azerbaijan") == ["Armenia", "Azerbaijan"]
    with pytest.raises(InvalidInput, match="at least two sides"):
        rules.parse_sides("Only one")
    with pytest.raises(InvalidInput, match="different name"):
        rules.parse_sides("Left\nleft")


@pytest.mark.parametrize("bad", ["", "Has Space", "x" * 65, "émilie", "@alice"])
def test_bad_user_names_are_refused(bad):
    with pytest.raises(InvalidInput, match="user name"):
        rules.check_localpart(bad)


def test_roles_default_to_participant_and_unknown_roles_are_refused():
    assert rules.parse_roles([]) == frozenset({"participant"})
    with pytest.raises(InvalidInput, match="Unknown role superuser"):
        rules.parse_roles(["superuser"])


def test_short_passwords_are_refused():
    with pytest.raises(InvalidInput, match="at least 12"):
        rules.check_password("short")
