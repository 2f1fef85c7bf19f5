"""The escrow that lets a quorum of moderators, and only a quorum, learn who is behind a pseudonym
(pure crypto, no storage).

- The link "member M is pseudonym P" is sealed (libsodium sealed box) to the escrow public key.
- The escrow private key is split k-of-n with Shamir's scheme (pycryptodome's implementation, on
  two 16-byte halves, as it shares 16-byte secrets) right after it is made, and never stored whole.
- Each moderator's share is sealed to her own key pair, whose private half is kept encrypted
  under a key derived from her passphrase (argon2id). The hub alone can open none of this.
"""

from __future__ import annotations

import json

from argon2.low_level import Type, hash_secret_raw
from Crypto.Protocol.SecretSharing import Shamir
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.secret import SecretBox
from nacl.utils import random as random_bytes

MIN_PASSPHRASE = 12


class EscrowError(Exception):
    pass


def new_key_pair() -> PrivateKey:
    return PrivateKey.generate()


def split(private_key: PrivateKey, threshold: int, holders: int) -> list[tuple[int, bytes]]:
    if not 2 <= threshold <= holders:
        raise EscrowError(f"The quorum must be at least 2 and at most the number of moderators ({holders}).")
    secret = bytes(private_key)
    low, high = Shamir.split(threshold, holders, secret[:16]), Shamir.split(threshold, holders, secret[16:])
    return [(index, a + b) for (index, a), (_, b) in zip(low, high, strict=True)]


def combine(shares: list[tuple[int, bytes]]) -> PrivateKey:
    """With fewer shares than the quorum this gives a wrong key, which opens nothing."""
    low = Shamir.combine([(index, share[:16]) for index, share in shares])
    high = Shamir.combine([(index, share[16:]) for index, share in shares])
    return PrivateKey(low + high)


def seal(public_key: bytes, data: dict | bytes) -> bytes:
    plain = data if isinstance(data, bytes) else json.dumps(data, sort_keys=True).encode()
    return SealedBox(PublicKey(public_key)).encrypt(plain)


def open_sealed(private_key: PrivateKey, sealed: bytes) -> bytes:
    try:
        return SealedBox(private_key).decrypt(sealed)
    except CryptoError:
        raise EscrowError("The sealed link did not open: the shares do not make the escrow key.") from None


def _passphrase_key(passphrase: str, salt: bytes) -> bytes:
    return hash_secret_raw(passphrase.encode("utf-8"), salt, time_cost=3, memory_cost=64 * 1024, parallelism=2,
                           hash_len=32, type=Type.ID)


def protect(passphrase: str) -> tuple[bytes, bytes, bytes]:
    """A moderator's key pair: (public key, salt, private key encrypted under her passphrase)."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise EscrowError(f"Choose a passphrase of at least {MIN_PASSPHRASE} characters.")
    key = new_key_pair()
    salt = random_bytes(16)
    return bytes(key.public_key), salt, bytes(SecretBox(_passphrase_key(passphrase, salt)).encrypt(bytes(key)))


def unlock(passphrase: str, salt: bytes, encrypted_private: bytes) -> PrivateKey:
    try:
        return PrivateKey(SecretBox(_passphrase_key(passphrase, salt)).decrypt(encrypted_private))
    except CryptoError:
        raise EscrowError("That passphrase does not open your moderator key.") from None


def share_for(holder_public: bytes, index: int, share: bytes) -> bytes:
    return seal(holder_public, index.to_bytes(2, "big") + share)


def open_share(holder_private: PrivateKey, sealed_share: bytes) -> tuple[int, bytes]:
    plain = open_sealed(holder_private, sealed_share)
    return int.from_bytes(plain[:2], "big"), plain[2:]
