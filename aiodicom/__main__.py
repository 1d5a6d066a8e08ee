"""``python -m aiodicom``: the same as the ``aiodicom`` command."""

from aiodicom.cli import main

main()
