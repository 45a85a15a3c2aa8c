package abi

import (
	"encoding/json"
	"errors"
)

// Result is the "result" object of a [RunOutput]: what is known of the flow
// run (or the listing) when the run ends, successful or not. The plugin
// writes it; a host places it unchanged in its extension output and may
// decode it to read a field. Fields a newer plugin adds are ignored.
type Result struct {
	FlowRunID           string      `json:"flow_run_id,omitempty"`
	FlowRunName         string      `json:"flow_run_name,omitempty"`
	FlowRunState        string      `json:"flow_run_state,omitempty"`
	FlowRunStateName    string      `json:"flow_run_state_name,omitempty"`
	FlowRunStateMessage string      `json:"flow_run_state_message,omitempty"`
	FlowRunURL          string      `json:"flow_run_url,omitempty"`
	Deployment          *Deployment `json:"deployment,omitempty"`
	Workspace           *Workspace  `json:"workspace,omitempty"`
	// IdempotencyKey is the key sent with the create: "ue-prefect:<deployment
	// id>:<key>", where <key> is [Fields.IdempotencyKey] or the invocation id.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Reattached is set when the flow run existed before this invocation
	// (the create answered 200, or Fields.FlowRunID named it).
	Reattached bool `json:"reattached,omitempty"`
	// LaunchedWithOtherInputs names the inputs (flow_run_name, parameters,
	// tags, context, job_variables) with which an earlier launch created
	// the flow run this task's idempotency key returned, where they differ
	// from this task's: Prefect returns that run for a reused key, and the
	// task follows it (with a warning).
	LaunchedWithOtherInputs []string `json:"launched_with_other_inputs,omitempty"`
	// Waited is set when the task waited for the flow run.
	Waited bool  `json:"waited,omitempty"`
	Polls  int64 `json:"polls,omitempty"`
	// ElapsedSeconds is the time since the flow run was created or attached.
	ElapsedSeconds float64 `json:"elapsed_seconds,omitempty"`
	// Cancellation says how cancelling on interrupt ended.
	Cancellation string `json:"cancellation,omitempty"`
	// FlowRun is Prefect's flow run object, unless metadata is excluded.
	FlowRun json.RawMessage `json:"flow_run,omitempty"`
	// Workspaces and Deployments answer the list actions; Values holds
	// their names, one per line in the CLI.
	Workspaces  []Workspace  `json:"workspaces,omitempty"`
	Deployments []Deployment `json:"deployments,omitempty"`
	Values      []string     `json:"values,omitempty"`
}

// Deployment identifies a deployment in a [Result].
type Deployment struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	FlowID   string `json:"flow_id,omitempty"`
	FlowName string `json:"flow_name,omitempty"`
}

// Workspace identifies a Prefect Cloud workspace in a [Result].
type Workspace struct {
	AccountID     string `json:"account_id"`
	AccountHandle string `json:"account_handle,omitempty"`
	AccountName   string `json:"account_name,omitempty"`
	WorkspaceID   string `json:"workspace_id"`
	Handle        string `json:"handle,omitempty"`
	Name          string `json:"workspace_name,omitempty"`
}

// Outcome returns the RunOutput of a run that ended with exit: its 1.0
// status description, err (nil on success) and r as the result (an empty
// object when r is nil). It is the one way to build a RunOutput, for the
// plugin and for a host reporting a failure of its own.
func Outcome(exit int, err *Error, r *Result) RunOutput {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if r == nil {
		r = &Result{}
	}
	b, _ := json.Marshal(r) // a Result always marshals
	return RunOutput{ExitCode: exit, StatusDescription: StatusDescription(exit, msg), Error: err, Result: b}
}

// Failure returns the RunOutput of a failure that happened before anything
// was known of a flow run (bad input, a plugin that does not load): the exit
// code err's code implies and an empty result.
func Failure(err *Error) RunOutput { return Outcome(err.Code.ExitCode(), err, nil) }

// FailureOf is Failure for any error, as a host reports a fault of its own
// or of the plugin: an *Error (or one it wraps) keeps its code, anything
// else is CodeInternal with the error's text.
func FailureOf(err error) RunOutput {
	var ae *Error
	if !errors.As(err, &ae) {
		ae = &Error{Code: CodeInternal, Message: err.Error()}
	}
	return Failure(ae)
}
