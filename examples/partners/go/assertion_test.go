package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
)

// recorder keeps the client assertions MSAL posts, then forwards each request unchanged.
type recorder struct {
	next       http.RoundTripper
	assertions []string
	formKeys   []string
	scope      string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && req.Body != nil {
		data, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(data))
		form, err := url.ParseQuery(string(data))
		if err != nil {
			return nil, err
		}
		if assertion := form.Get("client_assertion"); assertion != "" {
			r.assertions = append(r.assertions, assertion)
			r.scope = form.Get("scope")
			for key := range form {
				r.formKeys = append(r.formKeys, key)
			}
			sort.Strings(r.formKeys)
		}
	}
	return r.next.RoundTrip(req)
}

// recordAssertion acquires a token with the partner's certificate and returns the assertion MSAL sent
// (whatever the emulator answered).
func recordAssertion(t *testing.T, extra ...confidential.Option) (header, claims map[string]any, rec *recorder) {
	t.Helper()
	c, err := readConfig(stackEnv(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	cred, err := readCredential(c)
	if err != nil {
		t.Fatal(err)
	}
	hc := httpClient(c)
	rec = &recorder{next: hc.Transport}
	hc.Transport = rec
	client, err := newClient(c, cred, hc, extra...)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = acquire(context.Background(), client, c.Scope)
	if len(rec.assertions) != 1 {
		t.Fatalf("MSAL posted %d client assertions, want 1", len(rec.assertions))
	}
	parts := strings.Split(rec.assertions[0], ".")
	decoded := make([]map[string]any, 2)
	for i := range decoded {
		data, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		decoder := json.NewDecoder(bytes.NewReader(data))
		decoder.UseNumber()
		if err := decoder.Decode(&decoded[i]); err != nil {
			t.Fatal(err)
		}
	}
	return decoded[0], decoded[1], rec
}

// The README's "What MSAL for Go sends" comes from this test (`go test -v -run Assertion`).
func TestAssertionMSALSends(t *testing.T) {
	header, claims, rec := recordAssertion(t)
	t.Logf("form fields: %v, scope %q", rec.formKeys, rec.scope)
	if want := os.Getenv("PARTNER_SCOPE") + " openid offline_access profile"; rec.scope != want {
		t.Errorf("scope %q, want %q", rec.scope, want)
	}
	t.Logf("assertion header: %v", header)
	t.Logf("assertion claims: %v", claims)

	cert := partnerCertificate(t)
	sum := sha256.Sum256(cert.Raw)
	want := map[string]any{"alg": "PS256", "typ": "JWT", "x5t#S256": base64.StdEncoding.EncodeToString(sum[:])}
	if !reflect.DeepEqual(header, want) {
		t.Errorf("header %v, want %v (x5t#S256 in standard base64 with padding)", header, want)
	}
	keys := make([]string, 0, len(claims))
	for key := range claims {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	if strings.Join(keys, " ") != "aud exp iss jti nbf sub" {
		t.Errorf("claims %v", keys)
	}
	tokenEndpoint := os.Getenv("ENTRA_INSTANCE") + "/" + os.Getenv("PARTNER_TENANT_ID") + "/oauth2/v2.0/token"
	if claims["aud"] != tokenEndpoint || claims["iss"] != os.Getenv("PARTNER_CLIENT_ID") || claims["sub"] != claims["iss"] {
		t.Errorf("aud/iss/sub %v %v %v", claims["aud"], claims["iss"], claims["sub"])
	}
	exp, _ := claims["exp"].(json.Number).Int64()
	nbf, _ := claims["nbf"].(json.Number).Int64()
	if exp-nbf != 600 {
		t.Errorf("the assertion lives %d s, want 600", exp-nbf)
	}
}

func TestAssertionWithX5CCarriesTheCertificate(t *testing.T) {
	header, _, _ := recordAssertion(t, confidential.WithX5C())
	x5c, _ := header["x5c"].([]any)
	if len(x5c) != 1 || x5c[0] != base64.StdEncoding.EncodeToString(partnerCertificate(t).Raw) {
		t.Errorf("x5c %v, want the partner's certificate alone", header["x5c"])
	}
}

func partnerCertificate(t *testing.T) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(os.Getenv("PARTNER_CERT_DIR") + "/" + certificateFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("no PEM block in the partner's certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
