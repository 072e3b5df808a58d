"""The declarative base that every table of the service is mapped on."""

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import DateTime, MetaData, Text
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
}
"""Every constraint and index gets a predictable name, the same on every database, so migrations
can alter and drop them by name and `alembic check` compares them."""


class Base(DeclarativeBase):
    """`Mapped[str]` is `text` (PostgreSQL's unbounded string; the API validates lengths), and
    every `Mapped[datetime]` is stored with its time zone."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        str: Text(),
        datetime: DateTime(timezone=True),
    }
