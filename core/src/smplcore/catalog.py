"""The subscription catalog: products, tiers (free/team/enterprise), features and limits.

The catalog is data: ``smplcore/data/catalog.toml``, read with ``tomllib`` through
``importlib.resources``. A tier's features and limits are the union over the products of
what that tier grants; a limit that a tier leaves out is unlimited (``None``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any, ClassVar, Final

from fastapi import Request, Response
from fastapi.routing import APIRoute

from smplcore.auth import AccountContext, current_account
from smplcore.errors import ForbiddenError

__all__ = [
    "CATALOG_STATE_KEY",
    "DEFAULT_CATALOG",
    "Catalog",
    "Product",
    "Tier",
    "feature_route",
    "get_catalog",
    "load_catalog",
    "require_feature",
    "required_feature",
]

CATALOG_STATE_KEY: Final = "smplcore_catalog"


@dataclass(frozen=True, slots=True)
class Tier:
    """What one tier of one product grants."""

    name: str
    features: frozenset[str]
    limits: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Product:
    """A product and its tiers, by tier name."""

    name: str
    tiers: Mapping[str, Tier]
    title: str = ""


@dataclass(frozen=True)
class Catalog:
    """Products by name, plus the tier names in order (cheapest first).

    ``tier(product, tier)`` is one product's :class:`Tier`; ``allows(tier, feature)`` and
    ``limit(tier, name)`` look across all products (an account has one tier).
    """

    products: Mapping[str, Product]
    tier_names: tuple[str, ...] = ("free", "team", "enterprise")
    _features: Mapping[str, frozenset[str]] = field(init=False, repr=False, compare=False)
    _limits: Mapping[str, Mapping[str, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        features: dict[str, set[str]] = {name: set() for name in self.tier_names}
        limits: dict[str, dict[str, int]] = {name: {} for name in self.tier_names}
        for product in self.products.values():
            for tier_name, tier in product.tiers.items():
                if tier_name not in features:
                    raise ValueError(
                        f"product {product.name!r} has tier {tier_name!r}, "
                        f"not one of {list(self.tier_names)}"
                    )
                features[tier_name] |= tier.features
                for limit_name, value in tier.limits.items():
                    if limits[tier_name].get(limit_name, value) != value:
                        raise ValueError(f"limit {limit_name!r} of tier {tier_name!r} is set twice")
                    limits[tier_name][limit_name] = value
        object.__setattr__(
            self, "_features", MappingProxyType({k: frozenset(v) for k, v in features.items()})
        )
        object.__setattr__(
            self, "_limits", MappingProxyType({k: MappingProxyType(v) for k, v in limits.items()})
        )

    @property
    def features(self) -> frozenset[str]:
        """Every feature that some tier grants."""
        return frozenset().union(*self._features.values())

    def tier(self, product: str, tier: str) -> Tier:
        """One product's tier; ``KeyError`` when either is unknown."""
        return self.products[product].tiers[tier]

    def allows(self, tier: str, feature: str) -> bool:
        """Whether ``tier`` grants ``feature`` (False for an unknown tier)."""
        features = self._features.get(tier)
        return features is not None and feature in features

    def limit(self, tier: str, name: str) -> int | None:
        """The tier's limit ``name``; ``None`` = unlimited (or an unknown tier: see ``allows``)."""
        limits = self._limits.get(tier)
        return None if limits is None else limits.get(name)

    def features_of(self, tier: str) -> frozenset[str]:
        """Every feature ``tier`` grants."""
        return self._features.get(tier, frozenset())

    @classmethod
    def from_toml(cls, text: str) -> Catalog:
        """Parse a catalog in the format of the packaged ``catalog.toml``."""
        return cls.from_mapping(tomllib.loads(text))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Catalog:
        """Build a catalog from parsed TOML data (``ValueError`` on a malformed one)."""
        tier_names = tuple(data.get("tiers", ()))
        if not tier_names or not all(isinstance(n, str) and n for n in tier_names):
            raise ValueError("the catalog needs a non-empty list 'tiers' of names")
        products: dict[str, Product] = {}
        for product_name, product_data in dict(data.get("products", {})).items():
            tiers: dict[str, Tier] = {}
            for tier_name, tier_data in dict(product_data.get("tiers", {})).items():
                features = tier_data.get("features", [])
                limits = tier_data.get("limits", {})
                if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
                    raise ValueError(f"{product_name}.{tier_name}: features must be strings")
                if not isinstance(limits, dict) or not all(
                    isinstance(v, int) and not isinstance(v, bool) and v >= 0
                    for v in limits.values()
                ):
                    raise ValueError(
                        f"{product_name}.{tier_name}: limits must be non-negative integers"
                    )
                tiers[tier_name] = Tier(
                    name=tier_name,
                    features=frozenset(features),
                    limits=MappingProxyType(dict(limits)),
                )
            products[product_name] = Product(
                name=product_name,
                tiers=MappingProxyType(tiers),
                title=str(product_data.get("title", product_name)),
            )
        return cls(products=MappingProxyType(products), tier_names=tier_names)


