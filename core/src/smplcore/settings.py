"""Settings of the shared core.

The core never reads the environment: a service builds these from its own
pydantic-settings ``Settings`` and hands them to :func:`smplcore.install_core`.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

if TYPE_CHECKING:
    from jwt.algorithms import Algorithm

__all__ = [
    "MAX_INTERNAL_TOKEN_TTL",
    "SERVICE_NAME_PATTERN",
    "AuthSettings",
    "ClientSettings",
    "CoreSettings",
    "TelemetrySettings",
]

SERVICE_NAME_PATTERN = r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$"
"""Kebab-case: lower-case letters and digits in dash-separated words, starting with a letter."""

_SERVICE_NAME_RE = re.compile(SERVICE_NAME_PATTERN)
MAX_INTERNAL_TOKEN_TTL: Final = 300
"""The longest an internal token may live, in seconds."""
_LOG_LEVELS = frozenset({"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"})


def _known_algorithms() -> dict[str, Algorithm]:
    # PyJWT imports `cryptography`, most of the core's own import time: it is imported when
    # settings are first validated, not when a service imports the core (bench: import).
    from jwt.algorithms import get_default_algorithms  # noqa: PLC0415

    return {name: alg for name, alg in get_default_algorithms().items() if name != "none"}


def check_service_name(value: str) -> str:
    """Return ``value`` when it is a kebab-case service name, else raise ``ValueError``."""
    if len(value) > 63 or not _SERVICE_NAME_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a kebab-case service name (e.g. 'billing-api', at most 63 chars)"
        )
    return value


class AuthSettings(BaseModel):
    """How tokens are verified and issued. Keys come only from here."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_token_key: SecretStr
    """HMAC secret (HS*) or PEM public key (RS*/PS*/ES*/EdDSA) that verifies account tokens."""
    account_token_algorithms: tuple[str, ...] = ("HS256",)
    """Allow-list of JWS algorithms for account tokens (never ``none``; one key family)."""
    account_token_issuer: str = "smplkit-identity"  # noqa: S105 (a name, not a secret)
    account_token_audience: str = "smplkit-api"  # noqa: S105
    internal_token_secret: SecretStr
    """HS256 secret shared by services for service-to-service tokens (>= 32 bytes)."""
    internal_token_ttl_seconds: Annotated[int, Field(ge=1, le=MAX_INTERNAL_TOKEN_TTL)] = 300
    leeway_seconds: Annotated[int, Field(ge=0, le=120)] = 30
    token_cache_size: Annotated[int, Field(ge=0)] = 4096
    """Bound of the verified-token cache; 0 disables it."""

    @field_validator("account_token_algorithms")
    @classmethod
    def _check_algorithms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one algorithm is required")
        known = _known_algorithms()
        for name in value:
            if name.lower() == "none":
                raise ValueError("the 'none' algorithm is never allowed")
            if name not in known:
                raise ValueError(f"unknown JWS algorithm {name!r}; known: {sorted(known)}")
        if len(set(value)) != len(value):
            raise ValueError("algorithms must not repeat")
        return value

    @field_validator("internal_token_secret")
    @classmethod
    def _check_internal_secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) < 32:
            raise ValueError("internal_token_secret must be at least 32 bytes")
        return value

    @model_validator(mode="after")
    def _check_keys(self) -> AuthSettings:
        from jwt import InvalidKeyError  # noqa: PLC0415 - see _known_algorithms
        from jwt.algorithms import HMACAlgorithm  # noqa: PLC0415

        key = self.account_token_key.get_secret_value()
        known = _known_algorithms()
        for name in self.account_token_algorithms:
            algorithm = known[name]
            try:
                algorithm.prepare_key(key)
            except (InvalidKeyError, ValueError, TypeError) as exc:
                raise ValueError(
                    f"account_token_key is not a valid key for {name}: {exc}"
                ) from None
            if isinstance(algorithm, HMACAlgorithm):
                minimum = algorithm.hash_alg().digest_size
                if len(key.encode()) < minimum:
                    raise ValueError(
                        f"account_token_key must be at least {minimum} bytes for {name}"
                    )
        if key == self.internal_token_secret.get_secret_value():
            raise ValueError(
                "account_token_key and internal_token_secret must differ, so that an "
                "account token can never pass as an internal token or the reverse"
            )
        return self

    @property
    def uses_hmac(self) -> bool:
        """True when account tokens are verified with a shared secret (HS* algorithms)."""
        from jwt.algorithms import HMACAlgorithm  # noqa: PLC0415 - see _known_algorithms

        known = _known_algorithms()
        return all(isinstance(known[name], HMACAlgorithm) for name in self.account_token_algorithms)


