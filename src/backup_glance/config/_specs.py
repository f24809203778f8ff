"""Config -> what the rest of the program reads: service specs for health, secret values for log redaction."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from ..model import AnomalyPolicy, ProtectionPolicy, ServiceSpec, Silence
from ._checks import target_keys_of
from ._notify import url_secrets
from ._schema import Config, ProtectionConfig, ResticSourceConfig


def silence_end(until: date | datetime | None, zone: ZoneInfo) -> datetime | None:
    """A silence's `until` as an instant: a date is its midnight, a time without a zone is in the display zone."""
    if isinstance(until, date) and not isinstance(until, datetime):
        return datetime(until.year, until.month, until.day, tzinfo=zone)
    if isinstance(until, datetime) and until.tzinfo is None:
        return until.replace(tzinfo=zone)
    return until


def service_specs(config: Config) -> list[ServiceSpec]:
    """The configured services as health reads them (empty: every target is discovered)."""
    zone = ZoneInfo(config.timezone)
    defaults = config.defaults
    specs = []
    for service in config.services:
        silence = None
        if service.silence is not None:
            silence = Silence(reason=service.silence.reason, until=silence_end(service.silence.until, zone))
        specs.append(
            ServiceSpec(
                id=service.id,
                name=service.name or service.id,
                target_keys=tuple(target_keys_of(service.model_dump())),
                grace=defaults.grace if service.grace is None else service.grace,
                max_age=defaults.max_age if service.max_age is None else service.max_age,
                lookback=defaults.lookback if service.lookback is None else service.lookback,
                silence=silence,
                after=tuple(service.after),
                source=service.source,
                protection=protection_policy(defaults.protection, service.protection),
            )
        )
    return specs


def protection_policy(
    default: ProtectionConfig | None, own: ProtectionConfig | bool | None = None
) -> ProtectionPolicy | None:
    """A service's protection policy: its own keys over `defaults.protection`; None when nothing is asked."""
    if own is False:
        return None
    layers = [layer for layer in (default, own) if isinstance(layer, ProtectionConfig)]
    values: dict[str, object] = {}
    for layer in layers:  # the service's own keys last: they win
        values |= {key: value for key, value in layer.model_dump().items() if value is not None}
    policy = ProtectionPolicy(
        copies=_int(values.get("copies")),
        offsite=_int(values.get("offsite")),
        offsite_lag=_delta(values.get("offsite_lag")),
        encrypted_offsite=bool(values.get("encrypted_offsite", False)),
        restore_test=_delta(values.get("restore_test")),
    )
    return None if policy.is_empty else policy


def anomaly_policy(config: Config) -> AnomalyPolicy:
    a = config.anomalies
    return AnomalyPolicy(
        enabled=a.enabled, size_drop=a.size_drop, duration_rise=a.duration_rise, min_history=a.min_history
    )


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _delta(value: object) -> timedelta | None:
    return value if isinstance(value, timedelta) else None


def secrets_of(config: Config) -> list[str]:
    """Every secret value in the config, for the log redaction filter (a second line of defence)."""
    values = list(config._substituted_secrets)
    for source in config.sources:
        for name in ("token_secret", "token", "password"):
            secret = getattr(source, name, None)
            if isinstance(secret, SecretStr) and secret.get_secret_value():
                values.append(secret.get_secret_value())
        if isinstance(source, ResticSourceConfig):
            # restic's extra environment carries cloud credentials; the password may sit in a variable.
            values += [v for v in source.env.values() if v]
            if source.password_env and os.environ.get(source.password_env):
                values.append(os.environ[source.password_env])
    for secret in (config.server.auth_token, config.server.calendar_key):
        if secret is not None and secret.get_secret_value():
            values.append(secret.get_secret_value())
    # Notification and ping URLs carry credentials and tokens (user:pass, a Gotify token, a Healthchecks UUID).
    heartbeat = config.heartbeat
    urls = [t.url for t in config.notify] + ([heartbeat.url, heartbeat.fail_url] if heartbeat is not None else [])
    for url in urls:
        if url is not None and url.get_secret_value():
            values += url_secrets(url.get_secret_value())
    for ping in (heartbeat.url, heartbeat.fail_url) if heartbeat is not None else ():
        # A push URL is a credential as a whole, whatever its token looks like (`/api/push/HBTOKEN`): the path and
        # query too, as an HTTP library's debug line writes them.
        if ping is not None:
            parts = urlsplit(ping.get_secret_value())
            values += [ping.get_secret_value(), *(part for part in (parts.path, parts.query) if len(part) >= 8)]
    return list(dict.fromkeys(values))
