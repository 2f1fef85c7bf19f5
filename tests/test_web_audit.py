"""The moderators' page of the audit log (/moderation/audit) and its signed head's download, through
the whole web stack: who may open them, the record in words with its verdict, a case about the
viewing moderator never shown to her, paging, hostile filters, and a download that verifies."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select, text

from crossline.cli import main
from crossline.clock import token_hash
from crossline.services import moderation as service
from crossline.setup import init_data_dir
from crossline.storage import lines, members, rooms, sessions
from crossline.storage.schema import audit_log
from crossline.web import audit as audit_pages
from crossline.web.app import create_app
from crossline.web.keys import HUB
from crossline.web.security import CONTENT_SECURITY_POLICY, SESSION_COOKIE
from tests.fakes import FakeClock, FakeHomeserver
from tests.test_cli_audit_list import at

SERVER = "crossline.local"
ROLES = {"participant": {"participant"}, "facilitator": {"facilitator"}, "negotiator": {"negotiator"},
         "moderator": {"moderator"}, "admin": {"admin"}}
ROUTES = ("/moderation/audit", "/moderation/audit/head", "/moderation/audit?case=1&since=2026-11-01")


async def report(hub, sender: str, reason: str = "He keeps calling me a traitor") -> int:
    reports = hub.homeserver.matrix_reports["event_reports"]
    reports.append({"id": len(reports) + 1, "room_id": f"!dialogue:{SERVER}", "event_id": f"$ev{len(reports)}",
                    "user_id": f"@alice:{SERVER}", "sender": sender, "reason": reason})
    (case_id,) = await service.take_in_matrix_reports(hub)
    return case_id


@pytest.fixture
async def site(aiohttp_client, tmp_path):
    """A hub with moderators Mona (left bank), Rita (right) and Lena (left, reported in one case),
    one member of every other role, and three cases: the harasser's (decided by Mona and Rita),
    Lena's (opened by Mona) and a third, dismissed."""
    config = init_data_dir(tmp_path / "data", hub_port=18921, synapse_port=18922)[0]
    client = await aiohttp_client(create_app(config, clock=FakeClock(at("2026-11-26")), background=False))
    hub = client.app[HUB]
    hub.homeserver = FakeHomeserver()
    never = at("2036-01-01")
    with hub.engine.begin() as conn:
        line = lines.add_line(conn, "nistru", "Nistru", ["Left bank", "Right bank"], 0)
        left, right = [side.id for side in lines.get_line(conn, line).sides]
        people = {name: members.add_member(conn, f"@{name}:{SERVER}", line, side, frozenset({"moderator"}), None, 0)
                  for name, side in (("mona", left), ("rita", right), ("lena", left))}
        people |= {role: members.add_member(conn, f"@{role}-person:{SERVER}", line if role == "participant" else None,
                                            left if role == "participant" else None, frozenset(roles), None, 0)
                   for role, roles in ROLES.items() if role != "moderator"}
        people["moderator"] = people["mona"]
        for who, member_id in people.items():
            sessions.add_session(conn, token_hash(f"session-{who}"), member_id, 0, never)
        rooms.add_room(conn, f"!dialogue:{SERVER}", line, "cross-line-dialogue", "Dialogue", people["admin"], 0)
        site_members = {who: members.get_member(conn, member_id) for who, member_id in people.items()}
    harasser = await report(hub, f"@harasser:{SERVER}")
    service.view(hub, site_members["mona"], harasser)
    await service.decide(hub, site_members["mona"], harasser, ["ban_all"], "Threats, again")
    await service.agree(hub, site_members["rita"], harasser)
    hub.clock.now = at("2026-11-28")
    about_lena = await report(hub, f"@lena:{SERVER}", "She posted my address")
    service.view(hub, site_members["mona"], about_lena)
    service.triage(hub, site_members["mona"], about_lena, "doxing", True)
    third = await report(hub, f"@someone:{SERVER}", "Spam")
    await service.decide(hub, site_members["rita"], third, ["dismiss"], "Not abuse")
    client.people, client.cases = site_members, {"harasser": harasser, "lena": about_lena, "third": third}
    return client


async def get(client, who: str | None, path: str, method: str = "GET"):
    cookies = {SESSION_COOKIE: f"session-{who}"} if who else {}
    client.session.cookie_jar.clear()
    response = await client.request(method, path, cookies=cookies, allow_redirects=False)
    return response, await response.text(errors="replace")


def seqs(page: str) -> list[int]:
    return [int(n) for n in re.findall(r"<tr><td>(\d+)</td><td>\d{4}-", page)]


def entry_count(client) -> int:
    with client.app[HUB].engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(audit_log)).scalar()


async def test_only_moderators_open_the_record_and_its_head(site):
    allowed = {"moderator", "admin", "lena"}
    wrong = []
    for who in (None, "participant", "facilitator", "negotiator", "moderator", "admin", "lena"):
        for path in ROUTES:
            for method in ("GET", "HEAD"):
                response, body = await get(site, who, path, method)
                status, location = response.status, response.headers.get("Location", "")
                if who in allowed:
                    ok = status == 200
                else:
                    ok = (status, location) in (((303, "/login"),) if who is None else
                                                 ((303, "/participate"),) if who == "participant" else ((403, ""),))
                    ok = ok and "@mona" not in body and "report received" not in body \
                        and "crossline-audit-head" not in body
                if not ok:
                    wrong.append(f"{who} {method} {path}: {status} {location} {body[:200]!r}")
    assert not wrong, "\n".join(wrong)


