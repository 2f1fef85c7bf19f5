"""The audit log listed, filtered and in words, for the operator (`crossline audit list`, every
entry) and for moderators (/moderation/audit), to whom a case about herself does not exist.

Listing is not itself audited, unlike opening a case (services/moderation.view): a line shows who
did what, when and on which case number, never a report's words, contact or evidence, which only
the audited case page opens. An entry per page read would also grow the record each time it is
read, so paging through it would never end where it began.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from crossline.domain import audit_listing as words
from crossline.domain.audit_listing import Filters, Row
from crossline.domain.records import Member
from crossline.errors import InvalidInput, NotFound
from crossline.services import audit_heads
from crossline.services.hub import Hub
from crossline.services.moderation import concerns
from crossline.services.onboarding import require
from crossline.storage import audit, members
from crossline.storage import moderation as case_store


@dataclass(frozen=True)
class Listing:
    rows: list[Row]
    older: int | None  # before_seq for the next page, or None: nothing older matches
    gone_left_out: bool  # entries of cases deleted by retention were left out (moderators' view)


def _actor(conn, who: words.Who | None) -> str | None:
    if who is None:
        return None
    if who.word is not None:
        return who.word
    if who.user_id is not None:
        member = members.find_by_user_id(conn, who.user_id)
        if member is None:
            raise InvalidInput(f"Moderator: no member of this hub has the Matrix id {who.user_id}. Write it as "
                               "the list shows it (@name:server), or give her member number.")
        return f"member:{member.id}"
    return f"member:{who.member_id}"


def _rows(conn, filters: Filters, shown: Callable[[int | None], bool | None]) -> Listing:
    """Newest first. shown(case): True, False (the viewer may not see it), None (the case is gone
    and whom it concerned is unknown: left out, and said so)."""
    actor = _actor(conn, filters.who)
    kept, before, older, gone = [], filters.before_seq, None, False
    while older is None:
        batch = audit.listing(conn, case_id=filters.case_id, actor=actor, since_ms=filters.since_ms,
                              until_ms=filters.until_ms, limit=filters.limit, before_seq=before)
        for stored in batch:
            visible = shown(stored.entry["case_id"])
            gone = gone or visible is None
            if visible:
                kept.append(stored.entry)
                if len(kept) == filters.limit:
                    older = stored.seq
                    break
        if len(batch) < filters.limit:
            break
        before = batch[-1].seq
    named = set().union(*(words.members_named(entry) for entry in kept))
    names = {n: m.shown_as for n in named if (m := members.get_member(conn, n)) is not None}
    return Listing([words.describe(entry, names) for entry in kept], older, gone)


def for_operator(hub: Hub, filters: Filters) -> Listing:
    """Every entry: whoever runs `crossline` on the server can read the database anyway."""
    with hub.engine.connect() as conn:
        return _rows(conn, filters, lambda case_id: True)


def for_moderator(hub: Hub, actor: Member, filters: Filters) -> Listing:
    """Without the entries of a case about her (the same answer as for a case number that does
    not exist), nor those of deleted cases, which no longer say whom they concerned."""
    require(actor, "moderator")
    with hub.engine.connect() as conn:
        seen: dict[int, bool | None] = {}

        def shown(case_id: int | None) -> bool | None:
            if case_id is None:
                return True
            if type(case_id) is not int:  # written by hand: whom it concerns is unknown, as for a deleted case
                return None
            if case_id not in seen:
                case = case_store.get_case(conn, case_id)
                seen[case_id] = None if case is None else not concerns(conn, hub, actor, case)
            return seen[case_id]

        return _rows(conn, filters, shown)


@dataclass(frozen=True)
class AuditPage:
    listing: Listing
    checked: audit_heads.Checked  # the whole log against the chain, the key and the kept head
    moderators_room: bool  # False: no room of template "moderation", so signed heads reach no one


def page(hub: Hub, actor: Member, typed: dict[str, str | None], page_size: int) -> AuditPage:
    """typed: the filters as written in the page's form (case, moderator, since, until) and before."""
    require(actor, "moderator")  # before reading what she wrote: anyone else is refused, whatever it is
    listing = for_moderator(hub, actor, words.parse_filters(**typed, default_limit=page_size))
    with hub.engine.connect() as conn:
        rooms = audit_heads.moderators_rooms(conn)
    return AuditPage(listing, audit_heads.verify(hub), bool(rooms))


def head_file(hub: Hub, actor: Member) -> str:
    """The latest signed head, as a file for `crossline audit verify --head`."""
    require(actor, "moderator")
    text = audit_heads.download(hub)
    if text is None:
        raise NotFound("There is no signed head to download: the audit log holds no entries yet, or the head the "
                       "hub keeps cannot be read (the record's page says why).")
    return text