class TelemetrySettings(BaseModel):
    """Traces and metrics: both off unless asked for.

    Traces are OpenTelemetry spans exported over OTLP/HTTP (the ``telemetry`` extra installs the
    SDK; nothing of it is imported while ``otlp_endpoint`` is unset). Metrics are CloudWatch
    embedded metric format members on the request and call log lines.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    otlp_endpoint: str | None = None
    """Base URL of an OTLP/HTTP receiver (``http://localhost:4318``, the collector beside the
    service); spans go to ``{otlp_endpoint}/v1/traces``. ``None``: no tracing."""
    trace_sample_ratio: Annotated[float, Field(ge=0, le=1)] = 0.1
    """Share of the traces this service starts that are recorded; a request that comes with a
    ``traceparent`` follows its caller's decision."""
    metrics: bool = False
    """Rate, errors and duration per route template and per callee, as CloudWatch embedded
    metrics in the request and call log lines."""
    metrics_namespace: Annotated[str, Field(min_length=1, max_length=255)] = "smplkit/services"
    """The CloudWatch namespace of those metrics."""

    @field_validator("otlp_endpoint")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", value):
            raise ValueError(f"otlp_endpoint must be an http(s) URL, not {value!r}")
        return value.rstrip("/")

    @property
    def tracing(self) -> bool:
        """Whether spans are recorded and exported."""
        return self.otlp_endpoint is not None


class ClientSettings(BaseModel):
    """How :class:`smplcore.client.InternalClient` calls another service."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    connect_timeout: Annotated[float, Field(gt=0)] = 1.0
    """Seconds to open a connection."""
    read_timeout: Annotated[float, Field(gt=0)] = 5.0
    """Seconds to wait for each part of the answer (and to send the request)."""
    total_timeout: Annotated[float, Field(gt=0)] = 10.0
    """Seconds for the whole call, retries and their waits included."""
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    """Further attempts of an idempotent call after a connection error, a timeout or a 502, 503
    or 504; other calls are never retried."""
    backoff_seconds: Annotated[float, Field(ge=0)] = 0.1
    """The first wait before a retry; each next one doubles, with full jitter, unless the callee
    sent ``Retry-After``."""

    @model_validator(mode="after")
    def _check_timeouts(self) -> ClientSettings:
        if self.total_timeout < self.connect_timeout:
            raise ValueError("total_timeout must be at least connect_timeout")
        return self


class CoreSettings(BaseModel):
    """Everything the core needs from the service."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service_name: str
    """Kebab-case: audience of internal tokens sent to this service, issuer of those it sends."""
    auth: AuthSettings
    log_level: str = "INFO"
    telemetry: TelemetrySettings = TelemetrySettings()

    @field_validator("service_name")
    @classmethod
    def _check_service_name(cls, value: str) -> str:
        return check_service_name(value)

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in _LOG_LEVELS:
            raise ValueError(f"log_level must be one of {sorted(_LOG_LEVELS)}")
        return level

    @property
    def log_level_number(self) -> int:
        """The stdlib number of :attr:`log_level`."""
        return logging.getLevelNamesMapping()[self.log_level]
