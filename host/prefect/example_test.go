package prefect_test

import (
	"fmt"

	"github.com/ue-prefect/ue-prefect/host/prefect"
)

// A Credential never shows its secret, whatever prints it.
func ExampleBearerCredential() {
	cred, err := prefect.BearerCredential("pnu_0123456789abcdef", "env PREFECT_API_KEY")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%v\n%#v\n", cred, cred)
	// Output:
	// bearer credential from env PREFECT_API_KEY
	// prefect.Credential{bearer credential from env PREFECT_API_KEY}
}

// ValidateAPIBase accepts https, and plain http only to a loopback host.
func ExampleValidateAPIBase() {
	for _, raw := range []string{"https://api.prefect.cloud/api/", "http://127.0.0.1:4200/api", "http://prefect.example.com/api"} {
		u, err := prefect.ValidateAPIBase(raw, false)
		fmt.Println(u, err)
	}
	// Output:
	// https://api.prefect.cloud/api <nil>
	// http://127.0.0.1:4200/api <nil>
	// <nil> "http://prefect.example.com/api" uses plain http to a host that is not loopback; use https, or allow insecure http explicitly
}
