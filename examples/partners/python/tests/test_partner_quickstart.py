"""The quick-start against the local stack: real MSAL, real TLS, real certificates."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

import partner_quickstart as quickstart
from conftest import EXAMPLE_DIR, run_program, tokens_issued, write_unrelated_ca

JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")

# The URL cases shared by the three quick-starts' tests (and the partner worker's env.spec.ts).
URL_CASES = [
    ("PARTNER_API_BASE_URL", "https://127.0.0.1:8443?", "must not have a query or fragment"),
    ("PARTNER_API_BASE_URL", "https://127.0.0.1:8443#", "must not have a query or fragment"),
    ("PARTNER_API_BASE_URL", "https://127.0.0.1:8443/api?", "must not have a query or fragment"),
    ("ENTRA_INSTANCE", "https://login.example.test?", "must not have a query or fragment"),
    ("ENTRA_INSTANCE", "https://login.example.test#", "must not have a query or fragment"),
    ("PARTNER_API_BASE_URL", "https://@127.0.0.1:8443", "must not contain credentials"),
    ("PARTNER_API_BASE_URL", "https://127.0.0.1:99999", "must be an absolute URL"),
    ("ENTRA_INSTANCE", "https://login.example.test:99999", "must be an absolute URL"),
    ("ENTRA_INSTANCE", "https://[::1", "must be an absolute URL"),
    ("ENTRA_INSTANCE", "https://:8443", "must be an absolute URL"),
    ("PARTNER_API_BASE_URL", "https://[v1.x]", "must be an absolute URL"),
    ("ENTRA_INSTANCE", "https://login.example.test//", "must be the instance only"),
]

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def decode_segment(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


class RecordingSession(quickstart.PartnerSession):
    """The example's HTTP client, keeping the form of each token request MSAL sends through it."""

    def __init__(self, ca_file: Path):
        super().__init__(ca_file)
        self.token_requests: list[dict] = []

    def post(self, url, data=None, **kwargs):
        if url.endswith("/oauth2/v2.0/token"):
            self.token_requests.append(dict(data))
        return super().post(url, data=data, **kwargs)


def sent_assertion(settings: quickstart.Settings) -> tuple[dict, dict, str]:
    """Header, claims and the whole of the client assertion MSAL sends for `settings`."""
    session = RecordingSession(settings.ca_file)
    app = quickstart.build_app(settings, session)
    app.acquire_token_for_client(scopes=[settings.scope])
    assert len(session.token_requests) == 1
    form = session.token_requests[0]
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assertion = form["client_assertion"]
    assertion = assertion.decode() if isinstance(assertion, bytes) else assertion  # PyJWT gives bytes
    header, claims = assertion.split(".")[:2]
    return decode_segment(header), decode_segment(claims), assertion


