"""Nobody has to look: alerts on change, reminders, quiet hours and digests through Apprise, and a heartbeat.

Where it sits: collector -> health -> **board** -> notify (a BoardStore subscriber, like a renderer). Verdicts
are health's; this package only compares them over time and says so, once, at the right moment.

    _policy.py     pure: what changed for one target (new / changed / recovered / source down and up / reminder)
    _messages.py   pure: how it reads (title: the worst; one line per service; the digest)
    _store.py      what was announced, and the outbox, in the history database (written as it happens)
    _deliver.py    Apprise in a thread pool of its own; one worker per target; retries with backoff
    _http.py       what a target's HTTP answer may cost: bounded reads, no redirects, why a send failed
    _notifier.py   the wiring: `build_notifier(config, board_store, history_path=..., clock=...)`
    heartbeat.py   pings a Healthchecks / Uptime Kuma URL while the collector polls

Nothing here is imported unless the config has `notify:` or `heartbeat:` (Apprise takes a while to load).
"""

from ._deliver import stuck_sends as stuck_sends
from ._messages import Message as Message
from ._notifier import NOTIFY_THREADS as NOTIFY_THREADS
from ._notifier import Notifier as Notifier
from ._notifier import Target as Target
from ._notifier import build_notifier as build_notifier
from ._notifier import build_targets as build_targets
from .heartbeat import Heartbeat as Heartbeat

__all__ = [
    "NOTIFY_THREADS",
    "Heartbeat",
    "Message",
    "Notifier",
    "Target",
    "build_notifier",
    "build_targets",
    "stuck_sends",
]
