// Tests that keep the template's two copies of the script body, its field list
// and its conventions consistent.
package uac

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const (
	templateFile = TemplateFileName
	scriptFile   = "ue-prefect-task.sh"
	prefix       = "PF"
)

type choice struct {
	FieldValue            string `json:"fieldValue"`
	UseFieldValueForLabel bool   `json:"useFieldValueForLabel"`
}

type field struct {
	Name              string   `json:"name"`
	Label             string   `json:"label"`
	FieldType         string   `json:"fieldType"`
	FieldMapping      string   `json:"fieldMapping"`
	FieldValue        *string  `json:"fieldValue"`
	Required          bool     `json:"required"`
	Choices           []choice `json:"choices"`
	ShowIfField       *string  `json:"showIfField"`
	ShowIfFieldValue  *string  `json:"showIfFieldValue"`
	RequireIfField    *string  `json:"requireIfField"`
	RequireIfFieldVal *string  `json:"requireIfFieldValue"`
	Sequence          int      `json:"sequence"`
	SysID             string   `json:"sysId"`
}

type template struct {
	Name               string  `json:"name"`
	TemplateType       string  `json:"templateType"`
	VariablePrefix     string  `json:"variablePrefix"`
	AgentType          string  `json:"agentType"`
	UseCommonScript    bool    `json:"useCommonScript"`
	Script             string  `json:"script"`
	ScriptUnix         *string `json:"scriptUnix"`
	ExitCodeProcessing string  `json:"exitCodeProcessing"`
	ExitCodes          string  `json:"exitCodes"`
	SysID              string  `json:"sysId"`
	Fields             []field `json:"fields"`
}

func load(t *testing.T) (template, string) {
	t.Helper()
	raw, err := os.ReadFile(templateFile)
	if err != nil {
		t.Fatal(err)
	}
	var tmpl template
	if err := json.Unmarshal(raw, &tmpl); err != nil {
		t.Fatalf("%s does not parse: %v", templateFile, err)
	}
	script, err := os.ReadFile(scriptFile)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl, string(script)
}

func TestTemplateParsesAsJSONObject(t *testing.T) {
	raw, err := os.ReadFile(templateFile)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if dec.More() {
		t.Fatal("trailing data after the JSON document")
	}
	// Keys every UAC export seen so far carries (ut-snowflake export); the
	// Controller's import is not known to tolerate their absence.
	for _, k := range []string{
		"name", "templateType", "variablePrefix", "agentType", "useCommonScript",
		"script", "scriptUnix", "scriptWindows", "fields", "exitCodeProcessing",
		"exitCodes", "outputType", "outputReturnType", "environment", "sysId",
		"credentials", "runtimeDir", "waitForOutput",
	} {
		if _, ok := v[k]; !ok {
			t.Errorf("template lacks key %q", k)
		}
	}
}

func TestTemplateHeader(t *testing.T) {
	tmpl, _ := load(t)
	for _, tc := range []struct{ what, got, want string }{
		{"name", tmpl.Name, "Prefect (ue-prefect)"},
		{"templateType", tmpl.TemplateType, "Script"},
		{"variablePrefix", tmpl.VariablePrefix, prefix},
		{"agentType", tmpl.AgentType, "Linux/Unix"},
		{"exitCodeProcessing", tmpl.ExitCodeProcessing, "Success Exitcode Range"},
		{"exitCodes", tmpl.ExitCodes, "0"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.what, tc.got, tc.want)
		}
	}
	if !tmpl.UseCommonScript {
		t.Error("useCommonScript must be true: the body lives in \"script\"")
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(tmpl.SysID) {
		t.Errorf("template sysId %q is not 32 hex digits", tmpl.SysID)
	}
}

func TestScriptEmbeddedVerbatim(t *testing.T) {
	tmpl, script := load(t)
	if tmpl.Script != script {
		t.Fatalf("%s and the \"script\" of %s differ; regenerate the JSON from the .sh file", scriptFile, templateFile)
	}
	if Script != script || !strings.Contains(string(TemplateJSON), `"name": "Prefect (ue-prefect)"`) {
		t.Error("embedded copies differ from the files on disk")
	}
	if !strings.HasPrefix(script, "#!/bin/sh\n") {
		t.Error("script must start with #!/bin/sh")
	}
}

