package main

// These tests run against a real certflow stack: `npx nx test partner-go` starts one through
// examples/partners/with-stack.cjs and passes partner contoso's settings in the environment.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
)

// stackEnv is the environment with-stack.cjs gives, with some variables replaced.
func stackEnv(t *testing.T, replace map[string]string) func(string) string {
	t.Helper()
	for _, name := range []string{"PARTNER_CLIENT_ID", "PARTNER_CERT_DIR", "CERTFLOW_EMULATOR_METRICS_URL"} {
		if os.Getenv(name) == "" {
			t.Fatalf("%s is not set: run these tests with `npx nx test partner-go` (it starts the stack)", name)
		}
	}
	return func(name string) string {
		if value, ok := replace[name]; ok {
			return value
		}
		return os.Getenv(name)
	}
}

func runExample(getenv func(string) string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(getenv, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCallsOrdersThroughTheGateway(t *testing.T) {
	code, stdout, stderr := runExample(stackEnv(t, nil))
	if code != 0 || !strings.HasPrefix(stdout, "HTTP 200\n") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	sections := regexp.MustCompile(`(?s)^HTTP 200\nheader:\n(\{.*\})\nclaims:\n(\{.*\})\n$`).FindStringSubmatch(stdout)
	if sections == nil {
		t.Fatalf("unexpected output:\n%s", stdout)
	}
	var header, claims map[string]any
	if json.Unmarshal([]byte(sections[1]), &header) != nil || json.Unmarshal([]byte(sections[2]), &claims) != nil {
		t.Fatalf("header or claims are not JSON:\n%s", stdout)
	}
	if claims["azp"] != os.Getenv("PARTNER_CLIENT_ID") || claims["aud"] == nil {
		t.Errorf("the token is not the partner's: %v", claims)
	}
	if header["alg"] != "RS256" || header["kid"] == nil {
		t.Errorf("unexpected token header %v", header)
	}
	if jwtInOutput.MatchString(stdout + stderr) {
		t.Errorf("the output holds a token:\n%s", stdout)
	}
}

func TestSecondAcquireIsServedFromMSALCache(t *testing.T) {
	getenv := stackEnv(t, nil)
	c, err := readConfig(getenv)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := readCredential(c)
	if err != nil {
		t.Fatal(err)
	}
	client, err := newClient(c, cred, httpClient(c))
	if err != nil {
		t.Fatal(err)
	}
	before := tokensIssued(t, c.ClientID)
	first, err := acquire(context.Background(), client, c.Scope)
	if err != nil {
		t.Fatal(err)
	}
	second, err := acquire(context.Background(), client, c.Scope)
	if err != nil {
		t.Fatal(err)
	}
	if issued := tokensIssued(t, c.ClientID) - before; issued != 1 {
		t.Errorf("the emulator issued %d tokens to %s for two acquires, want 1", issued, c.ClientID)
	}
	if first.Metadata.TokenSource != confidential.TokenSourceIdentityProvider ||
		second.Metadata.TokenSource != confidential.TokenSourceCache || second.AccessToken != first.AccessToken {
		t.Errorf("token sources %v then %v, want identity provider then cache", first.Metadata.TokenSource, second.Metadata.TokenSource)
	}
}

func TestUnregisteredCertificateIsRefusedWithAADSTS700027(t *testing.T) {
	dir := t.TempDir()
	writeSelfSignedCertificate(t, dir)
	code, stdout, stderr := runExample(stackEnv(t, map[string]string{"PARTNER_CERT_DIR": dir}))
	if code != 1 || !strings.HasPrefix(stderr, "token request refused: AADSTS700027") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

var jwtInOutput = regexp.MustCompile(`eyJ[\w-]+\.[\w-]+\.[\w-]+`)

func TestAnAnswerOtherThan2xxIsPrintedAndExits1(t *testing.T) {
	noSuchAPI := os.Getenv("PARTNER_API_BASE_URL") + "/no-such-api"
	code, stdout, stderr := runExample(stackEnv(t, map[string]string{"PARTNER_API_BASE_URL": noSuchAPI}))
	if code != 1 || !strings.HasPrefix(stdout, "HTTP 404\nheader:\n") || !strings.Contains(stdout, "\nclaims:\n") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if jwtInOutput.MatchString(stdout + stderr) {
		t.Errorf("the output holds a token:\n%s%s", stdout, stderr)
	}
}

// A scope the partner is not granted, for a resource the tenant does not know: Entra's refusal.
func TestAnUnknownResourceIsRefusedWithAADSTS500011(t *testing.T) {
	code, stdout, stderr := runExample(stackEnv(t, map[string]string{"PARTNER_SCOPE": "api://not-registered/.default"}))
	if code != 1 || stdout != "" || !strings.HasPrefix(stderr, "token request refused: AADSTS500011") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TLS is verified: a CA file that did not issue the stack's certificates, or none (the system's
// roots only), fails the token request with the x509 reason, before any token is issued.
func TestACertificateNotIssuedByTheTrustedCAsIsRefused(t *testing.T) {
	unrelated := filepath.Join(t.TempDir(), "unrelated-ca.pem")
	writeUnrelatedCA(t, unrelated)
	for name, caFile := range map[string]string{"unrelated CA": unrelated, "unset": ""} {
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := runExample(stackEnv(t, map[string]string{"PARTNER_CA_FILE": caFile}))
			if code != 1 || stdout != "" || !strings.HasPrefix(stderr, "token request failed: ") ||
				!strings.Contains(stderr, "x509: certificate signed by unknown authority") ||
				strings.Count(stderr, "\n") != 1 {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
			}
		})
	}
}

// TestMain runs the example itself instead of the tests when RUN_PARTNER_EXAMPLE=1, so that a
// test can start it as a process of its own: Go reads SSL_CERT_FILE once per process.
func TestMain(m *testing.M) {
	if os.Getenv("RUN_PARTNER_EXAMPLE") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// PARTNER_CA_FILE is trusted besides the system roots, not instead of them: with the stack's CA
// among the system roots (SSL_CERT_FILE) and an unrelated CA in PARTNER_CA_FILE, the call succeeds.
func TestPartnerCAFileIsTrustedBesidesTheSystemRoots(t *testing.T) {
	getenv := stackEnv(t, nil)
	unrelated := filepath.Join(t.TempDir(), "unrelated-ca.pem")
	writeUnrelatedCA(t, unrelated)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "RUN_PARTNER_EXAMPLE=1", "SSL_CERT_DIR="+t.TempDir(),
		"SSL_CERT_FILE="+getenv("PARTNER_CA_FILE"), "PARTNER_CA_FILE="+unrelated)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || !strings.HasPrefix(stdout.String(), "HTTP 200\n") {
		t.Fatalf("%v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
}

// writeUnrelatedCA writes a freshly made CA certificate that signed nothing of the stack's.
func writeUnrelatedCA(t *testing.T, path string) {
	_, der := selfSigned(t, "unrelated test CA", true)
	writePEM(t, path, "CERTIFICATE", der)
}

// selfSigned makes an RSA key and a self-signed certificate valid for the next hour.
func selfSigned(t *testing.T, commonName string, isCA bool) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
	}
	if isCA {
		template.IsCA, template.BasicConstraintsValid, template.KeyUsage = true, true, x509.KeyUsageCertSign
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

// tokensIssued sums entra_emulator_tokens_issued_total for one client id.
func tokensIssued(t *testing.T, clientID string) int {
	t.Helper()
	c, err := readConfig(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := httpClient(c).Get(os.Getenv("CERTFLOW_EMULATOR_METRICS_URL"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	total := 0
	prefix := fmt.Sprintf(`entra_emulator_tokens_issued_total{client_id=%q,`, clientID)
	for lines := bufio.NewScanner(resp.Body); lines.Scan(); {
		if line := lines.Text(); strings.HasPrefix(line, prefix) {
			n, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			total += int(n)
		}
	}
	return total
}

// writeSelfSignedCertificate makes a key and certificate no application has registered,
// in the files and formats `partner-worker cert create` writes.
func writeSelfSignedCertificate(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	key, der := selfSigned(t, "not-registered", false)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, certificateFile), "CERTIFICATE", der)
	writePEM(t, filepath.Join(dir, keyFile), "PRIVATE KEY", pkcs8)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func writePEM(t *testing.T, path, blockType string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
