"""Fixtures for every test folder: the real peers of ``tests/interop`` (DCMTK storescp; Orthanc, DCMTK
dcmqrscp and wlmscpfs loaded with the query/retrieve studies), a real S3 endpoint (a moto server) and test
instances in every transfer syntax (``syntax_files``). The session-scoped ones (the query/retrieve PACS,
moto, the syntax files) are made once per run, whichever folder asks first."""

pytest_plugins = (
    "tests.interop.peers",
    "tests.interop.pacs",
    "tests.interop.s3",
    "tests.interop.syntaxes",
    "tests.interop.certs",
)
