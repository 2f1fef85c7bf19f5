"""The audit log's check (domain/audit.check) and the signed heads' reader (domain/audit_heads.read)
given hostile input: heads forged, cut short, of another hub, pasted in huge or non-ASCII texts,
duplicated, naming entry 0 or a hash that is not one; rows written by hand. Nothing raises, and
each message says what is wrong and what to do."""

from __future__ import annotations

import base64

import pytest
from canonicaljson import encode_canonical_json
from nacl.signing import SigningKey

from crossline import secrets
from crossline.cli import main
from crossline.domain.audit import GENESIS, KnownHead, StoredEntry, audit_key, check, entry_hash, entry_mac
from crossline.domain.audit_heads import MAX_TOLD, PREFIX, Head, read, sign
from crossline.reports.signing import signing_key_from_secret
from crossline.services import audit_heads

KEY = audit_key("the hub's signing secret")
HUB_KEY = SigningKey(b"\1" * 32)
OTHER_KEY = SigningKey(b"\2" * 32)
HASH = "ab" * 32
COPY_AGAIN = "copy it again, whole, from the moderators' room"

NO_MAC_NOTE = ("entries 1 to 3 carry no MAC: written before entries were keyed, they are not authenticated by the "
               "hub's key; only the chain and signed heads cover them.")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def token(seq=3, digest=HASH, at=1_000, hub="crossline.local", key=HUB_KEY) -> str:
    return sign(Head(hub, seq, digest, at), key).token


def forged(fields, key=HUB_KEY) -> str:
    """A head signed over any content at all (what the hub's signer would never make)."""
    body = b64(encode_canonical_json(fields))
    return f"{PREFIX}{body}.{b64(key.sign((PREFIX + body).encode('ascii')).signature)}"


def fields(**changes) -> dict:
    return {"hub": "crossline.local", "seq": 3, "hash": HASH, "at": 1_000,
            "key": b64(bytes(HUB_KEY.verify_key)), **changes}


def only_problem(text: str) -> str:
    good, bad = read(text)
    assert good == [] and len(bad) == 1, (good, bad)
    return bad[0]


# -- Reading heads --------------------------------------------------------------------------------


def test_a_genuine_head_is_read_from_a_message_in_any_language():
    genuine = token()
    message = f"Запис модерації 🕊️ — signed head,\u00a0entry 3:\n{genuine}\u200b\nПовідомлення кінець."
    (head,), bad = read(message)
    assert bad == [] and head.head == Head("crossline.local", 3, HASH, 1_000) and head.token == genuine
    assert head.public_key == bytes(HUB_KEY.verify_key)


def test_a_head_changed_after_it_was_signed_is_refused():
    genuine = token()
    body, signature = genuine[len(PREFIX):].split(".")
    other_body = forged(fields(seq=4))[len(PREFIX):].split(".")[0]  # entry 4, still well-formed
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    for changed in (f"{PREFIX}{other_body}.{signature}", f"{PREFIX}{body}.{flipped}"):
        problem = only_problem(changed)
        assert problem.startswith("head 1: its signature does not match its content") and COPY_AGAIN in problem


@pytest.mark.parametrize("cut", [1, 2, 43, 87, 100])
def test_a_head_cut_short_is_named_as_such(cut):
    problem = only_problem(f"Keep this message:\n{token()[:-cut]}")
    assert problem.startswith("head 1 is cut short or broken") and COPY_AGAIN in problem


def test_a_head_broken_by_an_invisible_character_or_with_more_after_it_is_named():
    genuine = token()
    for broken in (genuine[:60] + "\u200b" + genuine[60:], genuine[:60] + "\u00ad" + genuine[60:],
                   genuine + "Q", genuine[:len(PREFIX) + 4] + "\n" + genuine[len(PREFIX) + 4:]):
        assert only_problem(broken).startswith("head 1 is cut short or broken")


def test_a_text_without_a_head_reads_as_none():
    # A prefix with a Cyrillic "о" in it is not a head: nothing is read, and nothing is wrong.
    assert read("crossline-audit-head.v1.".replace("o", "\u043e") + token()[len(PREFIX):]) == ([], [])
    assert read("") == ([], []) and read("\x00\xff" * 1000) == ([], [])


