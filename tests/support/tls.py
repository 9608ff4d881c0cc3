"""tls — a throwaway CA, a server certificate for 127.0.0.1/localhost and client certificates (mTLS), made with the openssl CLI at run time."""
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

# A client certificate for mTLS: clientAuth only.
_CLIENT_EXT = """\
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True)
class TlsFiles:
    directory: str
    ca_cert: str
    server_cert: str
    server_key: str
    client_cert: str = ""      # signed by ca_cert: a server requiring client certificates accepts it
    client_key: str = ""
    client_combined: str = ""  # client_cert and client_key in one PEM file
    rogue_cert: str = ""       # a client certificate from another CA: refused
    rogue_key: str = ""


def _openssl(args: list[str], cwd: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("tls: the `openssl` command is not installed (scripts/deps.sh installs it)")
    proc = subprocess.run([openssl, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"tls: openssl {' '.join(args)} failed: {proc.stderr.strip()}")


_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _ca(d: str, name: str, subject: str) -> None:
    """A self-signed CA: <name>.pem, <name>.key."""
    _openssl(["req", "-config", "req.cnf", "-x509", "-new", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.pem",
              "-days", "2", "-subj", subject, "-extensions", "ca_ext"], d)


def _leaf(d: str, name: str, subject: str, ca: str, ext: str) -> None:
    """<name>.pem and <name>.key, signed by the CA <ca>.pem/<ca>.key, with the extensions in file `ext`."""
    _openssl(["req", "-config", "req.cnf", "-new", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr",
              "-subj", subject], d)
    _openssl(["x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
              "-set_serial", "0x" + secrets.token_hex(8), "-days", "2", "-out", f"{name}.pem", "-extfile", ext], d)


def make_certs(directory: str | None = None) -> TlsFiles:
    """Create, in `directory` (a new temp dir if None): ca.pem, server.pem/.key, client.pem/.key (and both in
    client-combined.pem) from that CA, and rogue.pem/.key from another CA."""
    d = directory or tempfile.mkdtemp(prefix="polytel-tls-")
    for name, text in (("req.cnf", _REQ_CONFIG), ("server.ext", _SERVER_EXT), ("client.ext", _CLIENT_EXT)):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    _ca(d, "ca", "/CN=polytel test CA")
    _leaf(d, "server", "/CN=localhost", "ca", "server.ext")
    _leaf(d, "client", "/CN=polytel test client", "ca", "client.ext")
    with open(os.path.join(d, "client-combined.pem"), "w") as out:
        for name in ("client.pem", "client.key"):
            with open(os.path.join(d, name)) as f:
                out.write(f.read())
    # Another CA's client certificate: well-formed, but not one the server trusts.
    _ca(d, "rogue-ca", "/CN=rogue CA")
    _leaf(d, "rogue", "/CN=rogue client", "rogue-ca", "client.ext")
    for k in ("ca.key", "client.key", "rogue-ca.key", "rogue.key", "client-combined.pem"):
        os.chmod(os.path.join(d, k), 0o600)
    j = lambda n: os.path.join(d, n)  # noqa: E731
    return TlsFiles(d, j("ca.pem"), j("server.pem"), j("server.key"), j("client.pem"), j("client.key"),
                    j("client-combined.pem"), j("rogue.pem"), j("rogue.key"))


def server_context(files: TlsFiles, client_auth: bool = False) -> ssl.SSLContext:
    """client_auth: the handshake requires a client certificate signed by files.ca_cert (mTLS)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files.server_cert, files.server_key)
    if client_auth:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=files.ca_cert)
    return ctx


def client_context(ca_cert: str) -> ssl.SSLContext:
    """A verifying client context that trusts only `ca_cert`."""
    return ssl.create_default_context(cafile=ca_cert)
