"""The command line (click): ``contamscan index|scan|report|profile|demo``."""

from .main import EXIT_ERROR, EXIT_FAILED_SHARDS, EXIT_GATE, EXIT_OK, EXIT_USAGE, cli, main

__all__ = ["cli", "main", "EXIT_OK", "EXIT_ERROR", "EXIT_USAGE", "EXIT_FAILED_SHARDS", "EXIT_GATE"]
