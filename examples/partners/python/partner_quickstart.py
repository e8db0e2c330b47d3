"""certflow partner quick-start in Python.

Gets an access token for the partner's application with a certificate (MSAL for Python, client
credentials), calls GET /orders on the API through its gateway, and prints the HTTP status and the
token's decoded header and claims - never the token itself.

Configuration: the partner worker's environment variables (see README.md). Exit codes: 0 the API
answered 2xx, 1 it answered otherwise or the token or the call failed, 2 a setting is missing or
invalid.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional
from urllib.parse import urlparse

import certifi
import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS
from requests.adapters import HTTPAdapter

DEFAULT_ENTRA_INSTANCE = "https://login.microsoftonline.com"
KEY_FILE = "partner.key.pem"  # PKCS#8 PEM, encrypted when PARTNER_KEY_PASSPHRASE is set
CERTIFICATE_FILE = "partner.crt.pem"
KEY_REFERENCE_FILE = "partner.key.p11"  # a key inside a PKCS#11 token: not for this example
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


class ConfigError(Exception):
    def __init__(self, name: str, problem: str):
        super().__init__(f"{name}: {problem}")


class TokenRefused(Exception):
    """The authority refused the token request; the message starts with its AADSTS code."""


@dataclass(frozen=True)
class Settings:
    entra_instance: str
    tenant_id: str
    client_id: str
    scope: str
    api_base_url: str
    cert_dir: Path
    ca_file: Optional[Path] = None
    key_passphrase: Optional[str] = None


def _url(env: Mapping[str, str], name: str, schemes: tuple, default: Optional[str] = None) -> str:
    """An absolute URL as the partner worker takes it: one of `schemes`, no query, fragment or
    credentials; returned without its trailing slashes."""
    value = env.get(name, "").strip() or default
    if not value:
        raise ConfigError(name, "is required (e.g. https://api.example.com)")
    try:
        url = urlparse(value)
        url.port, url.hostname, url.username  # raise ValueError for a bad port or host
        if "[" in url.netloc:  # urlparse takes any text in brackets, MSAL and requests do not
            ipaddress.ip_address(url.hostname)
    except ValueError:
        url = None
    if not url or not url.scheme or not url.hostname:
        raise ConfigError(name, f'must be an absolute URL, got "{value}"')
    if url.scheme.lower() not in schemes:
        raise ConfigError(name, f'must use {" or ".join(schemes)}, got "{value}"')
    if "?" in value or "#" in value:  # the raw text: a bare ? or # leaves query and fragment empty
        raise ConfigError(name, f'must not have a query or fragment, got "{value}"')
    if url.username is not None or url.password is not None:
        raise ConfigError(name, "must not contain credentials")
    return value.rstrip("/")


def _guid(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not GUID.match(value):
        raise ConfigError(name, f'must be a GUID, got "{value}"' if value else "is required (a GUID)")
    return value.lower()


def load_settings(env: Mapping[str, str]) -> Settings:
    """The settings from `env`; a missing or invalid one raises ConfigError naming it."""
    tenant_id, client_id = _guid(env, "PARTNER_TENANT_ID"), _guid(env, "PARTNER_CLIENT_ID")
    instance = _url(env, "ENTRA_INSTANCE", ("https",), DEFAULT_ENTRA_INSTANCE)
    given = env.get("ENTRA_INSTANCE", "").strip()
    if urlparse(given).path not in ("", "/"):  # "https://host//" too, as the partner worker
        raise ConfigError("ENTRA_INSTANCE", f'must be the instance only, no path, got "{given}"')
    scope = env.get("PARTNER_SCOPE", "").strip()
    if not scope.endswith("/.default") or scope == "/.default" or re.search(r"\s", scope):
        raise ConfigError("PARTNER_SCOPE", f'must be one resource followed by /.default, got "{scope}"')
    cert_dir = Path(env.get("PARTNER_CERT_DIR", "").strip() or "(unset)")
    if not cert_dir.is_dir():
        raise ConfigError("PARTNER_CERT_DIR", f"must be the partner's certificate directory: {cert_dir}")
    ca_file = env.get("PARTNER_CA_FILE", "").strip()
    if ca_file and "-----BEGIN CERTIFICATE-----" not in _read(Path(ca_file), "PARTNER_CA_FILE"):
        raise ConfigError("PARTNER_CA_FILE", f"{ca_file} holds no PEM certificate")
    passphrase = env.get("PARTNER_KEY_PASSPHRASE") or None  # not trimmed: any character counts
    return Settings(
        entra_instance=instance,
        tenant_id=tenant_id,
        client_id=client_id,
        scope=scope,
        api_base_url=_url(env, "PARTNER_API_BASE_URL", ("https", "http")),
        cert_dir=cert_dir,
        ca_file=Path(ca_file) if ca_file else None,
        key_passphrase=passphrase,
    )


def _read(path: Path, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(name, f"cannot read {path}: {err.strerror}") from None


def certificate_credential(settings: Settings) -> dict:
    """MSAL's certificate credential from the partner's files (read through their links, every time)."""
    if (settings.cert_dir / KEY_REFERENCE_FILE).exists():
        raise ConfigError(
            "PARTNER_CERT_DIR",
            f"keeps its key in a PKCS#11 token ({KEY_REFERENCE_FILE}); this example reads {KEY_FILE}",
        )
    key_pem = _read(settings.cert_dir / KEY_FILE, "PARTNER_CERT_DIR")
    passphrase = settings.key_passphrase.encode() if settings.key_passphrase else None
    try:  # MSAL would only fail when signing; check the key (and its passphrase) now
        serialization.load_pem_private_key(key_pem.encode(), passphrase)
    except (TypeError, ValueError) as err:  # TypeError: passphrase missing, or given for a plain key
        name = "PARTNER_KEY_PASSPHRASE" if passphrase or "ENCRYPTED" in key_pem else "PARTNER_CERT_DIR"
        raise ConfigError(name, f"does not open {settings.cert_dir / KEY_FILE}: {err}") from None
    cert_pem = _read(settings.cert_dir / CERTIFICATE_FILE, "PARTNER_CERT_DIR")
    try:
        x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError as err:
        raise ConfigError("PARTNER_CERT_DIR", f"holds no usable {CERTIFICATE_FILE}: {err}") from None
    # With the certificate (and no "thumbprint"), MSAL signs PS256 and sends x5t#S256 and x5c.
    credential = {"private_key": key_pem, "public_certificate": cert_pem}
    if settings.key_passphrase:
        credential["passphrase"] = settings.key_passphrase
    return credential


def default_ca_bundle() -> str:
    """The CAs requests trusts by default: REQUESTS_CA_BUNDLE, else CURL_CA_BUNDLE, else certifi's."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()


