package flowrun

import (
	"fmt"
	"sort"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/ue-prefect/ue-prefect/abi"
)

// retryableStatus lists the HTTP statuses worth repeating a request for.
func retryableStatus(code int) bool {
	switch code {
	case 408, 429, 502, 503, 504:
		return true
	}
	return false
}

// describe renders a failed exchange for messages: "503 Service
// Unavailable: database is locked" or "connect: connection refused".
func describe(r *abi.HTTPResponse) string {
	if r.Error != nil {
		return string(r.Error.Kind) + ": " + clip(r.Error.Message)
	}
	s := fmt.Sprintf("HTTP %d", r.Status)
	if d := serverDetail(r); d != "" {
		s += ": " + d
	}
	return s
}

// serverDetail extracts Prefect's error text: detail (a string or a
// structure), exception_message and exception_detail.
func serverDetail(r *abi.HTTPResponse) string {
	if len(r.Body) == 0 {
		return clip(strings.TrimSpace(r.BodyText))
	}
	b := gjson.ParseBytes(r.Body)
	var parts []string
	if d := b.Get("detail"); d.Exists() {
		if d.Type == gjson.String {
			parts = append(parts, d.Str)
		} else {
			parts = append(parts, d.Raw)
		}
	}
	if e := b.Get("exception_message"); e.Type == gjson.String {
		parts = append(parts, e.Str)
	}
	if ed := b.Get("exception_detail"); ed.IsArray() {
		ed.ForEach(func(_, v gjson.Result) bool {
			loc := []string{}
			v.Get("loc").ForEach(func(_, l gjson.Result) bool { loc = append(loc, l.String()); return true })
			parts = append(parts, strings.Join(loc, ".")+": "+v.Get("msg").String())
			return len(parts) < 5
		})
	}
	const max = 400
	s := strings.Join(parts, "; ")
	if len(s) > max {
		s = clip(s[:max])
	}
	return s
}

func (m *Machine) onHTTP(r *abi.HTTPResponse) {
	op := m.s.Op
	if r.Error != nil && r.Error.Kind == abi.TransportInterrupted {
		m.onInterruptedRequest(op)
		return
	}
	if op == opLogs && (r.Error != nil || r.Status != 200) {
		// Logs are a courtesy: a failed read never fails or delays the task.
		if !m.s.LogWarn {
			m.s.LogWarn = true
			m.logf(abi.LevelWarn, "Could not read the flow run's logs (%s); the wait goes on", describe(r))
		}
		m.afterLogs(false)
		return
	}
	if (r.Error != nil && r.Error.Kind.Retryable()) || (r.Error == nil && retryableStatus(r.Status)) {
		m.retry(r)
		return
	}
	if r.Error != nil {
		m.fail(abi.Errorf(abi.CodeRefused, "", "%s %s: %s", m.s.Req.Method, m.s.Req.Path, describe(r)))
		return
	}
	if r.Status >= 200 && r.Status < 300 {
		if len(r.Body) == 0 {
			m.badResponse("the body is not JSON")
			return
		}
		if e := CheckJSON(string(r.Body), MaxResponseDepth); e != "" {
			m.badResponse("the body is not JSON: " + e)
			return
		}
	}
	if m.s.InOutage && op == opRead && r.Status >= 200 && r.Status < 300 {
		m.logf(abi.LevelInfo, "Contact with Prefect restored after %s", dur(m.s.Now-m.s.OutageFrom))
		m.s.InOutage = false
	}
	m.s.LastFail = ""
	switch op {
	case opWorkspaces:
		m.onWorkspaces(r)
	case opDeployment, opDeploymentByName:
		m.onDeployment(r)
	case opDeploymentsByName:
		m.onDeploymentsByName(r)
	case opDeploymentsAll:
		m.onDeploymentsAll(r)
	case opFlow:
		m.onFlow(r)
	case opFlows:
		m.onFlows(r)
	case opCreate:
		m.onCreate(r)
	case opRead:
		m.onRead(r)
	case opCancel:
		m.onCancel(r)
	case opCancelRead:
		m.onCancelRead(r)
	case opLogs:
		m.onLogs(r)
	}
}