@pytest.mark.parametrize(
    "change, message",
    [
        ({"PARTNER_CLIENT_ID": None}, "PARTNER_CLIENT_ID: is required (a GUID)"),
        ({"PARTNER_TENANT_ID": "contoso"}, 'PARTNER_TENANT_ID: must be a GUID, got "contoso"'),
        ({"ENTRA_INSTANCE": "http://localhost"}, 'ENTRA_INSTANCE: must use https, got "http://localhost"'),
        ({"ENTRA_INSTANCE": "localhost:8443"}, "ENTRA_INSTANCE: must be an absolute URL"),
        ({"ENTRA_INSTANCE": "https://login.microsoftonline.com/t"}, "ENTRA_INSTANCE: must be the instance"),
        ({"ENTRA_INSTANCE": "https://localhost?x=1"}, "ENTRA_INSTANCE: must not have a query or fragment"),
        ({"ENTRA_INSTANCE": "https://localhost#x"}, "ENTRA_INSTANCE: must not have a query or fragment"),
        ({"ENTRA_INSTANCE": "https://u:p@localhost"}, "ENTRA_INSTANCE: must not contain credentials"),
        ({"PARTNER_API_BASE_URL": "ftp://127.0.0.1"}, "PARTNER_API_BASE_URL: must use https or http"),
        ({"PARTNER_API_BASE_URL": "https://h/api?x=1"}, "PARTNER_API_BASE_URL: must not have a query"),
        ({"PARTNER_API_BASE_URL": "https://h/api#x"}, "PARTNER_API_BASE_URL: must not have a query"),
        ({"PARTNER_API_BASE_URL": "https://user@h/api"}, "PARTNER_API_BASE_URL: must not contain credentials"),
        *(({name: value}, f"{name}: {problem}") for name, value, problem in URL_CASES),
        ({"PARTNER_SCOPE": "api://orders/Orders.Read"}, "PARTNER_SCOPE: must be one resource"),
        ({"PARTNER_CA_FILE": "/srv/partner/ca.pem"}, "PARTNER_CA_FILE: cannot read /srv/partner/ca.pem"),
        ({"PARTNER_CERT_DIR": "/srv/partner/missing"}, "PARTNER_CERT_DIR: must be the partner's"),
        ({"partner.crt.pem": "not a certificate"}, "PARTNER_CERT_DIR: holds no usable partner.crt.pem"),
    ],
)
def test_a_missing_or_invalid_setting_is_named_exit_2(stack_env, tmp_path, change, message):
    env = dict(stack_env)
    for name, value in change.items():
        if name == "partner.crt.pem":  # a certificate directory whose certificate is damaged
            shutil.copy(Path(env["PARTNER_CERT_DIR"]) / "partner.key.pem", tmp_path)
            (tmp_path / name).write_text(value)
            env["PARTNER_CERT_DIR"] = str(tmp_path)
        elif value is None:
            del env[name]
        else:
            env[name] = value
    result = run_program(env)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1, "one line"


