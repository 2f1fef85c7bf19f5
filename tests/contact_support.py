"""Helpers for end-to-end tests where members invite each other (issue 26: a member takes
invitations only from people of her line she shares a room with, unless she chose otherwise)."""

from __future__ import annotations

import secrets

from tests.conftest import create_room
from tests.support import WebSession, matrix, wait_for

CLIENT = "/_matrix/client/v3"


def hub_session(world, localpart: str, password: str) -> WebSession:
    """A member signed in on the hub's pages with her Matrix password."""
    session = WebSession(world.stack.hub_url)
    status, page = session.submit("/login", "/login", {"username": localpart, "password": password})
    assert status == 200, page
    return session


def choose_who_may_invite(world, localpart: str, password: str, choice: str) -> str:
    """She chooses on her page of the hub (nobody, rooms, line); returns the page shown after."""
    session = hub_session(world, localpart, password)
    status, page = session.submit("/participate/who-may-invite", "/participate/who-may-invite", {"invites_from": choice})
    assert status == 200 and "Saved." in page, page
    return page


def share_a_room(world, tokens: dict[str, str]) -> str:
    """The facilitator's room with these members (user id -> access token), each joined."""
    status, page, room_id = create_room(world, "cross-line-dialogue", f"Shared {secrets.token_hex(3)}", list(tokens))
    assert status == 200 and room_id, page
    hs = world.stack.homeserver_url
    for user_id, token in tokens.items():
        wait_for(lambda: matrix(hs, "POST", f"{CLIENT}/join/{room_id}", token, {})[0] == 200,
                 what=f"{user_id} to join the facilitator's room")
    return room_id
