package prefect_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

// A Client makes one attempt per request, only under its API base, with
// the credential attached; what went wrong comes back classified, for the
// caller (the state machine) to decide whether to retry.
func ExampleClient() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		fmt.Println("server:", r.Method, r.URL.Path, scheme)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"3b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b","state_type":"RUNNING"}`)
	}))
	defer srv.Close()

	base, _ := prefect.ValidateAPIBase(srv.URL+"/api", false) // loopback: plain http is allowed
	cred, _ := prefect.BearerCredential("pnu_0123456789abcdef", "env PREFECT_API_KEY")
	c, err := prefect.NewClient(prefect.Connection{APIBase: base, Credential: cred}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()

	resp := c.Do(ctx, abi.HTTPRequest{Method: "GET", Path: "/flow_runs/3b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b"})
	fmt.Println(resp.Status, string(resp.Body))

	// A path that would leave the API base is refused before any request.
	resp = c.Do(ctx, abi.HTTPRequest{Method: "GET", Path: "/../admin"})
	fmt.Println(resp.Error.Kind, resp.Error.Message)
	// Output:
	// server: GET /api/flow_runs/3b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b Bearer
	// 200 {"id":"3b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b","state_type":"RUNNING"}
	// forbidden path "/../admin" has a dot or slash segment
}