def test_token_then_get_orders_through_the_gateway_200(stack_env):
    # PARTNER_CA_FILE is added to a CA bundle named in the environment (one without the stack's CA);
    # a developer's proxy is bypassed for the local stack (with-stack.cjs sets NO_PROXY).
    proxy = {"HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    result = run_program({**stack_env, "REQUESTS_CA_BUNDLE": certifi.where(), **proxy})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "HTTP 200"
    header_json, claims_json = result.stdout.split("\nheader:\n", 1)[1].split("\nclaims:\n")
    assert json.loads(header_json)["alg"] == "RS256"
    claims = json.loads(claims_json)
    assert claims["azp"] == stack_env["PARTNER_CLIENT_ID"]
    assert "Orders.Read" in claims["roles"]
    assert not JWT.search(result.stdout + result.stderr), "the token itself must never be printed"


def test_an_answer_other_than_2xx_is_printed_and_exits_1(stack_env):
    no_such_api = stack_env["PARTNER_API_BASE_URL"] + "/no-such-api"
    result = run_program({**stack_env, "PARTNER_API_BASE_URL": no_such_api})
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[0] == "HTTP 404"
    assert "\nclaims:\n" in result.stdout
    assert not JWT.search(result.stdout + result.stderr), "the token itself must never be printed"


def test_a_resource_the_partner_is_not_granted_is_refused_with_AADSTS500011(stack_env):
    result = run_program({**stack_env, "PARTNER_SCOPE": "api://not-registered/.default"})
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith("token request refused: AADSTS500011: "), result.stderr


@pytest.mark.parametrize("ca_file", ["unrelated", None])
def test_tls_is_verified_a_ca_file_that_issued_nothing_of_the_stacks_fails(stack_env, tmp_path, ca_file):
    env = {k: v for k, v in stack_env.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    if ca_file:  # a CA made here, which signed none of the stack's certificates
        env["PARTNER_CA_FILE"] = str(write_unrelated_ca(tmp_path / "unrelated-ca.pem"))
    else:  # requests' default trust only: certifi's bundle
        del env["PARTNER_CA_FILE"]
    result = run_program(env)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith("token request failed: "), result.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr, result.stderr


def test_partner_ca_file_is_trusted_besides_the_default_cas(stack_env, monkeypatch):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    session = quickstart.PartnerSession(Path(stack_env["PARTNER_CA_FILE"]))
    trusted = session.get_adapter("https://localhost").ssl_context
    default = ssl.create_default_context(cafile=certifi.where())
    assert trusted.cert_store_stats()["x509_ca"] == default.cert_store_stats()["x509_ca"] + 1
    assert session.get(stack_env["CERTFLOW_EMULATOR_METRICS_URL"]).status_code == 200  # real TLS


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_partner_ca_file_is_added_to_the_bundle_requests_would_use(stack_env, tmp_path, variable):
    # The stack's CA reaches the program only through `variable`; PARTNER_CA_FILE names another CA.
    env = {k: v for k, v in stack_env.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env[variable] = env["PARTNER_CA_FILE"]
    env["PARTNER_CA_FILE"] = str(write_unrelated_ca(tmp_path / "unrelated-ca.pem"))
    result = run_program(env)  # MSAL's token request and GET /orders, both through the session
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "HTTP 200"


def test_no_ca_bundle_file_is_ever_written(stack_env, tmp_path, monkeypatch):
    # A file would outlive a SIGKILL: the session keeps the CAs in memory only.
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_dir))
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.setenv(name, str(temp_dir))
    settings = quickstart.load_settings(stack_env)
    session = quickstart.PartnerSession(settings.ca_file)
    app = quickstart.build_app(settings, session)
    assert quickstart.acquire_token(app, settings.scope)["token_source"] == "identity_provider"
    assert session.get(stack_env["CERTFLOW_EMULATOR_METRICS_URL"]).status_code == 200
    assert list(temp_dir.iterdir()) == []


@pytest.mark.parametrize(
    "instance, microsoft",
    [
        ("https://login.microsoftonline.com", True),
        ("https://login.microsoftonline.com:443", True),
        ("https://LOGIN.microsoftonline.com:8443", True),
        ("https://login.microsoftonline.com.", True),
        ("https://login.microsoftonline.com.:443", True),
        ("https://login.windows.net", True),
        ("https://sts.windows.net", True),
        ("https://login.sovcloud-identity.fr", True),
        ("https://localhost:8443", False),
        ("https://127.0.0.1:8443", False),
        ("https://login.microsoftonline.com.example.net", False),
    ],
)
def test_authority_checks_are_decided_by_the_host_name_alone(instance, microsoft):
    assert quickstart.microsoft_authority(instance) is microsoft


def test_the_api_may_be_plain_http_with_a_path_as_for_the_partner_worker(stack_env):
    settings = quickstart.load_settings({**stack_env, "PARTNER_API_BASE_URL": "http://127.0.0.1:8080/api/"})
    assert settings.api_base_url == "http://127.0.0.1:8080/api"


def test_the_second_acquire_is_served_from_msal_cache(stack_env):
    settings = quickstart.load_settings(stack_env)
    app = quickstart.build_app(settings, quickstart.PartnerSession(settings.ca_file))
    before = tokens_issued(stack_env)
    first = quickstart.acquire_token(app, settings.scope)
    second = quickstart.acquire_token(app, settings.scope)
    assert tokens_issued(stack_env) - before == 1
    assert (first["token_source"], second["token_source"]) == ("identity_provider", "cache")
    assert second["access_token"] == first["access_token"]


def test_an_unregistered_certificate_is_refused_with_AADSTS700027(stack_env, unregistered_cert_dir):
    before = tokens_issued(stack_env)
    result = run_program({**stack_env, "PARTNER_CERT_DIR": str(unregistered_cert_dir)})
    assert result.returncode == 1
    message = result.stderr.strip()
    assert message.startswith("token request refused: AADSTS700027: "), message
    assert "\n" not in message and result.stdout == ""
    assert tokens_issued(stack_env) == before


def test_what_msal_sends_in_its_client_assertion(stack_env):
    settings = quickstart.load_settings(stack_env)
    header, claims, assertion = sent_assertion(settings)
    cert = x509.load_pem_x509_certificate((settings.cert_dir / "partner.crt.pem").read_bytes())
    der = cert.public_bytes(serialization.Encoding.DER)
    pem_body = cert.public_bytes(serialization.Encoding.PEM).decode().splitlines()[1:-1]
    # PS256; the SHA-256 thumbprint as URL-safe base64 WITH its `=` padding; the certificate in
    # x5c as its PEM body, line breaks included (RFC 7515 asks for plain base64).
    assert header == {
        "alg": "PS256",
        "typ": "JWT",
        "x5t#S256": b64url(hashlib.sha256(der).digest()),
        "x5c": ["\n".join(pem_body)],
    }
    assert base64.b64decode(header["x5c"][0]) == der
    assert header["x5t#S256"].endswith("=")
    token_endpoint = f"{settings.entra_instance}/{settings.tenant_id}/oauth2/v2.0/token"
    assert set(claims) == {"aud", "iss", "sub", "exp", "iat", "jti"}
    assert claims["aud"] == token_endpoint
    assert claims["iss"] == claims["sub"] == settings.client_id
    assert claims["exp"] - claims["iat"] == 600
    signed, signature = assertion.rsplit(".", 1)
    cert.public_key().verify(  # raises unless the partner's key signed it, RSASSA-PSS with SHA-256
        base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)),
        signed.encode(),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )


