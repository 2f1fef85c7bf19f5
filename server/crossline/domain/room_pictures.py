"""Pictures members send in rooms, as the bot reads them to warn a sender whose picture carries a
location (issue 24): which events are pictures, and where their file is. Pure and total: any
event gives a `PictureFile` or None, never an exception.

Checked: `m.image`, and `m.file` whose declared type is an image (a photo sent "as a file" keeps
every byte the camera wrote). Encrypted (`content.file`: url, key, iv, hashes, as Element sends)
or clear (`content.url`). Only the full file is read, never `info.thumbnail_file`: clients draw
thumbnails anew, which keeps no metadata. Not checked: stickers (chosen from a pack, not taken by
her camera), videos and audio (their formats are not read; see the threat model), files on other
servers (the hub's homeserver would have to fetch them). An edit is read in its new content: a
caption edited keeps the same file, which `check_key` marks as checked already, while a picture
replaced by another is checked.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

MESSAGE = "m.room.message"
IMAGE = "m.image"
FILE = "m.file"
# mxc://<server name>/<media id>, with the characters the Matrix spec allows in each.
_MXC = re.compile(r"mxc://([A-Za-z0-9.\-:\[\]]{1,255})/([A-Za-z0-9_\-]{1,255})")
_BASE64 = re.compile(r"[A-Za-z0-9+/_\-]+={0,2}")


@dataclass(frozen=True)
class Encryption:
    """What decrypts an encrypted attachment (AES-CTR key as JWK `k`, IV) and checks it (SHA-256)."""

    key: str
    iv: str
    sha256: str


@dataclass(frozen=True)
class PictureFile:
    server_name: str
    media_id: str
    encryption: Encryption | None  # None: the file is stored in clear
    name: str  # the body (usually the file name), for her to recognise the picture; member words

    @property
    def url(self) -> str:
        return f"mxc://{self.server_name}/{self.media_id}"


def picture_in(event: object, local_server: str) -> PictureFile | None:
    """The picture file this event sends, if it is one the bot checks (see the module docstring)."""
    if not isinstance(event, dict) or event.get("type") != MESSAGE:
        return None
    content = event.get("content")
    if not isinstance(content, dict):
        return None
    relates = content.get("m.relates_to")
    if isinstance(relates, dict) and relates.get("rel_type") == "m.replace":
        content = content.get("m.new_content")
        if not isinstance(content, dict):
            return None
    if not _is_picture(content):
        return None
    encrypted = content.get("file")
    if isinstance(encrypted, dict):
        url, encryption = encrypted.get("url"), _encryption(encrypted)
        if encryption is None:
            return None
    else:
        url, encryption = content.get("url"), None
    match = _MXC.fullmatch(url) if isinstance(url, str) else None
    if match is None or match.group(1) != local_server:
        return None
    body = content.get("body")
    return PictureFile(match.group(1), match.group(2), encryption, body[:200] if isinstance(body, str) else "")


def _is_picture(content: dict) -> bool:
    kind = content.get("msgtype")
    if kind == IMAGE:
        return True
    info = content.get("info")
    mimetype = info.get("mimetype") if isinstance(info, dict) else None
    return kind == FILE and isinstance(mimetype, str) and mimetype.lower().startswith("image/")


def _encryption(file: dict) -> Encryption | None:
    key, iv, hashes = file.get("key"), file.get("iv"), file.get("hashes")
    if not (isinstance(key, dict) and isinstance(hashes, dict)):
        return None
    k, sha256 = key.get("k"), hashes.get("sha256")
    if key.get("alg", "A256CTR") != "A256CTR" or not all(_is_base64(value) for value in (k, iv, sha256)):
        return None
    return Encryption(k, iv, sha256)


def _is_base64(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 100 and _BASE64.fullmatch(value) is not None


def check_key(sender: str, picture: PictureFile) -> str:
    """What marks a picture as checked for this sender: the same file is checked once per sender,
    whatever event carries it (sent again, forwarded by her, a caption edited), while someone who
    forwards another's picture is told too. A digest: the bot's processed marks hold 255 characters."""
    return "picture:" + hashlib.sha256(f"{sender}\n{picture.url}".encode()).hexdigest()
