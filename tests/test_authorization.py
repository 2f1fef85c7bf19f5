"""Who may open what: every route of the router, for every role, against real objects.

The table below is the hub's authorization policy (docs/architecture.md, "Who sees what", is the
same table in prose). It is checked against `app.router`, so a route added without an entry
fails here. For every route and every caller:

- a caller the table allows gets through: 2xx, or a redirect that is not to the login page;
- anyone else gets a 303 to /login, a 403 or a 404, and the answer holds none of the objects'
  private data (member ids, room ids, statement texts, titles, reporter's words and contact,
  draft narrative);
- some callers must never see some data even where they are allowed (a moderator, the case
  about herself; a negotiator, an unreleased draft; a participant, another's pending statement).

Public routes (log-in, links that are their own credential, the report form) are checked for
no 5xx and no private data.

Each allowed POST runs in its own copy of the world, so what one caller changes cannot decide
what the next one sees.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

import pytest

from crossline import secrets
from crossline.clock import token_hash
from crossline.config import load_config
from crossline.domain.consultations import Phase, VoteValue
from crossline.domain.moderation import Action, CaseStatus, Category
from crossline.errors import HomeserverError, NotAllowed
from crossline.live.janus import JanusEvent
from crossline.services import consultations, moderation, pseudonym_pool, pseudonyms, reports
from crossline.services.escrow_view import escrow_view
from crossline.services.hub import Hub
from crossline.setup import init_data_dir
from crossline.services.live import LiveSessions
from crossline.storage import invitations, lines, members, rooms, sessions
from crossline.storage import moderation as case_store
from crossline.storage.db import create_database_engine, migrate
from crossline.web.app import create_app
from crossline.web.keys import HUB, LIVE
from crossline_policies.rooms import load_room_templates
from tests.fakes import FakeClock, FakeHomeserver, FakeJanus
from tests.pictures_support import tiny_png

PNG = tiny_png()  # a real picture: the moderator's view rebuilds stored pictures it cannot tell are clean
SERVER = "crossline.local"

# -- Callers ---------------------------------------------------------------------------------------
ANON = "anonymous"
PARTICIPANT = "participant"  # Matrix account, left bank of line 1
WEB = "web participant"  # no Matrix account, right bank of line 1
PSEUDONYM = "pseudonym"  # made for consultation 1 only
FAR = "participant of another line"
FACILITATOR = "facilitator"
MODERATOR = "moderator"
REPORTED_MODERATOR = "moderator who is the reported person"
NEGOTIATOR = "negotiator"
ADMIN = "admin"
CALLERS = (ANON, PARTICIPANT, WEB, PSEUDONYM, FAR, FACILITATOR, MODERATOR, REPORTED_MODERATOR, NEGOTIATOR, ADMIN)

PUBLIC = "anyone: no role check (the link or form is its own credential)"
SIGNED_IN = frozenset(CALLERS) - {ANON}
PARTICIPANT_ROLE = frozenset({PARTICIPANT, WEB, PSEUDONYM, FAR, ADMIN})  # admins hold every role
FACILITATORS = frozenset({FACILITATOR, ADMIN})
MODERATORS = frozenset({MODERATOR, ADMIN})  # the reported moderator: never on her own case
ESCROW_KEY_HOLDERS = frozenset({MODERATOR, REPORTED_MODERATOR, ADMIN})
READERS = frozenset({NEGOTIATOR, FACILITATOR, ADMIN})
MATRIX_ACCOUNTS = SIGNED_IN - {WEB}
LIVE_IN = frozenset({PARTICIPANT, WEB, PSEUDONYM, FACILITATOR, ADMIN})  # consultation 1's live session

# (method, route as the router names it) -> who gets through, for the objects the requests name.
ACCESS: dict[tuple[str, str], str | frozenset[str]] = {
    ("GET", "/"): PUBLIC,  # a redirect to each role's first page
    ("GET", "/_crossline/health"): PUBLIC,
    ("GET", "/static"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): PUBLIC,
    ("GET", "/join/{code}"): PUBLIC,
    ("POST", "/join/{code}"): PUBLIC,
    ("POST", "/join/{code}/web"): PUBLIC,
    ("GET", "/setup/{code}"): PUBLIC,
    ("POST", "/setup/{code}"): PUBLIC,
    ("GET", "/r/{token}"): PUBLIC,  # signed in as someone else: asks first, naming the link's person
    ("POST", "/r/{token}"): PUBLIC,
    ("GET", "/report"): PUBLIC,
    ("POST", "/report"): PUBLIC,
    ("GET", "/report/status/{token}"): PUBLIC,
    ("POST", "/report/status/{token}"): PUBLIC,
    ("GET", "/appeal/{token}"): PUBLIC,
    ("POST", "/appeal/{token}"): PUBLIC,
    # Lines, invitations, rooms: facilitators run them; only an admin makes a line.
    ("GET", "/lines"): FACILITATORS,
    ("POST", "/lines"): frozenset({ADMIN}),
    ("GET", "/lines/{line_id}"): FACILITATORS,
    ("POST", "/lines/{line_id}/invitations"): FACILITATORS,
    ("POST", "/lines/{line_id}/rooms"): FACILITATORS,
    # Consultations: facilitators design and run them.
    ("GET", "/lines/{line_id}/consultations/new"): FACILITATORS,
    ("POST", "/lines/{line_id}/consultations"): FACILITATORS,
    ("GET", "/consultations/{cid}"): FACILITATORS,
    ("GET", "/consultations/{cid}/live"): FACILITATORS,
    ("POST", "/consultations/{cid}/phase"): FACILITATORS,
    ("POST", "/consultations/{cid}/room"): FACILITATORS,
    ("POST", "/consultations/{cid}/statements"): FACILITATORS,
    ("POST", "/consultations/{cid}/moderate"): FACILITATORS,
    # Reports: drafts for facilitators; released reports for negotiators (and facilitators).
    ("GET", "/consultations/{cid}/report"): FACILITATORS,
    ("POST", "/consultations/{cid}/report"): FACILITATORS,
    ("POST", "/reports/{rid}/narrative"): FACILITATORS,
    ("POST", "/reports/{rid}/release"): FACILITATORS,
    ("GET", "/reports"): READERS,
    ("GET", "/reports/{rid}"): READERS,
    ("GET", "/reports/{rid}/report.{fmt}"): READERS,
    ("GET", "/reports/check"): READERS,
    ("POST", "/reports/check"): READERS,
    # Taking part: a participant, in a consultation open to her side (a pseudonym: its own only).
    ("GET", "/participate"): PARTICIPANT_ROLE,
    ("GET", "/participate/{cid}"): frozenset({PARTICIPANT, WEB, PSEUDONYM}),
    ("POST", "/participate/{cid}/statements"): frozenset({PARTICIPANT, WEB}),  # consultation 3
    ("POST", "/participate/{cid}/votes"): frozenset({PARTICIPANT, WEB, PSEUDONYM}),
    ("POST", "/participate/{cid}/pseudonym"): frozenset({PARTICIPANT, WEB}),  # not a pseudonym itself
    # Whom she takes Matrix invitations from: anyone signed in with a Matrix account, for herself.
    ("GET", "/participate/who-may-invite"): MATRIX_ACCOUNTS,
    ("POST", "/participate/who-may-invite"): MATRIX_ACCOUNTS,
    ("POST", "/api/consultations/{cid}/votes"): frozenset({PARTICIPANT, WEB, PSEUDONYM}),
    ("GET", "/api/csrf"): SIGNED_IN,
    # Moderation: moderators, never on a case about themselves.
    ("GET", "/moderation"): MODERATORS | {REPORTED_MODERATOR},  # her queue, without her own case
    ("GET", "/moderation/cases/{case_id}"): MODERATORS,
    ("GET", "/moderation/cases/{case_id}/evidence/{evidence_id}"): MODERATORS,
    ("POST", "/moderation/cases/{case_id}/triage"): MODERATORS,
    ("POST", "/moderation/cases/{case_id}/decide"): MODERATORS,
    # An admin has no side, and the hub's policy wants the second moderator from the other side.
    ("POST", "/moderation/cases/{case_id}/agree"): frozenset({MODERATOR}),
    ("POST", "/moderation/cases/{case_id}/unmask"): MODERATORS,
    ("POST", "/moderation/unmask/{request_id}/approve"): MODERATORS,
    # The record: every moderator, without the entries of a case about herself.
    ("GET", "/moderation/audit"): MODERATORS | {REPORTED_MODERATOR},
    ("GET", "/moderation/audit/head"): MODERATORS | {REPORTED_MODERATOR},
    # The escrow: each moderator her own key; an admin sets the escrow up.
    ("GET", "/moderation/escrow"): ESCROW_KEY_HOLDERS,
    ("POST", "/moderation/escrow/key"): ESCROW_KEY_HOLDERS,
    ("POST", "/moderation/escrow"): frozenset({ADMIN}),
    # Live sessions: facilitators open, schedule and run them; the consultation's participants (a
    # pseudonym in its own consultation) join. The API routes after join are tried after joining.
    ("POST", "/consultations/{cid}/live-sessions"): FACILITATORS,
    ("POST", "/rooms/{room}/live-sessions"): FACILITATORS,
    ("GET", "/live/{lid}"): LIVE_IN,
    ("POST", "/live/{lid}/start"): FACILITATORS,
    ("POST", "/live/{lid}/interpreters"): FACILITATORS,
    ("POST", "/api/live/{lid}/join"): LIVE_IN,
    ("POST", "/api/live/{lid}/publish"): LIVE_IN,
    ("POST", "/api/live/{lid}/subscribe"): LIVE_IN,
    ("POST", "/api/live/{lid}/subscribe/answer"): LIVE_IN,
    ("GET", "/api/live/{lid}/state"): LIVE_IN,
    ("POST", "/api/live/{lid}/hand"): LIVE_IN,
    ("POST", "/api/live/{lid}/leave"): LIVE_IN,
    ("POST", "/api/live/{lid}/control"): FACILITATORS,
}


# -- The world ------------------------------------------------------------------------------------


class Homeserver(FakeHomeserver):
    """The recording fake, with what the web routes also ask of Synapse."""

    def __init__(self):
        super().__init__()
        self.accounts = defaultdict(dict)  # a world's copy has accounts an earlier fake made
        self.session = None
        self.made_rooms = 0

    async def create_room(self, token: str, body: dict) -> str:
        self.made_rooms += 1
        return f"!made{self.made_rooms}:{SERVER}"

    async def join_as(self, user_id, room_id):
        self.calls.append(("join", user_id, room_id))

    async def register_with_token(self, localpart, password, registration_token):
        return f"@{localpart}:{SERVER}"

    async def login_with_password(self, user_id, password):
        raise HomeserverError("wrong password")


@dataclass
class World:
    data_dir: Path
    ids: dict = field(default_factory=dict)  # what the requests name
    cookies: dict = field(default_factory=dict)  # caller -> session cookie
    own: dict = field(default_factory=dict)  # caller -> her own ids (shown on her pages)
    private: set = field(default_factory=set)  # nobody refused may see these
    never: dict = field(default_factory=dict)  # caller -> what she may not see even where allowed


def _member(conn, name, line, side, roles, handle=None) -> int:
    user_id = f"@{name}:{SERVER}" if name else None
    return members.add_member(conn, user_id, line, side, frozenset(roles), None, 0, web_handle=handle)


async def _build(data_dir: Path) -> World:
    config = init_data_dir(data_dir, hub_port=18711, synapse_port=18712)[0]
    engine = create_database_engine(config.database_url)
    migrate(engine)
    tokens = iter(range(10_000))
    hub = Hub(config, engine, Homeserver(), FakeClock(int(time.time() * 1000)), lambda: f"tok{next(tokens):05d}x",
              load_room_templates())
    w = World(data_dir)
    with engine.begin() as conn:
        line = lines.add_line(conn, "nistru", "Nistru", ["Left bank", "Right bank"], 0)
        far_line = lines.add_line(conn, "dnipro", "Dnipro", ["East", "West"], 0)
        left, right = [s.id for s in lines.get_line(conn, line).sides]
        east = lines.get_line(conn, far_line).sides[0].id
        ids = {
            PARTICIPANT: _member(conn, "pat-secret", line, left, {"participant"}),
            WEB: _member(conn, None, line, right, {"participant"}, handle="webhandle-secret"),
            FAR: _member(conn, "far-secret", far_line, east, {"participant"}),
            FACILITATOR: _member(conn, "fac-secret", None, None, {"facilitator"}),
            MODERATOR: _member(conn, "mod-secret", line, right, {"moderator"}),
            REPORTED_MODERATOR: _member(conn, "modrep-secret", line, left, {"moderator"}),
            NEGOTIATOR: _member(conn, "neg-secret", None, None, {"negotiator"}),
            ADMIN: _member(conn, "admin-secret", None, None, {"admin"}),
            "owner": _member(conn, "owner-secret", line, left, {"participant"}),  # behind the pseudonym
            "proposer": _member(conn, "proposer-secret", line, left, {"moderator"}),
        }
        people = {k: members.get_member(conn, v) for k, v in ids.items()}
    w.ids.update(line=line, left=left, right=right)

    # The escrow, held by the two moderators and the admin.
    passphrases = {who: f"{who} passphrase, long enough" for who in (MODERATOR, REPORTED_MODERATOR, ADMIN)}
    for who, passphrase in passphrases.items():
        pseudonyms.set_moderator_key(hub, people[who], passphrase)
    pseudonyms.set_up_escrow(hub, people[ADMIN], 2, [ids[who] for who in passphrases])
    w.ids["passphrases"] = passphrases

    fac = people[FACILITATOR]

    def consultation(title: str, question: str):
        made = consultations.create(hub, fac, line, title, [{"en": question}], [left, right], premoderation=True)
        return made, made.questions[0].id

    # Consultation 3: collecting statements.
    c3, q3 = consultation("Title three secret", "Question three secret")
    consultations.change_phase(hub, fac, c3.id, Phase.COLLECTING)

    # Consultation 1: voting, with a room, a pseudonym, and a pending statement by its owner.
    c1, q1 = consultation("Title one secret", "Question one secret")
    consultations.attach_room(hub, fac, c1.id, f"!c1room-secret:{SERVER}")
    consultations.change_phase(hub, fac, c1.id, Phase.COLLECTING)
    for _ in range(2):  # accounts made by one batch can be taken from the next one on
        await pseudonym_pool.run_batch(hub)
    new = await pseudonyms.create_pseudonym(hub, people["owner"], c1.id, "River Voice")
    another = await pseudonyms.create_pseudonym(hub, people["owner"], c3.id, "Still Water")
    with engine.connect() as conn:
        ids[PSEUDONYM] = members.find_by_user_id(conn, new.user_id).id
    consultations.submit_statement(hub, fac, c1.id, q1, "Approved statement secret", "seed")
    consultations.submit_statement(hub, people[PARTICIPANT], c1.id, q1, "Pending statement secret", "web")
    consultations.change_phase(hub, fac, c1.id, Phase.VOTING)

    # Consultation 2: closed, report version 1 released, version 2 a draft.
    c2, q2 = consultation("Title two secret", "Question two secret")
    consultations.change_phase(hub, fac, c2.id, Phase.COLLECTING)
    consultations.submit_statement(hub, fac, c2.id, q2, "Closed statement secret", "seed")
    consultations.change_phase(hub, fac, c2.id, Phase.VOTING)
    for who in (PARTICIPANT, WEB, "owner"):
        consultations.cast_votes(hub, people[who], c2.id, [(1, VoteValue.AGREE)])
    consultations.change_phase(hub, fac, c2.id, Phase.CLOSED)
    r1 = reports.start_draft(hub, fac, c2.id)
    reports.release(hub, fac, r1.id, None)
    r2 = reports.start_draft(hub, fac, c2.id)
    reports.save_narrative(hub, fac, r2.id, "Draft narrative secret")


    # Two cases about the reported moderator: one open, one waiting for a second moderator.
    with engine.begin() as conn:
        case = case_store.add_case(
            conn, source="matrix_event", category=Category.THREATS, urgent=True, now_ms=0,
            room_id=f"!dialogue-secret:{SERVER}", event_id="$ev", reported_user=people[REPORTED_MODERATOR].matrix_user_id,
            reporter_member_id=ids[PARTICIPANT], reporter_user_id=people[PARTICIPANT].matrix_user_id,
            reason_sealed=moderation.seal(hub, "Reporter words secret"),
            contact_sealed=moderation.seal(hub, "signal +37399887766"), status_token_hash=token_hash("status-tok-1"))
        case_store.set_appeal_token(conn, case, token_hash("appeal-tok-1"))
        case_store.add_evidence(conn, case, "reporter_supplied", "text/plain", moderation.seal(hub, "Evidence secret"), 0)
        case_store.add_evidence(conn, case, "reporter_supplied", "image/png", moderation.seal(hub, PNG), 0)
        evidence_id = case_store.list_evidence(conn, case)[-1][0]
        waiting = case_store.add_case(
            conn, source="matrix_user", category=Category.HARASSMENT, urgent=False, now_ms=0,
            reported_user=people[REPORTED_MODERATOR].matrix_user_id, reporter_member_id=ids[PARTICIPANT],
            reason_sealed=moderation.seal(hub, "Second case words secret"))
        case_store.add_decision(conn, waiting, Action.DEACTIVATE, moderation.seal(hub, "Threats"), ids["proposer"],
                                "pending", False, 0)
        case_store.set_status(conn, waiting, CaseStatus.AWAITING_SECOND, 0)
        invitations.add_invitation(conn, token_hash("invite-code-1"), line, left, frozenset({"participant"}),
                                   ids[FACILITATOR], 0, int(time.time() * 1000) + 86_400_000)
        members.add_access_link(conn, token_hash("return-tok-1"), ids[WEB], 0)
        sessions.add_setup_token(conn, token_hash("setup-code-1"), 0, int(time.time() * 1000) + 86_400_000)
    request_id = pseudonyms.request_unmasking(hub, people[MODERATOR], case, new.user_id, "Needed for the case")

    # Live sessions of consultation 1: one open, one scheduled; a room of the line to open one in.
    live = LiveSessions(hub)
    lid = live.open_for_consultation(fac, c1.id, None).public_id
    scheduled = live.open_for_consultation(fac, c1.id, int(time.time() * 1000) + 86_400_000).public_id
    with engine.begin() as conn:
        hub_room = rooms.add_room(conn, f"!live-room-secret:{SERVER}", line, "consultation", "Room", ids[FACILITATOR], 0)

    # A session for each caller.
    with engine.begin() as conn:
        for who in CALLERS[1:]:
            cookie = f"session-{who.replace(' ', '-')}"
            sessions.add_session(conn, token_hash(cookie), ids[who], 0, int(time.time() * 1000) + 86_400_000)
            w.cookies[who] = cookie
        everyone = {who: members.get_member(conn, ids[who]) for who in ids}
    engine.dispose()

    w.ids.update(c1=c1.id, c2=c2.id, c3=c3.id, q1=q1, q3=q3, r1=r1.id, r2=r2.id, case=case, waiting=waiting,
                 evidence=evidence_id, request=request_id, pseudonym=new.user_id, another_pseudonym=another.user_id,
                 members=ids, lid=lid, scheduled=scheduled, hub_room=hub_room)
    for who, member in everyone.items():
        w.own[who] = {v for v in (member.matrix_user_id, member.web_handle) if v}
    case_data = {"Reporter words secret", "signal +37399887766", "Evidence secret", "Second case words secret",
                 "!dialogue-secret", f"/moderation/cases/{case}\"", f"/moderation/cases/{waiting}\""}
    w.private = ({v for own in w.own.values() for v in own} | case_data
                 | {"!c1room-secret", "!live-room-secret", "Title one secret", "Title two secret", "Title three secret", "Question one secret",
                    "Approved statement secret", "Pending statement secret", "Closed statement secret",
                    "Draft narrative secret"})
    w.never = {
        REPORTED_MODERATOR: case_data,
        NEGOTIATOR: {"Draft narrative secret", "Pending statement secret"},
        **{who: {"Pending statement secret"} for who in (WEB, PSEUDONYM, FAR)},
    }
    return w


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> World:
    return asyncio.run(_build(tmp_path_factory.mktemp("authz") / "data"))


# -- Requests -------------------------------------------------------------------------------------


def requests_for(w: World, who: str) -> dict[tuple[str, str], tuple[str, dict | None, dict | None]]:
    """(method, route) -> (path, form, json) naming real objects of the world."""
    i = w.ids
    line, c1, c2, c3, case = i["line"], i["c1"], i["c2"], i["c3"], i["case"]
    lid = i["lid"]
    api = f"/api/live/{lid}"
    vote = {"number": "1", "value": "agree", "submission_id": f"submission-{CALLERS.index(who):02d}"}
    return {
        ("GET", "/"): ("/", None, None),
        ("GET", "/_crossline/health"): ("/_crossline/health", None, None),
        ("GET", "/static"): ("/static/crossline.css", None, None),
        ("GET", "/login"): ("/login", None, None),
        ("POST", "/login"): ("/login", {"username": "nobody", "password": "wrong"}, None),
        ("POST", "/logout"): ("/logout", {}, None),
        ("GET", "/join/{code}"): ("/join/invite-code-1", None, None),
        ("POST", "/join/{code}"): ("/join/invite-code-1", {"username": "newcomer", "password": "a long password 1",
                                                           "password_again": "a long password 1"}, None),
        ("POST", "/join/{code}/web"): ("/join/invite-code-1/web", {}, None),
        ("GET", "/setup/{code}"): ("/setup/setup-code-1", None, None),
        ("POST", "/setup/{code}"): ("/setup/setup-code-1", {"username": "boss", "password": "a long password 1",
                                                            "password_again": "a long password 1"}, None),
        ("GET", "/r/{token}"): ("/r/return-tok-1", None, None),
        ("POST", "/r/{token}"): ("/r/return-tok-1", {}, None),
        ("GET", "/report"): ("/report", None, None),
        ("POST", "/report"): ("/report", {"category": "harassment", "text": "Something", "contact": "",
                                          "country": ""}, None),
        ("GET", "/report/status/{token}"): ("/report/status/status-tok-1", None, None),
        ("POST", "/report/status/{token}"): ("/report/status/status-tok-1", {"text": "More"}, None),
        ("GET", "/appeal/{token}"): ("/appeal/appeal-tok-1", None, None),
        ("POST", "/appeal/{token}"): ("/appeal/appeal-tok-1", {"text": "Not me"}, None),
        ("GET", "/lines"): ("/lines", None, None),
        ("POST", "/lines"): ("/lines", {"name": "Prut", "sides": "North\nSouth"}, None),
        ("GET", "/lines/{line_id}"): (f"/lines/{line}", None, None),
        ("POST", "/lines/{line_id}/invitations"): (f"/lines/{line}/invitations",
                                                   {"side_id": str(i["left"]), "roles": "participant"}, None),
        ("POST", "/lines/{line_id}/rooms"): (f"/lines/{line}/rooms", {
            "template": "cross-line-dialogue", "name": "New room", "topic": "",
            "member_ids": str(i["members"][PARTICIPANT])}, None),
        ("GET", "/lines/{line_id}/consultations/new"): (f"/lines/{line}/consultations/new", None, None),
        ("POST", "/lines/{line_id}/consultations"): (f"/lines/{line}/consultations", {
            "title": "Another", "questions": "What next?", "side_ids": str(i["left"])}, None),
        ("GET", "/consultations/{cid}"): (f"/consultations/{c1}", None, None),
        ("GET", "/consultations/{cid}/live"): (f"/consultations/{c1}/live", None, None),
        ("POST", "/consultations/{cid}/phase"): (f"/consultations/{c1}/phase", {"target": "closed"}, None),
        ("POST", "/consultations/{cid}/room"): (f"/consultations/{c3}/room", {}, None),
        ("POST", "/consultations/{cid}/statements"): (f"/consultations/{c1}/statements",
                                                      {"question_id": str(i["q1"]), "text": "Seeded again"}, None),
        ("POST", "/consultations/{cid}/moderate"): (f"/consultations/{c1}/moderate",
                                                    {"number": "2", "decision": "approve"}, None),
        ("GET", "/consultations/{cid}/report"): (f"/consultations/{c2}/report", None, None),
        ("POST", "/consultations/{cid}/report"): (f"/consultations/{c2}/report", {}, None),
        ("POST", "/reports/{rid}/narrative"): (f"/reports/{i['r2']}/narrative", {"narrative": "Changed"}, None),
        ("POST", "/reports/{rid}/release"): (f"/reports/{i['r2']}/release", {"room_id": ""}, None),
        ("GET", "/reports"): ("/reports", None, None),
        ("GET", "/reports/{rid}"): (f"/reports/{i['r1']}", None, None),
        ("GET", "/reports/{rid}/report.{fmt}"): (f"/reports/{i['r1']}/report.json", None, None),
        ("GET", "/reports/check"): ("/reports/check", None, None),
        ("POST", "/reports/check"): ("/reports/check", {}, None),
        ("GET", "/participate"): ("/participate", None, None),
        ("GET", "/participate/{cid}"): (f"/participate/{c1}", None, None),
        ("POST", "/participate/{cid}/statements"): (f"/participate/{c3}/statements", {
            "question_id": str(i["q3"]), "text": f"My view, {who}", "submission_id": vote["submission_id"]}, None),
        ("POST", "/participate/{cid}/votes"): (f"/participate/{c1}/votes", vote, None),
        ("POST", "/participate/{cid}/pseudonym"): (f"/participate/{c3}/pseudonym",
                                                   {"display_name": "Quiet Heron"}, None),
        ("GET", "/participate/who-may-invite"): ("/participate/who-may-invite", None, None),
        ("POST", "/participate/who-may-invite"): ("/participate/who-may-invite", {"invites_from": "line"}, None),
        ("POST", "/api/consultations/{cid}/votes"): (f"/api/consultations/{c1}/votes", None,
                                                     {"votes": [[1, "agree"]], "submission_id": vote["submission_id"]}),
        ("GET", "/api/csrf"): ("/api/csrf", None, None),
        ("GET", "/moderation"): ("/moderation", None, None),
        ("GET", "/moderation/cases/{case_id}"): (f"/moderation/cases/{case}", None, None),
        ("GET", "/moderation/cases/{case_id}/evidence/{evidence_id}"): (
            f"/moderation/cases/{case}/evidence/{i['evidence']}", None, None),
        ("POST", "/moderation/cases/{case_id}/triage"): (f"/moderation/cases/{case}/triage",
                                                         {"category": "threats", "urgent": "on"}, None),
        ("POST", "/moderation/cases/{case_id}/decide"): (f"/moderation/cases/{case}/decide",
                                                         {"action": "dismiss", "reason": "Not abuse"}, None),
        ("POST", "/moderation/cases/{case_id}/agree"): (f"/moderation/cases/{i['waiting']}/agree", {}, None),
        ("POST", "/moderation/cases/{case_id}/unmask"): (f"/moderation/cases/{case}/unmask",
                                                         {"pseudonym": i["another_pseudonym"], "reason": "Needed"}, None),
        ("POST", "/moderation/unmask/{request_id}/approve"): (
            f"/moderation/unmask/{i['request']}/approve",
            {"passphrase": i["passphrases"].get(who, "not this caller's passphrase")}, None),
        ("GET", "/moderation/audit"): ("/moderation/audit", None, None),
        ("GET", "/moderation/audit/head"): ("/moderation/audit/head", None, None),
        ("GET", "/moderation/escrow"): ("/moderation/escrow", None, None),
        ("POST", "/moderation/escrow/key"): ("/moderation/escrow/key", {"passphrase": "a new passphrase, long"}, None),
        ("POST", "/moderation/escrow"): ("/moderation/escrow", {
            "threshold": "2", "moderator_ids": [str(i["members"][MODERATOR]), str(i["members"][ADMIN])]}, None),
        ("POST", "/consultations/{cid}/live-sessions"): (f"/consultations/{c1}/live-sessions", {"starts_at": ""}, None),
        ("POST", "/rooms/{room}/live-sessions"): (f"/rooms/{i['hub_room']}/live-sessions", {"starts_at": ""}, None),
        ("GET", "/live/{lid}"): (f"/live/{lid}", None, None),
        ("POST", "/live/{lid}/start"): (f"/live/{i['scheduled']}/start", {}, None),
        ("POST", "/live/{lid}/interpreters"): (f"/live/{lid}/interpreters",
                                               {"member_id": str(i["members"][NEGOTIATOR]), "language": "ru"}, None),
        ("POST", "/api/live/{lid}/join"): (f"{api}/join", None, {"video": False, "role": "listener"}),
        ("POST", "/api/live/{lid}/publish"): (f"{api}/publish", None, {"sdp": "v=0 offer", "video": False}),
        ("POST", "/api/live/{lid}/subscribe"): (f"{api}/subscribe", None, {"feeds": FEEDS_FROM_STATE}),
        ("POST", "/api/live/{lid}/subscribe/answer"): (f"{api}/subscribe/answer", None, {"sdp": "v=0 answer"}),
        ("GET", "/api/live/{lid}/state"): (f"{api}/state", None, None),
        ("POST", "/api/live/{lid}/hand"): (f"{api}/hand", None, {"raised": True}),
        ("POST", "/api/live/{lid}/leave"): (f"{api}/leave", None, {}),
        ("POST", "/api/live/{lid}/control"): (f"{api}/control", None, {"action": "mute_all"}),
    }


FEEDS_FROM_STATE = "the feeds the caller's state lists"


def live_steps(w: World, who: str, key) -> list[tuple[str, str, dict]]:
    """What a live-session request needs done first, as (caller, path, JSON): her own join, and
    for subscribing, someone else publishing."""
    api = f"/api/live/{w.ids['lid']}"
    other = ADMIN if who != ADMIN else FACILITATOR
    join = lambda caller: (caller, f"{api}/join", {"video": False, "role": "listener"})  # noqa: E731
    publish = (other, f"{api}/publish", {"sdp": "v=0 offer", "video": False})
    subscribe = (who, f"{api}/subscribe", {"feeds": FEEDS_FROM_STATE})
    return {"publish": [join(who)], "hand": [join(who)], "control": [join(who)],
            "subscribe": [join(other), publish, join(who)],
            "answer": [join(other), publish, join(who), subscribe]}.get(key[1].rsplit("/", 1)[-1], []) \
        if key[1].startswith("/api/live/") else []


def router_routes(app) -> set[tuple[str, str]]:
    """Every (method, route) the app answers; HEAD is GET's twin and follows its entry."""
    found = set()
    for route in app.router.routes():
        method = "GET" if route.method == "HEAD" else route.method
        found.add((method, route.resource.canonical))
    return found