// Exit-code processing "Success Exitcode Range" with exitCodes: the listed
// codes/ranges succeed, every other code fails.
func successByRange(spec string, code int) bool {
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil {
				continue
			}
		}
		if code >= a && code <= b {
			return true
		}
	}
	return false
}

func TestExitCodeProcessing(t *testing.T) {
	tmpl, _ := load(t)
	for _, tc := range []struct {
		code    int
		success bool
		meaning string
	}{
		{0, true, "success"},
		{1, false, "execution failed"},
		{20, false, "data validation error"},
		{40, false, "polling timeout"},
		{130, false, "interrupted by SIGINT"},
		{143, false, "interrupted by SIGTERM"},
		{127, false, "binary not found by exec"},
	} {
		if got := successByRange(tmpl.ExitCodes, tc.code); got != tc.success {
			t.Errorf("exit %d (%s): success=%v, want %v", tc.code, tc.meaning, got, tc.success)
		}
	}
}

var (
	nameRE     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	mappingRE  = regexp.MustCompile(`^(Text|Large Text|Integer|Boolean|Choice|Credential|Script|Array|Float) Field ([0-9]+)$`)
	fieldRefRE = regexp.MustCompile(`\$\{ops_` + prefix + `_([A-Za-z0-9_]+)\}`)
	anyRefRE   = regexp.MustCompile(`\$\{[^}]*\}`)
)

// Maximum slot number per field kind (UAC template field slots).
var slotMax = map[string]int{
	"Text": 20, "Large Text": 4, "Integer": 10, "Boolean": 15, "Choice": 15,
	"Credential": 6, "Script": 4, "Array": 4, "Float": 4,
}

func TestFieldDefinitions(t *testing.T) {
	tmpl, _ := load(t)
	want := []struct {
		name, fieldType, mappingKind, label string
		def                                 string // "" = no default
	}{
		{"action", "Choice", "Choice", "Action", "Launch Flow Run"},
		{"target", "Choice", "Choice", "Prefect Target", "Prefect Cloud"},
		{"credentials", "Credential", "Credential", "Credentials", ""},
		{"api_url", "Text", "Text", "API URL", ""},
		{"workspace", "Text", "Text", "Workspace ID or Name", ""},
		{"deployment", "Text", "Text", "Deployment ID or Name", ""},
		{"flow_run_name", "Text", "Text", "Flow Run Name", ""},
		{"additional_params", "Boolean", "Boolean", "Additional Optional Parameters", "false"},
		{"parameters", "Text", "Large Text", "Parameters (JSON)", `{"parameters": {}, "context": {}, "job_variables": {}, "tags": []}`},
		{"wait", "Boolean", "Boolean", "Wait for Success or Failure", "false"},
		{"polling_interval", "Integer", "Integer", "Polling Interval (sec)", "60"},
		{"max_polls", "Integer", "Integer", "Max Number of Polls", ""},
		{"output_options", "Choice", "Choice", "Extension Output Options", "Include Flow Run Metadata"},
		{"cancel_on_cancel", "Boolean", "Boolean", "Cancel Flow Run on Task Cancel", "false"},
		{"stream_logs", "Boolean", "Boolean", "Stream Flow Run Logs", "false"},
		{"binary_path", "Text", "Text", "ue-prefect Binary", "ue-prefect"},
	}
	if len(tmpl.Fields) != len(want) {
		t.Fatalf("template has %d fields, want %d", len(tmpl.Fields), len(want))
	}
	byName := map[string]field{}
	mappings := map[string]string{}
	sysIDs := map[string]bool{}
	for i, f := range tmpl.Fields {
		if f.Sequence != i {
			t.Errorf("field %s: sequence %d, want %d", f.Name, f.Sequence, i)
		}
		if len(f.Name) > 28 || !nameRE.MatchString(f.Name) {
			t.Errorf("field name %q: must match %s and be at most 28 characters", f.Name, nameRE)
		}
		if _, dup := byName[strings.ToLower(f.Name)]; dup {
			t.Errorf("duplicate field name %q (names are case-insensitive)", f.Name)
		}
		byName[strings.ToLower(f.Name)] = f
		m := mappingRE.FindStringSubmatch(f.FieldMapping)
		if m == nil {
			t.Errorf("field %s: bad fieldMapping %q", f.Name, f.FieldMapping)
			continue
		}
		if n, _ := strconv.Atoi(m[2]); n < 1 || n > slotMax[m[1]] {
			t.Errorf("field %s: slot %q out of range", f.Name, f.FieldMapping)
		}
		if other, dup := mappings[f.FieldMapping]; dup {
			t.Errorf("fields %s and %s share %q", other, f.Name, f.FieldMapping)
		}
		mappings[f.FieldMapping] = f.Name
		if sysIDs[f.SysID] || len(f.SysID) != 32 {
			t.Errorf("field %s: sysId %q missing, malformed or duplicated", f.Name, f.SysID)
		}
		sysIDs[f.SysID] = true
	}
	for _, w := range want {
		f, ok := byName[w.name]
		if !ok {
			t.Errorf("missing field %s", w.name)
			continue
		}
		if f.FieldType != w.fieldType || !strings.HasPrefix(f.FieldMapping, w.mappingKind+" Field ") || f.Label != w.label {
			t.Errorf("field %s = (%s, %s, %q), want (%s, %s Field n, %q)",
				w.name, f.FieldType, f.FieldMapping, f.Label, w.fieldType, w.mappingKind, w.label)
		}
		got := ""
		if f.FieldValue != nil {
			got = *f.FieldValue
		}
		if got != w.def {
			t.Errorf("field %s default = %q, want %q", w.name, got, w.def)
		}
	}
	// The default of Parameters (JSON) must itself be a valid JSON object.
	if p := byName["parameters"]; p.FieldValue != nil {
		var obj map[string]any
		if err := json.Unmarshal([]byte(*p.FieldValue), &obj); err != nil {
			t.Errorf("parameters default is not a JSON object: %v", err)
		}
	}
}

