package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/host/cmd/ue-prefect/uac"
)

var opsVar = regexp.MustCompile(`\$\{ops_PF_([A-Za-z0-9_]+)\}`)

// resolveTemplate does what the Universal Controller does to the template's
// script before the agent runs it: textual substitution of the credential
// functions, ${ops_task_id} and every ${ops_PF_<field>}.
func resolveTemplate(fields map[string]string, user, pwd, taskID string) string {
	s := uac.Script
	s = strings.ReplaceAll(s, "${_credentialUser('${ops_PF_credentials}')}", user)
	s = strings.ReplaceAll(s, "${_credentialPwd('${ops_PF_credentials}')}", pwd)
	s = strings.ReplaceAll(s, "${ops_task_id}", taskID)
	return opsVar.ReplaceAllStringFunc(s, func(m string) string {
		return fields[opsVar.FindStringSubmatch(m)[1]]
	})
}

// uacTask is one execution of the template's script by an agent.
func uacTask(t *testing.T, script, stateDir string) *proc {
	t.Helper()
	path := filepath.Join(t.TempDir(), "task.sh")
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", path)
	cmd.Env = baseEnv(map[string]string{"UE_PREFECT_STATE_DIR": stateDir})
	return startProc(t, cmd)
}

// TestE2E_UACTemplate runs the shipped Universal Template's script, resolved
// as the Controller would, with the real binary against the real server:
// a run, a deliberate Re-run (a new flow run), and an agent that dies
// mid-wait and runs the same attempt again (re-attach, no second run).
func TestE2E_UACTemplate(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	stateDir := t.TempDir()
	fields := map[string]string{
		"action": "Launch Flow Run", "target": "Self-hosted Prefect server", "api_url": env.Server.URL,
		"deployment": "ok/ok", "flow_run_name": "", "additional_params": "true",
		"parameters": `{"parameters": {"seconds": 0}, "context": {}, "job_variables": {}, "tags": ["uac"]}`,
		"wait":       "true", "polling_interval": "1", "max_polls": "", "output_options": "Include Flow Run Metadata",
		"cancel_on_cancel": "false", "stream_logs": "true", "binary_path": binPath, "workspace": "",
	}
	task := fmt.Sprintf("1762%09d", time.Now().UnixNano()%1e9)

	first := uacTask(t, resolveTemplate(fields, "", "", task), stateDir).wait(3 * time.Minute)
	wantExit(t, first, 0, "Task executed successfully.")
	if lastState(first) != "COMPLETED" || !strings.Contains(first.stderr, "idempotency key uac-"+task+"-a1") || !strings.Contains(first.stderr, "│ INFO  │ Beginning flow run") {
		t.Fatalf("first attempt: state %q\n%s", lastState(first), first)
	}
	if b, err := os.ReadFile(filepath.Join(stateDir, task+".a1.json")); err != nil || !strings.Contains(string(b), first.str("flow_run_id")) {
		t.Errorf("the attempt's extension output file is missing or wrong: %v", err)
	}

	rerun := uacTask(t, resolveTemplate(fields, "", "", task), stateDir).wait(3 * time.Minute)
	wantExit(t, rerun, 0, "Task executed successfully.")
	if rerun.str("flow_run_id") == first.str("flow_run_id") || !strings.Contains(rerun.stderr, "-a2") {
		t.Errorf("Re-run followed %q again; want a new flow run (attempt 2)", first.str("flow_run_id"))
	}

	// An agent that dies mid-wait: the same attempt runs again and re-attaches.
	slow := map[string]string{}
	for k, v := range fields {
		slow[k] = v
	}
	slow["deployment"], slow["parameters"] = "sleepy/sleepy", `{"parameters": {"seconds": 8}}`
	task2 := task + "7"
	dying := uacTask(t, resolveTemplate(slow, "", "", task2), stateDir)
	if !dying.waitFor(`"flow_run_state":"RUNNING"`, 2*time.Minute) {
		t.Fatalf("never RUNNING:\n%s", dying.stderr.String())
	}
	id := firstRunID(t, dying.stderr.String())
	_ = dying.cmd.Process.Signal(syscall.SIGKILL) // exec'd: this is ue-prefect itself
	<-dying.done
	again := uacTask(t, resolveTemplate(slow, "", "", task2), stateDir).wait(3 * time.Minute)
	wantExit(t, again, 0, "Task executed successfully.")
	if again.str("flow_run_id") != id || !strings.Contains(again.stderr, "Re-attached to flow run") {
		t.Errorf("after the agent died: followed %q, want the first run %q re-attached\n%s", again.str("flow_run_id"), id, again.stderr)
	}
}
