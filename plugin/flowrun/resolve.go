package flowrun

import (
	"fmt"
	"sort"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/ue-prefect/ue-prefect/abi"
)

// Resolving: which credential the host has, which Cloud workspace the
// routes live under, and which deployment the user named. Then the run is
// launched (launch.go), attached (poll.go) or deployments are listed
// (list.go).

// resolveState is what resolving has learnt.
type resolveState struct {
	Scheme     string      `json:"scheme,omitempty"`
	CredSource string      `json:"cred_source,omitempty"`
	Workspace  *workspace  `json:"workspace,omitempty"`
	Deployment *deployment `json:"deployment,omitempty"`
	// The deployment's default parameters and tags, which Prefect merges
	// into a flow run it creates (launch.go, otherInputs).
	DepParams RawObject `json:"deployment_parameters,omitempty"`
	DepTags   []string  `json:"deployment_tags,omitempty"`
}

// workspace is a Cloud workspace as the result reports it.
type workspace = abi.Workspace

type deployment struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	FlowID   string `json:"flow_id,omitempty"`
	FlowName string `json:"flow_name,omitempty"`
}

func (d deployment) fullName() string {
	if d.FlowName == "" {
		return d.Name
	}
	return d.FlowName + "/" + d.Name
}

// askCredential asks the host which credential it has: the first command.
func (m *Machine) askCredential() {
	m.s.Pending = pending{Op: opCredential}
	m.emit(abi.Command{Kind: abi.CommandCredential})
}

func (m *Machine) onCredential(c *abi.CredentialResponse) {
	m.s.Resolve.Scheme, m.s.Resolve.CredSource = c.Scheme, c.Source
	switch {
	case c.Error != "":
		m.fail(abi.Errorf(abi.CodeInvalidInput, "credentials", "%s", clip(c.Error)))
		return
	case c.Scheme != abi.SchemeBearer && c.Scheme != abi.SchemeBasic && c.Scheme != abi.SchemeNone:
		m.fail(abi.Errorf(abi.CodeInternal, "", "host reported unknown credential scheme %q", clip(c.Scheme)))
		return
	case m.s.Target == abi.TargetCloud && c.Scheme != abi.SchemeBearer:
		m.fail(abi.Errorf(abi.CodeUnauthorized, "credentials", "Prefect Cloud needs an API key (PREFECT_API_KEY, or the credential's token or password)"))
		return
	}
	if m.s.Target == abi.TargetCloud {
		m.send(opWorkspaces, abi.HTTPRequest{Method: "GET", Path: "/me/workspaces"})
		return
	}
	m.afterWorkspace()
}

// prefix is the path prefix of workspace-scoped routes.
func (m *Machine) prefix() string {
	if w := m.s.Resolve.Workspace; m.s.Target == abi.TargetCloud && w != nil {
		return "/accounts/" + w.AccountID + "/workspaces/" + w.WorkspaceID
	}
	return ""
}

// where names the workspace for messages.
func (m *Machine) where() string {
	if w := m.s.Resolve.Workspace; w != nil {
		return " in workspace " + w.Handle
	}
	return ""
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
		m.finishWorkspaces(all)
		return
	}
	ws, err := pickWorkspace(all, m.s.Cfg.Workspace, m.s.Cfg.Account)
	if err != nil {
		m.fail(err)
		return
	}
	m.s.Resolve.Workspace = &ws
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

// afterWorkspace continues once the API prefix is known.
func (m *Machine) afterWorkspace() {
	switch {
	case m.s.Action == abi.ActionListDeployments:
		m.listDeployments(listAll)
	case m.s.Cfg.FlowRunID != "":
		m.attach()
	default:
		m.resolveDeployment()
	}
}

// resolveDeployment looks the deployment up by id, by flow-name/name, or
// by bare name.
func (m *Machine) resolveDeployment() {
	ref := m.s.Cfg.Deployment
	if IsUUID(ref) {
		m.send(opDeployment, abi.HTTPRequest{Method: "GET", Path: m.prefix() + "/deployments/" + strings.ToLower(ref)})
		return
	}
	if flow, dep, ok := strings.Cut(ref, "/"); ok {
		m.send(opDeploymentByName, abi.HTTPRequest{Method: "GET", Path: m.prefix() + "/deployments/name/" + pathEscape(flow) + "/" + pathEscape(dep)})
		return
	}
	body := mustJSON(map[string]any{
		"deployments": map[string]any{"name": map[string]any{"any_": []string{ref}}},
		"limit":       200,
	})
	m.send(opDeploymentsByName, abi.HTTPRequest{Method: "POST", Path: m.prefix() + "/deployments/filter", Body: body})
}

// onDeployment takes the deployment read by id or by flow-name/name.
func (m *Machine) onDeployment(r *abi.HTTPResponse) {
	if r.Status == 404 {
		m.listDeployments(listNotFound)
		return
	}
	if r.Status != 200 {
		m.fail(m.statusError(r, "deployment")) // a 4xx rejects the name or id: exit 20
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
	m.s.Resolve.Deployment = &dep
	if flow, _, ok := strings.Cut(m.s.Cfg.Deployment, "/"); ok && !IsUUID(m.s.Cfg.Deployment) {
		m.s.Resolve.Deployment.FlowName = flow
		m.launch()
		return
	}
	m.sendFlow()
}

// onDeploymentsByName takes the deployments a bare name matches.
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
		m.listDeployments(listNotFound)
	case 1:
		if !m.checkDeployment(raw[0]) {
			return
		}
		m.s.Resolve.Deployment = &found[0]
		m.sendFlow()
	default:
		m.s.List.Why = listAmbiguous
		m.s.List.Matches = found
		m.sendFlowNames()
	}
}

// sendFlow reads the deployment's flow, for its name.
func (m *Machine) sendFlow() {
	m.send(opFlow, abi.HTTPRequest{Method: "GET", Path: m.prefix() + "/flows/" + m.s.Resolve.Deployment.FlowID})
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
	m.s.Resolve.Deployment.FlowName = name.Str
	m.launch()
}

func parseDeployment(d gjson.Result) (deployment, bool) {
	dep := deployment{ID: d.Get("id").String(), Name: d.Get("name").String(), FlowID: d.Get("flow_id").String()}
	return dep, IsUUID(dep.ID) && dep.Name != "" && IsUUID(dep.FlowID)
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

// checkDeployment warns about a deployment that will not run soon and
// rejects parameters its schema does not declare, as the Prefect CLI does.
func (m *Machine) checkDeployment(d gjson.Result) bool {
	name := d.Get("name").String()
	if p := d.Get("parameters"); p.IsObject() {
		m.s.Resolve.DepParams = RawObject(p.Raw)
	}
	m.s.Resolve.DepTags = nil
	d.Get("tags").ForEach(func(_, t gjson.Result) bool {
		if t.Type == gjson.String {
			m.s.Resolve.DepTags = append(m.s.Resolve.DepTags, t.Str)
		}
		return true
	})
	m.warnReadiness(d)
	props := d.Get("parameter_openapi_schema.properties")
	enforce := d.Get("enforce_parameter_schema")
	if m.s.Cfg.Parameters == "" || !props.IsObject() || (enforce.Exists() && !enforce.Bool()) {
		return m.checkParamValues(d)
	}
	var unknown []string
	gjson.Parse(string(m.s.Cfg.Parameters)).ForEach(func(k, _ gjson.Result) bool {
		if !props.Get(gjson.Escape(k.String())).Exists() {
			unknown = append(unknown, k.String())
		}
		return true
	})
	if len(unknown) == 0 {
		return m.checkParamValues(d)
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
