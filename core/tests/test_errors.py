"""SmplkitError and its subclasses; error documents."""

from collections.abc import Callable

import pytest

from smplcore import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ServiceUnavailableError,
    SmplkitError,
    UnauthorizedError,
    UnprocessableEntityError,
    error_document,
)
from smplcore.errors import error_from_status, json_pointer


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (BadRequestError, 400),
        (UnauthorizedError, 401),
        (ForbiddenError, 403),
        (NotFoundError, 404),
        (ConflictError, 409),
        (UnprocessableEntityError, 422),
        (ServiceUnavailableError, 503),
    ],
)
def test_subclasses(
    cls: type[SmplkitError], status: int, assert_document: Callable[[object], None]
) -> None:
    error = cls("detail here", parameter="q")
    assert isinstance(error, SmplkitError)
    assert error.status == status
    obj = error.to_error_object()
    assert obj["status"] == str(status)
    assert obj["detail"] == "detail here"
    assert obj["source"] == {"parameter": "q"}
    assert obj["code"]
    assert obj["title"]
    assert_document(error_document([error]))


def test_unauthorized_carries_a_bearer_challenge() -> None:
    assert UnauthorizedError().headers == {"WWW-Authenticate": "Bearer"}
    custom = UnauthorizedError(headers={"www-authenticate": 'Bearer realm="x"'})
    assert custom.headers == {"www-authenticate": 'Bearer realm="x"'}


def test_per_instance_overrides() -> None:
    error = ConflictError("taken", code="name_taken", title="Name taken", pointer="/data/x")
    assert error.to_error_object() == {
        "status": "409",
        "code": "name_taken",
        "title": "Name taken",
        "detail": "taken",
        "source": {"pointer": "/data/x"},
    }
    assert ConflictError.code == "conflict"  # the class is untouched
    assert "ConflictError(status=409" in repr(error)
    assert str(SmplkitError()) == "Internal Server Error"


def test_error_without_detail_or_source() -> None:
    assert NotFoundError().to_error_object() == {
        "status": "404",
        "code": "not_found",
        "title": "Not Found",
    }


def test_error_from_status() -> None:
    assert isinstance(error_from_status(404), NotFoundError)
    teapot = error_from_status(418, "short and stout")
    assert teapot.to_error_object()["title"] == "I'm a Teapot"
    assert teapot.code == "im_a_teapot"
    assert error_from_status(599).title == "Error"


def test_json_pointer_escapes() -> None:
    assert json_pointer(["data", "attributes", "a/b", "c~d", 0]) == "/data/attributes/a~1b/c~0d/0"
    assert json_pointer([]) == ""
