"""first_value and dotted_paths: how plugins read a value from the routed payload by the
paths their options name."""

from __future__ import annotations

import pytest

from crossdock.destination import dotted_paths, first_value

PAYLOAD = {"traits": {"email": "  ", "phone": "+1"}, "identities": {"email": "a@b.co"},
           "userId": "u1", "context": {"traits": None}}


@pytest.mark.parametrize(("paths", "expected"), [
    (("traits.email", "identities.email"), "a@b.co"),    # blank text is no value
    (("traits.phone",), "+1"),
    (("userId",), "u1"),
    (("context.traits.email", "traits.nothing"), None),  # through a null, a missing key
    (("userId.deeper",), None),                          # through a value that is no object
    ((), None),
])
def test_first_value_takes_the_first_path_holding_a_value(paths: tuple[str, ...],
                                                          expected: object) -> None:
    assert first_value(PAYLOAD, *paths) == expected


@pytest.mark.parametrize(("paths", "problem"), [
    ([], "name at least one"),
    (["traits..email"], "'traits..email'"),
    (["traits.email", ".email"], "'.email'"),
    (["traits. email"], "'traits. email'"),
])
def test_dotted_paths_names_the_first_bad_path(paths: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        dotted_paths(paths)
    assert dotted_paths(["traits.email", "userId"]) == ["traits.email", "userId"]