# -- Tests ----------------------------------------------------------------------------------------


def test_every_route_has_an_entry_in_the_table(template):
    app = create_app(load_config(template.data_dir), background=False)
    routes = router_routes(app)
    assert routes - set(ACCESS) == set(), "routes with no authorization entry: add them to ACCESS"
    assert set(ACCESS) - routes == set(), "entries for routes that no longer exist"
    assert set(requests_for(template, ANON)) == set(ACCESS)


def _copy(template: World, target: Path) -> World:
    shutil.copytree(template.data_dir, target)
    return World(target, template.ids, template.cookies, template.own, template.private, template.never)


async def _client(aiohttp_client, w: World):
    client = await aiohttp_client(create_app(load_config(w.data_dir), background=False))
    client.app[HUB].homeserver = Homeserver()
    client.app[LIVE].janus = FakeJanus()
    return client


async def _media_up(client) -> None:
    """What Janus reports once a browser's media is up (webrtcup): answered feeds become listed."""
    live = client.app[LIVE]
    for running in list(live.running.values()):
        for present in [p for p in running.present.values() if p.answered and not p.published]:
            await live.handle_event(JanusEvent(running.room.room_id, present.feed_id, "published"))


async def _send(client, w: World, who: str, method: str, path: str, form, body):
    csrf_cookie = f"csrf-{who.replace(' ', '-')}"
    web_secret = secrets.read_secret(w.data_dir / "secrets", secrets.WEB_SECRET).encode()
    csrf = hmac.new(web_secret, csrf_cookie.encode(), sha256).hexdigest()
    cookies = {"crossline_csrf": csrf_cookie}
    if who in w.cookies:
        cookies["crossline_session"] = w.cookies[who]
    client.session.cookie_jar.clear()
    headers = {}
    if body is not None:
        headers["X-CSRF-Token"] = csrf
        if body.get("feeds") == FEEDS_FROM_STATE:
            status, _, text = await _send(client, w, who, "GET", path.rsplit("/", 1)[0] + "/state", None, None)
            body = {"feeds": [f["feed_id"] for f in json.loads(text)["feeds"]] if status == 200 else [1]}
    elif form is not None:
        form = [*(((k, x) for x in v) if isinstance(v, list) else [(k, v)] for k, v in form.items())]
        form = [pair for pairs in form for pair in pairs] + [("csrf_token", csrf)]
    response = await client.request(method, path, data=form, json=body, cookies=cookies, headers=headers,
                                    allow_redirects=False)
    return response.status, response.headers.get("Location", ""), await response.text(errors="replace")


