"""Regenerate the association state diagram in docs/state-diagram.md from aiodicom/ul/fsm.py.

python docs/gen_fsm.py           # rewrite what lies between the fsm:begin and fsm:end markers
python docs/gen_fsm.py --check   # exit 1 if the page is stale (tests/ul/test_fsm.py runs this)
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiodicom.ul.fsm import State, to_mermaid

PAGE = Path(__file__).with_name("state-diagram.md")
BEGIN, END = "<!-- fsm:begin -->", "<!-- fsm:end -->"


def render() -> str:
    """The generated block, markers included: the Mermaid diagram, then the states and what they mean."""
    rows = "".join(f"| {state.value} | {state.description} |\n" for state in State)
    return f"{BEGIN}\n```mermaid\n{to_mermaid()}```\n\n| State | Meaning |\n|---|---|\n{rows}{END}"


def updated(text: str) -> str:
    """``text`` with the block between the markers regenerated."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the page needs the markers {BEGIN} and {END}, in that order")
    return text[:start] + render() + text[end + len(END) :]


def main(argv: list[str], page: Path = PAGE) -> int:
    text = page.read_text(encoding="utf-8")
    new = updated(text)
    if "--check" in argv:
        if new != text:
            print(f"{page} is stale: run python docs/gen_fsm.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        page.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
