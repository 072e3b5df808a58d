"""JSON:API documents built by the core, and request documents parsed by it."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from jsonschema.protocols import Validator
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.errors import PydanticSchemaGenerationError

from smplcore import (
    CollectionDocument,
    ConflictError,
    CreateDocument,
    ForbiddenError,
    NotFoundError,
    Page,
    Resource,
    ResourceDocument,
    UpdateDocument,
    collection_document,
    error_document,
    resource_document,
)
from smplcore.jsonapi import MAX_PAGE_SIZE


class Attrs(BaseModel):
    name: str
    size: int = 1


def widget(i: int, *, links: bool = True) -> Resource[Attrs]:
    return Resource[Attrs](
        type="widgets",
        id=str(i),
        attributes=Attrs(name=f"w{i}"),
        links={"self": f"http://x/v1/widgets/{i}"} if links else None,
    )


def query(url: str | None) -> dict[str, list[str]]:
    assert url is not None
    return parse_qs(urlsplit(url).query)


def test_resource_document_shape_and_schema(assert_document: Callable[[object], None]) -> None:
    document = resource_document(widget(1), self_link="http://x/v1/widgets/1")
    assert isinstance(document, ResourceDocument)
    dumped = document.model_dump(mode="json")
    assert dumped == {
        "data": {
            "type": "widgets",
            "id": "1",
            "attributes": {"name": "w1", "size": 1},
            "links": {"self": "http://x/v1/widgets/1"},
        },
        "links": {"self": "http://x/v1/widgets/1"},
    }
    assert_document(dumped)


def test_resource_without_links_leaves_them_out(assert_document: Callable[[object], None]) -> None:
    document = resource_document(widget(1, links=False), self_link="http://x/v1/widgets/1")
    dumped = document.model_dump(mode="json")
    assert "links" not in dumped["data"]  # null is not a valid links object
    assert_document(dumped)
    assert_document(__import__("json").loads(document.model_dump_json()))


def test_unparametrized_resource_keeps_its_attributes() -> None:
    resource: Resource[Any] = Resource(type="widgets", id="1", attributes=Attrs(name="a"))
    document = resource_document(resource, self_link="http://x/")
    assert document.model_dump()["data"]["attributes"] == {"name": "a", "size": 1}
    typed = ResourceDocument[Attrs].model_validate(document)
    assert typed.data.attributes.name == "a"


def test_resource_type_must_be_a_member_name() -> None:
    with pytest.raises(ValidationError):
        Resource[Attrs](type="bad type!", id="1", attributes=Attrs(name="a"))


def test_a_parametrized_resource_is_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    class Fresh(BaseModel):
        name: str

    first = Resource[Fresh]

    def rebuilt(cls: type[BaseModel], params: object) -> None:
        raise AssertionError(f"{cls.__name__}[{params}] went through pydantic's generics again")

    monkeypatch.setattr(BaseModel, "__class_getitem__", classmethod(rebuilt))
    assert Resource[Fresh] is first
    assert first(type="widgets", id="1", attributes={"name": "a"}).attributes == Fresh(name="a")


def test_bad_resource_parameters_are_reported_by_pydantic() -> None:
    with pytest.raises(PydanticSchemaGenerationError, match="Unable to generate"):
        Resource[[Attrs]]  # type: ignore[misc, valid-type]


@dataclass(frozen=True)
class Row:
    id: int
    name: str
    size: int
    owner: str = "kept out of the attributes"


class RowAttrs(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    size: int = Field(ge=1)


def test_resource_from_row_reads_and_validates_its_attributes() -> None:
    resource = Resource[RowAttrs].from_row(
        Row(id=7, name="a", size=2), resource_type="widgets", self_link="http://x/v1/widgets/7"
    )
    assert resource.model_dump(mode="json") == {
        "type": "widgets",
        "id": "7",
        "attributes": {"name": "a", "size": 2},
        "links": {"self": "http://x/v1/widgets/7"},
    }
    without_link = Resource[RowAttrs].from_row(Row(id=7, name="a", size=2), resource_type="w")
    assert "links" not in without_link.model_dump(mode="json")
    with pytest.raises(ValidationError, match=r"attributes\.size"):
        Resource[RowAttrs].from_row(Row(id=7, name="a", size=0), resource_type="widgets")


def test_resources_from_rows_link_to_their_collection(
    assert_document: Callable[[object], None],
) -> None:
    rows = [Row(id=1, name="a", size=1), Row(id=2, name="b", size=3)]
    resources = Resource[RowAttrs].from_rows(
        rows, resource_type="widgets", collection_url="http://x/v1/widgets"
    )
    assert [resource.id for resource in resources] == ["1", "2"]
    assert [resource.attributes for resource in resources] == [
        RowAttrs(name="a", size=1),
        RowAttrs(name="b", size=3),
    ]
    assert [resource.links for resource in resources] == [
        {"self": "http://x/v1/widgets/1"},
        {"self": "http://x/v1/widgets/2"},
    ]
    document = collection_document(resources, page=Page(), total=2, url="http://x/v1/widgets")
    assert type(document) is CollectionDocument[RowAttrs]
    assert_document(document.model_dump(mode="json"))
    with pytest.raises(ValidationError, match=r"1\.attributes\.size"):
        Resource[RowAttrs].from_rows(
            [rows[0], Row(id=3, name="c", size=0)], resource_type="widgets", collection_url="/"
        )


def test_resources_from_rows_need_the_attributes_model() -> None:
    with pytest.raises(TypeError, match=r"Resource\[Attributes\]"):
        Resource.from_rows([Row(id=1, name="a", size=1)], resource_type="w", collection_url="/")
    with pytest.raises(TypeError, match=r"Resource\[Attributes\]"):
        Resource.from_row(Row(id=1, name="a", size=1), resource_type="w")


def test_collection_document_middle_page(assert_document: Callable[[object], None]) -> None:
    url = "http://x/v1/widgets?filter[name]=w&page[number]=2&page[size]=2&sort=-name"
    document = collection_document(
        [widget(3), widget(4)], page=Page(number=2, size=2), total=5, url=url
    )
    assert isinstance(document, CollectionDocument)
    dumped = document.model_dump(mode="json")
    assert_document(dumped)
    links = dumped["links"]
    assert links["self"] == url
    assert query(links["first"])["page[number]"] == ["1"]
    assert query(links["prev"])["page[number]"] == ["1"]
    assert query(links["next"])["page[number]"] == ["3"]
    assert query(links["last"])["page[number]"] == ["3"]
    for name in ("first", "prev", "next", "last"):
        params = query(links[name])
        assert params["page[size]"] == ["2"]
        assert params["filter[name]"] == ["w"]  # other query parameters are kept
        assert params["sort"] == ["-name"]
        assert "page%5B" not in links[name]  # readable brackets
    assert dumped["meta"] == {"total": 5, "page": {"number": 2, "size": 2, "pages": 3}}


def test_collection_document_first_and_last_pages(
    assert_document: Callable[[object], None],
) -> None:
    first = collection_document(
        [widget(1)], page=Page(number=1, size=1), total=2, url="http://x/w"
    ).model_dump(mode="json")
    assert first["links"]["prev"] is None
    assert query(first["links"]["next"])["page[number]"] == ["2"]
    last = collection_document(
        [widget(2)], page=Page(number=2, size=1), total=2, url="http://x/w?page[number]=2"
    ).model_dump(mode="json")
    assert last["links"]["next"] is None
    assert query(last["links"]["prev"])["page[number]"] == ["1"]
    assert_document(first)
    assert_document(last)


def test_empty_collection(assert_document: Callable[[object], None]) -> None:
    dumped = collection_document([], page=Page(), total=0, url="http://x/w").model_dump(mode="json")
    assert dumped["data"] == []
    assert dumped["links"]["prev"] is None
    assert dumped["links"]["next"] is None
    assert query(dumped["links"]["last"])["page[number]"] == ["1"]
    assert dumped["meta"] == {"total": 0, "page": {"number": 1, "size": 20, "pages": 0}}
    assert_document(dumped)


def test_page_past_the_end_points_prev_at_the_last_page() -> None:
    dumped = collection_document(
        [], page=Page(number=9, size=10), total=25, url="http://x/w"
    ).model_dump(mode="json")
    assert query(dumped["links"]["prev"])["page[number]"] == ["3"]
    assert dumped["links"]["next"] is None


def test_collection_rejects_negative_total() -> None:
    with pytest.raises(ValueError, match="total"):
        collection_document([], page=Page(), total=-1, url="http://x/w")


def test_page_bounds_and_offset() -> None:
    page = Page(number=3, size=25)
    assert (page.offset, page.limit) == (50, 25)
    for number, size in ((0, 10), (1, 0), (1, MAX_PAGE_SIZE + 1)):
        with pytest.raises(ValueError, match="page"):
            Page(number=number, size=size)


def test_error_document_merges_duplicates(assert_document: Callable[[object], None]) -> None:
    errors = [NotFoundError("gone", pointer="/data"), NotFoundError("gone", pointer="/data")]
    document = error_document(errors)
    assert document == {
        "errors": [
            {
                "status": "404",
                "code": "not_found",
                "title": "Not Found",
                "detail": "gone",
                "source": {"pointer": "/data"},
            }
        ]
    }
    assert_document(document)


# ---------------------------------------------------------------------------- requests

CREATE: dict[str, Any] = {"data": {"type": "widgets", "attributes": {"name": "a", "size": 2}}}
UPDATE: dict[str, Any] = {"data": {"type": "widgets", "id": "7", "attributes": {"name": "b"}}}


def test_request_fixtures_are_valid_documents(
    create_validator: Validator, update_validator: Validator
) -> None:
    assert not list(create_validator.iter_errors(CREATE))
    assert not list(update_validator.iter_errors(UPDATE))
    # and the validators can fail
    assert list(update_validator.iter_errors(CREATE))  # no id
    assert list(create_validator.iter_errors({"data": {"attributes": {}}}))  # no type


def test_create_document_checks_the_type() -> None:
    document = CreateDocument[Attrs].model_validate(CREATE)
    assert document.attributes_for("widgets") == Attrs(name="a", size=2)
    with pytest.raises(ConflictError) as caught:
        document.attributes_for("gadgets")
    assert caught.value.status == 409
    assert caught.value.pointer == "/data/type"


def test_create_document_with_client_id() -> None:
    payload: dict[str, Any] = {"data": {**CREATE["data"], "id": "client-1"}}
    document = CreateDocument[Attrs].model_validate(payload)
    with pytest.raises(ForbiddenError) as caught:
        document.attributes_for("widgets")
    assert caught.value.pointer == "/data/id"
    assert document.attributes_for("widgets", allow_client_id=True).name == "a"


def test_update_document_checks_type_and_id() -> None:
    document = UpdateDocument[Attrs].model_validate(
        {"data": {"type": "widgets", "id": "7", "attributes": {"name": "b"}}}
    )
    assert document.attributes_for("widgets", "7").name == "b"
    with pytest.raises(ConflictError) as type_error:
        document.attributes_for("gadgets", "7")
    assert type_error.value.pointer == "/data/type"
    with pytest.raises(ConflictError) as id_error:
        document.attributes_for("widgets", "8")
    assert id_error.value.pointer == "/data/id"
    assert id_error.value.status == 409