async def test_the_record_is_shown_in_words_with_its_verdict(site):
    before = entry_count(site)
    response, page = await get(site, "rita", "/moderation/audit")
    assert response.status == 200
    assert "The record verifies: " in page and 'id="no-moderators-room"' in page
    shown = seqs(page)
    assert shown == sorted(shown, reverse=True) == list(range(before, 0, -1))  # Rita: no case is about her
    assert "<code>@mona:crossline.local</code>" in page and "<td>a Matrix report</td>" in page
    assert "proposed (waits for a second moderator)" in page and "Ban from every hub room" in page
    assert f'<a href="/moderation/cases/{site.cases["lena"]}">' in page
    assert "member:" not in page and "traitor" not in page and "She posted my address" not in page
    assert entry_count(site) == before  # reading the record adds nothing to it
    with site.app[HUB].engine.begin() as conn:
        conn.execute(text("update audit_log set actor = 'member:999' where seq = 2"))
    page = (await get(site, "rita", "/moderation/audit"))[1]
    assert "BROKEN: entry 2 was changed after it was written" in page


async def test_a_moderators_room_ends_the_warning(site):
    with site.app[HUB].engine.begin() as conn:
        rooms.add_room(conn, f"!mods:{SERVER}", 1, "moderation", "Moderators", site.people["admin"].id, 0)
    page = (await get(site, "rita", "/moderation/audit"))[1]
    assert "no-moderators-room" not in page and "The record verifies" in page


async def test_a_case_about_her_does_not_exist_for_her(site):
    lena_case = site.cases["lena"]
    with site.app[HUB].engine.connect() as conn:
        hers = [r[0] for r in conn.execute(select(audit_log.c.seq).where(audit_log.c.case_id == lena_case))]
    assert len(hers) == 3  # received, opened by Mona, triaged
    everything = seqs((await get(site, "rita", "/moderation/audit"))[1])
    _, page = await get(site, "lena", "/moderation/audit")
    assert seqs(page) == [n for n in everything if n not in hers]
    assert f"/moderation/cases/{lena_case}" not in page and "Sharing private information" not in page
    for query in (f"case={lena_case}", f"case={lena_case}&moderator=%40mona%3Acrossline.local",
                  "moderator=matrix", "since=2026-11-28&until=2026-11-28"):
        shown = seqs((await get(site, "lena", f"/moderation/audit?{query}"))[1])
        assert not set(shown) & set(hers), query
    # Her own case answers as a case number that does not exist.
    mine = (await get(site, "lena", f"/moderation/audit?case={lena_case}"))[1]
    nothing = (await get(site, "lena", "/moderation/audit?case=987654"))[1]
    assert "No entries match." in mine and seqs(mine) == seqs(nothing) == []
    def without_typed(page: str, number: str) -> str:
        page = re.sub(r'name="csrf_token" value="[^"]+"', "", page)  # a new form token each time
        return page.replace(f'name="case" inputmode="numeric" value="{number}"', "")
    assert without_typed(mine, str(lena_case)) == without_typed(nothing, "987654")
    assert seqs((await get(site, "rita", f"/moderation/audit?case={lena_case}"))[1]) == sorted(hers, reverse=True)


async def test_entries_of_a_deleted_case_are_left_out_and_said_so(site):
    hub = site.app[HUB]
    hub.clock.now = at("2027-06-01")  # past the third case's retention (180 days after it was decided)
    assert site.cases["third"] in service.apply_retention(hub)
    _, page = await get(site, "rita", "/moderation/audit")
    with hub.engine.connect() as conn:
        gone = {r[0] for r in conn.execute(select(audit_log.c.seq).where(audit_log.c.case_id == site.cases["third"]))}
    assert gone and not set(seqs(page)) & gone and 'id="gone-left-out"' in page
    assert main(["audit", "list", "--data-dir", str(hub.config.data_dir), "--case", str(site.cases["third"])]) == 0


@pytest.mark.parametrize("who", ["rita", "lena"])
async def test_the_record_is_read_page_by_page(site, monkeypatch, who):
    everything = seqs((await get(site, who, "/moderation/audit"))[1])
    monkeypatch.setattr(audit_pages, "PAGE_SIZE", 3)
    path, seen, pages = "/moderation/audit?since=2026-11-01", [], 0
    while path:
        _, page = await get(site, who, path.replace("&amp;", "&"))
        shown = seqs(page)
        assert len(shown) <= 3
        seen += shown
        pages += 1
        older = re.search(r'<a href="([^"]+)" id="older">', page)
        path = older.group(1) if older else None
        if pages > 1:
            assert 'id="newest"' in page
    assert seen == everything and pages >= len(everything) // 3


