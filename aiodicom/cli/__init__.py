"""The ``aiodicom`` command: one verb per service, the same option names for the same things.

One module per group of verbs (:mod:`~aiodicom.cli.clients`, :mod:`~aiodicom.cli.servers`,
:mod:`~aiodicom.cli.qr`, :mod:`~aiodicom.cli.demo`), all registered on the one Typer app of
:mod:`~aiodicom.cli.common`. Each verb imports what it runs when it runs, so ``aiodicom --version`` and
``--help`` stay fast.
"""

from __future__ import annotations

from aiodicom.cli import access, clients, demo, qr, servers
from aiodicom.cli.common import app

__all__ = ["access", "app", "clients", "demo", "main", "qr", "servers"]


def main() -> None:
    """Entry point of the ``aiodicom`` console script."""
    app()
