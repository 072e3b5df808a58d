"""Authentication: account tokens for public calls, internal tokens between services.

Tokens are JWTs verified with PyJWT against an allow-list of algorithms (never ``none``),
with every required claim enforced, a small leeway, and keys only from the settings.
Verified tokens are cached (bounded, keyed by the token, ``exp`` re-checked on every hit,
cleared when the settings or keys change).

The request-context middleware verifies each request's token once, under the app's
:class:`AccessPolicy`; the dependencies here (and ``require_feature``) read its verdict.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeVar

from fastapi import Depends, Request
from typing_extensions import deprecated

from smplcore._context import AccountContext, InternalCaller, RequestContext, request_context
from smplcore.errors import UnauthorizedError
from smplcore.settings import MAX_INTERNAL_TOKEN_TTL, CoreSettings, check_service_name

if TYPE_CHECKING:
    import jwt

__all__ = [
    "ACCOUNT_TOKEN_CLAIMS",
    "INTERNAL_TOKEN_CLAIMS",
    "MAX_INTERNAL_TOKEN_TTL",
    "AccessPolicy",
    "AccountContext",
    "CurrentAccount",
    "CurrentInternalCaller",
    "InternalCaller",
    "InternalTokens",
    "TokenVerifier",
    "current_account",
    "get_verifier",
    "internal_caller",
    "issue_internal_token",
]

ACCOUNT_TOKEN_CLAIMS: Final = ("iss", "aud", "sub", "exp", "iat", "account_id", "tier", "token_use")
INTERNAL_TOKEN_CLAIMS: Final = ("iss", "aud", "sub", "exp", "iat", "token_use")
INTERNAL_ALGORITHM: Final = "HS256"
VERIFIER_STATE_KEY: Final = "smplcore_verifier"

_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_MAX_TOKEN_LENGTH = 8192


@dataclass(frozen=True)
class AccessPolicy:
    """Secure by default: the token each request needs, checked before routing.

    Given to :func:`smplcore.install_core`, the request-context middleware refuses (401) every
    request without a valid account token, before its body is read, except requests for
    ``public_paths`` (exact paths, such as health probes), which need none, and requests under
    ``internal_prefix`` (such as ``/internal``), which need an internal token addressed to this
    service. The verified caller is recorded for the request, so :func:`current_account`,
    :func:`internal_caller` and ``require_feature`` read it; a route is never left open
    because it forgot a dependency.
    """

    public_paths: Collection[str] = frozenset()
    internal_prefix: str | None = None

    def __post_init__(self) -> None:
        paths = frozenset(self.public_paths)
        if not all(isinstance(p, str) and p.startswith("/") for p in paths):
            raise ValueError("public_paths must be paths starting with '/'")
        prefix = self.internal_prefix
        if prefix is not None and (
            not prefix.startswith("/") or prefix.endswith("/") or len(prefix) < 2
        ):
            raise ValueError("internal_prefix must start with '/' and not end with '/'")
        object.__setattr__(self, "public_paths", paths)

    def with_public_paths(self, *paths: str | None) -> AccessPolicy:
        """The same policy with ``paths`` public too (``None`` entries are ignored)."""
        public = {*self.public_paths, *(path for path in paths if path)}
        return AccessPolicy(public, self.internal_prefix)

    def is_public(self, path: str) -> bool:
        """Whether ``path`` needs no token."""
        return path in self.public_paths

    def is_internal(self, path: str) -> bool:
        """Whether ``path`` is under the internal prefix (the prefix itself included)."""
        prefix = self.internal_prefix
        return prefix is not None and (path == prefix or path.startswith(f"{prefix}/"))


_Caller = TypeVar("_Caller", AccountContext, InternalCaller)


def _challenge(realm: str, error: str | None = None, description: str | None = None) -> str:
    value = f'Bearer realm="{realm}"'
    if error:
        value += f', error="{error}"'
    if description:
        value += f', error_description="{description}"'
    return value


def _failure_detail(exc: jwt.PyJWTError) -> str:
    """What the client is told about a token PyJWT refused."""
    from jwt import exceptions  # noqa: PLC0415 - see TokenVerifier.update_settings

    if isinstance(exc, exceptions.MissingRequiredClaimError):
        return f"The token lacks the required claim '{exc.claim}'"
    failures: tuple[tuple[type[exceptions.PyJWTError], str], ...] = (
        (exceptions.ExpiredSignatureError, "The token has expired"),
        (exceptions.ImmatureSignatureError, "The token is not yet valid"),
        (exceptions.InvalidAudienceError, "The token is not addressed to this service"),
        (exceptions.InvalidIssuerError, "The token was not issued by a trusted issuer"),
        (exceptions.InvalidSubjectError, "The token's subject is invalid"),
        (exceptions.InvalidJTIError, "The token's id is invalid"),
        (exceptions.InvalidSignatureError, "The token's signature does not verify"),
        (exceptions.InvalidAlgorithmError, "The token's algorithm is not allowed"),
        (exceptions.InvalidKeyError, "The token's algorithm is not allowed"),
        (exceptions.DecodeError, "The token is malformed"),
    )
    for kind, detail in failures:
        if isinstance(exc, kind):
            return detail
    return "The token is invalid"


class TokenVerifier:
    """Verifies account and internal tokens with the keys of one :class:`CoreSettings`.

    ``clock`` returns the current Unix time (tests replace it). Use :meth:`update_settings`
    on key rotation: it swaps the keys and clears the cache.
    """

    def __init__(self, settings: CoreSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._verified: dict[str, tuple[AccountContext | InternalCaller, float]] = {}
        self.update_settings(settings)

    def update_settings(self, settings: CoreSettings) -> None:
        """Use new settings (e.g. rotated keys); every cached verification is dropped."""
        # PyJWT imports `cryptography`, most of the core's own import time: it is imported when
        # the app is built, not when a service imports the core (bench: import).
        from jwt.algorithms import get_default_algorithms  # noqa: PLC0415

        auth = settings.auth
        self.settings = settings
        self._realm = settings.service_name
        self._leeway = auth.leeway_seconds
        raw_key = auth.account_token_key.get_secret_value()
        algorithm = get_default_algorithms()[auth.account_token_algorithms[0]]
        key: Any = algorithm.prepare_key(raw_key)
        public_key = getattr(key, "public_key", None)
        if callable(public_key):  # a private key was configured: verify with its public half
            key = public_key()
        self._account_key = key if not isinstance(key, bytes) else raw_key
        self._account_algorithms = list(auth.account_token_algorithms)
        self._account_issuer = auth.account_token_issuer
        self._account_audience = auth.account_token_audience
        self._internal_secret = auth.internal_token_secret.get_secret_value()
        self._cache_size = auth.token_cache_size
        self.clear_cache()

    def clear_cache(self) -> None:
        """Forget every cached verification."""
        self._verified.clear()

    # -- failures

    def _unauthorized(
        self, detail: str, *, error: str | None = "invalid_token"
    ) -> UnauthorizedError:
        header = _challenge(self._realm, error, detail if error else None)
        return UnauthorizedError(detail, headers={"WWW-Authenticate": header})

    # -- the cache: a verified token is not decoded again while it lives

    def _recall(self, token: str, kind: type[_Caller]) -> _Caller | None:
        entry = self._verified.get(token)
        if entry is None:
            return None
        caller, exp = entry
        if exp <= self.clock() - self._leeway:
            del self._verified[token]
            raise self._unauthorized("The token has expired")
        return caller if isinstance(caller, kind) else None

    def _remember(self, token: str, caller: _Caller, exp: float) -> _Caller:
        if self._cache_size > 0:
            while len(self._verified) >= self._cache_size:  # the oldest go first
                del self._verified[next(iter(self._verified))]
            self._verified[token] = (caller, exp)
        return caller

    def _decode(
        self,
        token: str,
        *,
        key: Any,
        algorithms: list[str],
        audience: str,
        claims: tuple[str, ...],
        issuer: str | None,
    ) -> dict[str, Any]:
        import jwt  # noqa: PLC0415 - see update_settings

        if len(token) > _MAX_TOKEN_LENGTH:
            raise self._unauthorized("The token is malformed")
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=audience,
                issuer=issuer,
                leeway=self._leeway,
                options={"require": list(claims), "verify_signature": True},
            )
        except jwt.PyJWTError as exc:
            raise self._unauthorized(_failure_detail(exc)) from None
        return payload

    # -- account tokens

    def verify_account(self, token: str) -> AccountContext:
        """The account a valid account token speaks for; :class:`UnauthorizedError` otherwise."""
        cached = self._recall(token, AccountContext)
        if cached is not None:
            return cached
        payload = self._decode(
            token,
            key=self._account_key,
            algorithms=self._account_algorithms,
            audience=self._account_audience,
            claims=ACCOUNT_TOKEN_CLAIMS,
            issuer=self._account_issuer,
        )
        if payload.get("token_use") != "account":
            raise self._unauthorized("The token is not an account token")
        subject, account_id, tier = payload["sub"], payload["account_id"], payload["tier"]
        if not all(isinstance(v, str) and v for v in (subject, account_id, tier)):
            raise self._unauthorized("The token's sub, account_id and tier must be strings")
        account = AccountContext(subject=subject, account_id=account_id, tier=tier)
        return self._remember(token, account, float(payload["exp"]))

    # -- internal tokens

    def verify_internal(self, token: str) -> InternalCaller:
        """The calling service of a valid internal token addressed to this service."""
        cached = self._recall(token, InternalCaller)
        if cached is not None:
            return cached
        payload = self._decode(
            token,
            key=self._internal_secret,
            algorithms=[INTERNAL_ALGORITHM],
            audience=self.settings.service_name,
            claims=INTERNAL_TOKEN_CLAIMS,
            issuer=None,
        )
        if payload.get("token_use") != "internal":
            raise self._unauthorized("The token is not an internal token")
        issuer, subject = payload["iss"], payload["sub"]
        if not isinstance(issuer, str) or subject != issuer:
            raise self._unauthorized("The token's sub must equal its iss (the calling service)")
        try:
            check_service_name(issuer)
        except ValueError:
            raise self._unauthorized("The token's issuer is not a service name") from None
        exp, iat = float(payload["exp"]), float(payload["iat"])
        if exp - iat > MAX_INTERNAL_TOKEN_TTL:
            raise self._unauthorized("The token lives longer than internal tokens may")
        return self._remember(token, InternalCaller(service=issuer), exp)

    # -- requests

    def account_of(self, authorization: str | None) -> AccountContext:
        """:meth:`verify_account` for an ``Authorization`` header's value."""
        return self.verify_account(self.bearer_token_of(authorization))

    def caller_of(self, authorization: str | None) -> InternalCaller:
        """:meth:`verify_internal` for an ``Authorization`` header's value."""
        return self.verify_internal(self.bearer_token_of(authorization))

    @deprecated("use account_of(value); removed in 2.0")
    def account_for_header(self, header: bytes | None) -> AccountContext:
        """:meth:`account_of` for a raw ``Authorization`` value, as ASGI carries it."""
        return self.account_of(None if header is None else header.decode("latin-1"))

    @deprecated("use caller_of(value); removed in 2.0")
    def caller_for_header(self, header: bytes | None) -> InternalCaller:
        """:meth:`caller_of` for a raw ``Authorization`` value, as ASGI carries it."""
        return self.caller_of(None if header is None else header.decode("latin-1"))

    @deprecated("use bearer_token_of(request.headers.get('authorization')); removed in 2.0")
    def bearer_token(self, request: Request) -> str:
        """The token of an ``Authorization: Bearer <token>`` header (401 if absent/malformed)."""
        return self.bearer_token_of(request.headers.get("authorization"))

    def bearer_token_of(self, header: str | None) -> str:
        """The token of an ``Authorization`` header's value (401 if absent/malformed)."""
        if not header:
            raise self._unauthorized("Authentication is required", error=None)
        scheme, _, token = header.partition(" ")
        token = token.strip()
        # A cached token was well formed: skipping the regular expression for it saves 8k
        # instructions per request, 2 % of a bare request (bench core-costs, callgrind).
        well_formed = token in self._verified or _TOKEN68.fullmatch(token)
        if scheme.lower() != "bearer" or not well_formed:
            raise self._unauthorized(
                "The Authorization header must be 'Bearer <token>'", error="invalid_request"
            )
        return token


