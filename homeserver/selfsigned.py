"""A self-signed TLS certificate for federation on loopback: the test suite, the
benchmarks and the Synapse interop script run servers with one (their peers do not
verify certificates: ``federation_verify_certificates: false``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def make_self_signed_certificate(directory: Path, days: int = 3) -> tuple[Path, Path]:
    """(certificate, private key) for ``localhost`` and 127.0.0.1, written into
    ``directory`` by the ``openssl`` command (FileNotFoundError without it)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FileNotFoundError("the openssl command is needed to make a certificate")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            str(days),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
