"""Query/retrieve tests: real PACS fixtures (Orthanc, DCMTK dcmqrscp and wlmscpfs) loaded with known data."""
