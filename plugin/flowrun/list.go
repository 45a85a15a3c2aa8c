package flowrun

import (
	"fmt"
	"sort"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/ue-prefect/ue-prefect/abi"
)

// Listing: the list-workspaces and list-deployments actions, and the
// deployments named in a not-found or ambiguous-name error.

// maxListed caps the deployments a listing collects.
const maxListed = 10000

// listWhy is what a listing of deployments is for.
type listWhy string

const (
	listAll       listWhy = "list"      // the list-deployments action
	listNotFound  listWhy = "not_found" // the error for a deployment that does not exist
	listAmbiguous listWhy = "ambiguous" // the error for a name that matches several
)

// listState is a listing of deployments in progress.
type listState struct {
	Why       listWhy           `json:"why,omitempty"`
	Matches   []deployment      `json:"matches,omitempty"`
	Offset    int               `json:"offset,omitempty"`
	FlowNames map[string]string `json:"flow_names,omitempty"` // by flow id
}

// finishWorkspaces ends the list-workspaces action.
func (m *Machine) finishWorkspaces(all []workspace) {
	r := abi.Result{Workspaces: all}
	for _, w := range all {
		r.Values = append(r.Values, w.Handle)
	}
	m.finishWith(abi.ExitSuccess, nil, r)
}

// listDeployments starts a listing of deployments for why.
func (m *Machine) listDeployments(why listWhy) {
	m.s.List.Why = why
	m.sendListDeployments()
}

func (m *Machine) sendListDeployments() {
	body := mustJSON(map[string]any{"limit": 200, "offset": m.s.List.Offset, "sort": "NAME_ASC"})
	m.send(opDeploymentsAll, abi.HTTPRequest{Method: "POST", Path: m.prefix() + "/deployments/filter", Body: body})
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
	l := &m.s.List
	n := len(deps)
	l.Matches = append(l.Matches, deps[:min(n, max(0, maxListed-len(l.Matches)))]...)
	l.Offset += n
	if l.Why == listAll && n == 200 && len(l.Matches) < maxListed {
		m.sendListDeployments()
		return
	}
	m.sendFlowNames()
}

// sendFlowNames asks for the names of the flows of the listed deployments
// that are not known yet, 200 at a time; with none left it concludes.
func (m *Machine) sendFlowNames() {
	var ids []string
	seen := map[string]bool{}
	for _, d := range m.s.List.Matches {
		if _, ok := m.s.List.FlowNames[d.FlowID]; !ok && d.FlowID != "" && !seen[d.FlowID] {
			seen[d.FlowID] = true
			ids = append(ids, d.FlowID)
			if len(ids) == 200 {
				break
			}
		}
	}
	if len(ids) == 0 {
		m.concludeListing()
		return
	}
	body := mustJSON(map[string]any{"flows": map[string]any{"id": map[string]any{"any_": ids}}, "limit": 200})
	m.send(opFlows, abi.HTTPRequest{Method: "POST", Path: m.prefix() + "/flows/filter", Body: body})
}

func (m *Machine) onFlows(r *abi.HTTPResponse) {
	arr, ok := m.array(r, "flows")
	if !ok {
		return
	}
	l := &m.s.List
	if l.FlowNames == nil {
		l.FlowNames = map[string]string{}
	}
	asked := 0
	for _, d := range l.Matches {
		if _, ok := l.FlowNames[d.FlowID]; !ok {
			asked++
		}
	}
	arr.ForEach(func(_, f gjson.Result) bool {
		if id := f.Get("id").String(); IsUUID(id) {
			l.FlowNames[id] = f.Get("name").String()
		}
		return true
	})
	// Flows the server did not return get an empty name, so the loop ends.
	for _, d := range l.Matches {
		if _, ok := l.FlowNames[d.FlowID]; !ok {
			l.FlowNames[d.FlowID] = ""
			if asked--; asked <= 0 {
				break
			}
		}
	}
	m.sendFlowNames()
}

// concludeListing ends a listing as its Why asks.
func (m *Machine) concludeListing() {
	l := &m.s.List
	var names []string
	for i := range l.Matches {
		l.Matches[i].FlowName = l.FlowNames[l.Matches[i].FlowID]
		names = append(names, l.Matches[i].fullName())
	}
	sort.Strings(names)
	switch l.Why {
	case listAll:
		m.finishWith(abi.ExitSuccess, nil, abi.Result{Deployments: deploymentsABI(l.Matches), Values: names})
	case listAmbiguous:
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
