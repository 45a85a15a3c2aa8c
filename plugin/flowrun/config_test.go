package flowrun_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun"
)

const testUUID = "1f3e5a77-0d2c-4b8e-9a61-5c7d8e9f0a1b"

// defaults is the Config of fields that give only a deployment.
func defaults() flowrun.Config {
	return flowrun.Config{
		Deployment:      "etl/nightly",
		PollInterval:    abi.DefaultPollInterval * 1000,
		IncludeMetadata: true,
		CancelGrace:     abi.DefaultCancelGrace * 1000,
		OutageBudget:    abi.DefaultOutageBudget * 1000,
	}
}

// nested returns a Parameters value whose deepest array is depth levels
// down, counting the outer object and the "parameters" object.
func nested(depth int) string {
	return `{"parameters":{"x":` + strings.Repeat("[", depth-2) + strings.Repeat("]", depth-2) + `}}`
}

func TestParseFieldsValid(t *testing.T) {
	tests := []struct {
		name   string
		action string
		fields abi.Fields
		want   func(c *flowrun.Config) // applied to defaults()
	}{
		{"deployment flow/dep", "", abi.Fields{}, func(c *flowrun.Config) {}},
		{"deployment UUID", "", abi.Fields{Deployment: testUUID}, func(c *flowrun.Config) { c.Deployment = testUUID }},
		{"deployment upper-case UUID", "", abi.Fields{Deployment: strings.ToUpper(testUUID)}, func(c *flowrun.Config) { c.Deployment = strings.ToUpper(testUUID) }},
		{"deployment bare name", "", abi.Fields{Deployment: "nightly"}, func(c *flowrun.Config) { c.Deployment = "nightly" }},
		{"deployment trimmed", "", abi.Fields{Deployment: "  etl/nightly\t\n"}, func(c *flowrun.Config) {}},
		{"deployment with spaces and unicode", "", abi.Fields{Deployment: "my flow/déploiement 1"}, func(c *flowrun.Config) { c.Deployment = "my flow/déploiement 1" }},
		{"workspace id", "", abi.Fields{Workspace: testUUID}, func(c *flowrun.Config) { c.Workspace = testUUID }},
		{"workspace name", "", abi.Fields{Workspace: "Production"}, func(c *flowrun.Config) { c.Workspace = "Production" }},
		{"workspace handle", "", abi.Fields{Workspace: "acme/prod", Account: "acme"}, func(c *flowrun.Config) { c.Workspace, c.Account = "acme/prod", "acme" }},
		{"flow run name", "", abi.Fields{FlowRunName: "nightly-2026-11-22"}, func(c *flowrun.Config) { c.FlowRunName = "nightly-2026-11-22" }},
		{"idempotency key", "", abi.Fields{IdempotencyKey: "uac-task-42"}, func(c *flowrun.Config) { c.IdempotencyKey = "uac-task-42" }},
		{"flow run id without deployment", "", abi.Fields{Deployment: "-", FlowRunID: testUUID}, func(c *flowrun.Config) { c.Deployment, c.FlowRunID = "", testUUID }},
		{"text at the length limit", "", abi.Fields{FlowRunName: strings.Repeat("a", flowrun.MaxFieldBytes)}, func(c *flowrun.Config) { c.FlowRunName = strings.Repeat("a", flowrun.MaxFieldBytes) }},

		{"parameters all keys", "", abi.Fields{Parameters: `{"parameters":{"day":"mon","n":[1,2]},"context":{"k":"v"},"job_variables":{"image":"x:1"},"tags":["etl","nightly"]}`},
			func(c *flowrun.Config) {
				c.Parameters, c.Context, c.JobVariables = `{"day":"mon","n":[1,2]}`, `{"k":"v"}`, `{"image":"x:1"}`
				c.Tags = []string{"etl", "nightly"}
			}},
		{"parameters empty object", "", abi.Fields{Parameters: ` {} `}, func(c *flowrun.Config) {}},
		{"parameters empty tags", "", abi.Fields{Parameters: `{"tags":[]}`}, func(c *flowrun.Config) { c.Tags = []string{} }},
		{"parameters null values allowed", "", abi.Fields{Parameters: `{"parameters":null,"context":null,"job_variables":null,"tags":null}`}, func(c *flowrun.Config) {}},
		{"parameters 64 levels deep", "", abi.Fields{Parameters: nested(64)}, func(c *flowrun.Config) {
			c.Parameters = flowrun.RawObject(`{"x":` + strings.Repeat("[", 62) + strings.Repeat("]", 62) + `}`)
		}},
		{"parameters brackets in strings do not count", "", abi.Fields{Parameters: `{"parameters":{"x":"` + strings.Repeat("[{", 100) + `\"]"}}`}, func(c *flowrun.Config) {
			c.Parameters = flowrun.RawObject(`{"x":"` + strings.Repeat("[{", 100) + `\"]"}`)
		}},

		{"wait true", "", abi.Fields{Wait: "true"}, func(c *flowrun.Config) { c.Wait = true }},
		{"wait TRUE padded", "", abi.Fields{Wait: " TRUE "}, func(c *flowrun.Config) { c.Wait = true }},
		{"wait yes", "", abi.Fields{Wait: "yes"}, func(c *flowrun.Config) { c.Wait = true }},
		{"wait y", "", abi.Fields{Wait: "y"}, func(c *flowrun.Config) { c.Wait = true }},
		{"wait 1", "", abi.Fields{Wait: "1"}, func(c *flowrun.Config) { c.Wait = true }},
		{"wait on", "", abi.Fields{Wait: "on"}, func(c *flowrun.Config) { c.Wait = true }},
		{"wait false", "", abi.Fields{Wait: "false"}, func(c *flowrun.Config) {}},
		{"wait No", "", abi.Fields{Wait: "No"}, func(c *flowrun.Config) {}},
		{"wait 0", "", abi.Fields{Wait: "0"}, func(c *flowrun.Config) {}},
		{"wait off", "", abi.Fields{Wait: "off"}, func(c *flowrun.Config) {}},
		{"cancel on interrupt true", "", abi.Fields{CancelOnInterrupt: "true"}, func(c *flowrun.Config) { c.CancelOnInterrupt = true }},
		{"cancel on interrupt n", "", abi.Fields{CancelOnInterrupt: "n"}, func(c *flowrun.Config) {}},

		{"poll interval 1", "", abi.Fields{PollInterval: "1"}, func(c *flowrun.Config) { c.PollInterval = 1 * 1000 }},
		{"poll interval 86400", "", abi.Fields{PollInterval: "86400"}, func(c *flowrun.Config) { c.PollInterval = 86400 * 1000 }},
		{"poll interval padded", "", abi.Fields{PollInterval: " 5 "}, func(c *flowrun.Config) { c.PollInterval = 5 * 1000 }},
		{"poll interval empty is the default", "", abi.Fields{PollInterval: "  "}, func(c *flowrun.Config) {}},
		{"max polls empty is forever", "", abi.Fields{MaxPolls: ""}, func(c *flowrun.Config) { c.MaxPolls = 0 }},
		{"max polls 1", "", abi.Fields{MaxPolls: "1"}, func(c *flowrun.Config) { c.MaxPolls = 1 }},
		{"max polls largest", "", abi.Fields{MaxPolls: "2147483647"}, func(c *flowrun.Config) { c.MaxPolls = 1<<31 - 1 }},
		{"cancel grace 1", "", abi.Fields{CancelGrace: "1"}, func(c *flowrun.Config) { c.CancelGrace = 1 * 1000 }},
		{"cancel grace 3600", "", abi.Fields{CancelGrace: "3600"}, func(c *flowrun.Config) { c.CancelGrace = 3600 * 1000 }},
		{"outage budget 0", "", abi.Fields{OutageBudget: "0"}, func(c *flowrun.Config) { c.OutageBudget = 0 }},
		{"outage budget a week", "", abi.Fields{OutageBudget: "604800"}, func(c *flowrun.Config) { c.OutageBudget = 604800 * 1000 }},
		{"start at RFC 3339", "", abi.Fields{StartAt: " 2026-11-28T09:00:00Z "}, func(c *flowrun.Config) { c.StartAt = "2026-11-28T09:00:00Z" }},
		{"start at with offset and fraction", "", abi.Fields{StartAt: "2026-11-28T10:00:00.5+01:00"}, func(c *flowrun.Config) { c.StartAt = "2026-11-28T10:00:00.5+01:00" }},
		{"start at duration", "", abi.Fields{StartAt: "1h30m"}, func(c *flowrun.Config) { c.StartAt = "1h30m" }},
		{"start deadline with wait", "", abi.Fields{Wait: "true", StartDeadline: "300"}, func(c *flowrun.Config) { c.Wait, c.StartDeadline = true, 300*1000 }},
		{"cancel on deadline", "", abi.Fields{Wait: "true", StartDeadline: "1", CancelOnDeadline: "yes"}, func(c *flowrun.Config) {
			c.Wait, c.StartDeadline, c.CancelOnDeadline = true, 1000, true
		}},

		{"metadata label include", "", abi.Fields{IncludeMetadata: "Include Flow Run Metadata"}, func(c *flowrun.Config) {}},
		{"metadata label no", "", abi.Fields{IncludeMetadata: "No Metadata"}, func(c *flowrun.Config) { c.IncludeMetadata = false }},
		{"metadata label no, any case", "", abi.Fields{IncludeMetadata: " no metadata "}, func(c *flowrun.Config) { c.IncludeMetadata = false }},
		{"metadata none", "", abi.Fields{IncludeMetadata: "None"}, func(c *flowrun.Config) { c.IncludeMetadata = false }},
		{"metadata true", "", abi.Fields{IncludeMetadata: "true"}, func(c *flowrun.Config) {}},
		{"metadata false", "", abi.Fields{IncludeMetadata: "false"}, func(c *flowrun.Config) { c.IncludeMetadata = false }},

		{"list workspaces needs no deployment", abi.ActionListWorkspaces, abi.Fields{Deployment: "-"}, func(c *flowrun.Config) { c.Deployment = "" }},
		{"list deployments needs no deployment", abi.ActionListDeployments, abi.Fields{Deployment: "-"}, func(c *flowrun.Config) { c.Deployment = "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.fields
			switch f.Deployment {
			case "":
				f.Deployment = "etl/nightly"
			case "-":
				f.Deployment = ""
			}
			action := tc.action
			if action == "" {
				action = abi.ActionLaunchFlowRun
			}
			want := defaults()
			tc.want(&want)
			got, err := flowrun.ParseFields(action, f)
			if err != nil {
				t.Fatalf("ParseFields(%q, %+v) error = %v, want nil", action, f, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ParseFields(%q, %+v) =\n%+v, want\n%+v", action, f, got, want)
			}
		})
	}
}

func TestParseFieldsInvalid(t *testing.T) {
	tests := []struct {
		name   string
		action string
		fields abi.Fields
		field  string // want Field
		msg    string // a substring of want Message
	}{
		{"deployment required", "", abi.Fields{Deployment: "-"}, "deployment", "required"},
		{"deployment blank", "", abi.Fields{Deployment: "   "}, "deployment", "required"},
		{"deployment a/", "", abi.Fields{Deployment: "a/"}, "deployment", `"a/": expected flow-name/deployment-name with both parts`},
		{"deployment /b", "", abi.Fields{Deployment: "/b"}, "deployment", `"/b": expected flow-name/deployment-name with both parts`},
		{"deployment /", "", abi.Fields{Deployment: "/"}, "deployment", "with both parts"},
		{"deployment a/b/c", "", abi.Fields{Deployment: "a/b/c"}, "deployment", `Prefect names cannot contain '/'`},
		{"deployment percent", "", abi.Fields{Deployment: "etl/night%ly"}, "deployment", `cannot contain '%'`},
		{"deployment ampersand in bare name", "", abi.Fields{Deployment: "a&b"}, "deployment", `cannot contain '&'`},
		{"deployment angle bracket in flow", "", abi.Fields{Deployment: "<etl>/nightly"}, "deployment", `cannot contain '<'`},
		{"deployment greater-than", "", abi.Fields{Deployment: "etl/a>b"}, "deployment", `cannot contain '>'`},
		{"deployment control character", "", abi.Fields{Deployment: "etl/\x00nightly"}, "deployment", "control character (U+0000)"},
		{"deployment escape character", "", abi.Fields{Deployment: "etl/night\x1bly"}, "deployment", "control character (U+001B)"},
		{"deployment C1 control", "", abi.Fields{Deployment: "etl/night\u0085ly"}, "deployment", "control character (U+0085)"},
		{"deployment invalid UTF-8", "", abi.Fields{Deployment: "etl/night\xffly"}, "deployment", "not valid UTF-8"},
		{"deployment too long", "", abi.Fields{Deployment: strings.Repeat("d", flowrun.MaxFieldBytes+1)}, "deployment", "too long (4097 bytes; at most 4096)"},

		{"start at unparsable", "", abi.Fields{StartAt: "tomorrow"}, "start_at", "neither an RFC 3339 time"},
		{"start at date only", "", abi.Fields{StartAt: "2026-11-28"}, "start_at", "neither an RFC 3339 time"},
		{"start at zero duration", "", abi.Fields{StartAt: "0s"}, "start_at", "in the past"},
		{"start at negative duration", "", abi.Fields{StartAt: "-5m"}, "start_at", "in the past"},
		{"start at too far", "", abi.Fields{StartAt: "9000h"}, "start_at", "more than 366 days ahead"},
		{"start at control character", "", abi.Fields{StartAt: "5m\x00"}, "start_at", "control character"},
		{"start at with flow run id", "", abi.Fields{Deployment: "-", FlowRunID: testUUID, StartAt: "5m"}, "start_at", "applies to a new flow run"},
		{"start deadline zero", "", abi.Fields{Wait: "true", StartDeadline: "0"}, "start_deadline", "out of range"},
		{"start deadline not a number", "", abi.Fields{Wait: "true", StartDeadline: "5m"}, "start_deadline", "not a whole number"},
		{"start deadline without wait", "", abi.Fields{StartDeadline: "60"}, "start_deadline", "needs Wait for Success or Failure"},
		{"cancel on deadline without deadline", "", abi.Fields{Wait: "true", CancelOnDeadline: "true"}, "cancel_on_deadline", "needs Start Deadline (sec)"},
		{"cancel on deadline not boolean", "", abi.Fields{Wait: "true", StartDeadline: "5", CancelOnDeadline: "maybe"}, "cancel_on_deadline", "not a boolean"},

		{"workspace a/b/c", "", abi.Fields{Workspace: "a/b/c"}, "workspace", "more than one '/'"},
		{"workspace /prod", "", abi.Fields{Workspace: "/prod"}, "workspace", "with both parts"},
		{"workspace acme/", "", abi.Fields{Workspace: "acme/"}, "workspace", "with both parts"},
		{"workspace control character", "", abi.Fields{Workspace: "pr\nod"}, "workspace", "control character (U+000A)"},
		{"workspace invalid UTF-8", "", abi.Fields{Workspace: "\xc3\x28"}, "workspace", "not valid UTF-8"},
		{"workspace too long", "", abi.Fields{Workspace: strings.Repeat("w", 5000)}, "workspace", "too long"},
		{"account control character", "", abi.Fields{Account: "ac\tme"}, "account", "control character (U+0009)"},
		{"flow run name too long", "", abi.Fields{FlowRunName: strings.Repeat("é", 3000)}, "flow_run_name", "too long (6000 bytes"},
		{"flow run name delete character", "", abi.Fields{FlowRunName: "a\x7fb"}, "flow_run_name", "control character (U+007F)"},
		{"idempotency key invalid UTF-8", "", abi.Fields{IdempotencyKey: "k\xed\xa0\x80"}, "idempotency_key", "not valid UTF-8"},
		{"flow run id not a UUID", "", abi.Fields{FlowRunID: "not-a-uuid"}, "flow_run_id", `"not-a-uuid" is not a flow run id (a UUID)`},
		{"flow run id UUID without dashes", "", abi.Fields{FlowRunID: strings.ReplaceAll(testUUID, "-", "")}, "flow_run_id", "is not a flow run id"},
		{"flow run id control character", "", abi.Fields{FlowRunID: "\x01"}, "flow_run_id", "control character"},

		{"wait junk", "", abi.Fields{Wait: "maybe"}, "wait", `"maybe" is not a boolean (true or false)`},
		{"wait 2", "", abi.Fields{Wait: "2"}, "wait", "is not a boolean"},
		{"cancel on interrupt junk", "", abi.Fields{CancelOnInterrupt: "si"}, "cancel_on_interrupt", `"si" is not a boolean`},

		{"poll interval 0", "", abi.Fields{PollInterval: "0"}, "poll_interval", "0 is out of range (1 to 86400)"},
		{"poll interval 86401", "", abi.Fields{PollInterval: "86401"}, "poll_interval", "86401 is out of range (1 to 86400)"},
		{"poll interval negative", "", abi.Fields{PollInterval: "-5"}, "poll_interval", "-5 is out of range"},
		{"poll interval abc", "", abi.Fields{PollInterval: "abc"}, "poll_interval", `"abc" is not a whole number`},
		{"poll interval fraction", "", abi.Fields{PollInterval: "1.5"}, "poll_interval", `"1.5" is not a whole number`},
		{"poll interval overflow", "", abi.Fields{PollInterval: "99999999999999999999"}, "poll_interval", "is not a whole number"},
		{"max polls 0", "", abi.Fields{MaxPolls: "0"}, "max_polls", "0 is out of range (1 to 2147483647); leave it empty to poll until the flow run ends"},
		{"max polls too many", "", abi.Fields{MaxPolls: "2147483648"}, "max_polls", "out of range"},
		{"max polls junk", "", abi.Fields{MaxPolls: "ten"}, "max_polls", `"ten" is not a whole number`},
		{"cancel grace 0", "", abi.Fields{CancelGrace: "0"}, "cancel_grace", "0 is out of range (1 to 3600)"},
		{"cancel grace 3601", "", abi.Fields{CancelGrace: "3601"}, "cancel_grace", "3601 is out of range"},
		{"outage budget negative", "", abi.Fields{OutageBudget: "-1"}, "outage_budget", "-1 is out of range (0 to 604800)"},
		{"outage budget over a week", "", abi.Fields{OutageBudget: "604801"}, "outage_budget", "out of range"},

		{"metadata junk", "", abi.Fields{IncludeMetadata: "junk"}, "include_metadata", `"junk" is not an option; expected "Include Flow Run Metadata" or "No Metadata" (or true/false)`},
		{"metadata long junk is clipped", "", abi.Fields{IncludeMetadata: strings.Repeat("x", 200)}, "include_metadata", strings.Repeat("x", 80) + `…" is not an option`},

		{"parameters array", "", abi.Fields{Parameters: `[]`}, "parameters", "must be a JSON object"},
		{"parameters string", "", abi.Fields{Parameters: `"x"`}, "parameters", "must be a JSON object"},
		{"parameters number", "", abi.Fields{Parameters: `42`}, "parameters", "must be a JSON object"},
		{"parameters null", "", abi.Fields{Parameters: `null`}, "parameters", "must be a JSON object"},
		{"parameters unknown key", "", abi.Fields{Parameters: `{"paramters":{}}`}, "parameters", `unknown key "paramters"; expected parameters, context, job_variables, tags`},
		{"parameters unknown key with null", "", abi.Fields{Parameters: `{"paramters":null}`}, "parameters", `unknown key "paramters"`},
		{"parameters not an object", "", abi.Fields{Parameters: `{"parameters":[1]}`}, "parameters", `"parameters" must be a JSON object, not an array`},
		{"context a string", "", abi.Fields{Parameters: `{"context":"x"}`}, "parameters", `"context" must be a JSON object, not a string`},
		{"job variables a number", "", abi.Fields{Parameters: `{"job_variables":1}`}, "parameters", `"job_variables" must be a JSON object, not a number`},
		{"tags not an array", "", abi.Fields{Parameters: `{"tags":"etl"}`}, "parameters", `"tags" must be an array of strings, not a string`},
		{"tags an object", "", abi.Fields{Parameters: `{"tags":{}}`}, "parameters", `not an object`},
		{"tags hold a number", "", abi.Fields{Parameters: `{"tags":["etl",1]}`}, "parameters", `"tags" must hold non-empty strings; found 1`},
		{"tags hold a boolean", "", abi.Fields{Parameters: `{"tags":[true]}`}, "parameters", `found true`},
		{"tags hold an empty string", "", abi.Fields{Parameters: `{"tags":[" "]}`}, "parameters", `non-empty strings`},
		{"tags hold null", "", abi.Fields{Parameters: `{"tags":[null]}`}, "parameters", `found null`},
		{"nested 65 levels", "", abi.Fields{Parameters: nested(65)}, "parameters", "not valid JSON: nested too deeply"},
		{"over 1 MiB", "", abi.Fields{Parameters: `{"parameters":{"x":"` + strings.Repeat("a", flowrun.MaxParametersBytes) + `"}}`}, "parameters", "too large (1048599 bytes; at most 1048576)"},
		{"duplicate key", "", abi.Fields{Parameters: `{"tags":["a"],"tags":["b"]}`}, "parameters", `key "tags" appears twice`},
		{"duplicate null key", "", abi.Fields{Parameters: `{"context":null,"context":{}}`}, "parameters", `key "context" appears twice`},
		{"invalid JSON", "", abi.Fields{Parameters: `{"parameters":`}, "parameters", "not valid JSON: syntax error"},
		{"trailing comma", "", abi.Fields{Parameters: `{"tags":[],}`}, "parameters", "not valid JSON"},
		{"single quotes", "", abi.Fields{Parameters: `{'tags':[]}`}, "parameters", "not valid JSON"},
		{"two documents", "", abi.Fields{Parameters: `{} {}`}, "parameters", "not valid JSON"},

		{"unknown action", "deploy", abi.Fields{}, "action", `unknown action "deploy"; expected launch_flow_run, list_workspaces or list_deployments`},
		{"empty action", "-", abi.Fields{}, "action", `unknown action ""`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.fields
			switch f.Deployment {
			case "":
				f.Deployment = "etl/nightly"
			case "-":
				f.Deployment = ""
			}
			action := tc.action
			switch action {
			case "":
				action = abi.ActionLaunchFlowRun
			case "-":
				action = ""
			}
			_, err := flowrun.ParseFields(action, f)
			if err == nil {
				t.Fatalf("ParseFields(%q, %+v) error = nil, want %s: …%s…", action, f, tc.field, tc.msg)
			}
			if err.Code != abi.CodeInvalidInput || err.Field != tc.field || !strings.Contains(err.Message, tc.msg) {
				t.Errorf("ParseFields(%q, …) error = %#v, want code %q, field %q, message containing %q", action, err, abi.CodeInvalidInput, tc.field, tc.msg)
			}
			if strings.ContainsRune(err.Message, '\x00') || !json.Valid(mustMarshal(t, err)) {
				t.Errorf("ParseFields(%q, …) error message %q does not encode cleanly", action, err.Message)
			}
		})
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("Marshal(%v) = %v", v, err)
	}
	return b
}

