"""Who may invite whom, and which uploads are clear media: the pure rules of policies/contact.py."""

from __future__ import annotations

import io
import json
import random

import pytest
from PIL import Image

from crossline.synapse.files import write_known_members
from crossline_policies import contact
from crossline_policies.contact import Contact, Directory, InviteFacts

NISTRU, ARARAT = 1, 2
HUB = frozenset({"@admin:hub.test", "@crossline:hub.test"})
DIRECTORY = Directory(
    members={
        "@ana:hub.test": Contact(frozenset({NISTRU})),
        "@bela:hub.test": Contact(frozenset({NISTRU})),
        "@closed:hub.test": Contact(frozenset({NISTRU}), invites_from="nobody"),
        "@open:hub.test": Contact(frozenset({NISTRU}), invites_from="line"),
        "@nune:hub.test": Contact(frozenset({ARARAT}), invites_from="line"),
        "@fac:hub.test": Contact(frozenset({NISTRU}), staff=True),
        "@neutral:hub.test": Contact(frozenset({NISTRU, ARARAT}), staff=True),
    },
    hub_accounts=HUB,
)
SHARE = InviteFacts(share_a_room=True)


@pytest.mark.parametrize("inviter, invitee, facts, expected", [
    # The hub's own accounts invite any member, and anyone may invite them (the bot's direct room).
    ("@admin:hub.test", "@nune:hub.test", InviteFacts(), None),
    ("@crossline:hub.test", "@closed:hub.test", InviteFacts(), None),
    ("@admin:hub.test", "@stranger:hub.test", InviteFacts(), "not a member"),
    ("@ana:hub.test", "@crossline:hub.test", InviteFacts(), None),
    # Outside the hub, either way.
    ("@stranger:hub.test", "@ana:hub.test", SHARE, "Only members"),
    ("@ana:hub.test", "@stranger:hub.test", SHARE, "not a member"),
    # Another line: never, whatever she chose, even for someone she shares a room with.
    ("@ana:hub.test", "@nune:hub.test", SHARE, "not in your dialogue line"),
    ("@fac:hub.test", "@nune:hub.test", SHARE, "not in your dialogue line"),
    # Her choice: people she shares a room with (the default), her line, nobody.
    ("@ana:hub.test", "@bela:hub.test", SHARE, None),
    ("@ana:hub.test", "@bela:hub.test", InviteFacts(), "does not take invitations from you"),
    ("@ana:hub.test", "@open:hub.test", InviteFacts(), None),
    ("@ana:hub.test", "@closed:hub.test", SHARE, "does not take invitations from you"),
    # Staff of her line (a neutral facilitator serves every line) invite whatever she chose...
    ("@fac:hub.test", "@closed:hub.test", InviteFacts(), None),
    ("@neutral:hub.test", "@nune:hub.test", InviteFacts(), None),
    # ... but not someone she ignores or who she just declined, and nobody else either.
    ("@fac:hub.test", "@bela:hub.test", InviteFacts(ignored_by_invitee=True), "does not take invitations from you"),
    ("@fac:hub.test", "@bela:hub.test", InviteFacts(declined_recently=True), "does not take invitations from you"),
    ("@ana:hub.test", "@open:hub.test", InviteFacts(share_a_room=True, ignored_by_invitee=True), "does not take"),
    ("@ana:hub.test", "@bela:hub.test", InviteFacts(share_a_room=True, declined_recently=True), "does not take"),
])
def test_who_may_invite_whom(inviter, invitee, facts, expected):
    refusal = contact.check_invite(inviter, invitee, DIRECTORY, facts)
    if expected is None:
        assert refusal is None
    else:
        assert refusal is not None and expected in refusal


def test_her_choice_ignore_list_and_decline_read_the_same_to_the_inviter():
    """Knowing that she ignores him, or changed her setting, would itself be something to act on."""
    refusals = {contact.check_invite("@ana:hub.test", invitee, DIRECTORY, facts)
                for invitee, facts in (("@closed:hub.test", SHARE), ("@bela:hub.test", InviteFacts()),
                                       ("@open:hub.test", InviteFacts(ignored_by_invitee=True)),
                                       ("@open:hub.test", InviteFacts(declined_recently=True)))}
    assert len({refusal.replace("@closed", "@x").replace("@bela", "@x").replace("@open", "@x")
                for refusal in refusals}) == 1