def encrypt_like_the_partner_worker(key_pem: str, passphrase: str) -> str:
    """The partner worker's at-rest format (libs/certs encryptPrivateKey), made by its own code."""
    script = (
        "const { encryptPrivateKey } = require('@certflow/certs');"
        "const [pem, pass] = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));"
        "process.stdout.write(encryptPrivateKey(pem, pass));"
    )
    node = shutil.which("node")
    assert node, "node is needed to write the partner worker's encrypted key"
    return subprocess.run(
        [node, "-e", script],
        input=json.dumps([key_pem, passphrase]),
        cwd=EXAMPLE_DIR.parent.parent.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_the_partner_workers_encrypted_key_opens_with_partner_key_passphrase(stack_env, tmp_path):
    cert_dir = Path(stack_env["PARTNER_CERT_DIR"])
    key_pem = (cert_dir / "partner.key.pem").read_text()
    encrypted = encrypt_like_the_partner_worker(key_pem, "correct horse")
    with pytest.raises(TypeError, match="encrypted"):  # cryptography: no password for an encrypted key
        serialization.load_pem_private_key(encrypted.encode(), password=None)
    (tmp_path / "partner.key.pem").write_text(encrypted)
    shutil.copy(cert_dir / "partner.crt.pem", tmp_path / "partner.crt.pem")
    env = {**stack_env, "PARTNER_CERT_DIR": str(tmp_path)}

    settings = quickstart.load_settings({**env, "PARTNER_KEY_PASSPHRASE": "correct horse"})
    header, _, assertion = sent_assertion(settings)  # MSAL signed with the decrypted key
    assert header["alg"] == "PS256" and assertion.count(".") == 2

    for passphrase in (None, "wrong passphrase"):
        result = run_program({**env, **({"PARTNER_KEY_PASSPHRASE": passphrase} if passphrase else {})})
        assert result.returncode == 2
        assert result.stderr.startswith("PARTNER_KEY_PASSPHRASE: does not open "), result.stderr


def test_with_stack_passes_on_none_of_the_callers_settings():
    """The harness's own contract: the caller's settings reach neither the stack nor the command."""
    leaked = {
        "PARTNER_SCOPE": "api://leaked/.default",
        "PARTNER_KEY_PASSPHRASE": "leaked passphrase",
        "ENTRA_TENANT_ID": "leaked",
        "API_AUDIENCES": "leaked",
        "CERTFLOW_CLOCK_OFFSET": "86400",
        "REQUESTS_CA_BUNDLE": "/srv/partner/leaked.pem",
        "SSL_CERT_FILE": "/srv/partner/leaked.pem",
    }
    caller = {name: os.environ[name] for name in ("PATH", "HOME", "TMPDIR") if name in os.environ}
    # A developer's proxy (nothing listens on port 9) must not take the calls to the local stack.
    proxy = {"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "corp.example", "no_proxy": ""}
    result = subprocess.run(
        ["node", str(EXAMPLE_DIR.parent / "with-stack.cjs"), "--", "env"],
        env={**caller, **leaked, **proxy, "UNRELATED_VARIABLE": "kept"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    env = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert "leaked" not in result.stdout
    assert not (set(leaked) - {"PARTNER_SCOPE"}) & set(env)
    assert env["PARTNER_SCOPE"].endswith("/.default") and env["UNRELATED_VARIABLE"] == "kept"
    assert env["NO_PROXY"] == "corp.example,localhost,127.0.0.1,::1"
    assert env["no_proxy"] == "localhost,127.0.0.1,::1"
