"""backup-glance: are my backups actually working? Backup health for homelabs, native in Glance."""

__version__ = "0.1.0"
