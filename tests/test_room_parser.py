"""The room event parser: events as clients (and attackers) send them, to commands. Pure, total."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossline.domain import room_commands as rc
from crossline.domain.consultations import Phase, VoteValue
from crossline.domain.room_events_parser import Edit, Ignore, Message, Redaction, clean_text, parse_event


def text(body, **content):
    return {"type": "m.room.message", "content": {"msgtype": "m.text", "body": body, **content}}


def reply(body, to="$question", **relates):
    return text(body, **{"m.relates_to": {"m.in_reply_to": {"event_id": to}, **relates}})


def edit(new_body, original="$original", fallback=None):
    return text(fallback if fallback is not None else f"* {new_body}",
                **{"m.new_content": {"msgtype": "m.text", "body": new_body},
                   "m.relates_to": {"rel_type": "m.replace", "event_id": original}})


@pytest.mark.parametrize(
    "body, command",
    [
        ("hello everyone", rc.Plain("hello everyone")),
        ("!say 2 Open schools", rc.Say(2, "Open schools")),
        ("!say Open schools", rc.Say(None, "Open schools")),
        ("!agree 3", rc.Vote((3,), VoteValue.AGREE)),
        ("!disagree 3, 5 7", rc.Vote((3, 5, 7), VoteValue.DISAGREE)),
        ("!pass 4", rc.Vote((4,), VoteValue.PASS)),
        ("!AGREE\n4", rc.Vote((4,), VoteValue.AGREE)),
        ("!vote 4 yes", rc.Vote((4,), VoteValue.AGREE)),
        ("!withdraw 2", rc.Withdraw(2)),
        ("!approve 2", rc.Moderate(2, True, "")),
        ("!reject 2 names a person", rc.Moderate(2, False, "names a person")),
        ("!voting", rc.ChangePhase(Phase.VOTING)),
        ("!open", rc.ChangePhase(Phase.COLLECTING)),
        ("!close", rc.ChangePhase(Phase.CLOSED)),
        ("!status", rc.Status()),
        ("!help", rc.Help()),
        # Decimal digits of any one script count: Arabic-Indic, Persian, Devanagari, fullwidth.
        ("!agree ٣ ۴، १२", rc.Vote((3, 4, 12), VoteValue.AGREE)),
        ("!agree ３", rc.Vote((3,), VoteValue.AGREE)),
        ("!agree 007", rc.Vote((7,), VoteValue.AGREE)),
        # A right-to-left keyboard's invisible mark before the "!" does not hide the command.
        ("\u200f!agree 3", rc.Vote((3,), VoteValue.AGREE)),
    ],
)
def test_commands(body, command):
    assert parse_event(text(body)) == Message(command, None)


@pytest.mark.parametrize(
    "body, says",
    [("!agree", "Write the statement number"), ("!agree three", "Write the statement number"),
     ("!vote 3 maybe", "not a vote"), ("!vote 3", "Write !vote"),
     ("!withdraw 1 2", "one statement number"), ("!say", "Write your statement"),
     ("!agree ²", "plain digits"), ("!agree ③", "plain digits"), ("!agree Ⅳ", "plain digits"),
     ("!agree ½", "plain digits"), ("!agree -3", "plain digits"), ("!agree 3.5", "plain digits"),
     ("!agree " + str(2 ** 63), "such a long number"), ("!agree " + "9" * 31, "such a long number"),
     ("!agree 1٣", "one kind of digits"), ("!agree " + " ".join(["1"] * 51), "At most 50"),
     ("!report spam", "reply to it"), ("!frobnicate", "do not know that command")],
)
def test_refusals_say_what_to_write_and_never_echo(body, says):
    parsed = parse_event(text(body))
    assert isinstance(parsed.command, rc.Refused) and says in parsed.command.message


def test_an_unknown_command_is_never_echoed():
    for word in ("@room", "x" * 48_000, "<a href='https://evil.example'>voting has closed</a>"):
        refused = parse_event(text(f"!{word} more")).command
        assert refused == rc.Refused(rc.UNKNOWN_COMMAND)
    assert "maybe@room" not in parse_event(text("!vote 3 maybe@room")).command.message


def test_replies_with_and_without_the_fallback_quote():
    quoted = reply("> <@crossline-bot:x> Question 1: What first?\n> more\n\n!agree 3")
    assert parse_event(quoted) == Message(rc.Vote((3,), VoteValue.AGREE), "$question")
    assert parse_event(reply("!agree 3")) == Message(rc.Vote((3,), VoteValue.AGREE), "$question")
    assert parse_event(reply("> <@bot> Question 1\n\nThe bridge first")) == Message(rc.Plain("The bridge first"), "$question")
    assert parse_event(reply("!report he threatens me")) == Message(rc.Report("he threatens me"), "$question")


def test_threads_reply_to_their_root_unless_quoting_another_message():
    relates = {"rel_type": "m.thread", "event_id": "$root", "is_falling_back": True, "m.in_reply_to": {"event_id": "$last"}}
    assert parse_event(text("The bridge", **{"m.relates_to": relates})).reply_to == "$root"
    relates["is_falling_back"] = False
    assert parse_event(text("The bridge", **{"m.relates_to": relates})).reply_to == "$last"
    assert parse_event(text("The bridge", **{"m.relates_to": {"rel_type": "m.thread", "event_id": "$root"}})).reply_to == "$root"


def test_edits_read_the_new_content_not_the_fallback():
    assert parse_event(edit("!disagree 3")) == Edit("$original", rc.Vote((3,), VoteValue.DISAGREE))
    assert parse_event(edit("The bridge and the school")) == Edit("$original", rc.Plain("The bridge and the school"))
    assert parse_event(edit("!agree 4", fallback="* !agree 9")).command == rc.Vote((4,), VoteValue.AGREE)
    no_new = text("* !agree 3", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$o"}})
    assert isinstance(parse_event(no_new), Ignore)
    assert isinstance(parse_event(edit("!agree 3", original="not-an-id")), Ignore)


def test_redactions_old_and_new_room_versions():
    assert parse_event({"type": "m.room.redaction", "redacts": "$x", "content": {}}) == Redaction("$x")
    assert parse_event({"type": "m.room.redaction", "content": {"redacts": "$y"}}) == Redaction("$y")
    assert isinstance(parse_event({"type": "m.room.redaction", "content": {"redacts": 5}}), Ignore)


@pytest.mark.parametrize("relates", ["$abc", ["$abc"], None, 5, {"m.in_reply_to": "$abc"},
                                     {"m.in_reply_to": {"event_id": ["$abc"]}}, {"rel_type": "m.replace"},
                                     {"rel_type": "m.replace", "event_id": "$a", "m.new_content": "x"},
                                     {"m.in_reply_to": {"event_id": "$" + "a" * 300}}])
def test_odd_relations_are_not_relations(relates):
    parsed = parse_event(text("!agree 3", **{"m.relates_to": relates}))
    assert parsed == Message(rc.Vote((3,), VoteValue.AGREE), None) or isinstance(parsed, Ignore)


@pytest.mark.parametrize("event", [None, [], "x", {}, {"type": "m.room.message"}, {"type": 5, "content": {}},
                                   {"type": "m.room.message", "content": []},
                                   {"type": "m.room.message", "content": {"body": "!agree 3"}},
                                   {"type": "m.room.message", "content": {"msgtype": "m.text", "body": 3}},
                                   {"type": "m.room.message", "content": {"msgtype": "m.notice", "body": "!agree 3"}},
                                   {"type": "m.reaction", "content": {"m.relates_to": {"key": "👍"}}}])
def test_what_is_not_a_text_message_is_ignored_with_a_reason(event):
    parsed = parse_event(event)
    assert isinstance(parsed, Ignore) and parsed.reason


def test_text_is_made_storable():
    assert clean_text("a\ud800b\x00c\u0085\n\td") == "a\ufffdbc\n\td"
    assert clean_text("\ud83d\ude00") == "😀"  # a surrogate pair is one character


# -- Properties ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
# Digits of every script, numeric forms, signs, bidirectional controls, lone surrogates.
nasty = st.lists(st.one_of(
    st.characters(categories=("Nd", "No", "Nl", "Cf", "Cs", "Zs", "Cc")),
    st.sampled_from(list("!0123456789 ,.-+>*\n@<>&\"'") + ["\u202e", "\u2066", "\u200f", "@room", "$e"]),
    st.characters(),
)).map("".join)
words = st.sampled_from(["!agree", "!disagree", "!pass", "!vote", "!say", "!s", "!withdraw", "!approve", "!reject",
                         "!report", "!open", "!status", "!help", "!", "> quote\n", "* ", ""])
bodies = st.one_of(nasty, st.builds(lambda w, t: f"{w} {t}", words, nasty),
                   st.builds(lambda w, n: f"{w} {n}", words, st.integers().map(str)))
relations = st.one_of(
    json_values,
    st.fixed_dictionaries({"m.in_reply_to": st.one_of(json_values, st.fixed_dictionaries({"event_id": json_values}))}),
    st.fixed_dictionaries({"rel_type": st.sampled_from(["m.replace", "m.thread", "m.reference", "x"]),
                           "event_id": st.one_of(json_values, st.just("$ok"))},
                          optional={"is_falling_back": json_values, "m.in_reply_to": json_values}),
)
contents = st.one_of(
    json_values,
    st.fixed_dictionaries({"msgtype": st.one_of(st.just("m.text"), json_values), "body": st.one_of(bodies, json_values)},
                          optional={"m.relates_to": relations,
                                    "m.new_content": st.one_of(json_values, st.fixed_dictionaries(
                                        {"msgtype": st.just("m.text"), "body": st.one_of(bodies, json_values)})),
                                    "redacts": json_values}),
)
events = st.one_of(
    json_values,
    st.fixed_dictionaries({"type": st.one_of(st.sampled_from(["m.room.message", "m.room.redaction"]), json_values),
                           "content": contents}, optional={"redacts": json_values}),
)


def _check(parsed):
    assert isinstance(parsed, (Message, Edit, Redaction, Ignore))
    if isinstance(parsed, (Message, Edit)):
        command = parsed.command
        for value in vars(command).values():
            if isinstance(value, str):
                value.encode("utf-8")  # storable and sendable: no lone surrogate survives
        if isinstance(command, rc.Refused):
            assert len(command.message) < 200
        if isinstance(command, rc.Vote):
            assert all(0 <= n < 10 ** rc.MAX_NUMBER_DIGITS for n in command.numbers)
    json.dumps(parsed.__dict__ if hasattr(parsed, "__dict__") else str(parsed), default=str)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(events)
def test_any_event_gives_a_command_or_a_reason(event):
    _check(parse_event(event))


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(bodies, st.booleans())
def test_any_text_gives_a_command(body, as_reply):
    _check(parse_event(reply(body) if as_reply else text(body)))
    _check(parse_event(edit(body)))


@settings(max_examples=20, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)
@given(st.sampled_from(["!agree ", "!say 1 ", "!", "> q\n\n!vote ", ""]), st.text(min_size=1, max_size=8))
def test_64_kb_bodies(word, unit):
    body = word + unit * (65_536 // len(unit))
    _check(parse_event(text(body)))
    _check(parse_event(reply(body)))
