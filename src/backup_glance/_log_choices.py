"""The choices of --log-level and --log-format, apart from `logs`: the command line offers them without importing
`logging` (`backup-glance schedule` never logs, and starts faster without it)."""

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
