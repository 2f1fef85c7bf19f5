"""The hub's tables. Times are integer milliseconds since the epoch (UTC), from the injected clock.

What is deliberately absent: names, e-mail addresses, phone numbers, message content. A member
is a Matrix account id, a declared side and roles.
"""

from sqlalchemy import (
    BigInteger, Boolean, Column, ForeignKey, Index, Integer, LargeBinary, MetaData, SmallInteger, String, Table, Text,
    UniqueConstraint, text,
)

metadata = MetaData()

lines = Table(
    "lines",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

sides = Table(
    "sides",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("line_id", Integer, ForeignKey("lines.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    UniqueConstraint("line_id", "name", name="uq_sides_line_name"),
)

members = Table(
    "members",
    metadata,
    Column("id", Integer, primary_key=True),
    # Empty for a participant who takes part on the web only.
    Column("matrix_user_id", String(255), nullable=True, unique=True),
    # An opaque handle for web-only participants (never derived from a name).
    Column("web_handle", String(64), nullable=True, unique=True),
    # Staff who are not on one side (a neutral facilitator, the hub admin) have no line or side.
    Column("line_id", Integer, ForeignKey("lines.id"), nullable=True, index=True),
    Column("side_id", Integer, ForeignKey("sides.id"), nullable=True),
    # argon2id; only for members who use the staff web pages.
    Column("web_password_hash", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

member_roles = Table(
    "member_roles",
    metadata,
    Column("member_id", Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(32), primary_key=True),
)

invitations = Table(
    "invitations",
    metadata,
    Column("id", Integer, primary_key=True),
    # SHA-256 of the invitation code; the code itself (also the Synapse registration token)
    # exists only in the link given to the person.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("line_id", Integer, ForeignKey("lines.id"), nullable=False),
    Column("side_id", Integer, ForeignKey("sides.id"), nullable=True),
    Column("roles", String(200), nullable=False),
    Column("created_by", Integer, ForeignKey("members.id"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
    Column("member_id", Integer, ForeignKey("members.id"), nullable=True),
)

rooms = Table(
    "rooms",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("room_id", String(255), nullable=False, unique=True),
    Column("line_id", Integer, ForeignKey("lines.id"), nullable=False, index=True),
    Column("template", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_by", Integer, ForeignKey("members.id"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    # SHA-256 of the session cookie: a copy of the database does not hand out live sessions.
    Column("id_hash", String(64), primary_key=True),
    Column("member_id", Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

setup_tokens = Table(
    "setup_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
)

web_access_links = Table(
    "web_access_links",
    metadata,
    # A web participant's personal return link, stored as SHA-256.
    Column("token_hash", String(64), primary_key=True),
    Column("member_id", Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

consultations = Table(
    "consultations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("line_id", Integer, ForeignKey("lines.id"), nullable=False, index=True),
    Column("title", String(200), nullable=False),
    Column("phase", String(16), nullable=False),
    Column("premoderation", Boolean, nullable=False),
    Column("room_id", String(255), nullable=True, unique=True),
    Column("created_by", Integer, ForeignKey("members.id"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("phase_changed_at", BigInteger, nullable=False),
)

consultation_sides = Table(
    "consultation_sides",
    metadata,
    Column("consultation_id", Integer, ForeignKey("consultations.id", ondelete="CASCADE"), primary_key=True),
    Column("side_id", Integer, ForeignKey("sides.id"), primary_key=True),
)

questions = Table(
    "questions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("consultation_id", Integer, ForeignKey("consultations.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("prompts", Text, nullable=False),
    UniqueConstraint("consultation_id", "position", name="uq_questions_position"),
)

statements = Table(
    "statements",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("consultation_id", Integer, ForeignKey("consultations.id", ondelete="CASCADE"), nullable=False),
    Column("question_id", Integer, ForeignKey("questions.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("author_member_id", Integer, ForeignKey("members.id"), nullable=True),
    Column("text", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("seeded", Boolean, nullable=False),
    Column("moderation_reason", Text, nullable=False, server_default=""),
    Column("origin", String(8), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("consultation_id", "number", name="uq_statements_number"),
    Index("ix_statements_consultation_status", "consultation_id", "status"),
)

votes = Table(
    "votes",
    metadata,
    Column("statement_id", Integer, ForeignKey("statements.id", ondelete="CASCADE"), primary_key=True),
    Column("member_id", Integer, ForeignKey("members.id"), primary_key=True),
    Column("consultation_id", Integer, ForeignKey("consultations.id", ondelete="CASCADE"), nullable=False),
    Column("value", SmallInteger, nullable=False),
    Column("voted_at", BigInteger, nullable=False),
    Index("ix_votes_consultation_member", "consultation_id", "member_id"),
)

web_submissions = Table(
    "web_submissions",
    metadata,
    Column("member_id", Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
    Column("submission_id", String(64), primary_key=True),
    Column("created_at", BigInteger, nullable=False, index=True),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("event_id", String(255), primary_key=True),
    Column("processed_at", BigInteger, nullable=False, index=True),
)

bot_state = Table(
    "bot_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("room_id", String(255), nullable=False),
    Column("txn_id", String(255), nullable=False, unique=True),
    Column("content", Text, nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("consultation_id", Integer, nullable=True),
    Column("question_id", Integer, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

bot_messages = Table(
    "bot_messages",
    metadata,
    Column("event_id", String(255), primary_key=True),
    Column("consultation_id", Integer, ForeignKey("consultations.id", ondelete="CASCADE"), nullable=False),
    Column("question_id", Integer, ForeignKey("questions.id"), nullable=True),
)

pending_events = Table(
    "pending_events",
    metadata,
    Column("event_id", String(255), primary_key=True),
    Column("room_id", String(255), nullable=False),
    Column("event", Text, nullable=False),
    Column("first_seen", BigInteger, nullable=False),
)

# Whose a room command was, and the statement it made: an edit counts only from the event's own
# sender, and edits or deletes the statement it made. Kept as long as processed_events.
room_event_origins = Table(
    "room_event_origins",
    metadata,
    Column("event_id", String(255), primary_key=True),
    Column("member_id", Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False),
    Column("statement_id", Integer, ForeignKey("statements.id", ondelete="CASCADE"), nullable=True),
    Column("recorded_at", BigInteger, nullable=False, index=True),
    Column("room_id", String(255), nullable=True),  # None: recorded before 0010
    Column("votes", Text, nullable=True),  # a vote event's votes, JSON [[number, value], ...]
    Column("edited", Boolean, nullable=False, server_default="0"),  # a statement's words edited
)

# A consultation's report: drafts, then signed releases. A correction is a new version naming the
# release it replaces; a released row is never changed.
reports = Table(
    "reports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("consultation_id", Integer, ForeignKey("consultations.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("narrative", Text, nullable=False, server_default=""),
    Column("replaces_id", Integer, ForeignKey("reports.id"), nullable=True),
    Column("created_by", Integer, ForeignKey("members.id"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # Set on release: the signed file's exact bytes and their SHA-256.
    Column("released_at", BigInteger, nullable=True),
    Column("document", LargeBinary, nullable=True),
    Column("sha256", String(64), nullable=True),
    Column("delivered_to_room", String(255), nullable=True),
    UniqueConstraint("consultation_id", "version", name="uq_reports_version"),
)

# Abuse reports. Whatever a reporter or the bot supplied as evidence, her reason and her contact
# are sealed (encrypted with the hub's evidence key) and opened only in a moderator's view.
moderation_cases = Table(
    "moderation_cases",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", String(16), nullable=False),  # matrix_event, matrix_user, room_bot, web
    Column("synapse_report", String(64), nullable=True, unique=True),  # dedupes the intake
    Column("category", String(32), nullable=False),
    Column("urgent", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("room_id", String(255), nullable=True),
    Column("event_id", String(255), nullable=True),
    Column("reported_user", String(255), nullable=True),
    Column("reporter_member_id", Integer, ForeignKey("members.id"), nullable=True),
    Column("reporter_user_id", String(255), nullable=True),  # where status notices go (Matrix)
    Column("reason_sealed", LargeBinary, nullable=True),
    Column("contact_sealed", LargeBinary, nullable=True),
    Column("status_token_hash", String(64), nullable=True, unique=True),
    Column("appeal_token_hash", String(64), nullable=True, unique=True),
    Column("reporter_wants_action", Boolean, nullable=False, server_default="1"),
    Column("assigned_to", Integer, ForeignKey("members.id"), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_moderation_cases_status", "status", "urgent"),
)

moderation_evidence = Table(
    "moderation_evidence",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("case_id", Integer, ForeignKey("moderation_cases.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("kind", String(24), nullable=False),  # bot_verified, reporter_supplied
    Column("mime", String(64), nullable=False),
    Column("sealed", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

moderation_decisions = Table(
    "moderation_decisions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("case_id", Integer, ForeignKey("moderation_cases.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("action", String(16), nullable=False),
    Column("reason", Text, nullable=False),  # empty; in clear only if written before 0015, until the next start
    Column("reason_sealed", LargeBinary, nullable=True),  # the evidence key's box (services/moderation.seal)
    Column("proposed_by", Integer, ForeignKey("members.id"), nullable=False),
    Column("agreed_by", Integer, ForeignKey("members.id"), nullable=True),
    Column("status", String(16), nullable=False),  # pending, done, failed
    Column("on_appeal", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("executed_at", BigInteger, nullable=True),
)

# Append-only, hash-chained and keyed: see domain/audit.py. Details never hold report content.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("case_id", Integer, nullable=True),
    Column("details", Text, nullable=False),
    Column("previous_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # HMAC with the hub's audit key (not in the database); NULL only on entries written before 0014.
    Column("mac", String(64), nullable=True),
)

# Pseudonyms. Nothing here says in readable form who is behind a pseudonym: the link is sealed to
# the escrow key, and "one pseudonym per person per consultation" is a keyed hash.
moderator_keys = Table(
    "moderator_keys",
    metadata,
    Column("member_id", Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
    Column("public_key", LargeBinary, nullable=False),
    Column("salt", LargeBinary, nullable=False),
    Column("encrypted_private_key", LargeBinary, nullable=False),  # under her passphrase (argon2id)
    Column("created_at", BigInteger, nullable=False),
)

escrows = Table(
    "escrows",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("public_key", LargeBinary, nullable=False),
    Column("threshold", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # "threshold-ed25519" (pseudonyms/escrow.py); "shamir-x25519" marks escrows made before 0006.
    Column("scheme", String(32), nullable=False, server_default="shamir-x25519"),
)

escrow_shares = Table(
    "escrow_shares",
    metadata,
    Column("escrow_id", Integer, ForeignKey("escrows.id", ondelete="CASCADE"), primary_key=True),
    Column("member_id", Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
    Column("sealed_share", LargeBinary, nullable=False),  # sealed to her moderator key
    Column("share_index", Integer, nullable=True),  # public; empty under the old scheme
    Column("verification_key", LargeBinary, nullable=True),  # X_i = x_i G, public; empty under the old scheme
)

# Accounts created ahead, at times unrelated to any request, each waiting to become a pseudonym;
# ready (to be taken) from the batch after the one that made it.
pseudonym_pool = Table(
    "pseudonym_pool",
    metadata,
    Column("user_id", String(255), primary_key=True),
    Column("ready", Boolean, nullable=False, server_default="0"),
)

pseudonyms = Table(
    "pseudonyms",
    metadata,
    Column("member_id", Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),  # the pseudonym
    Column("consultation_id", Integer, ForeignKey("consultations.id", ondelete="CASCADE"), nullable=False),
    Column("person_tag", String(64), nullable=False),  # HMAC(hub secret, person, consultation)
    Column("display_name", String(64), nullable=False),
    Column("escrow_id", Integer, ForeignKey("escrows.id"), nullable=False),
    Column("sealed_link", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),  # the day only (midnight UTC)
    # waiting -> ready (seen by one invitation batch) -> sent (invited by the next one)
    Column("invitation", String(8), nullable=False, server_default="sent"),
    UniqueConstraint("consultation_id", "person_tag", name="uq_pseudonyms_one_per_person"),
)

# One voice per person per consultation: her own or her pseudonym's, never both. Her own first
# vote or statement there and the making of her pseudonym each insert the same key (the keyed
# person tag of pseudonyms.person_tag), so of two at once the database lets one through: the
# constraint holds where a check before writing would let both pass. No member id and no time:
# only the hub, with the tag key, can tell whose a row is. Without a rowid on SQLite, so that the
# rows' order on disk (by tag) says nothing about when they were written.
consultation_voices = Table(
    "consultation_voices",
    metadata,
    Column("consultation_id", Integer, ForeignKey("consultations.id", ondelete="CASCADE"), primary_key=True),
    Column("person_tag", String(64), primary_key=True),
    sqlite_with_rowid=False,
)

unmask_requests = Table(
    "unmask_requests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("case_id", Integer, ForeignKey("moderation_cases.id"), nullable=False),
    Column("pseudonym_member_id", Integer, ForeignKey("members.id"), nullable=False),
    Column("reason", Text, nullable=False),  # empty; in clear only if written before 0016, until the next start
    Column("reason_sealed", LargeBinary, nullable=True),  # the evidence key's box, as decisions' reasons
    Column("requested_by", Integer, ForeignKey("members.id"), nullable=False),
    Column("status", String(16), nullable=False),  # open, unmasked, failed, expired
    Column("result_user_id", String(255), nullable=True),  # shown to the quorum only
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),  # set on every request made since 0006
    # One open request per pseudonym, so that approvals cannot pile up across requests.
    Index("uq_unmask_one_open_request", "pseudonym_member_id", unique=True,
          sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'")),
)

# One row per escrow holder for an open request: her blind z_i sealed to her key, Z_i = z_i G,
# and once she approves, her partial decryption with its proof. Deleted when the request ends.
unmask_partials = Table(
    "unmask_partials",
    metadata,
    Column("request_id", Integer, ForeignKey("unmask_requests.id", ondelete="CASCADE"), primary_key=True),
    Column("member_id", Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
    Column("share_index", Integer, nullable=False),
    Column("sealed_blind", LargeBinary, nullable=False),
    Column("blind_key", LargeBinary, nullable=False),
    Column("partial", LargeBinary, nullable=True),
    Column("proof", LargeBinary, nullable=True),
)

# Live sessions (issue 22). Media keys are never stored: they live in the hub's memory only.
# Who took part is kept only while the session runs (to refuse someone removed, and to count each
# side's people at the end); what stays afterwards is each side's speaking seconds and head count.
live_sessions = Table(
    "live_sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("public_id", String(64), nullable=False, unique=True),  # random, in the page's address
    Column("line_id", Integer, ForeignKey("lines.id"), nullable=False),
    Column("consultation_id", Integer, ForeignKey("consultations.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("hub_room_id", Integer, ForeignKey("rooms.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("title", String(200), nullable=False),
    Column("status", String(16), nullable=False),  # scheduled, open, locked, ended
    Column("scheduled_at", BigInteger, nullable=True),
    Column("janus_room_id", BigInteger, nullable=True),
    Column("epoch", Integer, nullable=False, server_default="0"),  # the number only, never the key
    # False once someone was removed: from then on keys go to the page only, not the Matrix room.
    Column("keys_to_room", Boolean, nullable=False, server_default="1"),
    Column("created_by", Integer, ForeignKey("members.id"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("ended_at", BigInteger, nullable=True),
)

live_interpreters = Table(
    "live_interpreters",
    metadata,
    Column("live_session_id", Integer, ForeignKey("live_sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("member_id", Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
    Column("language", String(16), nullable=False),
)

live_participants = Table(
    "live_participants",
    metadata,
    Column("live_session_id", Integer, ForeignKey("live_sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("member_id", Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
    Column("removed", Boolean, nullable=False, server_default="0"),
)

live_side_totals = Table(
    "live_side_totals",
    metadata,
    Column("live_session_id", Integer, ForeignKey("live_sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("side", String(200), primary_key=True),  # the side's name, or "no side"
    Column("seconds", Integer, nullable=False),
    Column("participants", Integer, nullable=False),
)

# Whom a member takes Matrix invitations from (no row: people she shares a room with). Migration 0013.
invite_preferences = Table(
    "invite_preferences",
    metadata,
    Column("member_id", Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True),
    Column("invites_from", String(16), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
