"""The TLS options of the command line: a TLS echoscp and storescp through the real entry point (on uvloop
when it is installed), clients with and without a certificate; usage errors (exit 2) in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.cli.test_arguments import one_line, usage_error
from tests.cli.test_commands import run
from tests.interop.certs import Certs
from tests.interop.peers import stop
from tests.net.test_tls import write_instance


@contextmanager
def tls_server(verb: str, certs: Certs, *extra: str) -> Iterator[int]:
    """``aiodicom VERB`` listening with TLS on a free port (client certificates required)."""
    c = certs
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiodicom",
            verb,
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--json",
            "--tls-cert",
            str(c.server_cert),
            "--tls-key",
            str(c.server_key),
            "--tls-ca",
            str(c.ca),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else "no output"
        yield int(json.loads(line)["port"])
    finally:
        stop(proc)  # type: ignore[arg-type]


def client(c: Certs) -> tuple[str, ...]:
    return ("--tls-ca", str(c.ca), "--tls-cert", str(c.client_cert), "--tls-key", str(c.client_key))


def test_echo_and_store_over_tls_through_the_cli(tls_certs: Certs, tmp_path: Path) -> None:
    c = tls_certs
    with tls_server("echoscp", c) as port:
        ok = run("echo", f"127.0.0.1:{port}", *client(c), "--json")
        assert ok.returncode == 0, ok.stderr
        refused = run("echo", f"127.0.0.1:{port}", "--tls-ca", str(c.ca))
        assert refused.returncode == 3 and "TLS handshake" in refused.stderr, refused.stderr
        assert "client certificate" in refused.stderr and refused.stderr.count("\n") == 1
        untrusted = run("echo", f"127.0.0.1:{port}", "--tls", *client(c)[2:])  # the system's CAs
        assert untrusted.returncode == 3 and "unknown CA" in untrusted.stderr, untrusted.stderr
    src = tmp_path / "in.dcm"
    uid = write_instance(src)
    out = tmp_path / "out"
    with tls_server("storescp", c, "--out-dir", str(out), "--no-fsync") as port:
        sent = run("store", f"127.0.0.1:{port}", str(src), *client(c))
        assert sent.returncode == 0, sent.stderr
    assert next(out.rglob(f"{uid}.dcm")).is_file()


def test_tls_usage_errors_exit_2(tls_certs: Certs, tmp_path: Path) -> None:
    c = tls_certs
    cases = {
        ("echoscp", "--port", "0", "--tls-key", str(c.server_key)): "needs --tls-cert",
        (
            "echoscp",
            "--port",
            "0",
            "--tls-cert",
            str(c.server_cert),
            "--tls-optional-client-cert",
        ): "needs --tls-ca",
        ("echoscp", "--port", "0", "--tls-cert", str(tmp_path / "missing.crt")): "cannot load",
        (
            "echoscp",
            "--port",
            "0",
            "--tls-cert",
            str(c.server_cert),
            "--tls-key",
            str(c.server_key),
            "--tls-profile",
            "bcp195",
        ): "TLS 1.0 and 1.1",
        ("echo", "127.0.0.1:1", "--tls-key", str(c.client_key)): "needs --tls-cert",
        ("move", "127.0.0.1:1", "--dest", "ME", "--receive-tls-cert", str(c.server_cert)): "--receive-port",
    }
    for args, message in cases.items():
        assert message in one_line(usage_error(list(args))), args
