package flowrun

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"github.com/ue-prefect/ue-prefect/abi"
)

// Limits on inputs. They keep hostile input from costing memory or time.
const (
	// MaxParametersBytes caps the Parameters (JSON) field. Prefect's own
	// limit for parameters is 512 KiB; the other keys get the rest.
	MaxParametersBytes = 1 << 20
	// MaxJSONDepth caps nesting in any JSON the machine reads.
	MaxJSONDepth = 64
	// MaxFieldBytes caps every other text field.
	MaxFieldBytes = 4096
)

// Config is the validated form of abi.Fields. Durations are in
// milliseconds, the machine's one unit of time; the fields give seconds.
type Config struct {
	Workspace         string    `json:"workspace,omitempty"`
	Account           string    `json:"account,omitempty"`
	Deployment        string    `json:"deployment,omitempty"`
	FlowRunName       string    `json:"flow_run_name,omitempty"`
	Parameters        RawObject `json:"parameters,omitempty"`
	Context           RawObject `json:"context,omitempty"`
	JobVariables      RawObject `json:"job_variables,omitempty"`
	Tags              []string  `json:"tags,omitempty"`
	Wait              bool      `json:"wait"`
	PollInterval      int64     `json:"poll_interval_ms"`
	MaxPolls          int64     `json:"max_polls"`
	IncludeMetadata   bool      `json:"include_metadata"`
	IdempotencyKey    string    `json:"idempotency_key,omitempty"` // the user's key, without the prefix the create adds
	CancelOnInterrupt bool      `json:"cancel_on_interrupt"`
	CancelGrace       int64     `json:"cancel_grace_ms"`
	OutageBudget      int64     `json:"outage_budget_ms"`
	FlowRunID         string    `json:"flow_run_id,omitempty"`
	StreamLogs        bool      `json:"stream_logs,omitempty"`
	StartAt           string    `json:"start_at,omitempty"`
	StartDeadline     int64     `json:"start_deadline_ms,omitempty"`
	CancelOnDeadline  bool      `json:"cancel_on_deadline,omitempty"`
}

// RawObject is a JSON object kept as text.
type RawObject string

// MarshalJSON emits the object as is.
func (r RawObject) MarshalJSON() ([]byte, error) {
	if r == "" {
		return []byte("null"), nil
	}
	return []byte(r), nil
}

// UnmarshalJSON keeps the object as is.
func (r *RawObject) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*r = ""
		return nil
	}
	*r = RawObject(b)
	return nil
}