func TestChoicesAndConditions(t *testing.T) {
	tmpl, _ := load(t)
	byMapping := map[string]field{}
	for _, f := range tmpl.Fields {
		byMapping[f.FieldMapping] = f
	}
	wantChoices := map[string][]string{
		"action":         {"Launch Flow Run"},
		"target":         {"Prefect Cloud", "Self-hosted Prefect server"},
		"output_options": {"Include Flow Run Metadata", "No Metadata"},
	}
	for _, f := range tmpl.Fields {
		if f.FieldType == "Choice" {
			var got []string
			for _, c := range f.Choices {
				got = append(got, c.FieldValue)
				if !c.UseFieldValueForLabel {
					t.Errorf("choice %s/%q: value and label should be the same text", f.Name, c.FieldValue)
				}
			}
			if strings.Join(got, "|") != strings.Join(wantChoices[f.Name], "|") {
				t.Errorf("choices of %s = %q, want %q", f.Name, got, wantChoices[f.Name])
			}
			if f.FieldValue != nil && !contains(got, *f.FieldValue) {
				t.Errorf("default of %s (%q) is not one of its choices", f.Name, *f.FieldValue)
			}
		}
		for _, cond := range []struct {
			kind         string
			target, vals *string
		}{{"showIf", f.ShowIfField, f.ShowIfFieldValue}, {"requireIf", f.RequireIfField, f.RequireIfFieldVal}} {
			if cond.target == nil {
				continue
			}
			ref, ok := byMapping[*cond.target]
			if !ok {
				t.Errorf("field %s: %s refers to unknown slot %q", f.Name, cond.kind, *cond.target)
				continue
			}
			if cond.vals == nil {
				t.Errorf("field %s: %s without a value", f.Name, cond.kind)
				continue
			}
			for _, v := range strings.Split(*cond.vals, ",") {
				switch ref.FieldType {
				case "Boolean":
					if v != "true" && v != "false" {
						t.Errorf("field %s: %s value %q for a checkbox", f.Name, cond.kind, v)
					}
				case "Choice":
					var vals []string
					for _, c := range ref.Choices {
						vals = append(vals, c.FieldValue)
					}
					if !contains(vals, v) {
						t.Errorf("field %s: %s value %q is not a choice of %s", f.Name, cond.kind, v, ref.Name)
					}
				}
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestScriptReferencesMatchFields(t *testing.T) {
	tmpl, script := load(t)
	inTemplate := map[string]bool{}
	for _, f := range tmpl.Fields {
		inTemplate[f.Name] = true
	}
	inScript := map[string]bool{}
	for _, m := range fieldRefRE.FindAllStringSubmatch(script, -1) {
		inScript[m[1]] = true
	}
	for name := range inScript {
		if !inTemplate[name] {
			t.Errorf("script uses ${ops_%s_%s} but the template has no field %q", prefix, name, name)
		}
	}
	for name := range inTemplate {
		if !inScript[name] {
			t.Errorf("template field %q is never used by the script", name)
		}
	}
}

// Every dollar-brace sequence in the script must be a Controller reference we
// vouch for; shell variables are written as $name so the Controller never
// mistakes them for its own variables.
func TestScriptUsesOnlyKnownControllerReferences(t *testing.T) {
	_, script := load(t)
	// anyRefRE stops at the first closing brace, so a credential function is
	// seen up to the end of its nested field reference.
	allowed := regexp.MustCompile(`^\$\{(ops_` + prefix + `_[A-Za-z0-9_]+|ops_task_id)\}$` +
		`|^\$\{_credential(User|Pwd)\('\$\{ops_` + prefix + `_credentials\}$`)
	for _, ref := range anyRefRE.FindAllString(script, -1) {
		if !allowed.MatchString(ref) {
			t.Errorf("unexpected reference %q in script", ref)
		}
	}
}

// resolve imitates the Controller: it substitutes the template's variables and
// credential functions in the script text.
func resolve(script string, fields map[string]string, user, pwd, taskID string) string {
	cred := "${ops_" + prefix + "_credentials}"
	script = strings.ReplaceAll(script, "${_credentialUser('"+cred+"')}", user)
	script = strings.ReplaceAll(script, "${_credentialPwd('"+cred+"')}", pwd)
	script = strings.ReplaceAll(script, "${ops_task_id}", taskID)
	return fieldRefRE.ReplaceAllStringFunc(script, func(ref string) string {
		return fields[fieldRefRE.FindStringSubmatch(ref)[1]]
	})
}

// fakeBinary records its arguments and the contract environment, and, when
// FAKE_FINISH=1, writes the extension-output file like ue-prefect does when an
// attempt ends.
const fakeBinary = `#!/bin/sh
{
  printf 'ARGS=%s\n' "$*"
  for v in PREFECT_API_KEY PREFECT_API_AUTH_STRING PREFECT_API_URL UE_PREFECT_TARGET UE_PREFECT_WORKSPACE \
           UE_PREFECT_DEPLOYMENT UE_PREFECT_FLOW_RUN_NAME UE_PREFECT_PARAMETERS UE_PREFECT_WAIT \
           UE_PREFECT_POLL_INTERVAL UE_PREFECT_MAX_POLLS UE_PREFECT_INCLUDE_METADATA \
           UE_PREFECT_IDEMPOTENCY_KEY UE_PREFECT_CANCEL_ON_INTERRUPT; do
    if eval "[ -n \"\$$v\" ]"; then eval "printf '%s=%s\n' $v \"\$$v\""; else printf '%s=<unset>\n' $v; fi
  done
} >"$FAKE_RECORD"
if [ "$FAKE_FINISH" = 1 ]; then echo '{"exit_code": 0}' >"$UE_PREFECT_EXTENSION_OUTPUT"; fi
echo '{"exit_code": 0}'
`

func TestScriptBehaviour(t *testing.T) {
	shells := []string{}
	for _, sh := range []string{"/bin/sh", "/bin/bash", "/usr/bin/dash"} {
		if _, err := os.Stat(sh); err == nil {
			shells = append(shells, sh)
		}
	}
	if len(shells) == 0 {
		t.Skip("no POSIX shell available")
	}
	_, script := load(t)
	tricky := `p@ss'w"o$rd` + "`x`\\n)"
	params := `{"parameters": {"msg": "it's $HOME (not) ` + "`expanded`" + `"}, "context": {}, "job_variables": {}, "tags": ["a"]}`

	base := func() map[string]string {
		return map[string]string{
			"action": "Launch Flow Run", "target": "Prefect Cloud", "credentials": "prefect-cred",
			"api_url": "", "workspace": "acme/prod", "deployment": "etl/daily", "flow_run_name": "",
			"additional_params": "false", "parameters": params, "wait": "true", "polling_interval": "60",
			"max_polls": "", "output_options": "Include Flow Run Metadata", "cancel_on_cancel": "true",
		}
	}
	type run struct {
		finish bool              // fake binary writes the extension-output file
		want   map[string]string // expected recorded variables
	}
	cases := []struct {
		name     string
		edit     func(map[string]string)
		user     string
		pwd      string
		taskID   string
		runs     []run
		wantExit int
	}{
		{
			name: "cloud, first attempt then a deliberate re-run",
			user: "ignored", pwd: tricky, taskID: "1a2b3c",
			runs: []run{
				{finish: true, want: map[string]string{
					"ARGS": "launch", "PREFECT_API_KEY": tricky, "PREFECT_API_AUTH_STRING": "<unset>",
					"UE_PREFECT_TARGET": "cloud", "UE_PREFECT_WORKSPACE": "acme/prod", "UE_PREFECT_DEPLOYMENT": "etl/daily",
					"UE_PREFECT_PARAMETERS": "<unset>", "UE_PREFECT_WAIT": "true", "UE_PREFECT_POLL_INTERVAL": "60",
					"UE_PREFECT_MAX_POLLS": "<unset>", "UE_PREFECT_INCLUDE_METADATA": "true",
					"UE_PREFECT_IDEMPOTENCY_KEY": "uac-1a2b3c-a1", "UE_PREFECT_CANCEL_ON_INTERRUPT": "true",
				}},
				{finish: true, want: map[string]string{"UE_PREFECT_IDEMPOTENCY_KEY": "uac-1a2b3c-a2"}},
			},
		},
		{
			name: "agent restart mid-attempt re-attaches with the same key",
			pwd:  "k", taskID: "feed01",
			runs: []run{
				{finish: false, want: map[string]string{"UE_PREFECT_IDEMPOTENCY_KEY": "uac-feed01-a1"}},
				{finish: false, want: map[string]string{"UE_PREFECT_IDEMPOTENCY_KEY": "uac-feed01-a1"}},
				{finish: true, want: map[string]string{"UE_PREFECT_IDEMPOTENCY_KEY": "uac-feed01-a1"}},
				{finish: true, want: map[string]string{"UE_PREFECT_IDEMPOTENCY_KEY": "uac-feed01-a2"}},
			},
		},
		{
			name: "self-hosted with basic auth, parameters, labels as values",
			edit: func(m map[string]string) {
				m["target"] = "Self-hosted Prefect server"
				m["api_url"] = "http://prefect:4200/api"
				m["additional_params"] = "true"
				m["output_options"] = "No Metadata"
				m["wait"] = "false"
				m["max_polls"] = "5"
				m["flow_run_name"] = "nightly $(date)"
			},
			user: "admin", pwd: "s3cret:x", taskID: "abc",
			runs: []run{{finish: true, want: map[string]string{
				"PREFECT_API_KEY": "<unset>", "PREFECT_API_AUTH_STRING": "admin:s3cret:x",
				"PREFECT_API_URL": "http://prefect:4200/api", "UE_PREFECT_TARGET": "server",
				"UE_PREFECT_WORKSPACE": "<unset>", "UE_PREFECT_PARAMETERS": params, "UE_PREFECT_WAIT": "false",
				"UE_PREFECT_MAX_POLLS": "5", "UE_PREFECT_INCLUDE_METADATA": "false",
				"UE_PREFECT_FLOW_RUN_NAME": "nightly $(date)",
			}}},
		},
		{
			name: "self-hosted without credentials, unresolved task id",
			edit: func(m map[string]string) {
				m["target"] = "Self-hosted Prefect server"
				m["api_url"] = "http://localhost:4200/api"
			},
			user: "", pwd: "", taskID: "${ops_task_id}",
			runs: []run{{finish: true, want: map[string]string{
				"PREFECT_API_KEY": "<unset>", "PREFECT_API_AUTH_STRING": "<unset>",
				"UE_PREFECT_IDEMPOTENCY_KEY": "<unset>",
			}}},
		},
		{
			name:     "unsupported action fails validation before launching",
			edit:     func(m map[string]string) { m["action"] = "Delete Everything" },
			pwd:      "k",
			taskID:   "zz",
			runs:     []run{{}},
			wantExit: 20,
		},
	}
	for _, sh := range shells {
		for _, tc := range cases {
			t.Run(filepath.Base(sh)+"/"+tc.name, func(t *testing.T) {
				dir := t.TempDir()
				bin := filepath.Join(dir, "ue-prefect")
				if err := os.WriteFile(bin, []byte(fakeBinary), 0o755); err != nil {
					t.Fatal(err)
				}
				fields := base()
				if tc.edit != nil {
					tc.edit(fields)
				}
				fields["binary_path"] = bin
				body := resolve(script, fields, tc.user, tc.pwd, tc.taskID)
				scriptPath := filepath.Join(dir, "task.sh")
				if err := os.WriteFile(scriptPath, []byte(body), 0o700); err != nil {
					t.Fatal(err)
				}
				record := filepath.Join(dir, "record")
				for i, r := range tc.runs {
					os.Remove(record)
					cmd := exec.Command(sh, scriptPath)
					cmd.Env = []string{
						"PATH=/usr/bin:/bin",
						"UE_PREFECT_STATE_DIR=" + filepath.Join(dir, "state"),
						"FAKE_RECORD=" + record,
						"FAKE_FINISH=" + map[bool]string{true: "1", false: "0"}[r.finish],
						"PREFECT_API_KEY=inherited-must-not-leak",
					}
					var stdout, stderr bytes.Buffer
					cmd.Stdout, cmd.Stderr = &stdout, &stderr
					err := cmd.Run()
					code := 0
					if ee, ok := err.(*exec.ExitError); ok {
						code = ee.ExitCode()
					} else if err != nil {
						t.Fatal(err)
					}
					if code != tc.wantExit {
						t.Fatalf("run %d: exit %d, want %d; stderr:\n%s", i, code, tc.wantExit, stderr.String())
					}
					var doc map[string]any
					if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
						t.Fatalf("run %d: stdout is not one JSON document: %v\n%s", i, err, stdout.String())
					}
					if tc.wantExit != 0 {
						if doc["exit_code"] != float64(tc.wantExit) {
							t.Errorf("run %d: exit_code in output = %v", i, doc["exit_code"])
						}
						continue
					}
					got := readRecord(t, record)
					for k, want := range r.want {
						if got[k] != want {
							t.Errorf("run %d: %s = %q, want %q", i, k, got[k], want)
						}
					}
					if strings.Contains(got["ARGS"], tc.pwd) && tc.pwd != "" {
						t.Errorf("run %d: secret passed on the command line", i)
					}
				}
			})
		}
	}
}

// readRecord parses the fake binary's NAME=value lines; a value may span
// lines, so a line continues the previous value unless it starts a known name.
func readRecord(t *testing.T, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("ue-prefect was not run: %v", err)
	}
	keyRE := regexp.MustCompile(`^(ARGS|PREFECT_[A-Z_]+|UE_PREFECT_[A-Z_]+)=`)
	out := map[string]string{}
	var last string
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	for _, line := range lines {
		if m := keyRE.FindStringSubmatch(line); m != nil {
			last = m[1]
			out[last] = line[len(m[0]):]
			continue
		}
		out[last] += "\n" + line
	}
	return out
}
