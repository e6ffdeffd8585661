"""Keep the live RuleSet in step with the mapping files; a broken edit never replaces good rules."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from pathlib import Path

import structlog
import watchfiles

from hub.config.mappings import SUFFIXES, load_rules, mapping_files
from hub.config.playbooks import PlaybookLibrary
from hub.core.mapping.engine import RuleSet
from hub.core.mapping.fields import FieldCatalog
from hub.errors import ConfigError

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(directory: Path) -> Fingerprint:
    """(name, mtime_ns, size) of every mapping file: cheap to compute, changes on any edit."""
    if not directory.is_dir():
        return ()
    out: list[tuple[str, int, int]] = []
    for path in mapping_files([directory]):
        try:
            stat = path.stat()
        except OSError:  # deleted between listing and stat: the next call sees the new state
            continue
        out.append((path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(out)


def _is_mapping_file(_change: watchfiles.Change, path: str) -> bool:
    return path.endswith(SUFFIXES)


class RuleHolder:
    """Holds the current RuleSet and swaps it atomically when the files change.

    Readers take ``holder.rules`` once per event and use that snapshot throughout.
    ``reload`` / ``maybe_reload`` / ``watch`` may run in any thread.

    Args:
        directory: the mappings directory.
        library_provider: returns the current playbook library (e.g. ``PlaybookSource``);
            a new library object (a playbook edit) also triggers ``maybe_reload``.
        rules: the initial rule set; default empty. Use :meth:`load` at start-up instead,
            so a broken file stops the process rather than starting with no rules.
        sources: when given, the vendor / instance names ``from`` may use.
        catalog: when given, the event fields rules may read (``hub.config.fields``); a
            rule reading a field no source in its ``from:`` emits is refused on reload.
    """

    def __init__(
        self,
        directory: Path,
        library_provider: Callable[[], PlaybookLibrary],
        *,
        rules: RuleSet | None = None,
        sources: Collection[str] | None = None,
        catalog: FieldCatalog | None = None,
    ) -> None:
        self.directory = directory
        self.library_provider = library_provider
        self.sources = sources
        self.catalog = catalog
        self._rules = rules if rules is not None else RuleSet()
        self._lock = threading.Lock()
        self._seen: Fingerprint | None = None
        self._seen_library: PlaybookLibrary | None = None

    @classmethod
    def load(
        cls,
        directory: Path,
        library_provider: Callable[[], PlaybookLibrary],
        *,
        sources: Collection[str] | None = None,
        catalog: FieldCatalog | None = None,
    ) -> RuleHolder:
        """Load the rules now (start-up).

        Raises:
            ConfigError: a mapping file is invalid (nothing to fall back to yet).
        """
        holder = cls(directory, library_provider, sources=sources, catalog=catalog)
        library = library_provider()
        seen = fingerprint(directory)
        holder._rules = load_rules(directory, library, sources=sources, catalog=catalog)
        holder._seen, holder._seen_library = seen, library
        return holder

    @property
    def rules(self) -> RuleSet:
        """The live rule set (an immutable snapshot)."""
        return self._rules

    def reload(self) -> bool:
        """Load the files and swap them in.

        Returns:
            True when the new rules are live; False when a file is broken, in which case
            ``mapping_reload_failed`` is logged with file, line and reason and the previous
            rules stay live.
        """
        with self._lock:
            library = self.library_provider()
            self._seen, self._seen_library = fingerprint(self.directory), library
            log = structlog.get_logger(__name__)  # per call: honours test capture and reconfig
            try:
                rules = load_rules(self.directory, library, sources=self.sources,
                                   catalog=self.catalog)
            except ConfigError as exc:
                log.error(
                    "mapping_reload_failed",
                    file=exc.file,
                    line=exc.line,
                    key=exc.key,
                    reason=exc.message,
                    kept_rules=len(self._rules),
                )
                return False
            self._rules = rules
            log.info("mapping_reloaded", rules=len(rules), files=len(rules.files),
                     digest=rules.digest[:12])
            return True

    def maybe_reload(self) -> bool:
        """Reload only if a mapping file or the playbook library changed since last time.

        Cheap (a directory listing and a few stats), for workers to call before each
        message instead of running a watcher thread. A broken file is reported once per
        change, not on every call.

        Returns:
            True when new rules were swapped in.
        """
        if (
            fingerprint(self.directory) == self._seen
            and self.library_provider() is self._seen_library
        ):
            return False
        return self.reload()

    def watch(self, stop_event: threading.Event, *, poll_seconds: float = 5.0) -> None:
        """Reload whenever a mapping file changes, until ``stop_event`` is set (blocking).

        Run it in a thread. If the directory does not exist yet, falls back to calling
        :meth:`maybe_reload` every ``poll_seconds``.
        """
        while not stop_event.is_set():
            if not self.directory.is_dir():
                self.maybe_reload()
                stop_event.wait(poll_seconds)
                continue
            try:
                for _changes in watchfiles.watch(
                    self.directory,
                    watch_filter=_is_mapping_file,
                    stop_event=stop_event,
                    raise_interrupt=False,
                ):
                    self.reload()
            except FileNotFoundError:  # the directory went away while watching
                continue