class TrustAdapter(HTTPAdapter):
    """Verifies servers against one ssl.SSLContext, also through a proxy, adding no CA file to it."""

    def __init__(self, context: ssl.SSLContext):
        self.ssl_context = context
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **{**kwargs, "ssl_context": self.ssl_context})

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        return super().proxy_manager_for(proxy, **{**proxy_kwargs, "ssl_context": self.ssl_context})

    def cert_verify(self, conn, url, verify, cert):
        super().cert_verify(conn, url, verify, cert)
        conn.ca_certs = conn.ca_cert_dir = None  # the context holds the CAs already


class PartnerSession(requests.Session):
    """requests with a timeout on every call. With PARTNER_CA_FILE, it trusts what requests trusts
    by default (default_ca_bundle) AND that file's CAs, as the partner worker adds its CA file to
    Node's CAs: one SSLContext in memory, no file written. Without it, requests' default."""

    def __init__(self, ca_file: Optional[Path] = None, timeout_seconds: float = 30):
        super().__init__()
        self.ca_file, self.timeout_seconds = ca_file, timeout_seconds
        if ca_file:
            bundle = default_ca_bundle()
            where = {"capath": bundle} if os.path.isdir(bundle) else {"cafile": bundle}
            context = ssl.create_default_context(**where)
            context.load_verify_locations(cafile=str(ca_file))
            self.mount("https://", TrustAdapter(context))

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", self.timeout_seconds)
        return super().request(method, url, **kwargs)

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if self.ca_file and verify is None:
            settings["verify"] = True  # the adapter's context, not a bundle named in the environment
        return settings


def microsoft_authority(entra_instance: str) -> bool:
    """Is it one of MSAL's own Microsoft hosts? By the host name alone: any port, case, trailing dot."""
    return (urlparse(entra_instance).hostname or "").rstrip(".") in WELL_KNOWN_AUTHORITY_HOSTS


def build_app(settings: Settings, session: requests.Session) -> msal.ConfidentialClientApplication:
    # Instance discovery asks login.microsoftonline.com about the authority: only for Microsoft's hosts.
    microsoft = microsoft_authority(settings.entra_instance)
    return msal.ConfidentialClientApplication(
        settings.client_id,
        authority=f"{settings.entra_instance}/{settings.tenant_id}",
        client_credential=certificate_credential(settings),
        http_client=session,
        instance_discovery=microsoft,
        validate_authority=microsoft,
        token_cache=msal.TokenCache(),  # in memory; MSAL answers from it until the token nears expiry
    )


def acquire_token(app: msal.ConfidentialClientApplication, scope: str) -> dict:
    """MSAL's result: access_token, token_source ("identity_provider" or "cache"); or TokenRefused."""
    result = app.acquire_token_for_client(scopes=[scope])
    if "access_token" not in result:
        reason = result.get("error_description") or result.get("error") or "no reason given"
        raise TokenRefused(reason.splitlines()[0])
    return result


def decode_segment(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def main(env: Mapping[str, str] = os.environ) -> int:
    token = None
    try:
        settings = load_settings(env)
        session = PartnerSession(settings.ca_file)  # for Entra ID and the API alike
        app = build_app(settings, session)  # MSAL reads the authority's metadata here already
        token = acquire_token(app, settings.scope)["access_token"]
        orders = f"{settings.api_base_url}/orders"
        response = session.get(orders, headers={"Authorization": f"Bearer {token}"})
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    except TokenRefused as err:
        print(f"token request refused: {err}", file=sys.stderr)
        return 1
    except requests.RequestException as err:  # e.g. TLS: a certificate no trusted CA issued
        print(f"{'request failed: GET /orders' if token else 'token request failed'}: {err}", file=sys.stderr)
        return 1
    header, payload = token.split(".")[:2]
    print(f"HTTP {response.status_code}")
    print(f"header:\n{json.dumps(decode_segment(header), indent=2)}")
    print(f"claims:\n{json.dumps(decode_segment(payload), indent=2)}")
    return 0 if 200 <= response.status_code < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
