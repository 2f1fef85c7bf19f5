"""The only widget a Crossline room takes: a live session's page on this hub, from the hub's bot."""

from __future__ import annotations

import pytest

from crossline_policies import enforcement
from crossline_policies.enforcement import RoomEvent

PREFIX = "https://hub.example/live/"
GOOD = {"type": "m.custom", "url": PREFIX + "AbC_12-x", "name": "Live: Water", "data": {}}


def widget(content, state_key="crossline-live-AbC_12-x", prefix=PREFIX):
    return enforcement.check_event(RoomEvent(enforcement.WIDGETS, content, state_key, live_page_prefix=prefix))


def test_the_bot_sets_and_empties_a_live_sessions_widget():
    assert widget(GOOD) is None
    assert widget({}) is None  # removed when the session ends


@pytest.mark.parametrize(("content", "state_key", "prefix"), [
    (GOOD, "crossline-live-AbC_12-x", None),  # not from the hub's bot
    (GOOD, "jitsi", PREFIX),
    (GOOD, "crossline-live-other", PREFIX),  # the address must be the session's own page
    ({**GOOD, "url": "https://evil.example/live/AbC_12-x"}, "crossline-live-AbC_12-x", PREFIX),
    ({**GOOD, "type": "jitsi"}, "crossline-live-AbC_12-x", PREFIX),
    ({**GOOD, "data": {"conferenceId": "x"}}, "crossline-live-AbC_12-x", PREFIX),
    ({**GOOD, "creatorUserId": "@x:y"}, "crossline-live-AbC_12-x", PREFIX),
    ({**GOOD, "name": 5}, "crossline-live-AbC_12-x", PREFIX),
    ({}, "crossline-live-AbC_12-x", None),
])
def test_every_other_widget_is_refused(content, state_key, prefix):
    assert "widgets" in widget(content, state_key, prefix)


def test_the_synapse_module_marks_only_the_bots_widgets(tmp_path):
    from crossline_policies.synapse_module import CrosslinePolicy

    config = CrosslinePolicy.parse_config({"known_members_path": str(tmp_path / "k"),
                                           "registration_claims_dir": str(tmp_path / "c"),
                                           "protected_names_path": str(tmp_path / "p"),
                                           "live_widget_sender": "@crossline-bot:x", "live_page_prefix": PREFIX})
    assert (config.live_widget_sender, config.live_page_prefix) == ("@crossline-bot:x", PREFIX)
    old = CrosslinePolicy.parse_config({"known_members_path": "k", "registration_claims_dir": "c",
                                        "protected_names_path": "p"})
    assert old.live_widget_sender == "" and old.live_page_prefix == ""