// ParseFields validates every field of f for action and returns the
// configuration, or the first problem as an *abi.Error naming the field.
func ParseFields(action string, f abi.Fields) (Config, *abi.Error) {
	c := Config{
		PollInterval:    abi.DefaultPollInterval * second,
		IncludeMetadata: true,
		CancelGrace:     abi.DefaultCancelGrace * second,
		OutageBudget:    abi.DefaultOutageBudget * second,
	}
	var err *abi.Error
	text := func(name, v string) string {
		if err != nil {
			return ""
		}
		v = strings.TrimSpace(v)
		if e := checkText(name, v); e != nil {
			err = e
		}
		return v
	}
	c.Workspace = text("workspace", f.Workspace)
	c.Account = text("account", f.Account)
	c.Deployment = text("deployment", f.Deployment)
	c.FlowRunName = text("flow_run_name", f.FlowRunName)
	c.IdempotencyKey = text("idempotency_key", f.IdempotencyKey)
	c.FlowRunID = text("flow_run_id", f.FlowRunID)
	if err != nil {
		return c, err
	}
	boolean := func(name, v string, def bool) bool {
		if err != nil {
			return def
		}
		b, e := parseBool(name, v, def)
		if e != nil {
			err = e
		}
		return b
	}
	c.Wait = boolean("wait", f.Wait, false)
	c.CancelOnInterrupt = boolean("cancel_on_interrupt", f.CancelOnInterrupt, false)
	c.StreamLogs = boolean("stream_logs", f.StreamLogs, false)
	if err != nil {
		return c, err
	}
	if c.IncludeMetadata, err = parseMetadataOption(f.IncludeMetadata); err != nil {
		return c, err
	}
	// abi holds the integer fields' defaults and ranges, in seconds.
	integer := func(name, v string) int64 {
		n, e := abi.ParseInt(name, v) // the default when invalid
		if err == nil && e != nil {
			err = e
		}
		return n
	}
	c.PollInterval = integer("poll_interval", f.PollInterval) * second
	c.MaxPolls = integer("max_polls", f.MaxPolls)
	c.CancelGrace = integer("cancel_grace", f.CancelGrace) * second
	c.OutageBudget = integer("outage_budget", f.OutageBudget) * second
	if err != nil {
		return c, err
	}
	if err = parseParameters(&c, f.Parameters); err != nil {
		return c, err
	}
	if err = parseStartFields(&c, f); err != nil {
		return c, err
	}

	switch action {
	case abi.ActionLaunchFlowRun:
		if c.FlowRunID != "" {
			if !IsUUID(c.FlowRunID) {
				return c, abi.Errorf(abi.CodeInvalidInput, "flow_run_id", "%q is not a flow run id (a UUID)", c.FlowRunID)
			}
		} else if c.Deployment == "" {
			return c, abi.Errorf(abi.CodeInvalidInput, "deployment", "required: give a deployment id, flow-name/deployment-name, or a deployment name")
		}
	case abi.ActionListWorkspaces, abi.ActionListDeployments:
	default:
		return c, abi.Errorf(abi.CodeInvalidInput, "action", "unknown action %q; expected %s, %s or %s",
			action, abi.ActionLaunchFlowRun, abi.ActionListWorkspaces, abi.ActionListDeployments)
	}
	if c.Deployment != "" {
		if e := checkDeploymentRef(c.Deployment); e != nil {
			return c, e
		}
	}
	if c.Workspace != "" && strings.Count(c.Workspace, "/") > 1 {
		return c, abi.Errorf(abi.CodeInvalidInput, "workspace", "%q has more than one '/'; expected a workspace id, a name, or account-handle/workspace-handle", c.Workspace)
	}
	if strings.HasPrefix(c.Workspace, "/") || strings.HasSuffix(c.Workspace, "/") {
		return c, abi.Errorf(abi.CodeInvalidInput, "workspace", "%q: expected account-handle/workspace-handle with both parts", c.Workspace)
	}
	return c, nil
}

// bannedNameChars are the characters Prefect forbids in flow and deployment
// names (prefect/types/names.py BANNED_CHARACTERS).
const bannedNameChars = "/%&><"

func checkDeploymentRef(ref string) *abi.Error {
	if IsUUID(ref) {
		return nil
	}
	flow, dep, ok := strings.Cut(ref, "/")
	if !ok {
		dep = flow
		flow = ""
	}
	if ok && (flow == "" || dep == "") {
		return abi.Errorf(abi.CodeInvalidInput, "deployment", "%q: expected flow-name/deployment-name with both parts", ref)
	}
	for _, part := range []string{flow, dep} {
		if i := strings.IndexAny(part, bannedNameChars); i >= 0 {
			return abi.Errorf(abi.CodeInvalidInput, "deployment", "%q: Prefect names cannot contain %q", ref, part[i])
		}
		if part == "." || part == ".." {
			return abi.Errorf(abi.CodeInvalidInput, "deployment", "%q: %q cannot be addressed by name; give the deployment id", ref, part)
		}
	}
	return nil
}

func checkText(name, v string) *abi.Error {
	if len(v) > MaxFieldBytes {
		return abi.Errorf(abi.CodeInvalidInput, name, "too long (%d bytes; at most %d)", len(v), MaxFieldBytes)
	}
	if !utf8.ValidString(v) {
		return abi.Errorf(abi.CodeInvalidInput, name, "not valid UTF-8")
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return abi.Errorf(abi.CodeInvalidInput, name, "contains a control character (%U)", r)
		}
	}
	return nil
}

