package abi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ue-prefect/ue-prefect/abi"
)

func TestStatusDescription(t *testing.T) {
	tests := []struct {
		name     string
		exitCode int
		message  string
		want     string
	}{
		{"success ignores the message", abi.ExitSuccess, "ignored", "Task executed successfully."},
		{"success without a message", abi.ExitSuccess, "", "Task executed successfully."},
		{"failed", abi.ExitFailed, "flow run 'tidy-fox' ended FAILED", "Execution Failed: flow run 'tidy-fox' ended FAILED"},
		{"data validation", abi.ExitDataValidation, "Deployment ID or Name: required", "Data Validation Error: Deployment ID or Name: required"},
		{"polling timeout ignores the message", abi.ExitPollingTimeout, "anything", "Polling Timeout: maximum polling timeout reached."},
		{"SIGINT", abi.ExitInterruptedSIGINT, "SIGINT received", "Interrupted: SIGINT received"},
		{"SIGTERM", abi.ExitInterruptedSIGTERM, "SIGTERM received", "Interrupted: SIGTERM received"},
		{"start deadline", abi.ExitStartDeadline, "flow run x did not start", "Start Deadline: flow run x did not start"},
		{"unknown code is a failure", 3, "host fault", "Execution Failed: host fault"},
		{"negative code is a failure", -1, "x", "Execution Failed: x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := abi.StatusDescription(tc.exitCode, tc.message); got != tc.want {
				t.Errorf("StatusDescription(%d, %q) = %q, want %q", tc.exitCode, tc.message, got, tc.want)
			}
		})
	}
}

func TestCodeExitCode(t *testing.T) {
	tests := []struct {
		name string
		code abi.Code
		want int
	}{
		{"invalid_input", abi.CodeInvalidInput, 20},
		{"not_found", abi.CodeNotFound, 20},
		{"ambiguous", abi.CodeAmbiguous, 20},
		{"rejected", abi.CodeRejected, 20},
		{"unauthorized", abi.CodeUnauthorized, 20},
		{"flow_run_failed", abi.CodeFlowRunFailed, 1},
		{"unavailable", abi.CodeUnavailable, 1},
		{"server_error", abi.CodeServerError, 1},
		{"bad_response", abi.CodeBadResponse, 1},
		{"refused", abi.CodeRefused, 1},
		{"polling_timeout", abi.CodePollingTimeout, 40},
		{"interrupted", abi.CodeInterrupted, 143},
		{"start_deadline", abi.CodeStartDeadline, 41},
		{"internal", abi.CodeInternal, 1},
		{"unknown code", abi.Code("bogus"), 1},
		{"empty code", abi.Code(""), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.code.ExitCode(); got != tc.want {
				t.Errorf("Code(%q).ExitCode() = %d, want %d", tc.code, got, tc.want)
			}
		})
	}
}

func TestTransportKindRetryable(t *testing.T) {
	tests := []struct {
		name string
		kind abi.TransportKind
		want bool
	}{
		{"connect", abi.TransportConnect, true},
		{"timeout", abi.TransportTimeout, true},
		{"reset", abi.TransportReset, true},
		{"tls", abi.TransportTLS, false},
		{"too_large", abi.TransportTooLarge, false},
		{"redirect", abi.TransportRedirect, false},
		{"forbidden", abi.TransportForbidden, false},
		{"interrupted", abi.TransportInterrupted, false},
		{"unknown", abi.TransportKind("weird"), false},
		{"empty", abi.TransportKind(""), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.kind.Retryable(); got != tc.want {
				t.Errorf("TransportKind(%q).Retryable() = %v, want %v", tc.kind, got, tc.want)
			}
		})
	}
}

