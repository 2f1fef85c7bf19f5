"""Who may reach whom on the Matrix side, and what may be uploaded. Pure: the Synapse module adapts it.

The hub publishes a directory of its accounts (the known-members file, written by
`crossline.synapse.files.write_known_members`): each member's lines, whether she is staff, and whom
she takes invitations from; and the hub's own accounts. The module adds
what only Synapse knows (shared rooms, her ignore list, her recent declines) as `InviteFacts`.
"""

from __future__ import annotations

import re

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Whom a member takes invitations from. "rooms": people she is in a room with (the default).
INVITES_FROM = ("nobody", "rooms", "line")
DEFAULT_INVITES_FROM = "rooms"

NOT_A_MEMBER_INVITER = "Only members of this Crossline hub can invite people. Ask a facilitator."
OTHER_LINE = (
    "{invitee} is not in your dialogue line, so you cannot invite her. People of another line meet only "
    "in the rooms the facilitators open; ask a facilitator."
)
# One sentence for her choice, her ignore list and a recent decline, so the inviter cannot tell
# which: knowing she is ignored, or that she changed her setting, is itself something to act on.
NOT_NOW = (
    "{invitee} does not take invitations from you at the moment, so none was sent. If you need to reach "
    "her, ask a facilitator."
)


def not_a_member(invitee: str) -> str:
    return f"{invitee} is not a member of this Crossline hub. A facilitator can send them an invitation from the hub first."


@dataclass(frozen=True)
class Contact:
    """One member account as the hub publishes it."""

    lines: frozenset[int]
    staff: bool = False
    invites_from: str = DEFAULT_INVITES_FROM


@dataclass(frozen=True)
class Directory:
    members: Mapping[str, Contact] = field(default_factory=dict)
    # The hub admin and the bot: they invite and are invited as they always were.
    hub_accounts: frozenset[str] = frozenset()


@dataclass(frozen=True)
class InviteFacts:
    """What Synapse knows about the two accounts, looked up by the module."""

    share_a_room: bool = False
    ignored_by_invitee: bool = False
    declined_recently: bool = False


def parse_directory(data: Mapping[str, Any]) -> Directory:
    """The known-members file. A file from before lines were published (only `user_ids`) still
    loads: its members then share no line, so only the hub's accounts can invite anyone."""
    members = {
        user_id: Contact(
            lines=frozenset(int(line) for line in entry.get("lines", [])),
            staff=bool(entry.get("staff", False)),
            invites_from=entry.get("invites_from") if entry.get("invites_from") in INVITES_FROM
            else DEFAULT_INVITES_FROM,
        )
        for user_id, entry in data.get("members", {}).items()
    }
    hub_accounts = frozenset(data.get("hub_accounts", ()))
    for user_id in data.get("user_ids", ()):
        if user_id not in members and user_id not in hub_accounts:
            members[user_id] = Contact(lines=frozenset())
    return Directory(members, hub_accounts)


def needs_facts(inviter: str, invitee: str, directory: Directory) -> bool:
    """Whether `check_invite` will need the Synapse lookups (they cost queries)."""
    return inviter in directory.members and invitee in directory.members


def check_invite(inviter: str, invitee: str, directory: Directory, facts: InviteFacts) -> str | None:
    if inviter in directory.hub_accounts:
        return None if invitee in directory.members or invitee in directory.hub_accounts else not_a_member(invitee)
    sender = directory.members.get(inviter)
    if sender is None:
        return NOT_A_MEMBER_INVITER
    if invitee in directory.hub_accounts:
        return None  # the bot's direct room, the hub admin: always reachable
    target = directory.members.get(invitee)
    if target is None:
        return not_a_member(invitee)
    if not sender.lines & target.lines:
        return OTHER_LINE.format(invitee=invitee)
    if facts.ignored_by_invitee or facts.declined_recently:
        return NOT_NOW.format(invitee=invitee)
    # Staff of her line invite her whatever she chose: the line's rooms, where the dialogue she
    # joined happens, are opened by its staff in their own name, with their invitations in the same
    # request (the hub learns the room's id only afterwards), and staff are appointed by the hub
    # admin and marked in every room. Her ignore list and her declines still hold against them.
    if sender.staff:
        return None
    if target.invites_from == "nobody" or (target.invites_from == "rooms" and not facts.share_a_room):
        return NOT_NOW.format(invitee=invitee)
    return None


# -- Media ------------------------------------------------------------------------------------------

CLEAR_MEDIA = (
    "Crossline's server keeps only encrypted files: this one is a readable {kind}, and anyone with its "
    "address could fetch it. Send it inside an encrypted room (Element and FluffyChat encrypt "
    "attachments there). Profile and room pictures are not available on Crossline."
)

