"""A real redis-server speaking only TLS on a loopback port, with a self-signed certificate.

What Heroku Redis looks like to a client: ``rediss://`` and a certificate no public CA
signed. Used by tests/test_redis_tls.py.
"""
from __future__ import annotations

import datetime
import ipaddress
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from helpers import free_port, wait_until


def self_signed_certificate(folder: Path, name: str = "redis") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost (its own CA); returns (cert, key) PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"notif test {name}")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / f"{name}.crt", folder / f"{name}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file


@dataclass
class TLSRedis:
    port: int
    cert: Path
    process: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A client of the test's own (not made by notif), trusting the certificate."""
        return redis.Redis.from_url(self.url, ssl_ca_certs=str(self.cert), socket_connect_timeout=2, socket_timeout=5)


def start_tls_redis(folder: Path) -> TLSRedis:
    """redis-server with TLS only (no plain port, no persistence, no client certificates)."""
    server = shutil.which("redis-server")
    assert server, "redis-server is not installed (Debian: apt-get install redis-server)"
    cert, key = self_signed_certificate(folder)
    port = free_port()
    log = folder / "redis-server.log"
    process = subprocess.Popen(
        [server, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
         "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", str(folder),
         "--logfile", str(log), "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    server_ = TLSRedis(port=port, cert=cert, process=process, log=log)
    client = server_.client()

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"redis-server exited {process.returncode}: "
                                 f"{log.read_text() if log.exists() else '(no log)'}")
        try:
            return bool(client.ping())
        except (redis.ConnectionError, ssl.SSLError):
            return False

    try:
        wait_until(up, 20, 0.05, message=f"redis-server with TLS on 127.0.0.1:{port}")
    except BaseException:
        stop_tls_redis(server_)
        raise
    finally:
        client.close()
    return server_


def stop_tls_redis(server: TLSRedis) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(10)
