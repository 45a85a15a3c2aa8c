package tests

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/tests/rig"
)

// TestE2E_CreateRejectedJobVariables: a deployment on a work pool whose
// base job template types a variable; job variables that break it are
// rejected by Prefect at the create (422), and the task says so: exit 20 on
// Parameters (JSON) naming its job_variables, not its parameters. No
// worker is needed: the server validates before it creates anything.
// TestE2E_Prefect2 runs the same check on Prefect 2.20, which answers
// alike.
func TestE2E_CreateRejectedJobVariables(t *testing.T) {
	t.Parallel()
	checkCreateRejectedJobVariables(t, e2e(t))
}

func checkCreateRejectedJobVariables(t *testing.T, env *rig.Env) {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	name := fmt.Sprintf("jv-typed-%d", time.Now().UnixNano())
	do := func(path string, body any, want int) map[string]any {
		t.Helper()
		var out map[string]any
		// DoJSON retries the 503 a server busy with parallel tests gives.
		if status, err := env.Server.DoJSON(ctx, http.MethodPost, path, body, &out); err != nil || status != want {
			t.Fatalf("POST %s: HTTP %d, %v", path, status, err)
		}
		return out
	}
	do("/work_pools/", map[string]any{"name": name, "type": "process", "base_job_template": map[string]any{
		"job_configuration": map[string]any{"cpu": "{{ cpu }}"},
		"variables":         map[string]any{"type": "object", "properties": map[string]any{"cpu": map[string]any{"type": "integer"}}},
	}}, http.StatusCreated)
	flow := do("/flows/", map[string]any{"name": name}, http.StatusCreated)
	do("/deployments/", map[string]any{"name": "jv", "flow_id": flow["id"], "work_pool_name": name}, http.StatusCreated)

	r := runUE(t, server(env, "UE_PREFECT_DEPLOYMENT", name+"/jv", "UE_PREFECT_PARAMETERS", `{"job_variables":{"cpu":"many"}}`))
	wantExit(t, r, 20, "Data Validation Error: Parameters (JSON): Prefect rejected the flow run's job_variables (HTTP 422: ")
	if !strings.Contains(r.doc.StatusDescription, "'cpu'") {
		t.Errorf("status_description %q does not show the server's detail on cpu", r.doc.StatusDescription)
	}
}
