"""Abuse reports and moderation decisions (pure): categories, what a moderator may do, and when
an action needs a second moderator.

Heavy actions (banning from every hub room, deactivating an account) take effect only when a
second moderator agrees; the policy can require her to be from another side of the line, so
that one side alone cannot remove someone from the other. An appeal is decided by two moderators
who had no part in the decision under appeal (one proposes, the other agrees), from two sides
where the policy asks sides to differ: no one decides a case twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from crossline.errors import Conflict, InvalidInput, NotAllowed


class Category(str, Enum):
    HARASSMENT = "harassment"
    THREATS = "threats"
    DOXING = "doxing"
    INTIMATE_IMAGES = "intimate_images"
    IMPERSONATION = "impersonation"
    HATE_SPEECH = "hate_speech"
    DISINFORMATION = "disinformation"
    SPAM = "spam"
    OTHER = "other"

    @property
    def label(self) -> str:
        return CATEGORY_LABELS[self]


CATEGORY_LABELS = {
    Category.HARASSMENT: "Harassment",
    Category.THREATS: "Threats of violence",
    Category.DOXING: "Sharing private information (doxing)",
    Category.INTIMATE_IMAGES: "Intimate images shared without consent",
    Category.IMPERSONATION: "Impersonation",
    Category.HATE_SPEECH: "Hate speech, “traitor” smears",
    Category.DISINFORMATION: "Disinformation",
    Category.SPAM: "Spam",
    Category.OTHER: "Something else",
}
# Seen first in the queue: harm that can escalate offline.
URGENT_BY_DEFAULT = frozenset({Category.THREATS, Category.DOXING, Category.INTIMATE_IMAGES})


class Action(str, Enum):
    DISMISS = "dismiss"
    WARN = "warn"
    REDACT = "redact"
    KICK = "kick"
    BAN_ROOM = "ban_room"
    BAN_ALL = "ban_all"
    SUSPEND = "suspend"
    SHADOW_BAN = "shadow_ban"
    DEACTIVATE = "deactivate"
    LIFT = "lift"  # only on appeal: undo what the decision under appeal did, where it can be undone


ACTION_LABELS = {
    Action.DISMISS: "No action", Action.WARN: "Warn the person", Action.REDACT: "Remove the message",
    Action.KICK: "Remove from the room", Action.BAN_ROOM: "Ban from the room",
    Action.BAN_ALL: "Ban from every hub room", Action.SUSPEND: "Suspend the account",
    Action.SHADOW_BAN: "Shadow-ban (messages reach nobody)", Action.DEACTIVATE: "Deactivate the account",
    Action.LIFT: "Lift the decision",
}
HEAVY_ACTIONS = frozenset({Action.BAN_ALL, Action.DEACTIVATE})
NEEDS_EVENT = frozenset({Action.REDACT})
NEEDS_ROOM = frozenset({Action.KICK, Action.BAN_ROOM})
NEEDS_PERSON = frozenset(Action) - {Action.DISMISS, Action.REDACT}
MAX_REASON = 1000


class CaseStatus(str, Enum):
    OPEN = "open"
    AWAITING_SECOND = "awaiting_second"  # a heavy action waits for a second moderator
    DECIDED = "decided"
    APPEALED = "appealed"
    CLOSED = "closed"


@dataclass(frozen=True)
class Moderator:
    member_id: int
    side_id: int | None
    name: str = ""  # how refusals name her to others (her account)


@dataclass(frozen=True)
class CaseFacts:
    status: CaseStatus
    room_id: str | None
    event_id: str | None
    reported_user: str | None
    deciders: frozenset[int]  # moderators who proposed or agreed to a decision not on appeal
    reporter_member_id: int | None
    reporter_wants_action: bool = True


def parse_category(value: str) -> Category:
    try:
        return Category(value)
    except ValueError:
        raise InvalidInput("Choose one of the listed kinds of harm.") from None


def parse_action(value: str) -> Action:
    try:
        return Action(value)
    except ValueError:
        raise InvalidInput("Choose one of the listed actions.") from None


def check_reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise InvalidInput("Write the reason for the decision: the reported person and the reporter are told it.")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"The reason is too long ({len(reason)} characters; at most {MAX_REASON}).")
    return reason


def check_decision(case: CaseFacts, action: Action, moderator: Moderator,
                   others: tuple[Moderator, ...] = (), different_sides: bool = False) -> None:
    """Refusals for a first decision, or the proposal of a decision on appeal. others: the
    moderators who may see the case, named in a refusal as those who may act instead."""
    if case.status not in (CaseStatus.OPEN, CaseStatus.APPEALED):
        raise Conflict("This case is not waiting for a decision.")
    if case.reporter_member_id == moderator.member_id:
        raise NotAllowed("You reported this case: another moderator must decide it.")
    if not case.reporter_wants_action and action is not Action.DISMISS and case.status is CaseStatus.OPEN:
        # Her report, her choice: acting against her wish can put her at risk.
        raise NotAllowed("The reporter asked for a record only, not action. Record it with “No action”; "
                         "she can change her choice on her status page.")
    if case.status is CaseStatus.APPEALED:
        _check_appeal_step(case, moderator, None, others, different_sides)
    elif different_sides and action in HEAVY_ACTIONS and moderator.side_id is None:
        raise NotAllowed(NO_SIDE + " A moderator from one side proposes it, one from another agrees.")
    elif action is Action.LIFT:
        raise InvalidInput("“Lift the decision” is only for an appeal: this case has no decision under appeal.")
    if action in NEEDS_EVENT and not (case.event_id and case.room_id):
        raise InvalidInput("This report names no message, so there is nothing to remove.")
    if action in NEEDS_ROOM and not case.room_id:
        raise InvalidInput("This report names no room: choose an action that does not need one.")
    if action in NEEDS_PERSON and not case.reported_user:
        raise InvalidInput("This report names no account: choose an action that does not need one.")


def check_second(case: CaseFacts, proposer: Moderator, second: Moderator, different_sides: bool,
                 on_appeal: bool = False, others: tuple[Moderator, ...] = ()) -> None:
    if case.status is not CaseStatus.AWAITING_SECOND:
        raise Conflict("No action in this case is waiting for a second moderator.")
    if on_appeal:
        _check_appeal_step(case, second, proposer, others, different_sides)
        return
    if second.member_id == proposer.member_id:
        raise NotAllowed("A second moderator must agree: you proposed this action yourself.")
    if case.reporter_member_id == second.member_id:
        raise NotAllowed("You reported this case: another moderator must agree.")
    if different_sides and second.side_id is None:
        raise NotAllowed(NO_SIDE + " A moderator from another side than the proposer's must agree.")
    if different_sides and not sides_differ(proposer, second):
        raise NotAllowed("The policy asks for a moderator from another side of the line to agree to this action.")


NO_SIDE = ("You belong to no side of the line, and the policy asks two moderators from two different sides to "
           "decide this.")


def sides_differ(first: Moderator, second: Moderator) -> bool:
    """Both belong to a side, and not the same one: a moderator of no side (an admin, staff) pairs
    with no one where the policy asks sides to differ, whichever step she takes."""
    return first.side_id is not None and second.side_id is not None and first.side_id != second.side_id


# -- Appeals: two moderators who took no part in the decision under appeal ----------------------


def appeal_refusal(case: CaseFacts, moderator: Moderator, proposer: Moderator | None,
                   different_sides: bool) -> str | None:
    """Why she may not take this step of an appeal (propose when proposer is None, else agree),
    or None when she may."""
    if moderator.member_id in case.deciders:
        return "you took part in the decision under appeal (you proposed it or agreed to it)"
    if moderator.member_id == case.reporter_member_id:
        return "you reported this case"
    if different_sides and moderator.side_id is None:
        return "you belong to no side of the line"
    if proposer is not None:
        if moderator.member_id == proposer.member_id:
            return "you proposed this decision on appeal yourself, and a second moderator must agree"
        if different_sides and not sides_differ(moderator, proposer):
            return "the policy asks the two moderators who decide an appeal to be from two different sides"
    return None


def who_may(case: CaseFacts, moderators: tuple[Moderator, ...], proposer: Moderator | None,
            different_sides: bool) -> tuple[Moderator, ...]:
    """The moderators who may take this step of the appeal: to agree to the proposer's decision,
    or (proposer None) to propose one that another moderator may then agree to. None left: too few
    moderators are left to decide it."""
    if proposer is not None:
        return tuple(m for m in moderators if appeal_refusal(case, m, proposer, different_sides) is None)
    return tuple(m for m in moderators if appeal_refusal(case, m, None, different_sides) is None
                 and who_may(case, moderators, m, different_sides))


def _names(moderators: tuple[Moderator, ...]) -> str:
    return ", ".join(m.name or f"moderator {m.member_id}" for m in moderators)


def _check_appeal_step(case: CaseFacts, moderator: Moderator, proposer: Moderator | None,
                       others: tuple[Moderator, ...], different_sides: bool) -> None:
    why = appeal_refusal(case, moderator, proposer, different_sides)
    if why is None:
        return
    step = "propose the decision on this appeal" if proposer is None else "agree to it"
    instead = who_may(case, others, proposer, different_sides)
    raise NotAllowed(
        f"This is an appeal, and {why}: two moderators who took no part in the decision under appeal decide it"
        + (", from two different sides" if different_sides else "") + ". "
        + (f"Who may {step} instead: {_names(instead)}." if instead else
           f"No moderator is left who may {step}: an admin can name another moderator "
           "(an invitation with the moderator role)."))


def check_appeal(case: CaseFacts, appellant_user_id: str) -> None:
    if case.status is not CaseStatus.DECIDED:
        raise Conflict("Only a decided case can be appealed, once.")
    if case.reported_user != appellant_user_id:
        raise NotAllowed("Only the person the decision concerns can appeal it.")
