"""Custom rules written in Python, referenced from a rules file.

A custom condition is either a function ``f(pose, t_ns, bodyparts) -> bool | None``
or a class whose instances have ``condition(pose, t_ns, bodyparts)`` (one
instance per stream, constructed with the rule's ``params``). ``None`` means
unknown (treated as False). Register one with :func:`custom_rule` or refer to
it from YAML as ``python: module:name`` or ``python: file.py:name`` (resolved
relative to the rules file's folder).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import ConfigError
from .conditions import ConditionFn, Custom

_REGISTRY: dict[str, Any] = {}
_FILE_MODULES: dict[Path, Any] = {}  # file.py references, loaded once per process


def custom_rule(obj: Any = None, *, name: str | None = None):
    """Register a custom condition under its own name or ``name``.

    Usable as ``@custom_rule``, ``@custom_rule("name")`` or ``@custom_rule(name="name")``.
    """
    if isinstance(obj, str):
        name, obj = obj, None

    def register(target: Any) -> Any:
        key = name or target.__name__
        if not (callable(target) and (not inspect.isclass(target) or callable(getattr(target, "condition", None)))):
            raise TypeError(f"custom rule {key!r} must be a function or a class with a condition() method")
        _REGISTRY[key] = target
        return target

    return register if obj is None else register(obj)


def registered() -> dict[str, Any]:
    """A copy of the registry (name -> function or class)."""
    return dict(_REGISTRY)


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def resolve(ref: str, base_dir: Path | None = None) -> Any:
    """Find the object ``ref`` names: a registered name, ``module:attr`` or ``file.py:attr``.

    Raises ConfigError (without file/rule context; the caller adds it).
    """
    if ":" not in ref:
        if ref in _REGISTRY:
            return _REGISTRY[ref]
        known = ", ".join(sorted(_REGISTRY)) or "none registered"
        raise ConfigError(
            f"no custom rule registered as {ref!r} ({known}); "
            "write 'module:function' or 'file.py:function', or register it with @rtpose.rules.custom_rule"
        )
    mod_ref, _, attr = ref.rpartition(":")
    if mod_ref.endswith(".py"):
        path = Path(mod_ref)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise ConfigError(f"python file {str(path)!r} for {ref!r} does not exist")
        module = _FILE_MODULES.get(path.resolve())
        if module is None:
            spec = importlib.util.spec_from_file_location(f"rtpose_user_rules.{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                raise ConfigError(f"importing {str(path)!r} for {ref!r} failed: {exc!r}") from exc
            _FILE_MODULES[path.resolve()] = module
    else:
        added = base_dir is not None and str(base_dir) not in sys.path
        if added:
            sys.path.insert(0, str(base_dir))
        try:
            module = importlib.import_module(mod_ref)
        except ImportError as exc:
            raise ConfigError(
                f"cannot import module {mod_ref!r} for {ref!r} ({exc}); put it next to the rules file "
                "or on PYTHONPATH"
            ) from exc
        finally:
            if added:
                sys.path.remove(str(base_dir))
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{mod_ref!r} has no attribute {attr!r} (from {ref!r})")
        obj = getattr(obj, part)
    return obj


def make_condition(target: Any, params: Mapping[str, Any] | None = None, label: str | None = None) -> Custom:
    """Wrap a function or class as a :class:`Custom` condition; checks the call signature now."""
    params = dict(params or {})
    label = label or getattr(target, "__name__", repr(target))
    dummy = (None, 0, ())
    if inspect.isclass(target):
        if not callable(getattr(target, "condition", None)):
            raise ConfigError(f"custom rule {label!r} is a class without a condition(pose, t_ns, bodyparts) method")
        _check_signature(target, (), params, label, "constructor")
        _check_signature(target.condition, (None,) + dummy, {}, label, "condition()")

        def factory() -> ConditionFn:
            return target(**params).condition
    elif callable(target):
        _check_signature(target, dummy, params, label, "function")
        fn: Callable = functools.partial(target, **params) if params else target

        def factory() -> ConditionFn:
            return fn
    else:
        raise ConfigError(f"custom rule {label!r} is neither a function nor a class")
    return Custom(label=label, factory=factory)


def _check_signature(fn: Callable, args: tuple, kwargs: dict, label: str, what: str) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins without a signature: trust them
    try:
        sig.bind(*args, **kwargs)
    except TypeError as exc:
        raise ConfigError(
            f"custom rule {label!r}: {what} cannot be called as expected ({exc}); a condition takes "
            "(pose, t_ns, bodyparts) and the rule's params as keyword arguments"
        ) from None
