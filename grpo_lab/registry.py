"""Named plug-ins: one small registry per ablation axis.

Every axis a config switch selects (advantage estimators, policy losses, KL estimators,
loss aggregations, algorithms, rollout backends, tasks, reward functions, optimizers)
is a :class:`Registry`: built-in entries register themselves with a decorator, the
config names one, and an unknown name is one :class:`~grpo_lab.errors.ConfigError`
naming the key and the allowed names. Where a registry accepts user code, a value of
the form ``package.module:attribute`` is imported instead (:func:`import_object`), so a
user's own estimator, loss, task or reward needs no edit of grpo-lab.

This module imports nothing heavy: the config check and ``--help`` read the names.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, Generic, Iterator, Mapping, Sequence, TypeVar

from grpo_lab.errors import ConfigError

T = TypeVar("T")


def is_import_path(value: Any) -> bool:
    """``package.module:attribute``, as opposed to a registered name."""
    return isinstance(value, str) and ":" in value


def import_object(path: str, key: str | None = None) -> Any:
    """``"package.module:attribute"`` -> the attribute; ``key`` names the config key
    in the error."""
    where = f"{key}={path!r}" if key else f"import path {path!r}"
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{where} must look like 'package.module:function'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"{where}: cannot import it ({err})") from None


def by_name(fn: Callable[..., Any], inputs: Sequence[str], where: str) -> Callable[..., Any]:
    """``fn`` called with keyword ``inputs``, of which it receives only the ones it
    declares (all of them if it takes ``**kwargs``): a plug-in takes what it uses.

    A required parameter that is not one of ``inputs`` is one ConfigError naming
    ``where`` and the names to use (a function written for a fixed positional order
    with other names would get its inputs in the wrong places).
    """
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # no signature to read (some C functions): give it everything
        return lambda **given: fn(**given)
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return lambda **given: fn(**given)
    unknown = [p.name for p in params if p.name not in inputs and p.default is p.empty
               and p.kind is not p.VAR_POSITIONAL]
    if unknown:
        several = len(unknown) > 1
        raise ConfigError(
            f"{where}: parameter{'s' if several else ''} {', '.join(unknown)} "
            f"{'are not inputs' if several else 'is not an input'} it can receive; allowed parameter names: "
            f"{', '.join(inputs)} (each passed by name, only those it declares)"
        )
    positional = [p.name for p in params if p.kind is p.POSITIONAL_ONLY]
    by_keyword = [p.name for p in params if p.name in inputs and p.kind is not p.POSITIONAL_ONLY]

    def call(**given: Any) -> Any:
        return fn(*(given[n] for n in positional), **{n: given[n] for n in by_keyword})

    return call


class _Lazy:
    def __init__(self, path: str):
        self.path = path


def origin(entry: Any) -> str:
    """Where an entry is defined, ``module:qualified_name`` (a lazy entry: its path)."""
    if isinstance(entry, _Lazy):
        return entry.path
    module, name = getattr(entry, "__module__", None), getattr(entry, "__qualname__", None)
    return f"{module}:{name}" if module and name else repr(entry)


class Registry(Mapping[str, T], Generic[T]):
    """Entries by name for one config key (``key``, used in errors and ``--help``).

    ``user_code``: whether ``package.module:attribute`` values are accepted for the key.
    ``inputs``: for registries of functions the trainer calls, the names of what it
    passes; :meth:`caller` gives each entry only the inputs it declares (:func:`by_name`).

    A name is registered once: a second entry under a taken name is refused, naming
    where both are defined (as verl's registries do), instead of silently replacing the
    first. The same definition again (a module imported twice or reloaded: same
    ``module:qualified_name``) replaces it.
    """

    def __init__(self, kind: str, key: str, user_code: bool = False, inputs: Sequence[str] = ()):
        self.kind = kind
        self.key = key
        self.user_code = user_code
        self.inputs = tuple(inputs)
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name")``."""

        def wrap(entry: T) -> T:
            return self.add(name, entry)

        return wrap

    def add(self, name: str, entry: T) -> T:
        self._put(name, entry)
        return entry

    def add_lazy(self, name: str, path: str) -> None:
        """A built-in by import path, imported when first used: a registry whose entries
        need heavy imports (transformers, vLLM) stays cheap to list and check."""
        self._put(name, _Lazy(path))

    def _put(self, name: str, entry: Any) -> None:
        where = origin(entry)
        first = self._origins.get(name)
        if first is not None and first != where:
            raise ValueError(
                f"{self.kind} {name!r} is registered twice: first by {first}, then by {where}; "
                "give the second another name"
            )
        self._entries[name] = entry
        self._origins[name] = where

    def get_entry(self, name: str) -> T:
        """The entry for a config value: a registered name, or (where allowed) an import
        path; anything else is one ConfigError naming ``key`` and the allowed names."""
        if self.user_code and is_import_path(name):
            entry = import_object(name, self.key)
            if not callable(entry):
                raise ConfigError(f"{self.key}={name!r} is not callable")
            return entry
        try:
            return self[name]
        except (KeyError, TypeError):
            raise ConfigError(f"{self.key}={name!r} is not allowed; allowed: {self.allowed()}") from None

    def caller(self, name: str) -> Callable[..., Any]:
        """The entry for ``name``, to be called with every one of ``inputs`` by keyword;
        it receives those it declares."""
        return by_name(self.get_entry(name), self.inputs, f"{self.key}={name!r}")

    def check(self, name: str) -> None:
        """Fails as :meth:`get_entry` / :meth:`caller` would, without importing lazy
        built-ins (user code is imported and its parameters read, not run)."""
        if self.user_code and is_import_path(name):
            if self.inputs:
                self.caller(name)
            else:
                self.get_entry(name)
        elif not isinstance(name, str) or name not in self._entries:
            raise ConfigError(f"{self.key}={name!r} is not allowed; allowed: {self.allowed()}")

    def allowed(self) -> str:
        names = ", ".join(sorted(self._entries))
        return f"{names}, or package.module:function" if self.user_code else names

    # Mapping: `name in REGISTRY`, `sorted(REGISTRY)`, `REGISTRY.items()`.
    def __getitem__(self, name: str) -> T:
        entry = self._entries[name]
        if isinstance(entry, _Lazy):
            entry = self._entries[name] = import_object(entry.path)
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.key}: {', '.join(sorted(self._entries))})"
