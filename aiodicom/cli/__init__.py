"""The ``aiodicom`` command: one verb per service, the same option names for the same things.

One module per group of verbs (:mod:`~aiodicom.cli.clients`, :mod:`~aiodicom.cli.servers`,
:mod:`~aiodicom.cli.qr`, :mod:`~aiodicom.cli.demo`, :mod:`~aiodicom.cli.access`), all registered on the one
Typer app of :mod:`~aiodicom.cli.common`. Each verb imports what it runs when it runs.

Start-up is kept short: importing this package loads none of them (``app`` and the verb modules are loaded
on first use, PEP 562); ``aiodicom --version`` is answered without Typer; ``aiodicom VERB ...`` imports only
the module of that verb and builds the command of that verb alone (Typer builds every verb's options
otherwise). Anything else (``--help``, an unknown verb) runs the whole app.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

__all__ = ["access", "app", "clients", "commitment", "demo", "main", "mpps", "qr", "servers"]

_VERB_MODULES = ("access", "clients", "commitment", "demo", "mpps", "qr", "servers")

#: verb -> the module that registers it (tests/cli/test_startup.py checks it against the app).
VERBS: dict[str, str] = {
    "commit": "commitment",
    "demo": "demo",
    "echo": "clients",
    "echoscp": "servers",
    "find": "qr",
    "get": "qr",
    "hash-password": "access",
    "move": "qr",
    "mpps": "mpps",
    "qrscp": "servers",
    "store": "clients",
    "storescp": "servers",
}


def _app() -> typer.Typer:
    """The Typer app with every verb registered (importing a verb module registers its verbs)."""
    for name in _VERB_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    from aiodicom.cli.common import app

    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        return _app()
    if name in _VERB_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _loop_option(args: list[str]) -> list[str]:
    """``--loop asyncio|uvloop`` before the verb (the event loop every verb runs on; default: uvloop when
    installed): recorded for :func:`aiodicom.cli.common.run_async`, removed from the arguments."""
    if not args or not args[0].startswith("--loop"):
        return args
    if args[0].startswith("--loop="):
        value, rest = args[0].partition("=")[2], args[1:]
    else:
        value, rest = (args[1] if len(args) > 1 else ""), args[2:]
    from aiodicom.cli import common

    common.choose_loop(value)
    return rest


def main() -> None:
    """Entry point of the ``aiodicom`` console script."""
    args = _loop_option(sys.argv[1:])
    sys.argv[1:] = args
    if args == ["--version"]:  # what scripts and probes ask most; the same line as the option prints
        from aiodicom import __version__

        sys.stdout.write(f"aiodicom {__version__}\n")
        return
    module = VERBS.get(args[0]) if args else None
    if module is None:
        _app()()
        return
    importlib.import_module(f"{__name__}.{module}")
    from aiodicom.cli.common import verb_app

    verb_app(args[0])()
