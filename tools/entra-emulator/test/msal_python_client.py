"""Gets a token from the emulator with Microsoft's MSAL for Python (Debian python3-msal), unchanged.

Reads one JSON object on stdin:
  {"authority", "clientId", "scope", "privateKeyPem", "thumbprintSha1Hex", "publicCertificatePem"?, "caFile"}
and prints one JSON object on stdout: {"msalVersion", "result"} where result is what
acquire_token_for_client returned (a token dict, or MSAL's error dict), plus "requests": the
URLs MSAL fetched, so the test can see which calls it makes.

instance_discovery=False is what a user sets for an authority that is not a Microsoft host:
MSAL then skips login.microsoftonline.com/common/discovery/instance and reads the tenant's
openid-configuration straight from the authority.
"""
import json
import sys

import msal
import requests


def main() -> int:
    config = json.load(sys.stdin)
    session = requests.Session()
    # Trust the emulator's development CA. requests lets REQUESTS_CA_BUNDLE (if set) win over
    # session.verify, so the caller sets that variable to the same file as well.
    session.verify = config["caFile"]
    seen = []
    session.hooks["response"].append(lambda r, *a, **k: seen.append(f"{r.request.method} {r.url} {r.status_code}"))

    credential = {"private_key": config["privateKeyPem"], "thumbprint": config["thumbprintSha1Hex"]}
    if config.get("publicCertificatePem"):
        credential["public_certificate"] = config["publicCertificatePem"]
    app = msal.ConfidentialClientApplication(
        config["clientId"],
        authority=config["authority"],
        client_credential=credential,
        instance_discovery=False,
        http_client=session,
    )
    first = app.acquire_token_for_client(scopes=[config["scope"]])
    print(json.dumps({
        "msalVersion": msal.__version__,
        "result": first,
        "requests": seen,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
