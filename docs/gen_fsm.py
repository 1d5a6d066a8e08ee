"""Regenerate the association state diagram in docs/architecture.md from aiodicom/ul/fsm.py.

    python docs/gen_fsm.py           # rewrite the diagram between the markers
    python docs/gen_fsm.py --check   # exit 1 when the page is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiodicom.ul.fsm import State, to_mermaid

PAGE = Path(__file__).with_name("architecture.md")
BEGIN, END = "<!-- fsm:begin -->", "<!-- fsm:end -->"


def render() -> str:
    rows = "\n".join(f"| {state.value} | {state.description} |" for state in State)
    return f"{BEGIN}\n```mermaid\n{to_mermaid()}```\n\n| State | Meaning |\n|---|---|\n{rows}\n{END}"


def updated(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + render() + text[end:]


def main(argv: list[str]) -> int:
    text = PAGE.read_text()
    new = updated(text)
    if "--check" in argv:
        if new != text:
            print(f"{PAGE} is stale: run python docs/gen_fsm.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