# A personal link is its person's credential: its pages may name her to whoever holds it.
LINK_OF = {"/r/{token}": WEB}

# Not signed in: to the login page; a participant on a staff page: to her own page (where she
# sees only her own consultations).
REFUSING_REDIRECTS = ("/login", "/participate")


def _verdict(w: World, who: str, key, status: int, location: str, text: str) -> str | None:
    """What is wrong with this answer, or None."""
    allowed = ACCESS[key]
    if status >= 500:
        return f"{status}"
    shown_to_link_holder = w.own[LINK_OF[key[1]]] if key[1] in LINK_OF else set()
    visible = {marker for marker in w.private if marker not in w.own.get(who, set()) | shown_to_link_holder}
    never = w.never.get(who, set())
    if allowed == PUBLIC or who in allowed:
        leaked = [m for m in never if m in text]
        if leaked:
            return f"shows {leaked}"
        if allowed != PUBLIC and (status >= 400 or (300 <= status < 400 and location in REFUSING_REDIRECTS)):
            return f"refused an allowed caller: {status} {location} {text[:300]!r}"
        if allowed == PUBLIC:
            leaked = [m for m in visible if m in text]
            return f"public answer shows {leaked}" if leaked else None
        return None
    if not (status in (403, 404) or (status == 303 and location in REFUSING_REDIRECTS)):
        return f"let through: {status} {location}"
    leaked = [m for m in visible if m in text]
    return f"refusal shows {leaked}" if leaked else None