@pytest.mark.parametrize(("changes", "said"), [
    ({"seq": 0}, "it names entry 0, and entries are numbered from 1"),
    ({"seq": -4}, "it names entry -4, and entries are numbered from 1"),
    ({"hash": "zz" * 32}, "its entry hash is not 64 hexadecimal digits"),
    ({"hash": HASH[:-1]}, "its entry hash is not 64 hexadecimal digits"),
    ({"hash": HASH.upper()}, "its entry hash is not 64 hexadecimal digits"),
    ({"seq": "3"}, "it lacks the hub, entry number, hash or time a head holds"),
    ({"seq": True}, "it lacks the hub, entry number, hash or time a head holds"),
    ({"seq": 3.5}, "it lacks the hub, entry number, hash or time a head holds"),
    ({"hub": ["crossline.local"]}, "it lacks the hub, entry number, hash or time a head holds"),
    ({"at": 10**20}, "the time it was signed cannot be"),
    ({"at": -1}, "the time it was signed cannot be"),
])
def test_a_signed_head_that_no_hub_makes_is_refused_with_what_is_wrong(changes, said):
    assert only_problem(forged(fields(**changes))).startswith(f"head 1: {said}")


def test_a_signed_content_that_is_not_a_head_is_refused():
    for content in ([1, 2, 3], "a head", {"key": "not base64!"}, {"key": b64(b"short")}):
        body = b64(encode_canonical_json(content))
        text = f"{PREFIX}{body}.{b64(HUB_KEY.sign((PREFIX + body).encode('ascii')).signature)}"
        assert only_problem(text).startswith(f"head 1: its content cannot be read as a head; {COPY_AGAIN}")


def test_a_huge_paste_is_read_whole_and_tells_a_few_problems():
    genuine = token()
    (head,), bad = read("noise " * 300_000 + genuine + " noise" * 300_000)
    assert bad == [] and head.token == genuine
    good, bad = read("\n".join([genuine] * 1500 + [PREFIX] * 100 + [token(seq=9)]))  # the newest comes last
    assert len(good) == 1501 and good[-1].head.seq == 9
    assert len(bad) == MAX_TOLD + 1 and bad[-1] == f"{100 - MAX_TOLD} more heads cannot be used either"
    huge_body = f"{PREFIX}{'A' * 5000}.{'B' * 86}"
    assert only_problem(huge_body).startswith("head 1 is cut short or broken")


def test_heads_are_numbered_as_they_come_in_the_text():
    good, bad = read("\n".join([token(seq=1), token()[:-5], token(seq=2), forged(fields(seq=0))]))
    assert [h.head.seq for h in good] == [1, 2]
    assert bad[0].startswith("head 2 is cut short") and bad[1].startswith("head 4: it names entry 0")


# -- Whose heads ----------------------------------------------------------------------------------


def hubs_own_key(hub) -> SigningKey:
    return signing_key_from_secret(secrets.read_secret(hub.config.paths.secrets_dir, secrets.REPORT_SIGNING_KEY))


def test_only_this_hubs_heads_are_used_and_the_others_are_named(hub):
    mine = token(seq=2, key=hubs_own_key(hub))
    other_hub = token(seq=7, key=OTHER_KEY)
    same_key_other_name = token(seq=8, key=hubs_own_key(hub), hub="elsewhere.example")
    good, bad = audit_heads.own_heads(hub, "\n".join([mine, other_hub, same_key_other_name]))
    assert [h.token for h in good] == [mine]
    assert bad[0].startswith("a head for entry 7 is signed with another key (") and "not this hub's (" in bad[0]
    assert bad[0].endswith("give a head from this hub's moderators' room")
    assert bad[1] == "a head for entry 8 names the hub 'elsewhere.example', not this one (crossline.local)"


def run_verify(hub, capsys, path) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["audit", "verify", "--data-dir", str(hub.config.data_dir), "--head", str(path)])
    return code, capsys.readouterr().err


def test_verify_refuses_a_head_file_it_cannot_use_and_says_why(hub, tmp_path, capsys):
    head_file = tmp_path / "head.txt"
    for text, said in [
        (token(key=OTHER_KEY), "is signed with another key"),
        (token(key=hubs_own_key(hub))[:-3], "is cut short or broken"),
        ("Moderation record: signed head, entry 3.", "holds no signed head"),
    ]:
        head_file.write_text(text, "utf-8")
        code, err = run_verify(hub, capsys, head_file)
        assert code == 2 and said in err and "Traceback" not in err, err
    head_file.write_bytes(b"\xff\xfe" + "x".encode() * 2_000_000)
    code, err = run_verify(hub, capsys, head_file)
    assert code == 2 and "is too large to be a file of signed heads" in err
    code, err = run_verify(hub, capsys, tmp_path / "nowhere.txt")
    assert code == 2 and "cannot read" in err