def get_verifier(request: Request) -> TokenVerifier:
    """The :class:`TokenVerifier` that :func:`smplcore.install_core` stored on the app."""
    verifier: TokenVerifier | None = getattr(request.app.state, VERIFIER_STATE_KEY, None)
    if verifier is None:
        raise RuntimeError("smplcore.install_core(app, settings) was not called for this app")
    return verifier


def _context_of(request: Request) -> RequestContext:
    context = request_context.get()
    if context is None:
        raise RuntimeError("smplcore.install_core(app, settings) was not called for this app")
    return context


async def current_account(request: Request) -> AccountContext:
    """Dependency: the account of the request's Bearer account token (401 on any failure).

    Under an :class:`AccessPolicy` the middleware has verified it: this reads it.
    """
    context = _context_of(request)
    if context.account is None:  # no AccessPolicy (deprecated): verified here, once
        context.account = get_verifier(request).account_of(request.headers.get("authorization"))
    return context.account


CurrentAccount = Annotated[AccountContext, Depends(current_account)]


async def internal_caller(request: Request) -> InternalCaller:
    """Dependency: the calling service of a Bearer internal token addressed to this service.

    Under an :class:`AccessPolicy` the middleware has verified it: this reads it.
    """
    context = _context_of(request)
    if context.caller is None:  # no AccessPolicy (deprecated): verified here, once
        context.caller = get_verifier(request).caller_of(request.headers.get("authorization"))
    return context.caller