# Signatures of at least four bytes (or checked further), so that an encrypted attachment, which
# is indistinguishable from random bytes, matches one by chance about once in a billion uploads.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image"),
    (0, b"\xff\xd8\xff", "image"),  # JPEG; with the marker byte checked below
    (0, b"GIF87a", "image"),
    (0, b"GIF89a", "image"),
    (0, b"II*\x00", "image"),
    (0, b"MM\x00*", "image"),
    (0, b"\x00\x00\x01\x00", "image"),  # ICO
    (0, b"8BPS", "image"),
    (0, b"\x00\x00\x00\x0cJXL ", "image"),
    (0, b"%PDF", "PDF"),
    (0, b"ID3", "audio"),
    (0, b"fLaC", "audio"),
    (0, b"OggS", "audio or video"),
    (0, b"\x1aE\xdf\xa3", "video"),  # Matroska, WebM
    (0, b"#!AMR", "audio"),
    (0, b"FORM", "audio"),
    (0, b"PK\x03\x04", "archive or document"),
    (0, b"\x1f\x8b\x08", "archive"),
    (0, b"7z\xbc\xaf\x27\x1c", "archive"),
    (0, b"Rar!\x1a\x07", "archive"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "document"),
    (0, b"{\\rtf", "document"),
    (0, b"BZh", "archive"),  # with its block size checked below
    (0, b"\xfd7zXZ\x00", "archive"),
    (0, b"\x28\xb5\x2f\xfd", "archive"),  # zstd
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "image"),  # JPEG 2000
    (0, b"SQLite format 3\x00", "database"),
    (0, b"MThd\x00\x00\x00\x06", "audio"),  # MIDI
)
_RIFF_KINDS = {b"WEBP": "image", b"WAVE": "audio", b"AVI ": "video"}
_FTYP_KINDS = {b"avif": "image", b"avis": "image", b"heic": "image", b"heix": "image", b"mif1": "image",
               b"msf1": "image", b"M4A ": "audio", b"M4B ": "audio"}
_BMP_HEADERS = (12, 40, 52, 56, 64, 108, 124)
SNIFF_BYTES = 4096


def clear_media_kind(head: bytes) -> str | None:
    """The kind of readable file `head` (its first `SNIFF_BYTES`) starts, or None if it reads as
    random bytes, which is what an encrypted attachment is."""
    for offset, magic, kind in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            if magic == b"\xff\xd8\xff" and len(head) > 3 and not 0xC0 <= head[3] <= 0xFE:
                continue  # any JPEG marker may come first (APP13 from Photoshop, DQT without APP0)
            if magic == b"BZh" and head[3:4] not in tuple(bytes([c]) for c in b"123456789"):
                continue
            if magic == b"ID3" and head[3:4] not in (b"\x02", b"\x03", b"\x04"):
                continue
            return kind
    # BMP's "BM" alone would match random bytes once in 65,536: its zero reserved bytes and the
    # size of a known header are checked too.
    if head[:2] == b"BM" and head[6:10] == bytes(4) and int.from_bytes(head[14:18], "little") in _BMP_HEADERS:
        return "image"
    if head[:4] == b"RIFF" and head[8:12] in _RIFF_KINDS:
        return _RIFF_KINDS[head[8:12]]
    if head[4:8] == b"ftyp":
        return _FTYP_KINDS.get(head[8:12], "video")
    if _PNM.match(head):
        return "image"
    if b"%PDF-" in head[:1024]:
        return "PDF"  # readers look for it anywhere in the first kilobyte
    if _is_mp3(head):
        return "audio"
    if _is_text(head) or _is_wide_text(head):
        return "text"
    return None


# Netpbm (PBM, PGM, PPM): the magic, comments, then width and height in digits.
_PNM = re.compile(rb"P[1-6][ \t\r\n]+(?:#[^\n]*\n[ \t\r\n]*)*\d+[ \t\r\n]+\d+[ \t\r\n]")
# MPEG audio without an ID3 tag: a frame header, and the next frame's header where its length says.
_MP3_BITRATES = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MP3_RATES = (44100, 48000, 32000)


def _is_mp3(head: bytes) -> bool:
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xFE != 0xFA:  # MPEG-1 layer III
        return False
    bitrate, rate, padding = head[2] >> 4, (head[2] >> 2) & 3, (head[2] >> 1) & 1
    if not 0 < bitrate < 15 or rate == 3:
        return False
    length = 144_000 * _MP3_BITRATES[bitrate] // _MP3_RATES[rate] + padding
    follow = head[length:length + 2]
    return len(follow) == 2 and follow[0] == 0xFF and follow[1] & 0xFE == 0xFA


def _is_wide_text(head: bytes) -> bool:
    """UTF-16 or UTF-32 text after its byte-order mark (HTML, SVG saved by Windows tools)."""
    for bom, codec in ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
                       (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if head.startswith(bom):
            body = head[len(bom):len(bom) + 128]
            text = body[:len(body) - len(body) % (4 if "32" in codec else 2)].decode(codec, errors="replace")
            text = text.lstrip("\ufeff")
            # Random pairs of bytes are mostly printable (CJK): a few ASCII characters are asked for too.
            return sum(char.isascii() for char in text) >= 4 and \
                all(char.isprintable() or char in "\t\n\r\f" for char in text)
    return False


def _is_text(head: bytes) -> bool:
    """Readable text (SVG, HTML, plain text, JSON): the bytes decode as UTF-8 (the last character
    may be cut off by the sniff window) with no control characters but whitespace. Sixteen random
    bytes pass this with a probability far below one in a billion."""
    if len(head) < 16:
        return False  # a few characters say little, and a short encrypted file must not be refused
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 3:
            return False
        text = head[:error.start].decode("utf-8")
    # Thirty-two random bytes decode as UTF-8 about once in a billion: any such text is readable,
    # control characters or not. Shorter, only printable text counts.
    return len(head) >= 32 or all(char.isprintable() or char in "\t\n\r\f" for char in text.lstrip("\ufeff"))

