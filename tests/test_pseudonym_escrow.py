"""The threshold escrow's pure crypto (pseudonyms/escrow.py): properties over quorums and holders."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossline.pseudonyms import escrow

LINK = {"person": 7, "pseudonym_user_id": "@p-x:hub"}


def seeded(seed: int):
    """Reproducible randomness, injected in place of the system's."""
    counter = iter(range(1 << 30))

    def random(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha512(f"{seed}:{next(counter)}".encode()).digest()
        return out[:n]
    return random


@st.composite
def quorums(draw):
    holders = draw(st.integers(2, 7))
    threshold = draw(st.integers(2, holders))
    chosen = draw(st.lists(st.integers(1, holders), min_size=threshold, max_size=holders, unique=True))
    return threshold, holders, chosen, draw(st.integers(0, 2**32))


def approvals(threshold: int, holders: int, seed: int):
    random = seeded(seed)
    made = escrow.set_up(threshold, holders, random)
    sealed = escrow.seal_link(made.public_key, LINK, random)
    blinds = escrow.request_blinds(threshold, range(1, holders + 1), random)
    partials = {i: escrow.partial(made.shares[i], blinds[i], sealed, random) for i in range(1, holders + 1)}
    return made, sealed, blinds, partials


@settings(max_examples=40, deadline=None)
@given(quorums())
def test_any_k_partials_of_one_request_open_the_link(case):
    threshold, holders, chosen, seed = case
    made, sealed, blinds, partials = approvals(threshold, holders, seed)
    assert escrow.open_link(made.public_key, sealed, {i: partials[i].point for i in chosen}) == LINK
    for i in chosen:
        assert escrow.share_matches(made.shares[i], made.verification_keys[i])
        assert escrow.partial_is_valid(made.verification_keys[i], escrow.blind_key(blinds[i]), sealed, partials[i])


@settings(max_examples=40, deadline=None)
@given(quorums())
def test_any_k_minus_one_partials_open_nothing(case):
    threshold, holders, chosen, seed = case
    made, sealed, _, partials = approvals(threshold, holders, seed)
    fewer = chosen[:threshold - 1]
    with pytest.raises(escrow.EscrowError):
        escrow.open_link(made.public_key, sealed, {i: partials[i].point for i in fewer})


@settings(max_examples=25, deadline=None)
@given(quorums())
def test_partials_of_two_requests_do_not_combine(case):
    threshold, holders, chosen, seed = case
    made, sealed, _, partials = approvals(threshold, holders, seed)
    random = seeded(seed + 1)
    other_blinds = escrow.request_blinds(threshold, range(1, holders + 1), random)
    last = chosen[threshold - 1]
    mixed = {i: partials[i].point for i in chosen[:threshold - 1]}
    mixed[last] = escrow.partial(made.shares[last], other_blinds[last], sealed, random).point
    with pytest.raises(escrow.EscrowError):
        escrow.open_link(made.public_key, sealed, mixed)


def test_a_partial_is_valid_only_for_its_holder_its_request_and_its_link():
    made, sealed, blinds, partials = approvals(3, 4, 1)
    other_link = escrow.seal_link(made.public_key, LINK, seeded(2))
    assert escrow.partial_is_valid(made.verification_keys[1], escrow.blind_key(blinds[1]), sealed, partials[1])
    assert not escrow.partial_is_valid(made.verification_keys[2], escrow.blind_key(blinds[1]), sealed, partials[1])
    assert not escrow.partial_is_valid(made.verification_keys[1], escrow.blind_key(blinds[2]), sealed, partials[1])
    assert not escrow.partial_is_valid(made.verification_keys[1], escrow.blind_key(blinds[1]), other_link, partials[1])
    forged = escrow.Partial(escrow.blind_key(escrow.random_scalar()), partials[1].proof)
    assert not escrow.partial_is_valid(made.verification_keys[1], escrow.blind_key(blinds[1]), sealed, forged)
    # A proof has one accepted form: the same response plus the group order is refused.
    response = int.from_bytes(partials[1].proof[32:], "little") + escrow.L  # below 2**254: still 32 bytes
    malleated = escrow.Partial(partials[1].point, partials[1].proof[:32] + response.to_bytes(32, "little"))
    assert not escrow.partial_is_valid(made.verification_keys[1], escrow.blind_key(blinds[1]), sealed, malleated)
    # Partials of one link say nothing about another link sealed to the same escrow.
    with pytest.raises(escrow.EscrowError):
        escrow.open_link(made.public_key, other_link, {i: partials[i].point for i in (1, 2, 3)})


def test_injected_randomness_reproduces_and_bad_quorums_are_refused():
    assert escrow.set_up(2, 3, seeded(5)) == escrow.set_up(2, 3, seeded(5))
    for threshold, holders in ((1, 3), (4, 3)):
        with pytest.raises(escrow.EscrowError, match="quorum"):
            escrow.set_up(threshold, holders)
    with pytest.raises(escrow.EscrowError, match="passphrase"):
        escrow.protect("short")
    public, salt, encrypted = escrow.protect("a long enough passphrase")
    with pytest.raises(escrow.EscrowError, match="passphrase"):
        escrow.unlock("another long passphrase", salt, encrypted)
    key = escrow.unlock("a long enough passphrase", salt, encrypted)
    assert escrow.open_sealed(key, escrow.seal(public, b"share")) == b"share"
