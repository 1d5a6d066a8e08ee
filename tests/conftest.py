"""Fixtures for every test folder: the real peers of ``tests/interop`` (DCMTK storescp; Orthanc, DCMTK
dcmqrscp and wlmscpfs loaded with the query/retrieve studies) and a real S3 endpoint (a moto server). The
session-scoped ones (the query/retrieve PACS, moto) start once per run, whichever folder asks first."""

pytest_plugins = ("tests.interop.peers", "tests.interop.pacs", "tests.interop.s3", "tests.interop.syntaxes")
