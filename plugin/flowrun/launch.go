package flowrun

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/ue-prefect/ue-prefect/abi"
)

// Launching: create a flow run of the resolved deployment, idempotently,
// then end or poll it (poll.go).

// launchState is the create and what it learnt.
type launchState struct {
	// Key is the idempotency key sent to Prefect,
	// ue-prefect:<deployment id>:<the user's key or the invocation id>.
	// The user's key alone is Config.IdempotencyKey.
	Key  string `json:"key,omitempty"`
	Sent bool   `json:"sent,omitempty"` // a create went out
	// Unsure is set when a create attempt got no answer at all, or a
	// gateway's 502/504 (so it may have created the run); only then is a
	// 200 our own lost answer.
	Unsure bool `json:"unsure,omitempty"`
	// Reattached: the flow run was not created by this launch. It existed
	// already (a 200 to the create), or the user named it (flow_run_id).
	Reattached bool `json:"reattached,omitempty"`
	// OtherInputs lists the inputs that differ when the run the key
	// returned was launched earlier with other inputs.
	OtherInputs []string `json:"other_inputs,omitempty"`
}

// launch launches the resolved deployment.
func (m *Machine) launch() {
	d := m.s.Resolve.Deployment
	m.logf(abi.LevelInfo, "Deployment: %s (%s)", d.fullName(), d.ID)
	key := m.s.Cfg.IdempotencyKey
	if key == "" {
		key = m.s.InvocationID
	}
	// Prefect scopes idempotency keys per flow; the deployment id keeps two
	// deployments of one flow from colliding; a scheduled start is part of
	// the identity (schedule.go). A key given back as Prefect stores it is
	// used as it is.
	m.s.Launch.Key = "ue-prefect:" + d.ID + ":" + key + m.startIdentity()
	if prefix := "ue-prefect:" + d.ID + ":"; strings.HasPrefix(strings.ToLower(key), prefix) {
		m.s.Launch.Key = prefix + key[len(prefix):]
	}
	m.progress()
	m.sendCreate()
}

func (m *Machine) sendCreate() {
	c := m.s.Cfg
	body := map[string]any{"idempotency_key": m.s.Launch.Key}
	if c.FlowRunName != "" {
		body["name"] = c.FlowRunName
	}
	if c.Parameters != "" {
		body["parameters"] = c.Parameters
	}
	if c.Context != "" {
		body["context"] = c.Context
	}
	if c.JobVariables != "" {
		body["job_variables"] = c.JobVariables
	}
	if c.Tags != nil {
		body["tags"] = c.Tags
	}
	m.scheduleCreate(body)
	path := m.prefix() + "/deployments/" + m.s.Resolve.Deployment.ID + "/create_flow_run"
	if m.send(opCreate, abi.HTTPRequest{Method: "POST", Path: path, Body: mustJSON(body)}) {
		m.s.Launch.Sent = true
	}
}

func (m *Machine) onCreate(r *abi.HTTPResponse) {
	if r.Status != 200 && r.Status != 201 {
		m.fail(m.createError(r))
		return
	}
	if _, bad := m.parseRun(r); bad != "" {
		m.badResponse(bad) // repeated, as the run may exist (http.go)
		return
	}
	m.markCreated()
	if !m.readRun(r) {
		return
	}
	if r.Status == 200 {
		m.s.Launch.OtherInputs = m.otherInputs(gjson.ParseBytes(r.Body))
		if len(m.s.Launch.OtherInputs) > 0 {
			m.s.Launch.Unsure = false // not our own answer, whatever was lost
			m.logf(abi.LevelWarn, "Idempotency Key %q launched flow run %s earlier with other inputs (%s differ): Prefect returns that run, not a new one, and this task follows it; give another Idempotency Key to launch with these inputs",
				m.userKey(), m.runLabel(), strings.Join(m.s.Launch.OtherInputs, ", "))
		}
	}
	switch {
	case r.Status == 201:
		m.logf(abi.LevelInfo, "Created flow run %s, %s: %s", m.runLabel(), m.s.Run.StateName, m.runURL())
	case m.s.Launch.Unsure:
		m.logf(abi.LevelInfo, "Created flow run %s, %s (the answer to an earlier attempt was lost): %s", m.runLabel(), m.s.Run.StateName, m.runURL())
	default:
		m.s.Launch.Reattached = true
		m.logf(abi.LevelInfo, "Re-attached to flow run %s, %s, created earlier with Idempotency Key %q: %s", m.runLabel(), m.s.Run.StateName, m.userKey(), m.runURL())
	}
	m.logScheduled()
	if !m.s.Cfg.Wait {
		m.finishLaunched()
		return
	}
	if IsTerminal(m.s.Run.StateType) {
		m.finishByState()
		return
	}
	m.sleepPoll()
}