// TestParseFieldsOrder pins which field is reported when several are bad:
// the text fields, then the booleans, then the metadata option, the
// numbers and the parameters.
func TestParseFieldsOrder(t *testing.T) {
	f := abi.Fields{Deployment: "a/", Wait: "x", IncludeMetadata: "x", PollInterval: "x", Parameters: "x", Workspace: "\x00"}
	tests := []struct {
		name  string
		clear func(f *abi.Fields)
		want  string
	}{
		{"text first", func(f *abi.Fields) {}, "workspace"},
		{"then booleans", func(f *abi.Fields) { f.Workspace = "" }, "wait"},
		{"then metadata", func(f *abi.Fields) { f.Workspace, f.Wait = "", "" }, "include_metadata"},
		{"then numbers", func(f *abi.Fields) { f.Workspace, f.Wait, f.IncludeMetadata = "", "", "" }, "poll_interval"},
		{"then parameters", func(f *abi.Fields) { f.Workspace, f.Wait, f.IncludeMetadata, f.PollInterval = "", "", "", "" }, "parameters"},
		{"then the deployment reference", func(f *abi.Fields) {
			f.Workspace, f.Wait, f.IncludeMetadata, f.PollInterval, f.Parameters = "", "", "", "", ""
		}, "deployment"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := f
			tc.clear(&g)
			_, err := flowrun.ParseFields(abi.ActionLaunchFlowRun, g)
			if err == nil || err.Field != tc.want {
				t.Errorf("ParseFields(%+v) error = %v, want field %q", g, err, tc.want)
			}
		})
	}
}

