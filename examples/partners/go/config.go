package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// The public Entra ID authority host, used when ENTRA_INSTANCE is unset.
const defaultEntraInstance = "https://login.microsoftonline.com"

// The files `partner-worker cert create` keeps in PARTNER_CERT_DIR (links into its current generation).
const (
	keyFile         = "partner.key.pem"
	certificateFile = "partner.crt.pem"
)

// config holds the partner worker's settings, read from the same environment variables.
type config struct {
	EntraInstance string // https://host, no tenant, no trailing slash
	TenantID      string
	ClientID      string
	Scope         string // one resource/.default
	APIBaseURL    string // no trailing slash
	CertDir       string
	CAFile        string // optional PEM bundle trusted for the authority and the API
	CACerts       []*x509.Certificate
}

// configError names the variable that is missing or wrong.
type configError struct{ name, problem string }

func (e *configError) Error() string { return e.name + ": " + e.problem }

var guid = regexp.MustCompile(`^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$`)

// readConfig validates every setting before anything is sent anywhere.
func readConfig(getenv func(string) string) (config, error) {
	var c config
	var err error
	if c.EntraInstance, err = baseURL(getenv, "ENTRA_INSTANCE", defaultEntraInstance, false); err != nil {
		return c, err
	}
	for _, v := range []struct {
		name string
		into *string
	}{{"PARTNER_TENANT_ID", &c.TenantID}, {"PARTNER_CLIENT_ID", &c.ClientID}} {
		*v.into = strings.TrimSpace(getenv(v.name))
		if !guid.MatchString(*v.into) {
			return c, &configError{v.name, fmt.Sprintf("must be a GUID, got %q", *v.into)}
		}
	}
	c.Scope = strings.TrimSpace(getenv("PARTNER_SCOPE"))
	if strings.ContainsAny(c.Scope, " \t\n") || !strings.HasSuffix(c.Scope, "/.default") || c.Scope == "/.default" {
		return c, &configError{"PARTNER_SCOPE", fmt.Sprintf("must be one resource followed by /.default, got %q", c.Scope)}
	}
	if c.APIBaseURL, err = baseURL(getenv, "PARTNER_API_BASE_URL", "", true); err != nil {
		return c, err
	}
	c.CertDir = strings.TrimSpace(getenv("PARTNER_CERT_DIR"))
	if c.CertDir == "" {
		return c, &configError{"PARTNER_CERT_DIR", "is required (the directory holding " + keyFile + " and " + certificateFile + ")"}
	}
	if info, statErr := os.Stat(c.CertDir); statErr != nil || !info.IsDir() {
		return c, &configError{"PARTNER_CERT_DIR", fmt.Sprintf("%s is not a readable directory", c.CertDir)}
	}
	c.CAFile = strings.TrimSpace(getenv("PARTNER_CA_FILE"))
	if c.CAFile != "" {
		if c.CACerts, err = readCAFile(c.CAFile); err != nil {
			return c, err
		}
	}
	return c, nil
}

// baseURL reads an absolute URL as the partner worker does: https (or http too, when allowHTTP),
// no query, fragment or credentials; ENTRA_INSTANCE without a path.
func baseURL(getenv func(string) string, name, fallback string, allowHTTP bool) (string, error) {
	raw := strings.TrimSpace(getenv(name))
	if raw == "" && fallback == "" {
		return "", &configError{name, "is required"}
	}
	if raw == "" {
		raw = fallback
	}
	schemes := "https"
	if allowHTTP {
		schemes = "https or http"
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Hostname() == "" || !validPort(u.Port()):
		return "", &configError{name, fmt.Sprintf("must be an absolute URL, got %q", raw)}
	case u.Scheme != "https" && !(allowHTTP && u.Scheme == "http"):
		return "", &configError{name, fmt.Sprintf("must use %s, got %q", schemes, raw)}
	case strings.ContainsAny(raw, "?#"): // the raw text: a bare ? or # leaves RawQuery and Fragment empty
		return "", &configError{name, fmt.Sprintf("must not have a query or fragment, got %q", raw)}
	case u.User != nil:
		return "", &configError{name, "must not contain credentials"}
	case name == "ENTRA_INSTANCE" && u.Path != "" && u.Path != "/":
		return "", &configError{name, fmt.Sprintf("must be the instance only, without the tenant or a path (e.g. %s), got %q", defaultEntraInstance, raw)}
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// validPort: none, or a number up to 65535, as the partner worker takes it (url.Parse takes any digits).
func validPort(port string) bool {
	n, err := strconv.Atoi(port)
	return port == "" || err == nil && n <= 65535
}

// readCAFile returns the certificates of a PEM bundle, refusing a file that holds none.
func readCAFile(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &configError{"PARTNER_CA_FILE", fmt.Sprintf("cannot read %s: %v", path, err)}
	}
	var certs []*x509.Certificate
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, &configError{"PARTNER_CA_FILE", fmt.Sprintf("%s holds a damaged certificate: %v", path, err)}
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, &configError{"PARTNER_CA_FILE", path + " holds no PEM certificate"}
	}
	return certs, nil
}

// certPath is a file of PARTNER_CERT_DIR, opened through its link each time so a rotation is seen.
func (c config) certPath(name string) string { return filepath.Join(c.CertDir, name) }
