"""A member's choice of who may invite her: stored, validated and published to the Synapse module."""

from __future__ import annotations

import json

import pytest

from crossline.errors import InvalidInput, NotFound
from crossline.services import invite_preferences
from crossline.storage import members
from tests.fakes import make_unit_hub


def _published(hub) -> dict:
    return json.loads(hub.config.paths.known_members.read_text())["members"]


def test_her_choice_is_stored_and_published_with_her_line(tmp_path):
    hub = make_unit_hub(tmp_path)
    with hub.engine.begin() as conn:
        left = members.add_member(conn, "@ana:crossline.local", 1, None, frozenset({"participant"}), None, 0)
        ana = members.get_member(conn, left)
    hub.publish_known_members()
    assert _published(hub)["@ana:crossline.local"] == {"lines": [1], "staff": False, "invites_from": "rooms"}
    # A facilitator without a line serves every line.
    assert _published(hub)["@fac:crossline.local"] == {"lines": [1], "staff": True, "invites_from": "rooms"}
    assert invite_preferences.current(hub, ana) == "rooms"

    for choice in ("nobody", "line", "rooms", "nobody"):
        invite_preferences.choose(hub, ana, choice)
        assert invite_preferences.current(hub, ana) == choice
        assert _published(hub)["@ana:crossline.local"]["invites_from"] == choice
    assert hub.config.paths.known_members.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("hostile", ["", "everyone", "NOBODY", "line ", "rooms\x00", "<script>", "a" * 10_000])
def test_anything_but_the_three_answers_is_refused_and_changes_nothing(tmp_path, hostile):
    hub = make_unit_hub(tmp_path)
    with hub.engine.begin() as conn:
        ana = members.get_member(conn, members.add_member(conn, "@ana:crossline.local", 1, None,
                                                          frozenset({"participant"}), None, 0))
    invite_preferences.choose(hub, ana, "line")
    with pytest.raises(InvalidInput, match="Choose one of the three answers"):
        invite_preferences.choose(hub, ana, hostile)
    assert invite_preferences.current(hub, ana) == "line"
    assert _published(hub)["@ana:crossline.local"]["invites_from"] == "line"


def test_a_web_only_participant_has_nothing_to_choose(tmp_path):
    hub = make_unit_hub(tmp_path)
    with hub.engine.begin() as conn:
        web = members.get_member(conn, members.add_member(conn, None, 1, None, frozenset({"participant"}), None, 0,
                                                          web_handle="w1"))
    with pytest.raises(NotFound, match="without a Matrix account"):
        invite_preferences.current(hub, web)
    with pytest.raises(NotFound):
        invite_preferences.choose(hub, web, "line")


def test_a_choice_that_cannot_be_published_is_not_kept(tmp_path, monkeypatch):
    """Stored but not applied would show 'saved' while Synapse's module still applies the old choice."""
    hub = make_unit_hub(tmp_path)
    with hub.engine.begin() as conn:
        ana = members.get_member(conn, members.add_member(conn, "@ana:crossline.local", 1, None,
                                                          frozenset({"participant"}), None, 0))

    def disk_full() -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hub, "publish_known_members", disk_full)
    with pytest.raises(invite_preferences.NotApplied, match="nothing was changed"):
        invite_preferences.choose(hub, ana, "nobody")
    assert invite_preferences.current(hub, ana) == "rooms"  # the default, as before
    monkeypatch.undo()
    invite_preferences.choose(hub, ana, "line")
    monkeypatch.setattr(hub, "publish_known_members", disk_full)
    with pytest.raises(invite_preferences.NotApplied):
        invite_preferences.choose(hub, ana, "nobody")
    assert invite_preferences.current(hub, ana) == "line"
