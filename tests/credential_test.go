package tests

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestCredentialControlCharacter: an API key with a control character cannot
// be sent in a header. It is bad input (exit 20, naming where the key came
// from, not the key), found before any request, not a network error retried
// for half a minute.
func TestCredentialControlCharacter(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	const key = "pnu_ctrlSECRET\x01key0123456789"
	r := runUE(t, map[string]string{"PREFECT_API_URL": "http://" + ln.Addr().String() + "/api", "PREFECT_API_KEY": key,
		"UE_PREFECT_DEPLOYMENT": "ok/ok"})
	wantExit(t, r, 20, "Data Validation Error: Credentials: the API key from env PREFECT_API_KEY contains a control character")
	if r.elapsed > 10*time.Second {
		t.Errorf("took %s; bad input must fail at once", r.elapsed)
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("%d connections were made; bad input must fail before any request", n)
	}
	if strings.Contains(r.stdout+r.stderr, "ctrlSECRET") {
		t.Errorf("the key was printed:\n%s", r)
	}
}
