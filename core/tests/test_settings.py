"""Settings validation: unsafe or inconsistent values are refused."""

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from smplcore import AuthSettings, CoreSettings

KEY = "k" * 40
SECRET = "s" * 40


def auth(**overrides: Any) -> AuthSettings:
    values: dict[str, Any] = {"account_token_key": KEY, "internal_token_secret": SECRET}
    values.update(overrides)
    return AuthSettings(**values)


def test_defaults() -> None:
    settings = CoreSettings(service_name="widget-service", auth=auth())
    assert settings.auth.account_token_algorithms == ("HS256",)
    assert settings.auth.internal_token_ttl_seconds == 300
    assert settings.auth.leeway_seconds == 30
    assert settings.auth.token_cache_size == 4096
    assert settings.auth.uses_hmac
    assert settings.log_level == "INFO"
    assert settings.log_level_number == 20
    assert KEY not in repr(settings)  # secrets stay hidden
    with pytest.raises(ValidationError):
        settings.service_name = "other"  # type: ignore[misc]  # frozen


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"account_token_algorithms": ("none",)}, "never allowed"),
        ({"account_token_algorithms": ("NONE",)}, "never allowed"),
        ({"account_token_algorithms": ("HS256", "none")}, "never allowed"),
        ({"account_token_algorithms": ("XS999",)}, "unknown"),
        ({"account_token_algorithms": ()}, "at least one"),
        ({"account_token_algorithms": ("HS256", "HS256")}, "repeat"),
        ({"account_token_algorithms": ("HS256", "RS256")}, "not a valid key for RS256"),
        ({"account_token_algorithms": ("HS512",)}, "at least 64 bytes"),
        ({"account_token_key": "short"}, "at least 32 bytes"),
        ({"internal_token_secret": "short"}, "at least 32 bytes"),
        ({"internal_token_secret": KEY}, "must differ"),
        ({"internal_token_ttl_seconds": 0}, "greater than or equal to 1"),
        ({"internal_token_ttl_seconds": 301}, "less than or equal to 300"),
        ({"leeway_seconds": 121}, "less than or equal to 120"),
        ({"leeway_seconds": -1}, "greater than or equal to 0"),
        ({"token_cache_size": -1}, "greater than or equal to 0"),
        ({"surprise": 1}, "Extra inputs"),
    ],
)
def test_bad_auth_settings(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        auth(**overrides)


@pytest.mark.parametrize("name", ["Widget", "widget_service", "-widget", "widget-", "a--b", ""])
def test_service_name_must_be_kebab_case(name: str) -> None:
    with pytest.raises(ValidationError, match="kebab"):
        CoreSettings(service_name=name, auth=auth())


def test_log_level(settings_factory: Callable[..., CoreSettings]) -> None:
    assert CoreSettings(service_name="a", auth=auth(), log_level="debug").log_level == "DEBUG"
    with pytest.raises(ValidationError, match="log_level"):
        CoreSettings(service_name="a", auth=auth(), log_level="chatty")
