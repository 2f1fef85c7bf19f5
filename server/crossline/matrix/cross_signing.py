"""Cross-signing the bot's own device, which matrix-nio cannot do (matrix-nio issue #229).

Current Element clients share room keys only with devices that their owner has cross-signed
(MSC4153). So the bot holds a master key, a self-signing key signed by it, and a user-signing key,
and signs its device with the self-signing key. The key seeds are a secret file (0600).

Pure functions build the signed JSON; `crossline.matrix.bot` sends it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from canonicaljson import encode_canonical_json
from nacl.signing import SigningKey, VerifyKey
from unpaddedbase64 import decode_base64, encode_base64


def key_id(key: SigningKey | VerifyKey) -> str:
    verify = key.verify_key if isinstance(key, SigningKey) else key
    return encode_base64(bytes(verify))


def sign_json(obj: dict[str, Any], user_id: str, key: SigningKey, key_name: str) -> dict[str, Any]:
    """A copy of `obj` with a signature added, as the Matrix spec's "Signing JSON" says."""
    signed = copy.deepcopy(obj)
    unsigned = signed.pop("unsigned", None)
    signatures = signed.pop("signatures", {})
    signature = key.sign(encode_canonical_json(signed)).signature
    signatures.setdefault(user_id, {})[f"ed25519:{key_name}"] = encode_base64(signature)
    signed["signatures"] = signatures
    if unsigned is not None:
        signed["unsigned"] = unsigned
    return signed


def verify_signed_json(obj: dict[str, Any], user_id: str, key_name: str, public_key: str) -> bool:
    stripped = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    signature = obj.get("signatures", {}).get(user_id, {}).get(f"ed25519:{key_name}")
    if not signature:
        return False
    try:
        VerifyKey(decode_base64(public_key)).verify(encode_canonical_json(stripped), decode_base64(signature))
        return True
    except Exception:
        return False


@dataclass(frozen=True)
class CrossSigningKeys:
    master: SigningKey
    self_signing: SigningKey
    user_signing: SigningKey

    @classmethod
    def generate(cls) -> "CrossSigningKeys":
        return cls(SigningKey.generate(), SigningKey.generate(), SigningKey.generate())

    def to_json(self) -> str:
        return json.dumps({name: encode_base64(bytes(getattr(self, name)))
                           for name in ("master", "self_signing", "user_signing")})

    @classmethod
    def from_json(cls, text: str) -> "CrossSigningKeys":
        data = json.loads(text)
        return cls(*(SigningKey(decode_base64(data[name])) for name in ("master", "self_signing", "user_signing")))


def _public_key(user_id: str, usage: str, key: SigningKey) -> dict[str, Any]:
    name = key_id(key)
    return {"user_id": user_id, "usage": [usage], "keys": {f"ed25519:{name}": name}}


def device_signing_upload(user_id: str, keys: CrossSigningKeys) -> dict[str, Any]:
    """Body of POST /keys/device_signing/upload: the master key, and the two keys it signs."""
    master_name = key_id(keys.master)
    return {
        "master_key": _public_key(user_id, "master", keys.master),
        "self_signing_key": sign_json(_public_key(user_id, "self_signing", keys.self_signing), user_id, keys.master,
                                      master_name),
        "user_signing_key": sign_json(_public_key(user_id, "user_signing", keys.user_signing), user_id, keys.master,
                                      master_name),
    }


def signed_device_keys(user_id: str, device_keys: dict[str, Any], keys: CrossSigningKeys) -> dict[str, Any]:
    """Body of POST /keys/signatures/upload: the device's keys signed by the self-signing key."""
    device_id = device_keys["device_id"]
    # Only this signature is uploaded; the device's own signature is already on the server.
    signed = sign_json({k: v for k, v in device_keys.items() if k not in ("signatures", "unsigned")}, user_id,
                       keys.self_signing, key_id(keys.self_signing))
    return {user_id: {device_id: signed}}


def device_is_cross_signed(user_id: str, keys_query: dict[str, Any], device_id: str) -> bool:
    """Whether /keys/query shows the device signed by a self-signing key that the master signed."""
    master = keys_query.get("master_keys", {}).get(user_id)
    self_signing = keys_query.get("self_signing_keys", {}).get(user_id)
    device = keys_query.get("device_keys", {}).get(user_id, {}).get(device_id)
    if not (master and self_signing and device):
        return False
    master_name = next(iter(master["keys"].values()))
    ssk_name = next(iter(self_signing["keys"].values()))
    return (verify_signed_json(self_signing, user_id, master_name, master_name)
            and verify_signed_json(device, user_id, ssk_name, ssk_name))
