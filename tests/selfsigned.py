"""A throwaway TLS certificate for localhost, made with the openssl command, for the tests and the
benchmark: a server context, and the certificate's path for a client to trust (or not)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path


def localhost_cert(folder: Path) -> tuple[ssl.SSLContext, Path] | None:
    """(server TLS context, certificate path) for CN/SAN localhost, valid for a day; None when
    there is no openssl on this machine."""
    if shutil.which('openssl') is None:
        return None
    cert, key = folder / 'cert.pem', folder / 'key.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost',
                    '-keyout', str(key), '-out', str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, cert
