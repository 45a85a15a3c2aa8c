package flowrun

import (
	"fmt"
	"strings"

	"github.com/ue-prefect/ue-prefect/abi"
)

// runResult is the result of a run that launched or followed a flow run.
func (m *Machine) runResult() abi.Result {
	r := abi.Result{
		FlowRunID:               m.s.Run.ID,
		FlowRunName:             m.s.Run.Name,
		FlowRunState:            m.s.Run.StateType,
		FlowRunStateName:        m.s.Run.StateName,
		FlowRunStateMessage:     m.s.Run.StateMessage,
		FlowRunURL:              m.runURL(),
		Deployment:              (*abi.Deployment)(m.s.Resolve.Deployment),
		Workspace:               m.s.Resolve.Workspace,
		IdempotencyKey:          m.s.Launch.Key,
		Reattached:              m.s.Launch.Reattached,
		LaunchedWithOtherInputs: m.s.Launch.OtherInputs,
		Waited:                  m.s.Cfg.Wait,
		Polls:                   m.s.Poll.Polls,
		Cancellation:            m.s.Cancel.Outcome,
	}
	if m.s.Run.ID == "" {
		r.Waited = false
	}
	if m.s.Poll.CreatedAt != nil {
		r.ElapsedSeconds = float64(m.elapsed()) / float64(second)
	}
	if m.s.Cfg.IncludeMetadata {
		r.FlowRun = []byte(m.s.Poll.RunJSON)
	}
	return r
}

// fail ends the run with err, keeping whatever is known of the flow run.
func (m *Machine) fail(err *abi.Error) {
	m.finishWith(err.Code.ExitCode(), err, m.runResult())
}

func (m *Machine) finishWith(exit int, err *abi.Error, r abi.Result) {
	out := abi.Outcome(exit, err, &r)
	m.s.Done = &out
	m.s.Pending = pending{}
	m.emit(abi.Command{Kind: abi.CommandFinish, Finish: &out})
}

// deploymentsABI gives the machine's deployments in the contract's type,
// which has the same fields.
func deploymentsABI(ds []deployment) (out []abi.Deployment) {
	for _, d := range ds {
		out = append(out, abi.Deployment(d))
	}
	return out
}

func (m *Machine) finishLaunched() {
	m.finishWith(abi.ExitSuccess, nil, m.runResult())
}

func (m *Machine) finishByState() {
	run := m.s.Run
	if run.StateType == StateCompleted {
		m.finishLaunched()
		return
	}
	msg := fmt.Sprintf("flow run %s ended %s (%s)", m.runLabel(), run.StateType, run.StateName)
	if run.StateMessage != "" {
		msg += ": " + clip(run.StateMessage)
	}
	m.fail(&abi.Error{Code: abi.CodeFlowRunFailed, Message: msg})
}

// runLabel names the flow run for messages: 'tidy-fox' (0b6c…).
func (m *Machine) runLabel() string {
	if m.s.Run.Name == "" {
		return m.s.Run.ID
	}
	return fmt.Sprintf("%q (%s)", m.s.Run.Name, m.s.Run.ID)
}

// userKey is the idempotency key as the user gives it: the Idempotency
// Key field, or the invocation id that stood in for it. Given as the
// Idempotency Key of a new task, it yields the same flow run.
func (m *Machine) userKey() string {
	if m.s.Cfg.IdempotencyKey != "" {
		return m.s.Cfg.IdempotencyKey
	}
	return m.s.InvocationID
}

// reattachHint says how a new task follows this flow run again.
func (m *Machine) reattachHint() string {
	if m.s.Cfg.FlowRunID != "" {
		return "run again with Flow Run ID " + m.s.Cfg.FlowRunID + " to follow it"
	}
	return fmt.Sprintf("run again with Idempotency Key %q to re-attach", m.userKey())
}

// runStateSeen is the last state seen of the flow run, for messages.
func (m *Machine) runStateSeen() string {
	if m.s.Run.StateType == "" {
		return "in no state yet"
	}
	return m.s.Run.StateType
}

// runURL is the flow run's page in the Prefect UI.
func (m *Machine) runURL() string {
	if m.s.Run.ID == "" {
		return ""
	}
	ui := m.s.UIBase
	if ui == "" {
		ui = uiRoot(m.s.APIBase, m.s.Target == abi.TargetCloud)
	}
	ui = strings.TrimRight(ui, "/")
	if w := m.s.Resolve.Workspace; m.s.Target == abi.TargetCloud && w != nil {
		ui = trimWorkspacePath(ui) + "/account/" + w.AccountID + "/workspace/" + w.WorkspaceID
	}
	return ui + "/runs/flow-run/" + m.s.Run.ID
}

// trimWorkspacePath removes a trailing /account/A/workspace/W from a Cloud
// UI URL: Prefect stores PREFECT_UI_URL that way, and the workspace that
// was resolved is appended instead.
func trimWorkspacePath(ui string) string {
	parts := strings.Split(ui, "/")
	if n := len(parts); n >= 5 && parts[n-4] == "account" && parts[n-2] == "workspace" {
		return strings.Join(parts[:n-4], "/")
	}
	return ui
}

// uiRoot derives the UI root from an API URL as Prefect does: strip the
// trailing /api, and turn Cloud's api. host into app. A self-hosted
// server's host is kept as it is, even when it starts with "api.".
func uiRoot(api string, cloud bool) string {
	api = strings.TrimRight(api, "/")
	api = strings.TrimSuffix(api, "/api")
	scheme, rest, ok := strings.Cut(api, "://")
	if !ok {
		return api
	}
	if cloud && strings.HasPrefix(rest, "api.") {
		rest = "app." + strings.TrimPrefix(rest, "api.")
	}
	return scheme + "://" + rest
}