// statusError turns an unexpected status into the failure it means.
func (m *Machine) statusError(r *abi.HTTPResponse, field string) *abi.Error {
	what := m.s.Req.Method + " " + m.s.Req.Path
	switch r.Status {
	case 401, 403:
		src := ""
		if m.s.CredSource != "" {
			src = " from " + m.s.CredSource
		}
		return abi.Errorf(abi.CodeUnauthorized, "credentials", "Prefect refused the %s credential%s (%s)", m.s.Scheme, src, describe(r))
	case 400, 404, 409, 422:
		if field != "" {
			return abi.Errorf(abi.CodeRejected, field, "Prefect rejected the request (%s)", describe(r))
		}
	}
	return abi.Errorf(abi.CodeServerError, "", "%s: %s", what, describe(r))
}

// retry schedules another attempt of the outstanding request, or gives up.
func (m *Machine) retry(r *abi.HTTPResponse) {
	m.s.LastFail = describe(r)
	if m.s.Op == opCreate && r.Error != nil {
		m.s.CreateUnsure = true
	}
	what := m.s.Req.Method + " " + m.s.Req.Path
	if m.interrupted() && !(m.s.Op == opCreate && m.s.Run.ID == "") {
		m.onInterrupt()
		return
	}
	backoff := int64(BackoffBaseMS) << min(m.s.Attempt-1, 10)
	if backoff > BackoffCapMS {
		backoff = BackoffCapMS
	}
	delay := m.jitter(backoff, 0.2)
	if ra := r.RetryAfterMS; ra > 0 {
		if ra > RetryAfterCapMS {
			ra = RetryAfterCapMS
		}
		if ra = ra + int64(float64(ra)*0.2*float64(m.rand()>>11)/(1<<53)); ra > delay {
			delay = ra
		}
	}
	switch {
	case m.s.Op == opRead && m.s.Cfg.Wait:
		// Waiting: a failed poll does not fail the task within the outage budget.
		if !m.s.InOutage {
			m.s.InOutage, m.s.OutageFrom = true, m.s.Now
		}
		if limit := m.s.Cfg.PollIntervalS * 1000; delay > limit && r.RetryAfterMS <= limit {
			delay = limit
		}
		out := m.s.Now - m.s.OutageFrom
		budget := m.s.Cfg.OutageBudgetS * 1000
		if out+delay > budget {
			m.fail(abi.Errorf(abi.CodeUnavailable, "", "lost contact with Prefect for %s, past the outage budget of %s (last error: %s); flow run %s was last seen %s",
				dur(out), dur(budget), m.s.LastFail, m.runLabel(), m.s.Run.StateType))
			return
		}
		m.logf(abi.LevelWarn, "Polling failed (%s); retrying in %s, %s of the outage budget left", m.s.LastFail, dur(delay), dur(budget-out))
	case m.s.CancelPhase:
		if m.s.Now+delay > m.cancelDeadline() {
			m.s.CancelOutcome = "the cancellation could not be confirmed (" + m.s.LastFail + ")"
			m.finishInterrupted()
			return
		}
	default:
		if m.s.Attempt >= MaxAttempts || m.s.Now+delay-m.s.OpStart > RetryBudgetMS {
			m.fail(abi.Errorf(abi.CodeUnavailable, "", "%s failed %d times over %s; last error: %s", what, m.s.Attempt, dur(m.s.Now-m.s.OpStart), m.s.LastFail))
			return
		}
		m.logf(abi.LevelWarn, "%s failed (%s); retrying in %s (attempt %d of %d)", what, m.s.LastFail, dur(delay), m.s.Attempt+1, MaxAttempts)
	}
	m.s.After = m.s.Op
	m.sleep(opSleepRetry, delay)
}

