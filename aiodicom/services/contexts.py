"""What a batch of files proposes: presentation contexts grouped into associations, and why a SOP class found
no context (the peer's answer, in words)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiodicom.dataset.codecs import FALLBACK_ORDER, encoder_installed, syntax_label
from aiodicom.dataset.tags import uid_name
from aiodicom.uids import (
    DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    UNCOMPRESSED_TRANSFER_SYNTAXES,
)
from aiodicom.ul.items import PresentationContextResult

if TYPE_CHECKING:
    from aiodicom.net.association import Association
    from aiodicom.services.send import QueuedFile

#: Presentation contexts per association (PS3.8 allows 128: odd context IDs 1-255).
MAX_CONTEXTS = 128
_UNCOMPRESSED_AND_DEFLATED = frozenset((*UNCOMPRESSED_TRANSFER_SYNTAXES, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN))

#: A group of files sent over the same associations: the contexts proposed, and the files.
Plan = tuple[list[tuple[str, list[str]]], list["QueuedFile"]]


def plan_contexts(items: list[QueuedFile], forced: str | None, never_transcode: bool = False) -> list[Plan]:
    """Group files into associations of at most 128 presentation contexts.

    Each (SOP class, transfer syntax) of the batch is a context of its own (acceptors choose by their own
    preference within one context); each SOP class also gets an uncompressed fallback context and, unless
    nothing may be converted, one with the lossless compressions this side can encode (for a peer that
    takes only those).
    """
    by_class: dict[str, list[QueuedFile]] = {}
    for item in items:
        assert item.header is not None
        by_class.setdefault(item.header.sop_class_uid, []).append(item)
    compressions = [] if forced or never_transcode else lossless_compressions()
    plans: list[Plan] = []
    contexts: list[tuple[str, list[str]]] = []
    members: list[QueuedFile] = []
    for sop_class, group in by_class.items():
        syntaxes = [forced] if forced else list(dict.fromkeys(i.header.transfer_syntax_uid for i in group))  # type: ignore[union-attr]
        wanted = [(sop_class, [ts]) for ts in syntaxes]
        if not forced:
            for fallback in ((EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN), compressions):
                extra = [ts for ts in fallback if ts not in syntaxes]
                if extra:
                    wanted.append((sop_class, extra))
        if len(contexts) + len(wanted) > MAX_CONTEXTS and contexts:
            plans.append((contexts, members))
            contexts, members = [], []
        contexts.extend(wanted)
        members.extend(group)
    if contexts:
        plans.append((contexts, members))
    return plans


def lossless_compressions() -> list[str]:
    """The lossless compressed syntaxes this side can encode, in the order it prefers them."""
    return [ts for ts in FALLBACK_ORDER if ts not in _UNCOMPRESSED_AND_DEFLATED and encoder_installed(ts)]


async def rejection_reason(assoc: Association, sop_class: str, forced: str | None = None) -> str:
    """Why no context was accepted for ``sop_class``, in the peer's words (PS3.8 Table 9-18)."""
    ac = await assoc.wait_established()
    proposed = {
        pc.context_id for pc in assoc.request.presentation_contexts if pc.abstract_syntax == sop_class
    }
    results = {pc.result for pc in ac.presentation_contexts if pc.context_id in proposed}
    what = f"SOP class {uid_name(sop_class)} ({sop_class})"
    if not proposed:
        return f"{what} was not proposed on this association"
    if results == {PresentationContextResult.ABSTRACT_SYNTAX_NOT_SUPPORTED}:
        return f"the peer rejected {what}: abstract syntax not supported"
    if results == {PresentationContextResult.TRANSFER_SYNTAXES_NOT_SUPPORTED}:
        if forced:
            return f"the peer accepts {what} only in other syntaxes, not {syntax_label(forced)} (forced)"
        return f"the peer accepts {what} in none of the transfer syntaxes proposed"
    reasons = ", ".join(PresentationContextResult.NAMES.get(r, str(r)) for r in sorted(results))
    return f"the peer rejected {what} ({reasons or 'no answer for its contexts'})"