func TestErrorError(t *testing.T) {
	tests := []struct {
		name string
		err  *abi.Error
		want string
	}{
		{"no field", &abi.Error{Code: abi.CodeInternal, Message: "plugin panic"}, "plugin panic"},
		{"labelled field", &abi.Error{Code: abi.CodeInvalidInput, Field: "deployment", Message: "required"}, "Deployment ID or Name: required"},
		{"poll interval label", &abi.Error{Code: abi.CodeInvalidInput, Field: "poll_interval", Message: `"abc" is not a whole number`}, `Polling Interval (sec): "abc" is not a whole number`},
		{"metadata label", &abi.Error{Code: abi.CodeInvalidInput, Field: "include_metadata", Message: "x"}, "Extension Output Options: x"},
		{"checkpoint label", &abi.Error{Code: abi.CodeInvalidInput, Field: "checkpoint", Message: "bad"}, "Checkpoint: bad"},
		{"unlabelled field uses its name", &abi.Error{Code: abi.CodeInvalidInput, Field: "cache_dir", Message: "bad"}, "cache_dir: bad"},
		{"Errorf", abi.Errorf(abi.CodeNotFound, "workspace", "no workspace %q", "prod"), `Workspace ID or Name: no workspace "prod"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("(%#v).Error() = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

func TestFieldLabel(t *testing.T) {
	// Every Fields JSON name has a label a UAC user recognises.
	typ := reflect.TypeOf(abi.Fields{})
	for i := 0; i < typ.NumField(); i++ {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		t.Run(name, func(t *testing.T) {
			if got := abi.FieldLabel(name); got == name || got == "" {
				t.Errorf("FieldLabel(%q) = %q, want a label", name, got)
			}
		})
	}
	if got := abi.FieldLabel("no_such_field"); got != "no_such_field" {
		t.Errorf("FieldLabel(%q) = %q, want %q", "no_such_field", got, "no_such_field")
	}
}

// messageTypes maps a testdata file name prefix to the message type the
// file holds.
var messageTypes = []struct {
	prefix string
	new    func() any
}{
	{"run_input", func() any { return new(abi.RunInput) }},
	{"run_output", func() any { return new(abi.RunOutput) }},
	{"http_request", func() any { return new(abi.HTTPRequest) }},
	{"http_response", func() any { return new(abi.HTTPResponse) }},
	{"event", func() any { return new(abi.Event) }},
	{"command", func() any { return new(abi.Command) }},
	{"step_input", func() any { return new(abi.StepInput) }},
	{"step_output", func() any { return new(abi.StepOutput) }},
}

// roundTrip decodes data into a fresh value of new, then checks that
// decode→encode→decode is stable: the second encoding equals the first and
// the third decoding equals the second. The first decoding may differ in
// whitespace kept by json.RawMessage fields, which encoding compacts.
func roundTrip(t *testing.T, newV func() any, data []byte, strict bool) error {
	t.Helper()
	v1 := newV()
	dec := json.NewDecoder(bytes.NewReader(data))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v1); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("data after the JSON value: %v", err)
	}
	b1, err := json.Marshal(v1)
	if err != nil {
		t.Fatalf("Marshal(%T decoded from %q) = %v", v1, data, err)
	}
	v2 := newV()
	if err := json.Unmarshal(b1, v2); err != nil {
		t.Fatalf("Unmarshal(%s) into %T = %v, want nil", b1, v2, err)
	}
	b2, err := json.Marshal(v2)
	if err != nil {
		t.Fatalf("Marshal(%T) = %v", v2, err)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatalf("encode(decode(%s)) = %s, want it unchanged", b1, b2)
	}
	v3 := newV()
	if err := json.Unmarshal(b2, v3); err != nil {
		t.Fatalf("Unmarshal(%s) = %v", b2, err)
	}
	if !reflect.DeepEqual(v2, v3) {
		t.Fatalf("decode(%s) = %#v, want %#v", b2, v3, v2)
	}
	return nil
}

func TestMessagesRoundTrip(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	covered := map[string]bool{}
	for _, f := range files {
		base := filepath.Base(f)
		t.Run(base, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, mt := range messageTypes {
				if strings.HasPrefix(base, mt.prefix) {
					covered[mt.prefix] = true
					// Strict: a field the types do not know is a typo in testdata.
					if err := roundTrip(t, mt.new, data, true); err != nil {
						t.Fatalf("decode %s as %T = %v, want nil", f, mt.new(), err)
					}
					return
				}
			}
			t.Fatalf("%s: no message type for this file name", f)
		})
	}
	for _, mt := range messageTypes {
		if !covered[mt.prefix] {
			t.Errorf("no testdata/%s*.json", mt.prefix)
		}
	}
}

// TestMessagesDecodeValues pins a few decoded values, so that a renamed
// JSON tag cannot pass the round trip unnoticed.
func TestMessagesDecodeValues(t *testing.T) {
	read := func(t *testing.T, name string, v any) {
		t.Helper()
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("Unmarshal(%s) = %v", name, err)
		}
	}
	t.Run("run_input", func(t *testing.T) {
		var in abi.RunInput
		read(t, "run_input.json", &in)
		if in.Seed != 1<<64-1 || in.NowMS != 1520 || in.Fields.Deployment != "etl/nightly" || in.Fields.IncludeMetadata != "Include Flow Run Metadata" || in.Target != abi.TargetCloud {
			t.Errorf("decode run_input.json = %+v", in)
		}
	})
	t.Run("http_response_error", func(t *testing.T) {
		var r abi.HTTPResponse
		read(t, "http_response_error.json", &r)
		if r.Error == nil || r.Error.Kind != abi.TransportConnect || r.Interrupt == nil || r.Interrupt.ExitCode != 143 || r.Status != 0 {
			t.Errorf("decode http_response_error.json = %+v", r)
		}
	})
	t.Run("step_output", func(t *testing.T) {
		var so abi.StepOutput
		read(t, "step_output.json", &so)
		if len(so.Commands) != 2 || so.Commands[1].Kind != abi.CommandHTTP || so.Commands[1].HTTP.Path != "/deployments/name/etl/nightly" {
			t.Errorf("decode step_output.json = %+v", so)
		}
	})
	t.Run("no wall clock on a response", func(t *testing.T) {
		// The wall clock enters only with RunInput.now_unix_ms; an
		// HTTPResponse field of that name was never set nor read.
		d := json.NewDecoder(strings.NewReader(`{"status":200,"now_ms":1,"now_unix_ms":1764500000000}`))
		d.DisallowUnknownFields()
		var r abi.HTTPResponse
		if err := d.Decode(&r); err == nil {
			t.Errorf("HTTPResponse decodes now_unix_ms: %+v", r)
		}
	})
	t.Run("omitempty", func(t *testing.T) {
		// A response without a status or an error encodes only now_ms.
		b, _ := json.Marshal(abi.HTTPResponse{NowMS: 5})
		if got, want := string(b), `{"now_ms":5}`; got != want {
			t.Errorf("Marshal(HTTPResponse{NowMS: 5}) = %s, want %s", got, want)
		}
	})
}

func TestParseInt(t *testing.T) {
	tests := []struct {
		name, field, v string
		want           int64
		wantErr        string // the message, "" for none
	}{
		{"poll interval default", "poll_interval", "", abi.DefaultPollInterval, ""},
		{"poll interval blank", "poll_interval", "  ", abi.DefaultPollInterval, ""},
		{"poll interval", "poll_interval", " 30 ", 30, ""},
		{"poll interval max", "poll_interval", "86400", abi.MaxPollInterval, ""},
		{"poll interval zero", "poll_interval", "0", abi.DefaultPollInterval, "0 is out of range (1 to 86400)"},
		{"poll interval text", "poll_interval", "soon", abi.DefaultPollInterval, `"soon" is not a whole number`},
		{"max polls empty is no limit", "max_polls", "", 0, ""},
		{"max polls zero", "max_polls", "0", 0, "0 is out of range (1 to 2147483647); leave it empty to poll until the flow run ends"},
		{"cancel grace default", "cancel_grace", "", abi.DefaultCancelGrace, ""},
		{"cancel grace lenient no more", "cancel_grace", "30s", abi.DefaultCancelGrace, `"30s" is not a whole number`},
		{"cancel grace over", "cancel_grace", "3601", abi.DefaultCancelGrace, "3601 is out of range (1 to 3600)"},
		{"outage budget zero", "outage_budget", "0", 0, ""},
		{"outage budget default", "outage_budget", "", abi.DefaultOutageBudget, ""},
		{"long text is clipped", "poll_interval", strings.Repeat("9x", 50), abi.DefaultPollInterval, `"` + strings.Repeat("9x", 40) + `…" is not a whole number`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := abi.ParseInt(tc.field, tc.v)
			if got != tc.want {
				t.Errorf("ParseInt(%q, %q) = %d, want %d", tc.field, tc.v, got, tc.want)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.wantErr != "" && (err == nil || err.Message != tc.wantErr || err.Field != tc.field || err.Code != abi.CodeInvalidInput):
				t.Errorf("error %#v, want invalid_input on %s: %q", err, tc.field, tc.wantErr)
			}
		})
	}
	if _, err := abi.ParseInt("deployment", "1"); err == nil || err.Code != abi.CodeInternal {
		t.Errorf("ParseInt of a text field = %v, want an internal error", err)
	}
}

func TestOutcome(t *testing.T) {
	tests := []struct {
		name string
		out  abi.RunOutput
		want string
	}{
		{"success with a result", abi.Outcome(abi.ExitSuccess, nil, &abi.Result{FlowRunID: "r1", Polls: 2}),
			`{"exit_code":0,"status_description":"Task executed successfully.","result":{"flow_run_id":"r1","polls":2}}`},
		{"bad input before anything is known", abi.Failure(abi.Errorf(abi.CodeInvalidInput, "deployment", "required")),
			`{"exit_code":20,"status_description":"Data Validation Error: Deployment ID or Name: required","error":{"code":"invalid_input","field":"deployment","message":"required"},"result":{}}`},
		{"a host fault", abi.Failure(&abi.Error{Code: abi.CodeInternal, Message: "plugin trapped"}),
			`{"exit_code":1,"status_description":"Execution Failed: plugin trapped","error":{"code":"internal","message":"plugin trapped"},"result":{}}`},
		{"polling timeout keeps its fixed wording", abi.Outcome(abi.ExitPollingTimeout, &abi.Error{Code: abi.CodePollingTimeout, Message: "maximum polling timeout reached."}, nil),
			`{"exit_code":40,"status_description":"Polling Timeout: maximum polling timeout reached.","error":{"code":"polling_timeout","message":"maximum polling timeout reached."},"result":{}}`},
		{"an interrupt ends with the signal's code", abi.Outcome(abi.ExitInterruptedSIGINT, &abi.Error{Code: abi.CodeInterrupted, Message: "SIGINT received"}, &abi.Result{FlowRunID: "r1"}),
			`{"exit_code":130,"status_description":"Interrupted: SIGINT received","error":{"code":"interrupted","message":"SIGINT received"},"result":{"flow_run_id":"r1"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.out)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("got  %s\nwant %s", b, tc.want)
			}
		})
	}
}

