package flowrun

import (
	"fmt"
	"strings"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
)

// Result is the "result" object of the extension output.
type Result struct {
	FlowRunID           string       `json:"flow_run_id,omitempty"`
	FlowRunName         string       `json:"flow_run_name,omitempty"`
	FlowRunState        string       `json:"flow_run_state,omitempty"`
	FlowRunStateName    string       `json:"flow_run_state_name,omitempty"`
	FlowRunStateMessage string       `json:"flow_run_state_message,omitempty"`
	FlowRunURL          string       `json:"flow_run_url,omitempty"`
	Deployment          *deployment  `json:"deployment,omitempty"`
	Workspace           *workspace   `json:"workspace,omitempty"`
	IdempotencyKey      string       `json:"idempotency_key,omitempty"`
	Reattached          bool         `json:"reattached,omitempty"`
	Waited              bool         `json:"waited,omitempty"`
	Polls               int64        `json:"polls,omitempty"`
	ElapsedSeconds      float64      `json:"elapsed_seconds,omitempty"`
	Cancellation        string       `json:"cancellation,omitempty"`
	FlowRun             RawObject    `json:"flow_run,omitempty"`
	Workspaces          []workspace  `json:"workspaces,omitempty"`
	Deployments         []deployment `json:"deployments,omitempty"`
	Values              []string     `json:"values,omitempty"`
}

func (m *Machine) runResult() Result {
	r := Result{
		FlowRunID:           m.s.Run.ID,
		FlowRunName:         m.s.Run.Name,
		FlowRunState:        m.s.Run.StateType,
		FlowRunStateName:    m.s.Run.StateName,
		FlowRunStateMessage: m.s.Run.StateMessage,
		FlowRunURL:          m.runURL(),
		Deployment:          m.s.Deployment,
		Workspace:           m.s.Workspace,
		IdempotencyKey:      m.s.IdemKey,
		Reattached:          m.s.Reattached,
		Waited:              m.s.Cfg.Wait,
		Polls:               m.s.Polls,
		Cancellation:        m.s.CancelOutcome,
	}
	if m.s.Run.ID == "" {
		r.Waited = false
	}
	if m.s.CreatedAt != nil {
		r.ElapsedSeconds = float64(m.elapsed()) / 1000
	}
	if m.s.Cfg.IncludeMetadata {
		r.FlowRun = m.s.RunJSON
	}
	return r
}

func (m *Machine) workspacesResult(all []workspace) Result {
	r := Result{Workspaces: all}
	for _, w := range all {
		r.Values = append(r.Values, w.Handle)
	}
	return r
}

func (m *Machine) deploymentsResult(names []string) Result {
	return Result{Deployments: m.s.Matches, Values: names}
}

// fail ends the run with err, keeping whatever is known of the flow run.
func (m *Machine) fail(err *abi.Error) {
	m.finishWith(err.Code.ExitCode(), err, m.runResult())
}

func (m *Machine) finishWith(exit int, err *abi.Error, r Result) {
	msg := ""
	if err != nil {
		msg = err.Error()
		if err.Code == abi.CodePollingTimeout {
			msg = err.Message
		}
	}
	out := &abi.RunOutput{
		ExitCode:          exit,
		StatusDescription: abi.StatusDescription(exit, msg),
		Error:             err,
		Result:            mustJSON(r),
	}
	m.s.Done = out
	m.s.Op, m.s.Req = "", nil
	m.emit(abi.Command{Kind: abi.CommandFinish, Finish: out})
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

func (m *Machine) finishInterrupted() {
	it := m.s.Interrupt
	if it == nil {
		it = &abi.Interrupt{Reason: "interrupted", ExitCode: abi.ExitInterruptedSIGTERM}
	}
	var msg string
	switch {
	case m.s.CancelOutcome != "":
		msg = fmt.Sprintf("%s received; cancelling flow run %s: %s", it.Reason, m.runLabel(), m.s.CancelOutcome)
	case m.s.Run.ID != "":
		msg = fmt.Sprintf("%s received; flow run %s was left %s on Prefect", it.Reason, m.runLabel(), m.s.Run.StateType)
		if m.s.IdemKey != "" {
			msg += "; run again with the same idempotency key to re-attach"
		}
	case m.s.CreateSent:
		msg = fmt.Sprintf("%s received while launching; the flow run may exist: run again with idempotency key %s to re-attach", it.Reason, m.s.IdemKey)
	default:
		msg = fmt.Sprintf("%s received before a flow run was launched", it.Reason)
	}
	exit := it.ExitCode
	if exit == 0 {
		exit = abi.ExitInterruptedSIGTERM
	}
	m.finishWith(exit, &abi.Error{Code: abi.CodeInterrupted, Message: msg}, m.runResult())
}

// runLabel names the flow run for messages: 'tidy-fox' (0b6c…).
func (m *Machine) runLabel() string {
	if m.s.Run.Name == "" {
		return m.s.Run.ID
	}
	return fmt.Sprintf("%q (%s)", m.s.Run.Name, m.s.Run.ID)
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
	if m.s.Target == abi.TargetCloud && m.s.Workspace != nil {
		ui += "/account/" + m.s.Workspace.AccountID + "/workspace/" + m.s.Workspace.WorkspaceID
	}
	return ui + "/runs/flow-run/" + m.s.Run.ID
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

// dur renders milliseconds for people: 450ms, 12s, 1m2s, 1h0m5s.
func dur(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	if d < time.Second {
		return d.String()
	}
	return d.Round(time.Second).String()
}

func (m *Machine) markCreated() {
	t := m.s.Now
	m.s.CreatedAt = &t
}

// elapsed is the time since the flow run was created or attached.
func (m *Machine) elapsed() int64 {
	if m.s.CreatedAt == nil {
		return 0
	}
	return m.s.Now - *m.s.CreatedAt
}
