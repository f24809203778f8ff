"""Config -> what the rest of the program reads: service specs for health, secret values for log redaction."""

from __future__ import annotations

import os
from datetime import date, datetime
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from ..model import ServiceSpec, Silence
from ._checks import target_keys_of
from ._schema import Config, ResticSourceConfig


def service_specs(config: Config) -> list[ServiceSpec]:
    """The configured services as health reads them (empty: every target is discovered)."""
    zone = ZoneInfo(config.timezone)
    defaults = config.defaults
    specs = []
    for service in config.services:
        silence = None
        if service.silence is not None:
            until = service.silence.until
            if isinstance(until, date) and not isinstance(until, datetime):
                until = datetime(until.year, until.month, until.day, tzinfo=zone)
            elif isinstance(until, datetime) and until.tzinfo is None:
                until = until.replace(tzinfo=zone)
            silence = Silence(reason=service.silence.reason, until=until)
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
            )
        )
    return specs


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
    return list(dict.fromkeys(values))
