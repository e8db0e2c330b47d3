package main

// Settings are checked before anything is sent: these tests need no stack.

import (
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
)

func validSettings(t *testing.T) map[string]string {
	dir := t.TempDir()
	writeSelfSignedCertificate(t, dir)
	return map[string]string{
		"ENTRA_INSTANCE":       "https://login.example.test",
		"PARTNER_TENANT_ID":    "6f1c2a55-0b1e-4c8e-9a51-3f2f8f1f0d11",
		"PARTNER_CLIENT_ID":    "0d6a7c1e-5b2f-4e3d-8c9a-1b2c3d4e5f60",
		"PARTNER_SCOPE":        "api://certflow-orders/.default",
		"PARTNER_API_BASE_URL": "https://127.0.0.1:8443",
		"PARTNER_CERT_DIR":     dir,
	}
}

func TestBadSettingsNameTheVariable(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, value, want string }{
		{"PARTNER_TENANT_ID", "", "PARTNER_TENANT_ID: must be a GUID"},
		{"PARTNER_CLIENT_ID", "contoso", "PARTNER_CLIENT_ID: must be a GUID"},
		{"PARTNER_SCOPE", "api://certflow-orders", "PARTNER_SCOPE: must be one resource followed by /.default"},
		{"PARTNER_SCOPE", "api://a/.default api://b/.default", "PARTNER_SCOPE: must be one resource"},
		{"ENTRA_INSTANCE", "http://login.example.test", "ENTRA_INSTANCE: must use https, got"},
		{"ENTRA_INSTANCE", "https://login.example.test/6f1c2a55-0b1e-4c8e-9a51-3f2f8f1f0d11", "ENTRA_INSTANCE: must be the instance only"},
		{"ENTRA_INSTANCE", "https://login.example.test?x=1", "ENTRA_INSTANCE: must not have a query or fragment"},
		{"ENTRA_INSTANCE", "https://login.example.test#x", "ENTRA_INSTANCE: must not have a query or fragment"},
		{"ENTRA_INSTANCE", "https://user:pw@login.example.test", "ENTRA_INSTANCE: must not contain credentials"},
		{"ENTRA_INSTANCE", "login.example.test", "ENTRA_INSTANCE: must be an absolute URL"},
		{"PARTNER_API_BASE_URL", "", "PARTNER_API_BASE_URL: is required"},
		// The URL cases shared by the three quick-starts' tests (and the partner worker's env.spec.ts).
		{"PARTNER_API_BASE_URL", "https://127.0.0.1:8443?", "PARTNER_API_BASE_URL: must not have a query or fragment"},
		{"PARTNER_API_BASE_URL", "https://127.0.0.1:8443#", "PARTNER_API_BASE_URL: must not have a query or fragment"},
		{"PARTNER_API_BASE_URL", "https://127.0.0.1:8443/api?", "PARTNER_API_BASE_URL: must not have a query or fragment"},
		{"ENTRA_INSTANCE", "https://login.example.test?", "ENTRA_INSTANCE: must not have a query or fragment"},
		{"ENTRA_INSTANCE", "https://login.example.test#", "ENTRA_INSTANCE: must not have a query or fragment"},
		{"PARTNER_API_BASE_URL", "https://@127.0.0.1:8443", "PARTNER_API_BASE_URL: must not contain credentials"},
		{"PARTNER_API_BASE_URL", "https://127.0.0.1:99999", "PARTNER_API_BASE_URL: must be an absolute URL"},
		{"ENTRA_INSTANCE", "https://login.example.test:99999", "ENTRA_INSTANCE: must be an absolute URL"},
		{"ENTRA_INSTANCE", "https://[::1", "ENTRA_INSTANCE: must be an absolute URL"},
		{"ENTRA_INSTANCE", "https://:8443", "ENTRA_INSTANCE: must be an absolute URL"},
		{"PARTNER_API_BASE_URL", "https://[v1.x]", "PARTNER_API_BASE_URL: must be an absolute URL"},
		{"ENTRA_INSTANCE", "https://login.example.test//", "ENTRA_INSTANCE: must be the instance only"},
		{"PARTNER_API_BASE_URL", "ftp://127.0.0.1", "PARTNER_API_BASE_URL: must use https or http, got"},
		{"PARTNER_API_BASE_URL", "https://127.0.0.1:8443/api?x=1", "PARTNER_API_BASE_URL: must not have a query or fragment"},
		{"PARTNER_API_BASE_URL", "https://127.0.0.1:8443/api#x", "PARTNER_API_BASE_URL: must not have a query or fragment"},
		{"PARTNER_API_BASE_URL", "https://user@127.0.0.1:8443", "PARTNER_API_BASE_URL: must not contain credentials"},
		{"PARTNER_CERT_DIR", "/srv/partner/missing", "PARTNER_CERT_DIR: /srv/partner/missing is not a readable directory"},
		{"PARTNER_CA_FILE", notPEM, "PARTNER_CA_FILE: " + notPEM + " holds no PEM certificate"},
		{"PARTNER_CA_FILE", "/srv/partner/ca.pem", "PARTNER_CA_FILE: cannot read /srv/partner/ca.pem"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			settings := validSettings(t)
			settings[tc.name] = tc.value
			code, stdout, stderr := runExample(func(name string) string { return settings[name] })
			if code != 2 || stdout != "" || !strings.HasPrefix(stderr, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and %q", code, stdout, stderr, tc.want)
			}
		})
	}
}

