"""What the hub publishes to Synapse's module and its gateway as names nobody else may take
(services.hub.publish_protected_names), on a real database with a recording homeserver."""

from __future__ import annotations

import json
import re
import stat

from crossline.services import pseudonym_pool as pool
from crossline.services import pseudonyms as service
from crossline.synapse.files import protected_names_path
from crossline_policies import names
from tests.test_pseudonyms import world  # noqa: F401 - the fixture: a consultation, moderators, a pool


def _published(hub) -> tuple[names.Protected, tuple[str, ...]]:
    return names.load_protected(json.loads(protected_names_path(hub.config).read_text()))


async def test_a_pseudonyms_name_is_published_before_she_takes_it_and_nobody_else_can(world):  # noqa: F811
    new = await service.create_pseudonym(world, world.person, world.consultation.id, "River Voice")
    seen_when_named = []
    set_displayname = world.homeserver.set_displayname

    async def naming(user_id: str, name: str) -> None:
        seen_when_named.append(_published(world)[0])
        await set_displayname(user_id, name)

    world.homeserver.set_displayname = naming
    await pool.run_batch(world)
    await pool.run_batch(world)
    assert seen_when_named, "the batch named no pseudonym"
    assert names.ProtectedName("River Voice", new.user_id, "a pseudonym") in seen_when_named[0].names
    protected, _ = _published(world)
    assert names.check_name("River Voice", new.user_id, protected) is None  # hers
    for forged in ("River Voice", "Rivеr Voice", "River V0ice", "RIVER VOICE", "River\u200bVoice"):
        assert names.check_name(forged, "@olga:crossline.local", protected), forged


def test_staff_the_hubs_rooms_and_accounts_are_published_privately(world):  # noqa: F811
    world.publish_protected_names()
    path = protected_names_path(world.config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    protected, staff = _published(world)
    staff_ids = {world.admin.matrix_user_id, world.facilitator.matrix_user_id,
                 *(m.matrix_user_id for m in world.mods.values()), world.config.bot_user_id}
    assert staff_ids <= set(staff) and staff_ids <= protected.hub_accounts
    assert "@olga:crossline.local" not in staff and "@olga:crossline.local" not in protected.hub_accounts
    room_names = {entry.name for entry in protected.names if entry.owner == ""}
    assert "Consult" in room_names
    assert {t.topic_note for t in world.room_templates.values()} <= room_names


async def test_a_pseudonym_obeys_the_display_name_rules_its_joins_will_meet(world):  # noqa: F811
    import pytest

    from crossline.errors import InvalidInput
    for bad, says in (("Moderator Voice", "'moderator'"), ("Quiet\u200bHill", "U+200B"), ("Quiet Hіll", "one alphabet"),
                      ("Crossline Help", "'crossline'")):
        with pytest.raises(InvalidInput, match=re.escape(says)):
            await service.create_pseudonym(world, world.other, world.consultation.id, bad)
    assert (await service.create_pseudonym(world, world.other, world.consultation.id, "Quiet Hill")).user_id


async def test_the_join_page_refuses_an_account_id_that_reads_as_staff_or_the_hub(hub):
    import pytest

    from crossline.errors import InvalidInput
    from crossline.services import onboarding
    hub.homeserver.accounts[hub.facilitator.matrix_user_id] = {"displayname": "Natalia Cojocaru"}
    hub.publish_protected_names()
    issued = await onboarding.issue_invitation(hub, hub.facilitator, 1, 1, frozenset({"participant"}))
    code = issued.code
    for localpart, says in (("natalia.cojocaru", "a staff member"), ("crossline-help", "'crossline'")):
        with pytest.raises(InvalidInput, match=says):
            await onboarding.register_on_hub(hub, code, localpart, "a long enough password 1")
    assert not [call for call in hub.homeserver.calls if call[0] == "register"]  # nothing reached Synapse
