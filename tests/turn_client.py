"""A minimal TURN client (RFC 5766 / 8656 over UDP) for tests: Allocate and CreatePermission with
long-term credentials, enough to see what coturn accepts and refuses."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import socket
import struct

MAGIC = 0x2112A442
ALLOCATE, CREATE_PERMISSION = 0x0003, 0x0008
USERNAME, MESSAGE_INTEGRITY, ERROR_CODE, XOR_PEER_ADDRESS = 0x0006, 0x0008, 0x0009, 0x0012
REALM, NONCE, REQUESTED_TRANSPORT = 0x0014, 0x0015, 0x0019
UDP = b"\x11\x00\x00\x00"


def _attribute(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\x00" * (-len(value) % 4)


def _xor_peer(address: str, port: int) -> bytes:
    packed = int(ipaddress.IPv4Address(address)) ^ MAGIC
    return struct.pack("!BBHI", 0, 1, port ^ (MAGIC >> 16), packed)


class TurnClient:
    def __init__(self, host: str, port: int, username: str, password: str):
        self.server = (host, port)
        self.username, self.password = username, password
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(5)
        self.realm = self.nonce = b""

    def close(self) -> None:
        self.sock.close()

    def _request(self, method: int, attributes: list[tuple[int, bytes]], signed: bool) -> tuple[int, dict[int, bytes]]:
        transaction = os.urandom(12)
        body = b"".join(_attribute(kind, value) for kind, value in attributes)
        if signed:
            body += _attribute(USERNAME, self.username.encode()) + _attribute(REALM, self.realm) + _attribute(NONCE, self.nonce)
            key = hashlib.md5(self.username.encode() + b":" + self.realm + b":" + self.password.encode()).digest()
            header = struct.pack("!HHI", method, len(body) + 24, MAGIC) + transaction
            body += _attribute(MESSAGE_INTEGRITY, hmac.new(key, header + body, hashlib.sha1).digest())
        self.sock.sendto(struct.pack("!HHI", method, len(body), MAGIC) + transaction + body, self.server)
        reply = self.sock.recv(4096)
        kind, length = struct.unpack("!HH", reply[:4])
        assert reply[8:20] == transaction
        found: dict[int, bytes] = {}
        at = 20
        while at < 20 + length:
            attr, size = struct.unpack("!HH", reply[at:at + 4])
            found.setdefault(attr, reply[at + 4:at + 4 + size])
            at += 4 + size + (-size % 4)
        return kind, found

    @staticmethod
    def _code(found: dict[int, bytes]) -> int:
        value = found.get(ERROR_CODE, b"\x00\x00\x00\x00")
        return (value[2] & 0x7) * 100 + value[3]

    def allocate(self) -> int:
        """0 when the allocation is made, else the TURN error code (401: credential refused)."""
        kind, found = self._request(ALLOCATE, [(REQUESTED_TRANSPORT, UDP)], signed=False)
        if kind != 0x0113 or self._code(found) != 401:
            return self._code(found) or -1
        self.realm, self.nonce = found[REALM], found[NONCE]
        kind, found = self._request(ALLOCATE, [(REQUESTED_TRANSPORT, UDP)], signed=True)
        return 0 if kind == 0x0103 else self._code(found)

    def permit(self, peer: str) -> int:
        """0 when the relay may send to `peer`, else the TURN error code (403: forbidden peer)."""
        kind, found = self._request(CREATE_PERMISSION, [(XOR_PEER_ADDRESS, _xor_peer(peer, 9))], signed=True)
        return 0 if kind == 0x0108 else self._code(found)