func (m *Machine) badResponse(why string) {
	m.fail(abi.Errorf(abi.CodeBadResponse, "", "unexpected response to %s %s: %s", m.s.Req.Method, m.s.Req.Path, why))
}

// array returns the body of a 200 answer that must be a JSON array of
// what; any other answer ends the run.
func (m *Machine) array(r *abi.HTTPResponse, what string) (gjson.Result, bool) {
	if r.Status != 200 {
		m.fail(m.statusError(r, ""))
		return gjson.Result{}, false
	}
	arr := gjson.ParseBytes(r.Body)
	if !arr.IsArray() {
		m.badResponse("expected an array of " + what)
		return gjson.Result{}, false
	}
	return arr, true
}

// deployments parses an array of deployments, keeping each raw object;
// a malformed one ends the run.
func (m *Machine) deployments(arr gjson.Result) ([]deployment, []gjson.Result, bool) {
	var deps []deployment
	var raw []gjson.Result
	ok := true
	arr.ForEach(func(_, d gjson.Result) bool {
		dep, valid := parseDeployment(d)
		if !valid {
			ok = false
			return false
		}
		deps = append(deps, dep)
		raw = append(raw, d)
		return true
	})
	if !ok {
		m.badResponse("a deployment lacks id, name or flow_id")
	}
	return deps, raw, ok
}

func (m *Machine) onWorkspaces(r *abi.HTTPResponse) {
	arr, ok := m.array(r, "workspaces")
	if !ok {
		return
	}
	var all []workspace
	bad := false
	arr.ForEach(func(_, w gjson.Result) bool {
		ws := workspace{
			AccountID:     w.Get("account_id").String(),
			AccountHandle: w.Get("account_handle").String(),
			AccountName:   w.Get("account_name").String(),
			WorkspaceID:   w.Get("workspace_id").String(),
			Name:          w.Get("workspace_name").String(),
		}
		ws.Handle = ws.AccountHandle + "/" + w.Get("workspace_handle").String()
		if !IsUUID(ws.AccountID) || !IsUUID(ws.WorkspaceID) {
			bad = true
			return false
		}
		all = append(all, ws)
		return true
	})
	if bad {
		m.badResponse("a workspace lacks a valid account_id or workspace_id")
		return
	}
	if m.s.Action == abi.ActionListWorkspaces {
		m.s.Matches = nil
		m.finishWith(abi.ExitSuccess, nil, m.workspacesResult(all))
		return
	}
	ws, err := pickWorkspace(all, m.s.Cfg.Workspace, m.s.Cfg.Account)
	if err != nil {
		m.fail(err)
		return
	}
	m.s.Workspace = &ws
	m.logf(abi.LevelInfo, "Workspace: %s (%s)", ws.Handle, ws.WorkspaceID)
	m.afterWorkspace()
}