def load_catalog() -> Catalog:
    """The catalog packaged with smplcore (``smplcore/data/catalog.toml``)."""
    text = resources.files("smplcore").joinpath("data/catalog.toml").read_text(encoding="utf-8")
    return Catalog.from_toml(text)


DEFAULT_CATALOG: Final[Catalog] = load_catalog()


def get_catalog(request: Request) -> Catalog:
    """The catalog :func:`smplcore.install_core` stored on the app (default: the packaged one)."""
    catalog: Catalog | None = getattr(request.app.state, CATALOG_STATE_KEY, None)
    return DEFAULT_CATALOG if catalog is None else catalog


async def _account_granted(request: Request, feature: str) -> AccountContext:
    """The caller's account, once its tier is known to grant ``feature`` (else 403)."""
    account = await current_account(request)
    if not get_catalog(request).allows(account.tier, feature):
        raise ForbiddenError(
            f"The '{account.tier}' tier does not include the feature '{feature}'",
            code="feature_not_in_tier",
        )
    return account


class _FeatureCheck:
    """The dependency :func:`require_feature` returns."""

    def __init__(self, feature: str) -> None:
        self.feature = feature

    async def __call__(self, request: Request) -> AccountContext:
        return await _account_granted(request, self.feature)


def require_feature(feature: str) -> Callable[[Request], Awaitable[AccountContext]]:
    """Dependency factory: the caller's account, or 403 when its tier lacks ``feature``.

    ``account: Annotated[AccountContext, Depends(require_feature("widgets.export"))]`` or
    ``dependencies=[Depends(require_feature("widgets"))]``. It reads the account the
    middleware verified under the app's :class:`~smplcore.auth.AccessPolicy` (without one,
    deprecated, it verifies the token itself, once per request). For every route of a router,
    :func:`feature_route` does the same check without a dependency.
    """
    _check_feature_name(feature)
    return _FeatureCheck(feature)


class _FeatureRoute(APIRoute):
    """The base of the classes :func:`feature_route` returns."""

    feature: ClassVar[str]

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        feature = self.feature

        async def handle_if_granted(request: Request) -> Response:
            await _account_granted(request, feature)
            return await handle(request)

        return handle_if_granted


def feature_route(feature: str) -> type[APIRoute]:
    """A route class whose routes answer 403 to a caller whose tier lacks ``feature``, before the
    request's body is read or a dependency runs.

    ``APIRouter(prefix="/widgets", route_class=feature_route("widgets"))``: every route of the
    router requires the feature, and reads the caller with :func:`~smplcore.auth.current_account`.
    """
    _check_feature_name(feature)
    return type(f"FeatureRoute[{feature}]", (_FeatureRoute,), {"feature": feature})


def _check_feature_name(feature: str) -> None:
    if not feature:
        raise ValueError("feature must be a non-empty name")


def required_feature(dependency: object) -> str | None:
    """The feature a dependency from :func:`require_feature`, or a route of a
    :func:`feature_route` class, requires (``None`` for others)."""
    if isinstance(dependency, _FeatureCheck | _FeatureRoute):
        return dependency.feature
    return None