HOSTILE = [("case", "-1"), ("case", "0"), ("case", "twelve"), ("case", "9" * 25), ("case", "١٢"), ("case", "1e3"),
           ("moderator", "@nobody:crossline.local"), ("moderator", "мона"), ("moderator", "<script>alert(1)</script>"),
           ("moderator", "x" * 7000), ("since", "2026-02-30"), ("since", "yesterday"), ("since", "２０２６-１１-２８"),
           ("until", "2026-13-01"), ("until", "0000-01-01"), ("before", "-3"), ("before", "abc"),
           ("before", "9" * 40), ("since", "x" * 7000)]


async def test_hostile_filters_get_a_sentence_never_a_server_error(site):
    before, wrong = entry_count(site), []
    for name, value in HOSTILE:
        response = await site.get("/moderation/audit", params={name: value},
                                  cookies={SESSION_COOKIE: "session-rita"}, allow_redirects=False)
        page = await response.text(errors="replace")
        if not (response.status == 400 and 'class="error" role="alert"' in page and "<script>alert" not in page
                and 'id="audit-filters"' in page and seqs(page) == []):
            wrong.append(f"{name}={value[:30]!r}: {response.status} {page[:300]!r}")
    assert not wrong, "\n".join(wrong)
    _, page = await get(site, "rita", "/moderation/audit?moderator=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in page  # what she typed, given back, harmless
    _, page = await get(site, "rita", "/moderation/audit?since=2026-11-28&until=2026-11-27")
    assert "Until is before since" in page
    # Undecodable, control characters, past aiohttp's 8 KB request line: refused; repeated: the first is used.
    for query, status in (("case=%FF%FE", 400), ("moderator=%00", 400), ("since=" + "9" * 10_240, 400),
                          ("x" * 10_240, 400), ("case=1&case=2", 200)):
        response, _ = await get(site, "rita", f"/moderation/audit?{query}")
        assert response.status == status, query[:30]
    # Someone who is not a moderator is refused, whatever she wrote.
    response, _ = await get(site, "facilitator", "/moderation/audit?case=-1")
    assert response.status == 403
    assert entry_count(site) == before


async def test_the_page_keeps_to_the_hubs_content_security_policy(site):
    for query in ("", "?case=abc"):
        response, page = await get(site, "rita", f"/moderation/audit{query}")
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert not re.search(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=", page)
        assert re.search(r'<form method="get" action="/moderation/audit"', page)  # reads nothing: no token needed
    response, _ = await get(site, "rita", "/moderation/audit", "POST")
    assert response.status in (403, 405)  # never changes anything


async def test_the_downloaded_head_verifies_the_record(site, tmp_path, capsys):
    hub = site.app[HUB]
    response, body = await get(site, "mona", "/moderation/audit/head")
    assert response.status == 200 and response.content_type == "text/plain"
    assert response.headers["Content-Disposition"] == 'attachment; filename="crossline-audit-head.txt"'
    head = tmp_path / "head.txt"
    head.write_text(body)
    hub.config.paths.audit_head.unlink()  # the download alone must hold what verify needs
    data_dir = ["--data-dir", str(hub.config.data_dir)]
    assert main(["audit", "verify", "--head", str(head), *data_dir]) == 0
    last = entry_count(site)
    assert f"It holds the latest signed head known (entry {last})" in capsys.readouterr().out
    with hub.engine.begin() as conn:
        conn.execute(text("delete from audit_log where seq = :seq"), {"seq": last})
    assert main(["audit", "verify", "--head", str(head), *data_dir]) == 1
    assert f"entry {last} is missing at the end" in capsys.readouterr().err


async def test_no_head_to_download_from_an_empty_record(aiohttp_client, tmp_path):
    config = init_data_dir(tmp_path / "data", hub_port=18923, synapse_port=18924)[0]
    client = await aiohttp_client(create_app(config, background=False))
    with client.app[HUB].engine.begin() as conn:
        member = members.add_member(conn, f"@mona:{SERVER}", None, None, frozenset({"moderator"}), None, 0)
        sessions.add_session(conn, token_hash("session-mona"), member, 0, at("2099-01-01"))
    response, page = await get(client, "mona", "/moderation/audit/head")
    assert response.status == 404 and "There is no signed head to download" in page
    response, page = await get(client, "mona", "/moderation/audit")
    assert response.status == 200 and "The record verifies: 0 entries" in page and "No entries match." in page


async def test_a_hand_written_value_is_named_on_the_page_never_a_server_error(site):
    """A one-byte BLOB where the hub writes text (an SQLite file edited): the page names the entry,
    the download says why there is no head, and a decision still goes through (review of issue 27)."""
    hub = site.app[HUB]
    with hub.engine.begin() as conn:
        conn.execute(text("update audit_log set mac = X'00', actor = X'00' where seq = 2"))
    response, page = await get(site, "mona", "/moderation/audit")
    assert response.status == 200 and "BROKEN: entry 2 holds what the hub never writes (its actor, mac)" in page
    response, _ = await get(site, "mona", "/moderation/audit/head")
    assert response.status in (200, 404)
    await service.decide(hub, site.people["rita"], site.cases["lena"], ["dismiss"], "Not abuse")