// otherInputs compares a flow run an idempotency key returned with the
// run this task would have created, as Prefect creates it: parameters are
// the deployment's defaults updated with ours, tags the deployment's and
// ours; a name, context and job variables count where this task gives
// them. It returns the inputs that differ.
func (m *Machine) otherInputs(run gjson.Result) []string {
	c := m.s.Cfg
	var diff []string
	if c.FlowRunName != "" && run.Get("name").String() != c.FlowRunName {
		diff = append(diff, "flow_run_name")
	}
	if p := run.Get("parameters"); p.IsObject() {
		want := map[string]any{}
		_ = json.Unmarshal([]byte(m.s.Resolve.DepParams), &want)
		ours := map[string]any{}
		_ = json.Unmarshal([]byte(c.Parameters), &ours)
		for k, v := range ours {
			want[k] = v
		}
		got := map[string]any{}
		_ = json.Unmarshal([]byte(p.Raw), &got)
		for k, v := range want {
			if obj, ok := v.(map[string]any); ok && obj["__prefect_kind"] != nil {
				delete(want, k) // hydrated by the server: not comparable
				delete(got, k)
			}
		}
		if !reflect.DeepEqual(want, got) {
			diff = append(diff, "parameters")
		}
	}
	if t := run.Get("tags"); t.IsArray() {
		var got []string
		t.ForEach(func(_, v gjson.Result) bool { got = append(got, v.String()); return true })
		if !sameTags(append(slices.Clone(m.s.Resolve.DepTags), c.Tags...), got) {
			diff = append(diff, "tags")
		}
	}
	if c.Context != "" && run.Get("context").IsObject() && !sameJSON(c.Context, RawObject(run.Get("context").Raw)) {
		diff = append(diff, "context")
	}
	if c.JobVariables != "" && run.Get("job_variables").IsObject() && !sameJSON(c.JobVariables, RawObject(run.Get("job_variables").Raw)) {
		diff = append(diff, "job_variables")
	}
	return diff
}

// createError is the failure a create's error answer means. A 404 is the
// deployment's. A 400, 409 or 422 rejects the request, and the answer
// says what it rejected; Prefect (2.20 and 3.x alike) answers
//   - 409 "Error creating flow run: Validation failed for field …" when
//     the parameters break an enforced parameter schema, and 409
//     "… Cannot update parameters because parameter schema enforcement is
//     enabled …" when the deployment has no usable schema;
//   - 422 "Error creating flow run: Validation failed for field …" when the
//     job variables, over the deployment's and the work pool's defaults,
//     break the work pool's base job template;
//   - 400 "Error hydrating flow run parameters: …";
//   - 422 with exception_detail locations ("body.job_variables") for a
//     body that does not parse.
//
// The parameters and the job variables are both keys of the Parameters
// (JSON) field, so either is exit 20 on that field, the message naming
// the key; anything else (the deployment's schema has circular
// references, the work pool's variables schema is invalid, an integrity
// conflict) is exit 20 on no field, with the server's detail.
func (m *Machine) createError(r *abi.HTTPResponse) *abi.Error {
	switch r.Status {
	case 404:
		return m.statusError(r, "deployment")
	case 400, 409, 422:
	default:
		return m.statusError(r, "")
	}
	var key string
	b := gjson.ParseBytes(r.Body)
	detail := b.Get("detail").String()
	lower := strings.ToLower(detail)
	switch {
	case strings.HasPrefix(detail, "Error creating flow run:") && r.Status == 409:
		key = "parameters"
	case strings.HasPrefix(detail, "Error creating flow run:") && r.Status == 422:
		key = "job_variables"
	case strings.Contains(lower, "job variable") || strings.Contains(lower, "job_variables"):
		key = "job_variables"
	case strings.Contains(lower, "parameter"):
		key = "parameters"
	}
	b.Get("exception_detail").ForEach(func(_, v gjson.Result) bool {
		if loc := v.Get("loc"); loc.Get("0").String() == "body" {
			switch k := loc.Get("1").String(); k {
			case "parameters", "job_variables":
				key = k
				return false
			}
		}
		return true
	})
	if key == "" {
		return abi.Errorf(abi.CodeRejected, "", "Prefect rejected the flow run's creation (%s)", describe(r))
	}
	return abi.Errorf(abi.CodeRejected, "parameters", "Prefect rejected the flow run's %s (%s)", key, describe(r))
}
