"""Every path through one object: :class:`Location` (local paths and URIs alike), the local
copies and staging that remote paths need (:mod:`.cache`), and the manifest directories of
indexes and profiles (:mod:`.artifact`)."""

from .cache import OutputDir
from .location import Found, Info, Location, PendingFile

__all__ = ["Location", "Found", "Info", "PendingFile", "OutputDir"]
