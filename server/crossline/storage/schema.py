"""The hub's tables. Times are integer milliseconds since the epoch (UTC), from the injected clock.

What is deliberately absent: names, e-mail addresses, phone numbers, message content. A member
is a Matrix account id, a declared side and roles.
"""

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, MetaData, String, Table, Text, UniqueConstraint

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
    Column("matrix_user_id", String(255), nullable=False, unique=True),
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
