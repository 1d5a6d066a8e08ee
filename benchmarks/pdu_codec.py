"""PDU codec micro-benchmark: aiodicom.ul against pynetdicom's PDU classes, in one run.

    python benchmarks/pdu_codec.py

P-DATA-TF with one 16 KiB PDV (decode and encode) and an A-ASSOCIATE-RQ with 128 presentation contexts.
"""

from __future__ import annotations

import timeit

from aiodicom.ul import decode_pdu, encode_pdu
from aiodicom.ul.negotiation import propose_contexts, user_information
from aiodicom.ul.pdu import AAssociateRQ, PDataTF, PresentationDataValue, pdata_header

TS = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.4.50")


def rate(fn: object, number: int) -> float:
    seconds = min(timeit.repeat(fn, number=number, repeat=5))  # type: ignore[arg-type]
    return number / seconds


def main() -> None:
    from pynetdicom.pdu import A_ASSOCIATE_RQ, P_DATA_TF

    value = bytes(16384 - 6)
    pdata = PDataTF((PresentationDataValue(1, False, True, value),))
    pdata_bytes = encode_pdu(pdata)
    rq = AAssociateRQ(
        "ANY-SCP",
        "STORE-SCU",
        propose_contexts((f"1.2.840.10008.5.1.4.1.1.{i}", TS) for i in range(128)),
        user_information(16384),
    )
    rq_bytes = encode_pdu(rq)

    def their_pdata_decode() -> None:
        P_DATA_TF().decode(pdata_bytes)

    their_pdata = P_DATA_TF()
    their_pdata.decode(pdata_bytes)
    their_rq = A_ASSOCIATE_RQ()
    their_rq.decode(rq_bytes)
    cases = [
        ("P-DATA-TF 16 KiB decode", lambda: decode_pdu(pdata_bytes), their_pdata_decode, 20000),
        ("P-DATA-TF 16 KiB encode", lambda: encode_pdu(pdata), their_pdata.encode, 20000),
        (
            "P-DATA-TF 16 KiB header (send path)",
            lambda: pdata_header(1, False, True, len(value)),
            their_pdata.encode,
            20000,
        ),
        (
            "A-ASSOCIATE-RQ 128 contexts decode",
            lambda: decode_pdu(rq_bytes),
            lambda: A_ASSOCIATE_RQ().decode(rq_bytes),
            300,
        ),
        ("A-ASSOCIATE-RQ 128 contexts encode", lambda: encode_pdu(rq), their_rq.encode, 300),
    ]
    print(f"PDU codec, operations per second ({len(rq_bytes)}-byte A-ASSOCIATE-RQ):")
    print(f"  {'':<38} {'aiodicom':>12} {'pynetdicom':>12} {'ratio':>8}")
    for name, ours_fn, theirs_fn, number in cases:
        ours, theirs = rate(ours_fn, number), rate(theirs_fn, number)
        print(f"  {name:<38} {ours:12,.0f} {theirs:12,.0f} {ours / theirs:7.1f}x")


if __name__ == "__main__":
    main()