async def test_every_role_opens_only_what_it_needs(aiohttp_client, template, tmp_path):
    """Denied callers and reads share one world; each allowed change gets a fresh copy."""
    problems = []
    shared = await _client(aiohttp_client, _copy(template, tmp_path / "shared"))
    copies = 0
    for key in sorted(ACCESS):
        method = key[0]
        allowed = ACCESS[key]
        for who in CALLERS:
            path, form, body = requests_for(template, who)[key]
            gets_through = allowed == PUBLIC or who in allowed
            if method == "POST" and gets_through:
                copies += 1
                w = _copy(template, tmp_path / f"w{copies}")
                client = await _client(aiohttp_client, w)
            else:
                w, client = template, shared
            for caller, step_path, step_body in live_steps(template, who, key):
                await _send(client, w, caller, "POST", step_path, None, step_body)
                await _media_up(client)
            methods = ("GET", "HEAD") if method == "GET" else (method,)
            for sent in methods:
                status, location, text = await _send(client, w, who, sent, path, form, body)
                problem = _verdict(w, who, key, status, location, text)
                if problem:
                    problems.append(f"{who:>40} {sent:4} {path}: {problem}")
            if client is not shared:
                await client.close()
    assert not problems, "\n" + "\n".join(problems)


def test_the_room_path_checks_roles_as_the_pages_do(hub):
    """The bot applies room messages through the same services: a staff member with a side but no
    participant role neither writes nor votes there either; a facilitator still seeds."""
    with hub.engine.begin() as conn:
        left, right = [s.id for s in lines.get_line(conn, 1).sides]
        moderator = members.get_member(conn, _member(conn, "sided-mod", 1, left, {"moderator"}))
        voter = members.get_member(conn, _member(conn, "voter", 1, left, {"participant"}))
    made = consultations.create(hub, hub.facilitator, 1, "Room path", [{"en": "What first?"}], [left, right],
                                premoderation=False)
    consultations.change_phase(hub, hub.facilitator, made.id, Phase.COLLECTING)
    question = made.questions[0].id
    with pytest.raises(NotAllowed):
        consultations.submit_statement(hub, moderator, made.id, question, "A moderator's view", "matrix")
    consultations.submit_statement(hub, hub.facilitator, made.id, question, "Seeded", "matrix")
    consultations.change_phase(hub, hub.facilitator, made.id, Phase.VOTING)
    with pytest.raises(NotAllowed):
        consultations.cast_votes(hub, moderator, made.id, [(1, VoteValue.AGREE)])
    assert consultations.cast_votes(hub, voter, made.id, [(1, VoteValue.AGREE)]) == [1]