// The contract lists are functions: a caller that changes what it got
// changes nothing for the next.
func TestContractListsAreFresh(t *testing.T) {
	for name, list := range map[string]func() []string{"Imports": abi.Imports, "Exports": abi.Exports} {
		a := list()
		want := strings.Join(a, ",")
		a[0] = "changed"
		_ = append(a[:1], "appended")
		if got := strings.Join(list(), ","); got != want {
			t.Errorf("%s() after a caller's change = %s, want %s", name, got, want)
		}
	}
}

func TestFailureOf(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantExit int
		wantCode abi.Code
	}{
		{"an abi.Error keeps its code", &abi.Error{Code: abi.CodeInvalidInput, Field: "deployment", Message: "bad"}, abi.ExitDataValidation, abi.CodeInvalidInput},
		{"a wrapped abi.Error too", fmt.Errorf("step: %w", &abi.Error{Code: abi.CodeInvalidInput, Message: "bad"}), abi.ExitDataValidation, abi.CodeInvalidInput},
		{"any other error is internal", errors.New("wasm: out of memory"), abi.ExitFailed, abi.CodeInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := abi.FailureOf(tc.err)
			if out.ExitCode != tc.wantExit || out.Error == nil || out.Error.Code != tc.wantCode {
				t.Errorf("FailureOf(%v) = exit %d, error %+v; want exit %d, code %s", tc.err, out.ExitCode, out.Error, tc.wantExit, tc.wantCode)
			}
		})
	}
}
