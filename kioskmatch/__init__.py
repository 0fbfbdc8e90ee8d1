"""The ``kioskmatch`` command: one entry point whose subcommands each area registers."""

__version__ = "0.1.0"