async def test_each_role_starts_on_its_own_page(aiohttp_client, template, tmp_path):
    client = await _client(aiohttp_client, _copy(template, tmp_path / "home"))
    first_pages = {ANON: "/login", FACILITATOR: "/lines", ADMIN: "/lines", MODERATOR: "/moderation",
                   REPORTED_MODERATOR: "/moderation", NEGOTIATOR: "/reports", PARTICIPANT: "/participate",
                   WEB: "/participate", PSEUDONYM: "/participate", FAR: "/participate"}
    for who, page in first_pages.items():
        status, location, _ = await _send(client, template, who, "GET", "/", None, None)
        assert (status, location) == (303, page), who


def test_a_moderator_sees_her_own_escrow_key_only_an_admin_sees_who_has_one(hub):
    with hub.engine.begin() as conn:
        ids = [_member(conn, name, None, None, {"moderator"}) for name in ("mona", "lena")]
        mona, lena = (members.get_member(conn, i) for i in ids)
    pseudonyms.set_moderator_key(hub, lena, "lena's long passphrase")
    assert escrow_view(hub, mona).moderators == [] and escrow_view(hub, mona).with_keys == set()
    assert escrow_view(hub, lena).with_keys == {lena.id}
    assert {m.id for m in escrow_view(hub, hub.admin).moderators} >= {mona.id, lena.id}
    assert escrow_view(hub, hub.admin).with_keys == {lena.id}
    for refused in (hub.facilitator, None):
        with pytest.raises(NotAllowed):
            escrow_view(hub, refused)