# -- Checking the log -----------------------------------------------------------------------------


def genuine_log(count: int, key: bytes | None = KEY) -> list[StoredEntry]:
    entries, previous = [], GENESIS
    for seq in range(1, count + 1):
        entry = {"seq": seq, "at": seq, "actor": "hub", "kind": "case_viewed", "case_id": 1, "details": {}}
        digest = entry_hash(previous, entry)
        entries.append(StoredEntry(seq, entry, previous, digest, entry_mac(key, seq, digest) if key else None))
        previous = digest
    return entries


def head(entries: list[StoredEntry], seq: int, label="the head signed today") -> KnownHead:
    return KnownHead(seq, entries[seq - 1].hash, label)


def test_a_genuine_log_verifies_and_says_what_was_checked():
    entries = genuine_log(5)
    verdict = check(entries, KEY, [head(entries, 3)])
    assert verdict.verifies and verdict.entries == 5 and verdict.head_seq == 3
    assert verdict.notes == ["entries 4 to 5 came after the head signed today; each is authenticated by the hub's key."]
    bare = check(entries, None, [])
    assert bare.verifies and any("was not available" in n for n in bare.notes)
    assert any("--head FILE" in n for n in bare.notes)


def test_an_empty_log_against_a_head_is_missing_everything():
    entries = genuine_log(3)
    verdict = check([], KEY, [head(entries, 3)])
    assert verdict.problems == ["entries 1 to 3 are missing at the end: the head signed today names entry 3, "
                                "and the log holds no entries"]
    assert check([], KEY, []).verifies


def test_the_same_head_given_twice_names_each_problem_once():
    entries = genuine_log(5)
    given = [head(entries, 5), head(entries, 5), KnownHead(5, entries[4].hash, "the head signed yesterday")]
    verdict = check(entries[:3], KEY, given)
    assert verdict.problems[0].startswith("entries 4 to 5 are missing at the end: the head signed today")
    assert len(verdict.problems) == len(set(verdict.problems)) == 2


def test_two_heads_that_disagree_show_the_log_was_rewritten_between_them():
    entries = genuine_log(4)
    verdict = check(entries, KEY, [head(entries, 4), KnownHead(4, "cd" * 32, "the head signed yesterday")])
    assert verdict.problems == ["entries 1 to 4 may each have been removed, replaced or rewritten: entry 4 is not "
                                "the one in the head signed yesterday"]


def test_rows_written_by_hand_are_named_and_never_stop_the_check():
    entries = genuine_log(6)
    entries[1] = entries[1]._replace(mac="é" * 64)  # not even hexadecimal
    entries[2] = entries[2]._replace(previous_hash="ÿ" * 64)
    entries[3] = entries[3]._replace(hash="∑" * 64)
    entries[4] = entries[4]._replace(entry={**entries[4].entry, "details": {"n": float("nan")}})
    problems = check(entries, KEY, [head(genuine_log(6), 6)]).problems
    assert problems[0] == "entry 2 is not authenticated by the hub's key: written or rewritten outside the hub " \
                          "(hashes recomputed)"
    assert "entry 3 does not follow the entry before it (entries were removed or replaced)" in problems
    assert any(p.startswith("entry 4 was changed after it was written") for p in problems)
    assert any(p.startswith("entry 5 was changed after it was written") for p in problems)


def test_an_entry_numbered_below_one_is_named():
    entries = genuine_log(3)
    entries[0] = entries[0]._replace(seq=0)
    problems = check(entries, KEY, []).problems
    assert problems[0] == "entry 0 cannot be: entries are numbered from 1 (a number was changed)"


def test_entries_without_a_mac_count_as_older_than_keys_only_before_any_keyed_entry_or_head():
    legacy = genuine_log(3, key=None)
    keyed = genuine_log(6)[3:]  # entries 4 to 6, chained after the legacy ones (same content)
    verdict = check(legacy + keyed, KEY, [])
    assert verdict.verifies and NO_MAC_NOTE \
        in verdict.notes
    stripped = legacy + [keyed[0], keyed[1]._replace(mac=None), keyed[2]]
    assert check(stripped, KEY, []).problems[0].startswith("entry 5 lost its authentication")
    all_stripped = genuine_log(6, key=None)  # every MAC removed: after the head they are missed
    assert check(all_stripped, KEY, [head(all_stripped, 2)]).problems == [
        "entries 3 to 6 lost their authentication (every entry after the first keyed one, or after a signed head, "
        "carries one, and every entry once the hub keyed its older ones): they may have been rewritten outside the "
        "hub"]