def test_the_known_members_file_round_trips_and_old_files_fail_closed(tmp_path):
    path = tmp_path / "known-members.json"
    write_known_members(path, {"@ana:hub.test": {"lines": [1], "staff": False, "invites_from": "line"},
                               "@fac:hub.test": {"lines": [1, 2], "staff": True, "invites_from": "rooms"}},
                        ["@admin:hub.test", "@crossline:hub.test"])
    assert path.stat().st_mode & 0o777 == 0o600
    directory = contact.parse_directory(json.loads(path.read_text()))
    assert directory.members["@ana:hub.test"] == Contact(frozenset({1}), False, "line")
    assert directory.members["@fac:hub.test"] == Contact(frozenset({1, 2}), True, "rooms")
    assert directory.hub_accounts == HUB
    # A file from before lines were published: its members share no line, so only the hub invites.
    old = contact.parse_directory({"user_ids": ["@ana:hub.test", "@bela:hub.test"]})
    assert contact.check_invite("@ana:hub.test", "@bela:hub.test", old, SHARE) is not None
    # A preference the module does not know is read as the default, never as "anyone".
    odd = contact.parse_directory({"members": {"@a:hub.test": {"lines": [1], "invites_from": "everyone"}}})
    assert odd.members["@a:hub.test"].invites_from == contact.DEFAULT_INVITES_FROM


def test_the_module_rereads_the_file_each_time_the_hub_rewrites_it(tmp_path):
    from crossline_policies.synapse_module import known_members

    path = tmp_path / "known-members.json"
    known = known_members(path)
    assert known.current() == Directory()  # missing: fail closed
    for preference in ("line", "nobody", "rooms", "line"):  # rewrites within one clock tick
        write_known_members(path, {"@ana:hub.test": {"lines": [1], "invites_from": preference}}, [])
        assert known.current().members["@ana:hub.test"].invites_from == preference


def _picture(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("data, kind", [
    (_picture("PNG"), "image"), (_picture("JPEG"), "image"), (_picture("GIF"), "image"),
    (_picture("WEBP"), "image"), (_picture("TIFF"), "image"), (_picture("BMP"), "image"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
    (b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(100), "audio"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(100), "audio"),
    (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00" + bytes(100), "video"),
    (b"\x00\x00\x00\x1cftypheic" + bytes(100), "image"),
    (b"\x1aE\xdf\xa3\x9fB\x86\x81\x01" + bytes(100), "video"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"><text>We know where you live</text></svg>', "text"),
    ("Мы знаем, с кем вы говорили. Ми знаємо.\n".encode() * 3, "text"),
    (b"PK\x03\x04" + bytes(100), "archive or document"),
    (b"short text", None),  # under 16 bytes: too short to tell from a short encrypted file
])
def test_clear_media_is_recognised(data, kind):
    assert contact.clear_media_kind(data[:contact.SNIFF_BYTES]) == kind


def _jpeg_starting_with(marker: bytes) -> bytes:
    """A JPEG whose first segment is `marker` (Photoshop's APP13, or DQT with no APP0): Pillow opens both."""
    jpeg = _picture("JPEG")
    rest = jpeg[4 + int.from_bytes(jpeg[4:6], "big"):]  # without its APP0
    return jpeg[:2] + (b"\xff\xed\x00\x10Photoshop 3.0\x00" if marker == b"\xed" else b"") + rest


_NOISE = random.Random(2626).randbytes(1000)


@pytest.mark.parametrize("data, kind", [
    (_jpeg_starting_with(b"\xed"), "image"), (_jpeg_starting_with(b"\xdb"), "image"),
    ("\ufeff<html><body>We know who you talked to</body></html>".encode("utf-16-le"), "text"),
    ("\ufeff<svg xmlns='http://www.w3.org/2000/svg'><text>hi</text></svg>".encode("utf-16"), "text"),
    ("\ufeffWe know who you talked to".encode("utf-32"), "text"),
    (b"\x01We know who you talked to on Tuesday, at the market.", "text"),
    (_NOISE[:900] + b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "PDF"),
    ((b"\xff\xfb\x90\x64" + bytes(413)) * 3, "audio"),  # MPEG-1 layer III frames, no ID3 tag
    (b"P6\n64 64\n255\n" + _NOISE, "image"), (b"P5\n# made by hand\n8 8\n255\n" + _NOISE, "image"),
    (b"BZh91AY&SY" + _NOISE, "archive"), (b"\xfd7zXZ\x00" + _NOISE, "archive"),
    (b"\x28\xb5\x2f\xfd" + _NOISE, "archive"), (b"SQLite format 3\x00" + _NOISE, "database"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + _NOISE, "image"), (b"MThd\x00\x00\x00\x06" + _NOISE, "audio"),
])
def test_clear_files_the_first_sniffer_missed_are_recognised(data, kind):
    """Review of issue 26, finding 3: each of these passed as 'random bytes'."""
    assert contact.clear_media_kind(data[:contact.SNIFF_BYTES]) == kind


def test_random_bytes_which_is_what_an_encrypted_attachment_is_pass():
    generator = random.Random(26)
    for size in (1, 15, 16, 17, 100, 4096):
        for _ in range(3000):
            head = generator.randbytes(size)
            assert contact.clear_media_kind(head) is None, head[:16]
