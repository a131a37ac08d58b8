"""Guards: each plugin is registered with pluggy as an *adapter* holding one guard per hook
implementation — same name, signature and ``hookimpl`` options — so pluggy orders and
calls them as it documents (``tryfirst``, ``trylast``, ``wrapper=True``, ``hookwrapper``).

A guard gives the implementation this plugin's own views of its ``bot`` and ``registry``
arguments (``for_plugin``), and reports what it returns or raises to the plugin host,
which applies the hook's error policy (see ``lcbot.hookspecs``). Wrappers are proxied
step by step: a wrapper that raises is reported too, and pluggy goes on as if it had
passed the result through unchanged.
"""

from __future__ import annotations

import functools
import inspect
import types
from typing import Any, Protocol

VIEWS = ("bot", "registry")  # arguments replaced by the plugin's own view (``for_plugin``)
DISABLING = ("register_commands", "config_schema", "lcbot_startup")
PLAIN = ("register_commands", "authorize", "on_alert", "config_schema")  # no async def


class Reports(Protocol):
    """Where guards report (the plugin host)."""

    def result(self, plugin: str, hook: str, result: Any) -> Any: ...

    def failed(
        self, plugin: str, hook: str, exc: BaseException, args: tuple, saved: Any
    ) -> Any: ...


def adapt(pm: Any, plugin: Any, name: str, reports: Reports) -> Any:
    """The object to register with ``pm`` in place of ``plugin``."""
    adapter = types.SimpleNamespace()
    for attr in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is None:
            continue
        hook = opts.get("specname") or attr
        fn = getattr(plugin, attr)
        if hook in PLAIN and (inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)):
            raise TypeError(f"hook {hook} of plugin {name} must be a plain def, not async def")
        guard = _guard(fn, name, hook, opts, reports)
        setattr(guard, "lcbot_impl", opts)  # noqa: B010 (pluggy's marker attribute)
        setattr(adapter, attr, guard)
    return adapter


def snapshot(hook: str, args: tuple) -> Any:
    """What a failing ``on_alert`` must put back: the alert's fields before it ran."""
    if hook != "on_alert" or not args:
        return None
    state = args[0].__dict__.copy()  # shallow: only ``recipients`` is changed in place
    recipients = state.get("recipients")
    if recipients is not None and isinstance(recipients, list):
        state["recipients"] = recipients.copy()
    return state


def _guard(fn: Any, plugin: str, hook: str, opts: dict[str, Any], reports: Reports) -> Any:
    params = list(inspect.signature(fn).parameters)
    views = [i for i, n in enumerate(params) if n in VIEWS]

    def own(args: tuple) -> tuple | list:
        if not views:  # no per-plugin view to hand out: the arguments as they are
            return args
        args_list = list(args)
        for i in views:
            if i < len(args_list):
                args_list[i] = args_list[i].for_plugin(plugin)
        return args_list

    if opts.get("wrapper") or opts.get("hookwrapper"):
        old_style = bool(opts.get("hookwrapper"))

        def guard(*args: Any) -> Any:
            saved = snapshot(hook, args)
            gen = fn(*own(args))
            try:
                value = next(gen)  # the wrapper's code before its yield
            except Exception as exc:
                reports.failed(plugin, hook, exc, args, saved)
                outcome = yield  # pluggy goes on without this wrapper
                return _pass_through(hook, outcome, old_style)
            while True:
                try:
                    sent = yield value
                except GeneratorExit:
                    gen.close()
                    raise
                except BaseException as thrown:  # an inner implementation's failure
                    try:
                        value = gen.throw(thrown)
                    except StopIteration as stop:
                        return stop.value
                    continue
                try:
                    value = gen.send(sent)
                except StopIteration as stop:
                    return stop.value
                except Exception as exc:  # the wrapper's own code after its yield
                    reports.failed(plugin, hook, exc, args, saved)
                    return _pass_through(hook, sent, old_style)

    elif inspect.iscoroutinefunction(fn):

        async def guard(*args: Any) -> Any:
            saved = snapshot(hook, args)
            try:
                return reports.result(plugin, hook, await fn(*own(args)))
            except (Exception, SystemExit) as exc:
                return reports.failed(plugin, hook, exc, args, saved)

    else:

        def guard(*args: Any) -> Any:
            saved = snapshot(hook, args)
            try:
                return reports.result(plugin, hook, fn(*own(args)))
            except (Exception, SystemExit) as exc:
                return reports.failed(plugin, hook, exc, args, saved)

    return functools.update_wrapper(guard, fn)


def _pass_through(hook: str, outcome: Any, old_style: bool) -> Any:
    """What a failed wrapper leaves: the inner result, with a denial for ``authorize``."""
    if hook != "authorize":
        return outcome
    if old_style:  # a pluggy Result: change it in place (the return value is ignored)
        try:
            outcome.force_result([*outcome.get_result(), False])
        except Exception:
            outcome.force_result([False])
        return None
    return [*(outcome or []), False]
