"""Abuse reports and moderation decisions (pure): categories, what a moderator may do, and when
an action needs a second moderator.

Heavy actions (banning from every hub room, deactivating an account) take effect only when a
second moderator agrees; the policy can require her to be from another side of the line, so
that one side alone cannot remove someone from the other. An appeal goes to moderators who had
no part in the decision.
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


ACTION_LABELS = {
    Action.DISMISS: "No action", Action.WARN: "Warn the person", Action.REDACT: "Remove the message",
    Action.KICK: "Remove from the room", Action.BAN_ROOM: "Ban from the room",
    Action.BAN_ALL: "Ban from every hub room", Action.SUSPEND: "Suspend the account",
    Action.SHADOW_BAN: "Shadow-ban (messages reach nobody)", Action.DEACTIVATE: "Deactivate the account",
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


@dataclass(frozen=True)
class CaseFacts:
    status: CaseStatus
    room_id: str | None
    event_id: str | None
    reported_user: str | None
    deciders: frozenset[int]  # moderators who decided (or proposed) so far
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


def check_decision(case: CaseFacts, action: Action, moderator: Moderator) -> None:
    """Refusals for a first decision (or a decision on appeal)."""
    if case.status not in (CaseStatus.OPEN, CaseStatus.APPEALED):
        raise Conflict("This case is not waiting for a decision.")
    if case.reporter_member_id == moderator.member_id:
        raise NotAllowed("You reported this case: another moderator must decide it.")
    if not case.reporter_wants_action and action is not Action.DISMISS and case.status is CaseStatus.OPEN:
        # Her report, her choice: acting against her wish can put her at risk.
        raise NotAllowed("The reporter asked for a record only, not action. Record it with “No action”; "
                         "she can change her choice on her status page.")
    if case.status is CaseStatus.APPEALED and moderator.member_id in case.deciders:
        raise NotAllowed("This is an appeal: a moderator who had no part in the first decision must decide it.")
    if action in NEEDS_EVENT and not (case.event_id and case.room_id):
        raise InvalidInput("This report names no message, so there is nothing to remove.")
    if action in NEEDS_ROOM and not case.room_id:
        raise InvalidInput("This report names no room: choose an action that does not need one.")
    if action in NEEDS_PERSON and not case.reported_user:
        raise InvalidInput("This report names no account: choose an action that does not need one.")


def check_second(case: CaseFacts, proposer: Moderator, second: Moderator, different_sides: bool) -> None:
    if case.status is not CaseStatus.AWAITING_SECOND:
        raise Conflict("No action in this case is waiting for a second moderator.")
    if second.member_id == proposer.member_id:
        raise NotAllowed("A second moderator must agree: you proposed this action yourself.")
    if case.reporter_member_id == second.member_id:
        raise NotAllowed("You reported this case: another moderator must agree.")
    if different_sides and (second.side_id is None or second.side_id == proposer.side_id):
        raise NotAllowed("The policy asks for a moderator from another side of the line to agree to this action.")


def check_appeal(case: CaseFacts, appellant_user_id: str) -> None:
    if case.status is not CaseStatus.DECIDED:
        raise Conflict("Only a decided case can be appealed, once.")
    if case.reported_user != appellant_user_id:
        raise NotAllowed("Only the person the decision concerns can appeal it.")
