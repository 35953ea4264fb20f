"""VTEX through the whole pipeline (accept -> profile -> route -> outbox -> deliver) to its
contract fake: the consent from the profile store decides the newsletter opt-in, the
operator's fields reach the document, and a refusal is a dead letter with its reason."""

from __future__ import annotations

from vtex_helpers import Harness

from crossdock.plugins.vtex.fake import CL_FIELDS


def identify(n: int = 1, **traits: object) -> dict[str, object]:
    return {"type": "identify", "userId": "u-ada", "messageId": f"m-identify-{n}",
            "traits": {"email": "ada@example.com", "firstName": "Ada", **traits}}


async def test_opting_in_then_out_sets_then_clears_the_newsletter_opt_in(
        harness: Harness) -> None:
    run = await harness.run([identify(1, emailOptIn=True)])
    assert run.report.delivered == 1
    assert harness.document("ada@example.com")["isNewsletterOptIn"] is True
    run = await harness.run([identify(2, emailOptIn=False, lastName="Lovelace")])
    assert run.report.delivered == 1
    document = harness.document("ada@example.com")
    assert document["isNewsletterOptIn"] is False
    assert (document["firstName"], document["lastName"]) == ("Ada", "Lovelace")
    assert len(harness.fake.documents["CL"]) == 1


async def test_the_operator_s_fields_are_merged_over_the_shipped_ones(harness: Harness) -> None:
    harness.fake.entities["CL"].fields["plan"] = "Varchar50"
    run = await harness.run([identify(1, plan="pro", phone="+55 11 91234-5678")],
                            mapping={"options": {"fields": {"plan": "plan"}}})
    assert run.report.delivered == 1
    document = harness.document("ada@example.com")
    assert (document["plan"], document["firstName"]) == ("pro", "Ada")
    assert document["phone"] == "+5511912345678"


async def test_a_field_the_entity_lacks_is_a_dead_letter_naming_it(harness: Harness) -> None:
    assert "plan" not in CL_FIELDS
    run = await harness.run([identify(1, plan="pro")],
                            mapping={"options": {"fields": {"plan": "plan"}}})
    assert run.report.dead == 1
    (row,) = run.rows
    assert "Field 'plan' not found in data entity 'CL'" in str(row["last_error"])
