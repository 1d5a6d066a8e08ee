#!/usr/bin/env bash
# Runs the whole test suite on this machine. It installs the test extras and, where they are missing, the
# real peers the interoperability tests talk to (DCMTK and Orthanc, from Debian's packages; gdcmconv of
# libgdcm-tools makes the JPEG 2000 test files), then runs pytest.
# Extra arguments go to pytest (e.g. `-m interop`, `-k echo`, `-x`).
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --quiet --disable-pip-version-check -e '.[all,test]'

# dpkg, not `command -v`: pynetdicom installs programs named storescp and echoscu too.
if ! dpkg -s dcmtk orthanc libgdcm-tools openssl >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq dcmtk orthanc libgdcm-tools openssl >/dev/null
fi

exec python -m pytest "$@"
