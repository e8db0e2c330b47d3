"""Fixtures for the quick-start's tests: they run against the stack that with-stack.cjs started."""

from __future__ import annotations

import datetime
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

EXAMPLE_DIR = Path(__file__).resolve().parent.parent
PROGRAM = EXAMPLE_DIR / "partner_quickstart.py"


@pytest.fixture(scope="session")
def stack_env() -> dict:
    """The environment of partner contoso of the running stack (set by with-stack.cjs)."""
    if not os.environ.get("CERTFLOW_EMULATOR_METRICS_URL"):
        pytest.fail("run them with a stack: npx nx run partner-python:test")
    return dict(os.environ)


def run_program(env: dict) -> subprocess.CompletedProcess:
    """The quick-start as a partner runs it: its own process, its exit code."""
    return subprocess.run(
        [sys.executable, str(PROGRAM)], env=env, capture_output=True, text=True, timeout=60
    )


def tokens_issued(env: dict) -> int:
    """The emulator's count of tokens issued to PARTNER_CLIENT_ID, from its /metrics."""
    text = requests.get(
        env["CERTFLOW_EMULATOR_METRICS_URL"], verify=env["PARTNER_CA_FILE"], timeout=10
    ).text
    client = re.escape(env["PARTNER_CLIENT_ID"])
    pattern = rf'^entra_emulator_tokens_issued_total\{{[^}}]*client_id="{client}"[^}}]*\}} (\d+)$'
    return sum(int(count) for count in re.findall(pattern, text, re.M))


def self_signed(common_name: str, ca: bool = False) -> tuple:
    """A new RSA key and a self-signed certificate for it (a CA certificate when `ca`)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def write_unrelated_ca(path: Path) -> Path:
    """A CA certificate made now, which signed none of the stack's certificates."""
    _, cert = self_signed("unrelated test CA", ca=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture
def unregistered_cert_dir(tmp_path: Path) -> Path:
    """A key pair and self-signed certificate that no application has registered."""
    key, cert = self_signed("not-registered")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "partner.key.pem").write_bytes(key_pem)
    (tmp_path / "partner.crt.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return tmp_path
