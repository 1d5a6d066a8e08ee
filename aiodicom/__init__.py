"""aiodicom: asyncio-native DICOM networking."""
