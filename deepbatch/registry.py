"""Name-based model registries: the single source of truth for which backends exist.

Backend modules register a factory under a name (``@DETECTORS.register("scrfd_500m", ...)``); the API, the command
line, the docs tables and the tests all read the names from here. ``build`` caches one instance per name and
arguments, so a model is loaded once per process.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Generic, Hashable, List, Mapping, Optional, Tuple, TypeVar

from .errors import ModelUnavailableError, UnknownModelError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered model: its canonical name, the factory that builds it, the arguments it is built with, a
    one-line ``summary`` and the ``licence`` its weights are published under (both shown in the docs' tables)."""

    name: str
    factory: Callable[..., T]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""
    licence: str = ""

    def create(self, **kwargs: Any) -> T:
        return self.factory(**{**self.defaults, **kwargs})


def _freeze(value: Any) -> Hashable:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    hash(value)
    return value


CACHED_MODELS = 8  # models per registry kept built: more than any pipeline uses at once


class Registry(Generic[T]):
    """Maps names (and aliases) to factories. ``plugins`` is the package whose import registers the backends."""

    def __init__(self, kind: str, plugins: str, name_instances: bool = False):
        self.kind = kind
        self.name_instances = name_instances  # set each built instance's ``name`` to the name it was built by
        self._plugins = plugins
        self._entries: Dict[str, Entry[T]] = {}
        self._aliases: Dict[str, str] = {}
        self._exact: Dict[str, str] = {}  # case-sensitive names, looked up before the case-insensitive ones
        self._deprecated: Dict[str, str] = {}  # name (lower case) -> the warning its use gives
        self._unavailable: Dict[str, Tuple[str, str]] = {}  # name (lower case) -> (name, why it is not offered)
        self._cache: OrderedDict[Tuple[str, Hashable], T] = OrderedDict()
        self._lock = threading.RLock()
        self._loaded = False

    def register(
        self, name: str, *, summary: str = "", licence: str = "", **defaults: Any
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: register ``factory`` under ``name``, built with ``defaults`` unless the caller overrides them;
        ``licence`` is that of the model's weights."""

        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            self.add(Entry(name, factory, dict(defaults), summary or (factory.__doc__ or "").strip().split("\n")[0],
                           licence))
            return factory

        return decorator

    def add(self, entry: Entry[T]) -> None:
        key = entry.name.lower()
        if key in self._entries or key in self._aliases:
            raise ValueError(f"{self.kind} {entry.name!r} is registered twice")
        self._entries[key] = entry

    def alias(self, alias: str, target: str) -> None:
        """Make ``alias`` another name for the registered ``target`` (e.g. ``scrfd`` for ``scrfd_500m``)."""
        key = alias.lower()
        if key in self._entries or key in self._aliases:
            raise ValueError(f"{self.kind} {alias!r} is registered twice")
        self._aliases[key] = target.lower()

    def exact_alias(self, alias: str, target: str) -> None:
        """Make ``alias``, spelled exactly so, another name for ``target``; other spellings of it keep their own
        meaning (DeepFace's case-sensitive ``SFace`` beside deepbatch's ``sface``)."""
        if alias in self._exact:
            raise ValueError(f"{self.kind} {alias!r} is registered twice")
        self._exact[alias] = target.lower()

    def deprecate(self, name: str, message: str) -> None:
        """Warn with ``message`` (a ``FutureWarning``) whenever ``name`` is resolved."""
        self._deprecated[name.lower()] = message

    def unavailable(self, name: str, reason: str) -> None:
        """A known name that is not offered: resolving it raises :class:`ModelUnavailableError` with ``reason``."""
        self._unavailable[name.lower()] = (name, reason)

    def _load_plugins(self) -> None:
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    importlib.import_module(self._plugins)
                    self._loaded = True

    def names(self, aliases: bool = True) -> List[str]:
        """Every registered name, sorted; with ``aliases`` the short names too."""
        self._load_plugins()
        names = list(self._entries) + (list(self._aliases) + list(self._exact) if aliases else [])
        return sorted(names)

    def aliases(self) -> Dict[str, str]:
        self._load_plugins()
        return dict(self._aliases)

    def canonical(self, name: str) -> str:
        self._load_plugins()
        if str(name) in self._exact:
            return self._exact[str(name)]
        key = str(name).lower()
        if key in self._deprecated:
            warnings.warn(self._deprecated[key], FutureWarning, stacklevel=3)
        key = self._aliases.get(key, key)
        if key not in self._entries:
            if key in self._unavailable:
                raise ModelUnavailableError(self.kind, *self._unavailable[key])
            raise UnknownModelError(self.kind, str(name), self.names())
        return key

    def entry(self, name: str) -> Entry[T]:
        return self._entries[self.canonical(name)]

    def create(self, name: str, **kwargs: Any) -> T:
        """A new, uncached instance (named by its canonical name when the registry names instances)."""
        entry = self.entry(name)
        instance = entry.create(**kwargs)
        if self.name_instances:
            try:
                instance.name = entry.name  # type: ignore[attr-defined]
            except AttributeError:  # a read-only name (a property) stays the backend's own
                pass
        return instance

    def build(self, name: str, **kwargs: Any) -> T:
        """The cached instance for ``name`` and ``kwargs``, built on first use (thread-safe). The
        :data:`CACHED_MODELS` most recently used instances stay cached, so a process that builds models from many
        files or settings does not keep every one of them (and its runtime's memory) alive."""
        canonical = self.canonical(name)
        try:
            key: Optional[Tuple[str, Hashable]] = (canonical, _freeze(kwargs))
        except TypeError:
            key = None  # unhashable arguments (an open session, an array): build uncached
        if key is None:
            return self.create(canonical, **kwargs)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
            else:
                self._cache[key] = self.create(canonical, **kwargs)
                while len(self._cache) > CACHED_MODELS:  # the least recently used model is let go
                    self._cache.popitem(last=False)
            return self._cache[key]

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()


def accepts(factory: Any, name: str) -> bool:
    """Whether ``factory`` takes a keyword argument ``name`` (by name or through ``**kwargs``)."""
    import inspect

    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
