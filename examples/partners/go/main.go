// Command partner-go gets an app token from Entra ID (or certflow's emulator) with a certificate
// through MSAL for Go, calls GET /orders through the gateway, and prints the status and the
// token's decoded header and claims (never the token). Settings: the partner worker's
// environment variables (see README.md). Exit codes: 0 done, 1 refused or failed, 2 bad settings.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	os.Exit(run(os.Getenv, os.Stdout, os.Stderr))
}

func run(getenv func(string) string, stdout, stderr io.Writer) int {
	c, err := readConfig(getenv)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	cred, err := readCredential(c)
	if err != nil {
		fmt.Fprintln(stderr, "PARTNER_CERT_DIR:", err)
		return 2
	}
	hc := httpClient(c)
	client, err := newClient(c, cred, hc)
	if err != nil {
		fmt.Fprintln(stderr, "MSAL:", err)
		return 2
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	result, err := acquire(ctx, client, c.Scope)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	status, err := getOrders(ctx, hc, c, result.AccessToken)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	header, claims, err := decodeToken(result.AccessToken)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "HTTP %d\nheader:\n%s\nclaims:\n%s\n", status, header, claims)
	if status < 200 || status > 299 {
		return 1
	}
	return 0
}