// pickWorkspace finds the workspace a user named by id, handle or name.
func pickWorkspace(all []workspace, ref, account string) (workspace, *abi.Error) {
	var cands []workspace
	for _, w := range all {
		if account == "" || strings.EqualFold(account, w.AccountID) || account == w.AccountHandle || account == w.AccountName {
			cands = append(cands, w)
		}
	}
	handles := func(ws []workspace) string {
		var hs []string
		for _, w := range ws {
			hs = append(hs, w.Handle)
		}
		sort.Strings(hs)
		if len(hs) == 0 {
			return "none"
		}
		return strings.Join(hs, ", ")
	}
	if ref == "" {
		if len(cands) == 1 {
			return cands[0], nil
		}
		return workspace{}, abi.Errorf(abi.CodeInvalidInput, "workspace", "required: the API key can see %d workspaces: %s", len(cands), handles(cands))
	}
	var found []workspace
	for _, match := range []func(w workspace) bool{
		func(w workspace) bool { return strings.EqualFold(w.WorkspaceID, ref) },
		func(w workspace) bool { return w.Handle == ref },
		func(w workspace) bool { return w.Name == ref || strings.HasSuffix(w.Handle, "/"+ref) },
		func(w workspace) bool { return strings.EqualFold(w.Name, ref) || strings.EqualFold(w.Handle, ref) },
	} {
		for _, w := range cands {
			if match(w) {
				found = append(found, w)
			}
		}
		if len(found) > 0 {
			break
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return workspace{}, abi.Errorf(abi.CodeNotFound, "workspace", "no workspace %q; available: %s", ref, handles(cands))
	}
	return workspace{}, abi.Errorf(abi.CodeAmbiguous, "workspace", "%q matches %d workspaces: %s; give account-handle/workspace-handle or the id", ref, len(found), handles(found))
}

func parseDeployment(d gjson.Result) (deployment, bool) {
	dep := deployment{ID: d.Get("id").String(), Name: d.Get("name").String(), FlowID: d.Get("flow_id").String()}
	return dep, IsUUID(dep.ID) && dep.Name != "" && IsUUID(dep.FlowID)
}

func (m *Machine) onDeployment(r *abi.HTTPResponse) {
	if r.Status == 404 {
		m.s.Why = "not_found"
		m.sendListDeployments()
		return
	}
	if r.Status != 200 {
		m.fail(m.statusError(r, ""))
		return
	}
	d := gjson.ParseBytes(r.Body)
	dep, ok := parseDeployment(d)
	if !ok {
		m.badResponse("the deployment lacks id, name or flow_id")
		return
	}
	if !m.checkDeployment(d) {
		return
	}
	m.s.Deployment = &dep
	if flow, _, ok := strings.Cut(m.s.Cfg.Deployment, "/"); ok && !IsUUID(m.s.Cfg.Deployment) {
		m.s.Deployment.FlowName = flow
		m.deploymentResolved()
		return
	}
	m.send(opFlow, abi.HTTPRequest{Method: "GET", Path: m.prefix() + "/flows/" + dep.FlowID})
}

// checkDeployment warns about a deployment that will not run soon and
// rejects parameters its schema does not declare, as the Prefect CLI does.
func (m *Machine) checkDeployment(d gjson.Result) bool {
	name := d.Get("name").String()
	if d.Get("paused").Bool() {
		m.logf(abi.LevelWarn, "Deployment %q is paused: its schedules are off; a manual run is still created", name)
	}
	if d.Get("status").String() == "NOT_READY" {
		m.logf(abi.LevelWarn, "Deployment %q is NOT_READY: no worker or runner has polled it lately, so the flow run may wait in Scheduled/Late", name)
	}
	props := d.Get("parameter_openapi_schema.properties")
	enforce := d.Get("enforce_parameter_schema")
	if m.s.Cfg.Parameters == "" || !props.IsObject() || (enforce.Exists() && !enforce.Bool()) {
		return true
	}
	var unknown []string
	gjson.Parse(string(m.s.Cfg.Parameters)).ForEach(func(k, _ gjson.Result) bool {
		if !props.Get(gjson.Escape(k.String())).Exists() {
			unknown = append(unknown, k.String())
		}
		return true
	})
	if len(unknown) == 0 {
		return true
	}
	var known []string
	props.ForEach(func(k, _ gjson.Result) bool { known = append(known, k.String()); return true })
	sort.Strings(known)
	m.fail(abi.Errorf(abi.CodeInvalidInput, "parameters", "deployment %q has no parameter %s; its parameters are: %s",
		name, quoteList(unknown), strings.Join(known, ", ")))
	return false
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func (m *Machine) onFlow(r *abi.HTTPResponse) {
	if r.Status != 200 {
		m.fail(m.statusError(r, ""))
		return
	}
	name := gjson.GetBytes(r.Body, "name")
	if name.Type != gjson.String || name.Str == "" {
		m.badResponse("the flow has no name")
		return
	}
	m.s.Deployment.FlowName = name.Str
	m.deploymentResolved()
}

func (m *Machine) deploymentResolved() {
	d := m.s.Deployment
	m.logf(abi.LevelInfo, "Deployment: %s (%s)", d.fullName(), d.ID)
	key := m.s.Cfg.IdempotencyKey
	if key == "" {
		key = m.s.InvocationID
	}
	// Prefect scopes idempotency keys per flow; the deployment id keeps two
	// deployments of one flow from colliding.
	m.s.IdemKey = "ue-prefect:" + d.ID + ":" + key
	m.progress()
	m.sendCreate()
}

func (m *Machine) onDeploymentsByName(r *abi.HTTPResponse) {
	arr, ok := m.array(r, "deployments")
	if !ok {
		return
	}
	all, raws, ok := m.deployments(arr)
	if !ok {
		return
	}
	var found []deployment
	var raw []gjson.Result
	for i, dep := range all {
		if dep.Name == m.s.Cfg.Deployment { // the filter is exact; be sure
			found = append(found, dep)
			raw = append(raw, raws[i])
		}
	}
	switch len(found) {
	case 0:
		m.s.Why = "not_found"
		m.sendListDeployments()
	case 1:
		if !m.checkDeployment(raw[0]) {
			return
		}
		m.s.Deployment = &found[0]
		m.send(opFlow, abi.HTTPRequest{Method: "GET", Path: m.prefix() + "/flows/" + found[0].FlowID})
	default:
		m.s.Why = "ambiguous"
		m.s.Matches = found
		m.sendFlowNames()
	}
}

func (m *Machine) onDeploymentsAll(r *abi.HTTPResponse) {
	arr, ok := m.array(r, "deployments")
	if !ok {
		return
	}
	deps, _, ok := m.deployments(arr)
	if !ok {
		return
	}
	n := len(deps)
	m.s.Matches = append(m.s.Matches, deps[:min(n, max(0, MaxListed-len(m.s.Matches)))]...)
	m.s.ListOffset += n
	if m.s.Why == "list" && n == 200 && len(m.s.Matches) < MaxListed {
		m.sendListDeployments()
		return
	}
	m.sendFlowNames()
}

func (m *Machine) onFlows(r *abi.HTTPResponse) {
	arr, ok := m.array(r, "flows")
	if !ok {
		return
	}
	if m.s.FlowNames == nil {
		m.s.FlowNames = map[string]string{}
	}
	asked := 0
	for _, d := range m.s.Matches {
		if _, ok := m.s.FlowNames[d.FlowID]; !ok {
			asked++
		}
	}
	arr.ForEach(func(_, f gjson.Result) bool {
		if id := f.Get("id").String(); IsUUID(id) {
			m.s.FlowNames[id] = f.Get("name").String()
		}
		return true
	})
	// Flows the server did not return get an empty name, so the loop ends.
	for _, d := range m.s.Matches {
		if _, ok := m.s.FlowNames[d.FlowID]; !ok {
			m.s.FlowNames[d.FlowID] = ""
			if asked--; asked <= 0 {
				break
			}
		}
	}
	m.sendFlowNames()
}

// concludeListing ends a listing begun for Why.
func (m *Machine) concludeListing() {
	var names []string
	for i := range m.s.Matches {
		m.s.Matches[i].FlowName = m.s.FlowNames[m.s.Matches[i].FlowID]
		names = append(names, m.s.Matches[i].fullName())
	}
	sort.Strings(names)
	switch m.s.Why {
	case "list":
		m.finishWith(abi.ExitSuccess, nil, m.deploymentsResult(names))
	case "ambiguous":
		m.fail(abi.Errorf(abi.CodeAmbiguous, "deployment", "%q matches %d deployments: %s; give flow-name/deployment-name or the id",
			m.s.Cfg.Deployment, len(names), strings.Join(names, ", ")))
	default:
		avail := "none"
		if len(names) > 0 {
			const show = 20
			avail = strings.Join(names[:min(show, len(names))], ", ")
			if len(names) > show {
				avail += fmt.Sprintf(" and %d more", len(names)-show)
			}
		}
		m.fail(abi.Errorf(abi.CodeNotFound, "deployment", "no deployment %q%s; available: %s", m.s.Cfg.Deployment, m.where(), avail))
	}
}

func (m *Machine) where() string {
	if m.s.Workspace != nil {
		return " in workspace " + m.s.Workspace.Handle
	}
	return ""
}

// readRun updates the known flow run from a FlowRunResponse body.
func (m *Machine) readRun(r *abi.HTTPResponse) bool {
	b := gjson.ParseBytes(r.Body)
	id := b.Get("id")
	st := b.Get("state_type")
	if !b.IsObject() || id.Type != gjson.String || !IsUUID(id.Str) {
		m.badResponse("the flow run has no valid id")
		return false
	}
	if m.s.Run.ID != "" && !strings.EqualFold(id.Str, m.s.Run.ID) {
		m.badResponse(fmt.Sprintf("asked for flow run %s, got %s", m.s.Run.ID, id.Str))
		return false
	}
	if st.Type != gjson.String || !IsKnownState(st.Str) {
		m.badResponse(fmt.Sprintf("the flow run has an unknown state_type %s", clip(st.Raw)))
		return false
	}
	prev := m.s.Run.StateType + "/" + m.s.Run.StateName
	m.s.Run = flowRun{
		ID:           id.Str,
		Name:         b.Get("name").String(),
		StateType:    st.Str,
		StateName:    b.Get("state_name").String(),
		StateMessage: b.Get("state.message").String(),
	}
	if m.s.Run.StateName == "" {
		m.s.Run.StateName = b.Get("state.name").String()
	}
	m.s.RunJSON = RawObject(b.Raw)
	if prev != m.s.Run.StateType+"/"+m.s.Run.StateName {
		if prev != "/" {
			m.logf(abi.LevelInfo, "Flow run %q is %s (%s) after %s", m.s.Run.Name, m.s.Run.StateName, m.s.Run.StateType, dur(m.elapsed()))
		}
		m.progress()
	}
	return true
}

func (m *Machine) onCreate(r *abi.HTTPResponse) {
	if r.Status != 200 && r.Status != 201 {
		field := "parameters"
		if r.Status == 404 {
			field = "deployment"
		}
		m.fail(m.statusError(r, field))
		return
	}
	m.markCreated()
	if !m.readRun(r) {
		return
	}
	switch {
	case r.Status == 201:
		m.logf(abi.LevelInfo, "Created flow run %s, %s: %s", m.runLabel(), m.s.Run.StateName, m.runURL())
	case m.s.CreateUnsure:
		m.logf(abi.LevelInfo, "Created flow run %s, %s (the answer to an earlier attempt was lost): %s", m.runLabel(), m.s.Run.StateName, m.runURL())
	default:
		m.s.Reattached = true
		m.logf(abi.LevelInfo, "Re-attached to flow run %s, %s, created earlier with idempotency key %s: %s", m.runLabel(), m.s.Run.StateName, m.s.IdemKey, m.runURL())
	}
	if !m.s.Cfg.Wait {
		m.finishLaunched()
		return
	}
	if IsTerminal(m.s.Run.StateType) {
		m.finishByState()
		return
	}
	m.sleep(opSleepPoll, m.s.Cfg.PollIntervalS*1000)
}

func (m *Machine) onRead(r *abi.HTTPResponse) {
	if r.Status == 404 {
		if m.s.Cfg.FlowRunID != "" && m.s.Polls == 0 {
			m.fail(abi.Errorf(abi.CodeNotFound, "flow_run_id", "no flow run %s%s", m.s.Run.ID, m.where()))
			return
		}
		m.fail(abi.Errorf(abi.CodeServerError, "", "flow run %s no longer exists%s", m.runLabel(), m.where()))
		return
	}
	if r.Status != 200 {
		m.fail(m.statusError(r, ""))
		return
	}
	if m.s.CreatedAt == nil {
		m.markCreated()
	}
	if !m.readRun(r) {
		return
	}
	m.s.Polls++
	if m.s.Cfg.StreamLogs && m.s.Cfg.Wait {
		m.s.LogPages = 0
		m.sendLogs()
		return
	}
	m.afterPoll()
}

// afterPoll decides what follows a poll: the end, or the next poll.
func (m *Machine) afterPoll() {
	switch {
	case IsTerminal(m.s.Run.StateType):
		m.finishByState()
	case !m.s.Cfg.Wait:
		m.finishLaunched()
	case m.s.Cfg.MaxPolls > 0 && m.s.Polls >= m.s.Cfg.MaxPolls:
		m.logf(abi.LevelWarn, "Reached the maximum of %d polls; flow run %s is left %s", m.s.Cfg.MaxPolls, m.runLabel(), m.s.Run.StateType)
		m.finishWith(abi.ExitPollingTimeout, &abi.Error{Code: abi.CodePollingTimeout, Message: "maximum polling timeout reached."}, m.runResult())
	default:
		m.sleep(opSleepPoll, m.s.Cfg.PollIntervalS*1000)
	}
}

// onInterruptedRequest handles a request the host abandoned because it is
// stopping.
func (m *Machine) onInterruptedRequest(op string) {
	switch {
	case m.s.CancelPhase:
		m.s.CancelOutcome = "the cancellation could not be confirmed in time"
		m.finishInterrupted()
	case op == opCreate && m.s.Run.ID == "" && m.s.Now <= m.s.InterruptAt+m.s.Cfg.CancelGraceS*1000 && m.s.Attempt < MaxAttempts:
		// The create may have reached the server: repeat it (it is
		// idempotent) to learn the flow run instead of losing it.
		m.s.CreateUnsure = true
		m.s.Attempt++
		m.emit(abi.Command{Kind: abi.CommandHTTP, HTTP: m.s.Req})
	default:
		m.onInterrupt()
	}
}

func (m *Machine) cancelDeadline() int64 { return m.s.InterruptAt + m.s.Cfg.CancelGraceS*1000 }

// onInterrupt decides what stopping means now: cancel the flow run first
// if asked to, else end at once.
func (m *Machine) onInterrupt() {
	if m.s.Run.ID != "" && m.s.Cfg.Wait && m.s.Cfg.CancelOnInterrupt && !IsTerminal(m.s.Run.StateType) {
		m.s.CancelPhase = true
		m.s.TransitionID = m.uuid4()
		m.logf(abi.LevelInfo, "Cancelling flow run %s (grace %s)", m.runLabel(), dur(m.s.Cfg.CancelGraceS*1000))
		body := mustJSON(map[string]any{
			"state": map[string]any{"type": StateCancelling, "state_details": map[string]any{"transition_id": m.s.TransitionID}},
			"force": false,
		})
		m.send(opCancel, abi.HTTPRequest{Method: "POST", Path: m.prefix() + "/flow_runs/" + m.s.Run.ID + "/set_state", Body: body})
		return
	}
	m.finishInterrupted()
}

func (m *Machine) onCancel(r *abi.HTTPResponse) {
	if r.Status == 404 {
		m.s.CancelOutcome = "the flow run no longer exists"
		m.finishInterrupted()
		return
	}
	if r.Status != 200 && r.Status != 201 {
		m.s.CancelOutcome = "Prefect refused to cancel it (" + describe(r) + ")"
		m.finishInterrupted()
		return
	}
	b := gjson.ParseBytes(r.Body)
	status := b.Get("status").String()
	stateType := b.Get("state.type").String()
	reason := b.Get("details.reason").String()
	switch {
	case status == "ACCEPT" || (status == "REJECT" && stateType == StateCancelled):
		if stateType == StateCancelled {
			m.s.Run.StateType, m.s.Run.StateName = StateCancelled, b.Get("state.name").String()
			m.s.CancelOutcome = "the flow run was cancelled"
			m.progress()
			m.finishInterrupted()
			return
		}
		m.logf(abi.LevelInfo, "Prefect accepted the cancellation; waiting for CANCELLED")
		m.sleep(opSleepCancel, CancelPollMS)
	case status == "ABORT":
		m.s.CancelOutcome = "it had already ended (" + clip(reason) + ")"
		m.finishInterrupted()
	case status == "WAIT":
		// Compare in float64 before converting: a huge delay_seconds must
		// not overflow int64 into a short (or endless) sleep.
		ms := b.Get("details.delay_seconds").Float() * 1000
		if ms > float64(m.cancelDeadline()-m.s.Now) {
			m.s.CancelOutcome = "Prefect asked to wait past the grace period"
			m.finishInterrupted()
			return
		}
		m.s.After = opCancel
		m.sleep(opSleepRetry, int64(max(ms, 0)))
	default:
		m.s.CancelOutcome = fmt.Sprintf("Prefect answered %s (%s)", clip(status), clip(reason))
		m.finishInterrupted()
	}
}

func (m *Machine) onCancelRead(r *abi.HTTPResponse) {
	if r.Status != 200 || !m.readRun(r) {
		if m.s.Done == nil {
			m.s.CancelOutcome = "its state could not be read (" + describe(r) + ")"
			m.finishInterrupted()
		}
		return
	}
	if IsTerminal(m.s.Run.StateType) {
		m.s.CancelOutcome = "it ended " + m.s.Run.StateType
		m.finishInterrupted()
		return
	}
	if m.s.Now+CancelPollMS > m.cancelDeadline() {
		m.s.CancelOutcome = fmt.Sprintf("it was still %s when the %s grace period ran out", m.s.Run.StateType, dur(m.s.Cfg.CancelGraceS*1000))
		m.finishInterrupted()
		return
	}
	m.sleep(opSleepCancel, CancelPollMS)
}

// logLevels maps Prefect's numeric levels to abi levels.
func logLevel(n int64) string {
	switch {
	case n >= 40:
		return abi.LevelError
	case n >= 30:
		return abi.LevelWarn
	case n >= 20:
		return abi.LevelInfo
	}
	return abi.LevelDebug
}

// onLogs relays new log lines, oldest first, and pages on while pages are
// full and bring something new.
func (m *Machine) onLogs(r *abi.HTTPResponse) {
	arr := gjson.ParseBytes(r.Body)
	if !arr.IsArray() {
		m.afterLogs(false)
		return
	}
	seen := map[string]bool{}
	for _, id := range m.s.LogSeen {
		seen[id] = true
	}
	n, fresh := 0, 0
	arr.ForEach(func(_, l gjson.Result) bool {
		n++
		id, ts := l.Get("id").String(), l.Get("timestamp").String()
		if id == "" || ts == "" || seen[id] {
			return true
		}
		fresh++
		if ts != m.s.LogAfter {
			m.s.LogAfter, m.s.LogSeen, seen = ts, nil, map[string]bool{}
		}
		m.s.LogSeen = append(m.s.LogSeen, id)
		seen[id] = true
		m.emit(abi.Command{Kind: abi.CommandLog, Log: &abi.LogRecord{
			Level: logLevel(l.Get("level").Int()), Message: l.Get("message").String(),
			Source: abi.SourceFlowRun, Time: ts,
		}})
		return true
	})
	m.afterLogs(n >= LogPageSize && fresh > 0)
}

// afterLogs continues after a log read: another page, the final read
// after the run ended, or what follows the poll.
func (m *Machine) afterLogs(more bool) {
	switch {
	case more && m.s.LogPages < MaxLogPages:
		m.sendLogs()
	case IsTerminal(m.s.Run.StateType) && !m.s.LogFinal:
		m.s.LogFinal, m.s.LogPages = true, 0
		m.sleep(opSleepLogs, LogStragglerMS)
	default:
		m.afterPoll()
	}
}
