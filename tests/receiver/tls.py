"""tls — a throwaway CA and a server certificate for 127.0.0.1/localhost, made with the openssl CLI at run time."""
from __future__ import annotations

import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass

# A minimal config so `openssl req` does not pick up the distribution's defaults
# (which add their own extensions and would duplicate ours).
_REQ_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""

# Strict verifiers (Python 3.13's VERIFY_X509_STRICT, recent curl/OpenSSL) want a
# well-formed leaf: SAN, serverAuth, and key identifiers linking it to the CA.
_SERVER_EXT = """\
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True)
class TlsFiles:
    directory: str
    ca_cert: str
    server_cert: str
    server_key: str


def _openssl(args: list[str], cwd: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("tls: the `openssl` command is not installed (scripts/deps.sh installs it)")
    proc = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"tls: openssl {' '.join(args)} failed: {proc.stderr.strip()}")


def make_certs(directory: str | None = None) -> TlsFiles:
    """Create ca.pem, server.pem and server.key in `directory` (a new temp dir if None)."""
    d = directory or tempfile.mkdtemp(prefix="polytel-tls-")
    with open(os.path.join(d, "req.cnf"), "w") as f:
        f.write(_REQ_CONFIG)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write(_SERVER_EXT)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(["req", "-config", "req.cnf", "-x509", "-new", *ec, "-keyout", "ca.key", "-out", "ca.pem",
              "-days", "2", "-subj", "/CN=polytel test CA", "-extensions", "ca_ext"], d)
    _openssl(["req", "-config", "req.cnf", "-new", *ec, "-keyout", "server.key", "-out", "server.csr",
              "-subj", "/CN=localhost"], d)
    _openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
              "-set_serial", "0x" + secrets.token_hex(8), "-days", "2", "-out", "server.pem",
              "-extfile", "server.ext"], d)
    os.chmod(os.path.join(d, "ca.key"), 0o600)
    return TlsFiles(d, os.path.join(d, "ca.pem"), os.path.join(d, "server.pem"), os.path.join(d, "server.key"))


def server_context(files: TlsFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files.server_cert, files.server_key)
    return ctx


def client_context(ca_cert: str) -> ssl.SSLContext:
    """A verifying client context that trusts only `ca_cert`."""
    return ssl.create_default_context(cafile=ca_cert)
