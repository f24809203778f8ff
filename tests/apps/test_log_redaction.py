"""Secrets are redacted from log lines, tracebacks included."""

from __future__ import annotations

import io
import logging

from backup_glance.logs import ContextFormatter, RedactSecrets

SECRET = "d63e505a-e3ec-449a-9bc7-1da610d4ccde"


def test_a_secret_in_an_exception_traceback_is_redacted() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ContextFormatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets([SECRET]))
    logger = logging.getLogger("backup_glance.test_redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError(f"request with Authorization: PBSAPIToken=a@pbs!b:{SECRET} failed")
        except RuntimeError:
            logger.exception("poll crashed for %s", SECRET)
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "Traceback" in text and "RuntimeError" in text
    assert SECRET not in text
    assert text.count("********") == 2