func TestCheckJSON(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		name     string
		s        string
		maxDepth int
		want     string
	}{
		{"object", `{"a":1}`, 64, ""},
		{"scalar", `42`, 64, ""},
		{"string", `"x"`, 64, ""},
		{"white space around", " \n{}\t", 64, ""},
		{"depth at the limit", deep(64), 64, ""},
		{"depth past the limit", deep(65), 64, "nested too deeply"},
		{"depth zero allows scalars", `1`, 0, ""},
		{"depth zero refuses objects", `{}`, 0, "nested too deeply"},
		{"brackets inside strings do not count", `{"a":"` + strings.Repeat("[", 100) + `"}`, 1, ""},
		{"escaped quote keeps the string open", `{"a":"\"[[[[\""}`, 1, ""},
		{"escaped backslash ends before the quote", `{"a":"\\","b":[[]]}`, 2, "nested too deeply"},
		{"escaped backslash within limit", `{"a":"\\","b":[[]]}`, 3, ""},
		{"escaped quote then real brackets", `["\"",[[]]]`, 2, "nested too deeply"},
		{"unicode escape", `{"a":"\u005b\u005b"}`, 1, ""},
		{"mixed nesting", `{"a":[{"b":[{"c":{}}]}]}`, 6, ""},
		{"mixed nesting too deep", `{"a":[{"b":[{"c":{}}]}]}`, 5, "nested too deeply"},
		{"deep and broken reports the depth", deep(100)[:150], 64, "nested too deeply"},
		{"empty", ``, 64, "syntax error"},
		{"truncated", `{"a":`, 64, "syntax error"},
		{"unterminated string", `{"a":"[`, 64, "syntax error"},
		{"trailing comma", `[1,]`, 64, "syntax error"},
		{"two values", `{}{}`, 64, "syntax error"},
		{"bare word", `nul`, 64, "syntax error"},
		{"unbalanced closers", `]]]]`, 64, "syntax error"},
		{"raw control character in a string", "\"a\x01b\"", 64, "syntax error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := flowrun.CheckJSON(tc.s, tc.maxDepth); got != tc.want {
				t.Errorf("CheckJSON(%.40q, %d) = %q, want %q", tc.s, tc.maxDepth, got, tc.want)
			}
		})
	}
}

func TestIsUUID(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{testUUID, true},
		{strings.ToUpper(testUUID), true},
		{"00000000-0000-0000-0000-000000000000", true},
		{"", false},
		{strings.ReplaceAll(testUUID, "-", ""), false},
		{testUUID + "0", false},
		{testUUID[:35], false},
		{"1f3e5a77-0d2c-4b8e-9a61-5c7d8e9f0a1g", false},
		{"1f3e5a77_0d2c-4b8e-9a61-5c7d8e9f0a1b", false},
		{"{1f3e5a77-0d2c-4b8e-9a61-5c7d8e9f0a1}", false},
		{"1f3e5a770-d2c-4b8e-9a61-5c7d8e9f0a1b", false},
		{" 1f3e5a77-0d2c-4b8e-9a61-5c7d8e9f0a1", false},
		{"1f3e5a77-0d2c-4b8e-9a61-5c7d8e9f0a1\u00e9"[:36], false},
	}
	for _, tc := range tests {
		t.Run(tc.s, func(t *testing.T) {
			if got := flowrun.IsUUID(tc.s); got != tc.want {
				t.Errorf("IsUUID(%q) = %v, want %v", tc.s, got, tc.want)
			}
		})
	}
}
