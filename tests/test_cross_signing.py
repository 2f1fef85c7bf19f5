"""Cross-signing the bot's device: signatures verify, and any change breaks them."""

from __future__ import annotations

import copy

from nacl.signing import SigningKey

from crossline.matrix import cross_signing as cs

USER = "@crossline-bot:hub.test"


def device_keys(device_key: SigningKey) -> dict:
    keys = {
        "user_id": USER, "device_id": "BOTDEVICE", "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
        "keys": {"ed25519:BOTDEVICE": cs.key_id(device_key), "curve25519:BOTDEVICE": "c" * 43},
    }
    return cs.sign_json(keys, USER, device_key, "BOTDEVICE")


def keys_query(upload: dict, signed_device: dict) -> dict:
    return {
        "master_keys": {USER: upload["master_key"]},
        "self_signing_keys": {USER: upload["self_signing_key"]},
        "device_keys": {USER: {"BOTDEVICE": signed_device}},
    }


def test_a_device_signed_through_the_chain_is_cross_signed_and_a_change_breaks_it():
    keys = cs.CrossSigningKeys.generate()
    upload = cs.device_signing_upload(USER, keys)
    device = device_keys(SigningKey.generate())
    signed = cs.signed_device_keys(USER, device, keys)[USER]["BOTDEVICE"]
    # The server merges the new signature with the device's own.
    merged = copy.deepcopy(device)
    merged["signatures"][USER].update(signed["signatures"][USER])
    assert cs.device_is_cross_signed(USER, keys_query(upload, merged), "BOTDEVICE")

    tampered = copy.deepcopy(merged)
    tampered["keys"]["curve25519:BOTDEVICE"] = "d" * 43
    assert not cs.device_is_cross_signed(USER, keys_query(upload, tampered), "BOTDEVICE")
    forged = cs.device_signing_upload(USER, cs.CrossSigningKeys.generate())
    forged["master_key"] = upload["master_key"]  # a self-signing key the master never signed
    assert not cs.device_is_cross_signed(USER, keys_query(forged, merged), "BOTDEVICE")


def test_keys_survive_their_secret_file_format():
    keys = cs.CrossSigningKeys.generate()
    again = cs.CrossSigningKeys.from_json(keys.to_json())
    assert cs.key_id(again.master) == cs.key_id(keys.master)
    assert cs.key_id(again.self_signing) == cs.key_id(keys.self_signing)