CurrentInternalCaller = Annotated[InternalCaller, Depends(internal_caller)]


def issue_internal_token(
    settings: CoreSettings, *, audience: str, ttl_seconds: int | None = None
) -> str:
    """A token for calling ``audience`` as ``settings.service_name`` (HS256, <= 5 minutes)."""
    import jwt  # noqa: PLC0415 - see TokenVerifier.update_settings

    check_service_name(audience)
    ttl = settings.auth.internal_token_ttl_seconds if ttl_seconds is None else ttl_seconds
    if not 1 <= ttl <= MAX_INTERNAL_TOKEN_TTL:
        raise ValueError(f"ttl_seconds must be in 1..{MAX_INTERNAL_TOKEN_TTL}")
    now = int(time.time())
    claims = {
        "iss": settings.service_name,
        "sub": settings.service_name,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
        "token_use": "internal",
    }
    return jwt.encode(
        claims, settings.auth.internal_token_secret.get_secret_value(), algorithm=INTERNAL_ALGORITHM
    )


_tokens_logger = logging.getLogger("smplcore.auth")


class InternalTokens:
    """The internal tokens this service sends, one per audience, each reused until it nears
    its expiry.

    A token is renewed once less than a fifth of its life (at most 30 seconds) is left, so a
    callee never sees one that expires on the way. ``clock`` tells when a cached token is due
    for renewal (tests replace it); tokens are issued on the system's clock.
    """

    def __init__(self, settings: CoreSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        ttl = settings.auth.internal_token_ttl_seconds
        self._renew_before = min(30.0, ttl / 5)
        self._tokens: dict[str, tuple[str, float]] = {}

    def token_for(self, audience: str) -> str:
        """A token for calling ``audience``: the cached one, or a new one."""
        cached = self._tokens.get(audience)
        now = self.clock()
        if cached is not None and now < cached[1] - self._renew_before:
            return cached[0]
        ttl = self.settings.auth.internal_token_ttl_seconds
        token = issue_internal_token(self.settings, audience=audience)
        self._tokens[audience] = (token, now + ttl)
        _tokens_logger.info(
            "internal token issued", extra={"audience": audience, "expires_in_s": ttl}
        )
        return token

    def forget(self, audience: str) -> None:
        """Drop the cached token for ``audience`` (the callee refused it): the next is new."""
        self._tokens.pop(audience, None)
