"""`backup-glance notify-test [--config FILE]`: send a test message to every notify target, now.

One line per target, as Apprise shows it privately (passwords and tokens masked), saying whether the target
accepted the message. Exit 0 only when every target accepted it; 1 when any did not, or when the config has no
`notify:` targets; 2 for a configuration with errors. Nothing is recorded in the history: a test is not an alert.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor

from ._common import (
    CONFIG_VARIABLE,
    EXIT_CONFIG,
    EXIT_OK,
    add_config_argument,
    checked_config,
    find_config,
    shown_path,
    start_logging,
)

EXIT_NOT_ACCEPTED = 1


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    parser = subparsers.add_parser(
        "notify-test",
        parents=parents,
        help="send a test message to every notify target (0: all accepted, 1: not all)",
    )
    add_config_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    handler = start_logging(args)
    path = find_config(args.config)
    if path is None:
        print(
            f"backup-glance notify-test: no configuration file found; give --config FILE or ${CONFIG_VARIABLE}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    config = checked_config(path, handler)
    if config is None:
        return EXIT_CONFIG
    if not config.notify:
        print(f"{shown_path(path)}: no notify targets to test; add them under notify: (see README, Notifications)")
        return EXIT_NOT_ACCEPTED

    from ..notify import build_targets
    from ..notify._messages import test_message

    targets = build_targets(config)
    message = test_message(config.server.base_url)
    with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
        results = list(pool.map(lambda target: target.sender.send(message), targets))
    for target, accepted in zip(targets, results, strict=True):
        # What its HTTP exchange met (a redirect, a 429, an untrusted certificate): Apprise's own log line is vaguer.
        answer = getattr(target.sender, "last", None)
        why = answer.describe() if answer is not None and not accepted else None
        print(f"{'accepted' if accepted else 'FAILED  '}  {target.sender.shown}" + (f"  ({why})" if why else ""))
    failed = results.count(False)
    if failed:
        print(f"{failed} of {len(targets)} target(s) did not accept the test message (why: in brackets, and the log)")
        return EXIT_NOT_ACCEPTED
    print(f"all {len(targets)} target(s) accepted the test message")
    return EXIT_OK
