package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
)

// Entra ID's public and sovereign-cloud hosts: MSAL for Go's own list (aadTrustedHostList in
// v1.10.1, internal to MSAL, so copied here; MSAL for Python and MSAL4J list the same 13 hosts).
// MSAL's instance discovery stays on for these only.
var microsoftHosts = map[string]bool{
	"login.microsoftonline.com":        true,
	"login.microsoft.com":              true,
	"login.windows.net":                true,
	"sts.windows.net":                  true,
	"login.partner.microsoftonline.cn": true,
	"login.chinacloudapi.cn":           true,
	"login.microsoftonline.de":         true,
	"login-us.microsoftonline.com":     true,
	"login.microsoftonline.us":         true,
	"login.usgovcloudapi.net":          true,
	"login.sovcloud-identity.fr":       true,
	"login.sovcloud-identity.de":       true,
	"login.sovcloud-identity.sg":       true,
}

// microsoftAuthority decides by the host name alone (any port, any case, a trailing dot or not).
func microsoftAuthority(entraInstance string) bool {
	u, err := url.Parse(entraInstance)
	return err == nil && microsoftHosts[strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")]
}

// httpClient trusts the system roots plus PARTNER_CA_FILE; MSAL and the API call share it.
func httpClient(c config) *http.Client {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	for _, cert := range c.CACerts {
		roots.AddCert(cert)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: transport, Timeout: 30 * time.Second}
}

// readCredential loads the certificate and the unencrypted PKCS#8 key written by `partner-worker cert create`.
func readCredential(c config) (confidential.Credential, error) {
	certPEM, err := os.ReadFile(c.certPath(certificateFile))
	if err != nil {
		return confidential.Credential{}, fmt.Errorf("cannot read the certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(c.certPath(keyFile))
	if err != nil {
		return confidential.Credential{}, fmt.Errorf("cannot read the private key: %w", err)
	}
	if block, _ := pem.Decode(keyPEM); block != nil && block.Type == "ENCRYPTED PRIVATE KEY" {
		return confidential.Credential{}, fmt.Errorf("%s is encrypted (PKCS#8 PBES2); MSAL for Go reads unencrypted keys only: see README.md, \"Encrypted keys\"", c.certPath(keyFile))
	}
	certs, key, err := confidential.CertFromPEM(append(certPEM, keyPEM...), "")
	if err != nil {
		return confidential.Credential{}, fmt.Errorf("%s / %s: %w", c.certPath(certificateFile), c.certPath(keyFile), err)
	}
	cred, err := confidential.NewCredFromCert(certs, key)
	if err != nil {
		return cred, fmt.Errorf("%s / %s: %w", c.certPath(certificateFile), c.certPath(keyFile), err)
	}
	return cred, nil
}

// newClient builds MSAL's confidential client; its in-memory token cache lives as long as the client.
func newClient(c config, cred confidential.Credential, hc *http.Client, extra ...confidential.Option) (confidential.Client, error) {
	options := append([]confidential.Option{confidential.WithHTTPClient(hc)}, extra...)
	if !microsoftAuthority(c.EntraInstance) {
		// Not Entra ID (the emulator, a private authority): no instance discovery at login.microsoftonline.com.
		options = append(options, confidential.WithInstanceDiscovery(false))
	}
	return confidential.New(c.EntraInstance+"/"+c.TenantID, c.ClientID, cred, options...)
}

// acquire asks MSAL for an app token; MSAL answers from its cache until the token nears expiry.
func acquire(ctx context.Context, client confidential.Client, scope string) (confidential.AuthResult, error) {
	result, err := client.AcquireTokenByCredential(ctx, []string{scope})
	if err != nil {
		return result, &tokenError{describe(err), err}
	}
	return result, nil
}

// tokenError is a refusal by the authority (or a failure to reach it), described in one line.
type tokenError struct {
	message string
	err     error
}

func (e *tokenError) Error() string { return e.message }
func (e *tokenError) Unwrap() error { return e.err }

var aadsts = regexp.MustCompile(`^AADSTS\d+`)

// describe names Entra's AADSTS code from the error body MSAL kept, or says what failed.
func describe(err error) string {
	var call msalerrors.CallErr
	if errors.As(err, &call) && call.Resp != nil {
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		data, _ := io.ReadAll(call.Resp.Body)
		if json.Unmarshal(data, &body) == nil && body.Error != "" {
			description := strings.SplitN(body.Description, "\r\n", 2)[0]
			if aadsts.MatchString(description) {
				return "token request refused: " + description
			}
			return fmt.Sprintf("token request refused: HTTP %d %s: %s", call.Resp.StatusCode, body.Error, description)
		}
	}
	// The whole chain, on one line: a TLS failure's x509 reason comes last.
	return "token request failed: " + strings.Join(strings.Fields(err.Error()), " ")
}

// getOrders calls the API through the gateway with the bearer token and returns the status code.
func getOrders(ctx context.Context, hc *http.Client, c config, accessToken string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.APIBaseURL+"/orders", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET /orders: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// decodeToken returns the token's header and claims as indented JSON, never its signature.
func decodeToken(accessToken string) (header, claims string, err error) {
	parts := strings.Split(accessToken, ".")
	if len(parts) != 3 {
		return "", "", errors.New("the access token is not a compact JWT")
	}
	decoded := make([]string, 2)
	for i, name := range []string{"header", "claims"} {
		data, err := base64.RawURLEncoding.DecodeString(parts[i])
		var out bytes.Buffer
		if err != nil || json.Indent(&out, data, "", "  ") != nil {
			return "", "", fmt.Errorf("the access token's %s is not base64url JSON", name)
		}
		decoded[i] = out.String()
	}
	return decoded[0], decoded[1], nil
}