// As the partner worker: the API may be plain http (a gateway on loopback), with a path.
func TestAPIBaseURLMayBeHTTPWithAPath(t *testing.T) {
	settings := validSettings(t)
	settings["PARTNER_API_BASE_URL"] = "http://127.0.0.1:8080/api/"
	c, err := readConfig(func(name string) string { return settings[name] })
	if err != nil || c.APIBaseURL != "http://127.0.0.1:8080/api" {
		t.Errorf("readConfig: %q, %v; want http://127.0.0.1:8080/api", c.APIBaseURL, err)
	}
}

// Instance discovery stays on for Microsoft's hosts whatever the port, case or trailing dot.
func TestMicrosoftHostsKeepInstanceDiscovery(t *testing.T) {
	for instance, want := range map[string]bool{
		"https://login.microsoftonline.com":             true,
		"https://login.microsoftonline.com:443":         true,
		"https://LOGIN.microsoftonline.com:8443":        true,
		"https://login.microsoftonline.com.":            true,
		"https://login.microsoftonline.com.:443":        true,
		"https://login.windows.net":                     true,
		"https://sts.windows.net":                       true,
		"https://login.sovcloud-identity.fr":            true,
		"https://login.microsoftonline.us":              true,
		"https://localhost:8443":                        false,
		"https://127.0.0.1:8443":                        false,
		"https://login.microsoftonline.com.example.net": false,
	} {
		if got := microsoftAuthority(instance); got != want {
			t.Errorf("microsoftAuthority(%q) = %v, want %v", instance, got, want)
		}
	}
}

// The partner worker's encrypted key (PARTNER_KEY_PASSPHRASE): PKCS#8 PBES2, PBKDF2-HMAC-SHA256
// with 600,000 iterations and AES-256-CBC, made here by OpenSSL the same way.
func TestEncryptedKeyIsNamedNotMistakenForAMissingOne(t *testing.T) {
	settings := validSettings(t)
	dir := settings["PARTNER_CERT_DIR"]
	plain := filepath.Join(dir, keyFile)
	encrypted, err := exec.Command("openssl", "pkcs8", "-topk8", "-in", plain, "-v2", "aes-256-cbc",
		"-v2prf", "hmacWithSHA256", "-iter", "600000", "-passout", "pass:correct horse battery").Output()
	if block, _ := pem.Decode(encrypted); err != nil || block == nil || block.Type != "ENCRYPTED PRIVATE KEY" {
		t.Fatalf("openssl pkcs8: %v %s", err, encrypted)
	}
	if err := os.WriteFile(plain, encrypted, 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := os.ReadFile(filepath.Join(dir, certificateFile))
	// What MSAL for Go itself says: it skips the block, whatever the password.
	if _, _, err := confidential.CertFromPEM(append(cert, encrypted...), "correct horse battery"); err == nil ||
		err.Error() != "no private key found" {
		t.Errorf("CertFromPEM: %v, want no private key found", err)
	}
	code, _, stderr := runExample(func(name string) string { return settings[name] })
	if code != 2 || !strings.Contains(stderr, plain+" is encrypted (PKCS#8 PBES2)") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestUnreachableAuthorityIsOneLine(t *testing.T) {
	settings := validSettings(t)
	settings["ENTRA_INSTANCE"] = "https://127.0.0.1:1"
	code, stdout, stderr := runExample(func(name string) string { return settings[name] })
	if code != 1 || stdout != "" || !strings.HasPrefix(stderr, "token request failed: ") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
