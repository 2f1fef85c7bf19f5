"""The escrow that lets a quorum of moderators, and only a quorum, learn who is behind one
pseudonym: threshold ElGamal decryption (pure crypto: no storage, no clock; randomness injected).

The group is the prime-order subgroup of edwards25519, through libsodium's own operations as
pynacl exposes them (pynacl 1.6 has no ristretto255 bindings). libsodium refuses any point that
is not canonical, has a small order or lies outside that subgroup, so the cofactor never enters.

- Set-up: the escrow secret x gives the public key Y = xG. x is shared k-of-n with Shamir's
  scheme over the scalars mod L (holder i gets x_i = f(i) and X_i = x_i G is published), each
  share is sealed to its holder's own key, and x is forgotten. Nothing rebuilds x, ever.
- A link is sealed as R = rG and a secret box under a key derived from rY = xR and R.
- Each unmasking request gets a fresh sharing of zero (g(0) = 0): holder i's blind z_i is
  sealed to her key and Z_i = z_i G is published with the request. Her approval is the partial
  D_i = (x_i + z_i) R with a Chaum-Pedersen proof that it uses the scalar behind X_i + Z_i, so a
  bad partial is caught and named. Any k partials of one request give sum(l_i D_i) = xR, which
  opens that one link and tells nothing about x or any other link. Partials of different
  requests carry blinds of different zero-sharings and combine to noise, even if someone keeps
  them after they were deleted.
- Moderators' own keys (X25519, for sealing shares and blinds) are kept encrypted under a key
  derived from their passphrase (argon2id). The hub alone can open none of this.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw
from nacl import bindings as sodium
from nacl.exceptions import CryptoError
from nacl.exceptions import RuntimeError as SodiumError
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.secret import SecretBox
from nacl.utils import random as system_random

MIN_PASSPHRASE = 12
L = 2**252 + 27742317777372353535851937790883648493  # order of the group
POINT = 32
Random = Callable[[int], bytes]


class EscrowError(Exception):
    pass


# -- The group ----------------------------------------------------------------------------------


def _scalar(value: int) -> bytes:
    return (value % L).to_bytes(32, "little")


def random_scalar(random: Random = system_random) -> bytes:
    return sodium.crypto_core_ed25519_scalar_reduce(random(64))


def _base(scalar: bytes) -> bytes:
    return sodium.crypto_scalarmult_ed25519_base_noclamp(scalar)


def _mul(scalar: bytes, point: bytes) -> bytes:
    try:
        return sodium.crypto_scalarmult_ed25519_noclamp(scalar, point)
    except SodiumError:
        raise EscrowError("A value of the escrow is not a valid group element.") from None


def _add(p: bytes, q: bytes) -> bytes:
    return sodium.crypto_core_ed25519_add(p, q)


def _valid(point: bytes) -> bool:
    return len(point) == POINT and bool(sodium.crypto_core_ed25519_is_valid_point(point))


def _polynomial_at(coefficients: list[bytes], index: int) -> bytes:
    """f(index) by Horner's rule, in libsodium's scalar arithmetic (the coefficients are secret)."""
    value, at = coefficients[-1], _scalar(index)
    for coefficient in reversed(coefficients[:-1]):
        value = sodium.crypto_core_ed25519_scalar_add(sodium.crypto_core_ed25519_scalar_mul(value, at), coefficient)
    return value


def _sharing(secret: bytes, threshold: int, indices: Iterable[int], random: Random) -> dict[int, bytes]:
    coefficients = [secret] + [random_scalar(random) for _ in range(threshold - 1)]
    return {index: _polynomial_at(coefficients, index) for index in indices}


def lagrange_at_zero(index: int, indices: Iterable[int]) -> bytes:
    """The weight of share `index` when the shares of `indices` are combined (indices are public)."""
    numerator, denominator = 1, 1
    for other in indices:
        if other != index:
            numerator, denominator = numerator * other % L, denominator * (other - index) % L
    return _scalar(numerator * pow(denominator, -1, L))


# -- Set-up and sealing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    public_key: bytes  # Y = xG
    shares: dict[int, bytes]  # holder index (1..n) -> x_i, each to be sealed to its holder
    verification_keys: dict[int, bytes]  # holder index -> X_i = x_i G, public


def set_up(threshold: int, holders: int, random: Random = system_random) -> Setup:
    if not 2 <= threshold <= holders:
        raise EscrowError(f"The quorum must be at least 2 and at most the number of moderators ({holders}).")
    secret = random_scalar(random)
    shares = _sharing(secret, threshold, range(1, holders + 1), random)
    return Setup(_base(secret), shares, {index: _base(share) for index, share in shares.items()})


def _box_key(shared: bytes, ephemeral: bytes, public_key: bytes) -> bytes:
    return hashlib.blake2b(shared + ephemeral + public_key, digest_size=32, person=b"crossline-link-1").digest()


def seal_link(public_key: bytes, data: dict, random: Random = system_random) -> bytes:
    """R || secret box: the box key comes from rY, which only a quorum can rebuild as xR."""
    if not _valid(public_key):
        raise EscrowError("The escrow public key is not a valid group element.")
    r = random_scalar(random)
    ephemeral = _base(r)
    box = SecretBox(_box_key(_mul(r, public_key), ephemeral, public_key))
    return ephemeral + bytes(box.encrypt(json.dumps(data, sort_keys=True).encode(), random(SecretBox.NONCE_SIZE)))


def open_link(public_key: bytes, sealed_link: bytes, partials: dict[int, bytes]) -> dict:
    """The link, from the partials of k holders of one request (index -> D_i)."""
    ephemeral, indices = sealed_link[:POINT], list(partials)
    try:
        shared = None
        for index, partial in partials.items():
            weighted = _mul(lagrange_at_zero(index, indices), partial)
            shared = weighted if shared is None else _add(shared, weighted)
        plain = SecretBox(_box_key(shared, ephemeral, public_key)).decrypt(sealed_link[POINT:])
    except (CryptoError, EscrowError, SodiumError, TypeError):
        raise EscrowError("The approvals did not open the sealed link.") from None
    return json.loads(plain)


# -- Unmasking requests ------------------------------------------------------------------------------


def request_blinds(threshold: int, indices: Iterable[int], random: Random = system_random) -> dict[int, bytes]:
    """A fresh sharing of zero for one request: index -> z_i. Any k of them weigh to zero."""
    return _sharing(_scalar(0), threshold, indices, random)


def blind_key(blind: bytes) -> bytes:
    """Z_i = z_i G, kept in clear with the request so that partials can be checked."""
    return _base(blind)


def _challenge(*points: bytes) -> bytes:
    return sodium.crypto_core_ed25519_scalar_reduce(
        hashlib.blake2b(b"".join(points), digest_size=64, person=b"crossline-dleq-1").digest())


@dataclass(frozen=True)
class Partial:
    point: bytes  # D_i = (x_i + z_i) R
    proof: bytes  # challenge || response (Chaum-Pedersen)


def partial(share: bytes, blind: bytes, sealed_link: bytes, random: Random = system_random) -> Partial:
    ephemeral = sealed_link[:POINT]
    if not _valid(ephemeral):
        raise EscrowError("The sealed link is damaged.")
    scalar = sodium.crypto_core_ed25519_scalar_add(share, blind)
    point, nonce = _mul(scalar, ephemeral), random_scalar(random)
    challenge = _challenge(_base(scalar), ephemeral, point, _base(nonce), _mul(nonce, ephemeral))
    response = sodium.crypto_core_ed25519_scalar_add(nonce, sodium.crypto_core_ed25519_scalar_mul(challenge, scalar))
    return Partial(point, challenge + response)


def partial_is_valid(verification_key: bytes, blind_public: bytes, sealed_link: bytes, given: Partial) -> bool:
    """Checks that D_i = w R for the w behind X_i + Z_i, without learning w."""
    ephemeral = sealed_link[:POINT]
    if len(given.proof) != 64 or not all(_valid(p) for p in (verification_key, blind_public, ephemeral, given.point)):
        return False
    challenge, response = given.proof[:32], given.proof[32:]
    if int.from_bytes(response, "little") >= L:
        return False  # only the canonical scalar: a proof has exactly one accepted form
    key = _add(verification_key, blind_public)
    try:
        first = sodium.crypto_core_ed25519_sub(_base(response), _mul(challenge, key))
        second = sodium.crypto_core_ed25519_sub(_mul(response, ephemeral), _mul(challenge, given.point))
    except (EscrowError, SodiumError):
        return False
    return _challenge(key, ephemeral, given.point, first, second) == challenge


def share_matches(share: bytes, verification_key: bytes) -> bool:
    return _base(share) == verification_key


# -- Moderators' own keys ------------------------------------------------------------------------------


def seal(public_key: bytes, data: bytes) -> bytes:
    return SealedBox(PublicKey(public_key)).encrypt(data)


def open_sealed(private_key: PrivateKey, sealed: bytes) -> bytes:
    try:
        return SealedBox(private_key).decrypt(sealed)
    except CryptoError:
        raise EscrowError("This was not sealed to your current moderator key.") from None


def _passphrase_key(passphrase: str, salt: bytes) -> bytes:
    return hash_secret_raw(passphrase.encode("utf-8"), salt, time_cost=3, memory_cost=64 * 1024, parallelism=2,
                           hash_len=32, type=Type.ID)


def protect(passphrase: str, random: Random = system_random) -> tuple[bytes, bytes, bytes]:
    """A moderator's key pair: (public key, salt, private key encrypted under her passphrase)."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise EscrowError(f"Choose a passphrase of at least {MIN_PASSPHRASE} characters.")
    key = PrivateKey(random(32))
    salt = random(16)
    box = SecretBox(_passphrase_key(passphrase, salt))
    return bytes(key.public_key), salt, bytes(box.encrypt(bytes(key), random(SecretBox.NONCE_SIZE)))


def unlock(passphrase: str, salt: bytes, encrypted_private: bytes) -> PrivateKey:
    try:
        return PrivateKey(SecretBox(_passphrase_key(passphrase, salt)).decrypt(encrypted_private))
    except CryptoError:
        raise EscrowError("That passphrase does not open your moderator key.") from None