func parseBool(name, v string, def bool) (bool, *abi.Error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "":
		return def, nil
	case "true", "yes", "y", "1", "on":
		return true, nil
	case "false", "no", "n", "0", "off":
		return false, nil
	}
	return def, abi.Errorf(abi.CodeInvalidInput, name, "%q is not a boolean (true or false)", clip(v))
}

func parseMetadataOption(v string) (bool, *abi.Error) {
	s := strings.ToLower(strings.TrimSpace(v))
	switch {
	case s == "":
		return true, nil
	case strings.Contains(s, "no metadata"), s == "none":
		return false, nil
	case strings.Contains(s, "metadata"):
		return true, nil
	}
	b, err := parseBool("include_metadata", v, true)
	if err != nil {
		err.Message = `"` + clip(v) + `" is not an option; expected "Include Flow Run Metadata" or "No Metadata" (or true/false)`
	}
	return b, err
}

// parametersKeys are the keys the Parameters (JSON) object may hold.
var parametersKeys = []string{"parameters", "context", "job_variables", "tags"}

func parseParameters(c *Config, v string) *abi.Error {
	const field = "parameters"
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	if len(v) > MaxParametersBytes {
		return abi.Errorf(abi.CodeInvalidInput, field, "too large (%d bytes; at most %d)", len(v), MaxParametersBytes)
	}
	if e := CheckJSON(v, MaxJSONDepth); e != "" {
		return abi.Errorf(abi.CodeInvalidInput, field, "not valid JSON: %s", e)
	}
	root := gjson.Parse(v)
	if !root.IsObject() {
		return abi.Errorf(abi.CodeInvalidInput, field, `must be a JSON object such as {"parameters": {}, "tags": []}`)
	}
	var err *abi.Error
	seen := map[string]bool{}
	root.ForEach(func(k, val gjson.Result) bool {
		key := k.String()
		if seen[key] {
			err = abi.Errorf(abi.CodeInvalidInput, field, "key %q appears twice", key)
			return false
		}
		seen[key] = true
		if !slices.Contains(parametersKeys, key) {
			err = abi.Errorf(abi.CodeInvalidInput, field, "unknown key %q; expected %s", key, strings.Join(parametersKeys, ", "))
			return false
		}
		if val.Type == gjson.Null {
			return true
		}
		switch key {
		case "parameters", "context", "job_variables":
			if !val.IsObject() {
				err = abi.Errorf(abi.CodeInvalidInput, field, "%q must be a JSON object, not %s", key, jsonKind(val))
				return false
			}
			obj := RawObject(val.Raw)
			switch key {
			case "parameters":
				c.Parameters = obj
			case "context":
				c.Context = obj
			default:
				c.JobVariables = obj
			}
		case "tags":
			if !val.IsArray() {
				err = abi.Errorf(abi.CodeInvalidInput, field, `"tags" must be an array of strings, not %s`, jsonKind(val))
				return false
			}
			tags := []string{}
			val.ForEach(func(_, t gjson.Result) bool {
				if t.Type != gjson.String || strings.TrimSpace(t.Str) == "" {
					err = abi.Errorf(abi.CodeInvalidInput, field, `"tags" must hold non-empty strings; found %s`, clip(t.Raw))
					return false
				}
				tags = append(tags, t.Str)
				return true
			})
			c.Tags = tags
		}
		return err == nil
	})
	return err
}

func jsonKind(v gjson.Result) string {
	switch {
	case v.IsObject():
		return "an object"
	case v.IsArray():
		return "an array"
	case v.Type == gjson.String:
		return "a string"
	case v.Type == gjson.Number:
		return "a number"
	case v.Type == gjson.True, v.Type == gjson.False:
		return "a boolean"
	}
	return "null"
}

// clip shortens v for a message.
func clip(v string) string { return abi.Clip(v) }

// clipTo shortens v to at most max bytes and an ellipsis.
func clipTo(v string, max int) string { return abi.ClipTo(v, max) }

// IsUUID reports whether s is a UUID in its canonical 8-4-4-4-12 hex form.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
