package flowrun

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/ue-prefect/ue-prefect/abi"
)

// CheckpointVersion is the version of the checkpoint document. Restore
// refuses other versions rather than misreading them.
const CheckpointVersion = 1

// Retry policy for requests other than polls. Polls are governed by the
// outage budget instead.
const (
	// MaxAttempts bounds the attempts of one request.
	MaxAttempts = 6
	// RetryBudgetMS bounds the time from a request's first attempt to its last.
	RetryBudgetMS = 5 * 60 * 1000
	// BackoffBaseMS is the first backoff; it doubles per attempt.
	BackoffBaseMS = 1000
	// BackoffCapMS caps one backoff.
	BackoffCapMS = 30 * 1000
	// RetryAfterCapMS caps the server's Retry-After.
	RetryAfterCapMS = 5 * 60 * 1000
	// CancelPollMS is the poll interval while confirming a cancellation.
	CancelPollMS = 1000
	// MaxListed caps the deployments a listing collects.
	MaxListed = 10000
	// MaxResponseDepth caps the nesting of a server response.
	MaxResponseDepth = 128
	// LogPageSize is the page size of a log read (Prefect's maximum is 200).
	LogPageSize = 200
	// MaxLogPages bounds the log pages read after one poll.
	MaxLogPages = 10
	// LogStragglerMS is how long after the run ends the last log read waits:
	// Prefect ships log lines in batches every 2 s.
	LogStragglerMS = 2500
)

// Operations: what the outstanding command is for.
const (
	opCredential        = "credential"
	opWorkspaces        = "read_workspaces"
	opDeployment        = "read_deployment"
	opDeploymentByName  = "read_deployment_by_name"
	opDeploymentsByName = "filter_deployments_by_name"
	opDeploymentsAll    = "filter_deployments"
	opFlow              = "read_flow"
	opFlows             = "filter_flows"
	opCreate            = "create_flow_run"
	opRead              = "read_flow_run"
	opCancel            = "cancel_flow_run"
	opCancelRead        = "read_cancelled_flow_run"
	opLogs              = "read_logs"
	opSleepLogs         = "sleep_logs"
	opSleepPoll         = "sleep_poll"
	opSleepRetry        = "sleep_retry"
	opSleepCancel       = "sleep_cancel"
)

// Machine is the launch/poll state machine. It is not safe for concurrent
// use; one driver steps it at a time.
type Machine struct {
	s   state
	out []abi.Command
}

type workspace struct {
	AccountID     string `json:"account_id"`
	AccountHandle string `json:"account_handle,omitempty"`
	AccountName   string `json:"account_name,omitempty"`
	WorkspaceID   string `json:"workspace_id"`
	Handle        string `json:"handle,omitempty"`
	Name          string `json:"workspace_name,omitempty"`
}

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

type flowRun struct {
	ID           string `json:"id,omitempty"`
	Name         string `json:"name,omitempty"`
	StateType    string `json:"state_type,omitempty"`
	StateName    string `json:"state_name,omitempty"`
	StateMessage string `json:"state_message,omitempty"`
}

// state is everything the machine knows. It is the checkpoint.
type state struct {
	V            int    `json:"v"`
	Action       string `json:"action"`
	Target       string `json:"target"`
	APIBase      string `json:"api_base"`
	UIBase       string `json:"ui_base,omitempty"`
	Cfg          Config `json:"config"`
	InvocationID string `json:"invocation_id"`
	RNG          uint64 `json:"rng"`

	// Offset maps host time to machine time (machine = host + Offset), so
	// time keeps running forward across a resume in a new process.
	Offset int64 `json:"offset_ms"`
	Now    int64 `json:"now_ms"`

	// The outstanding command.
	Op       string           `json:"op,omitempty"`
	Req      *abi.HTTPRequest `json:"req,omitempty"`
	Attempt  int              `json:"attempt,omitempty"`
	OpStart  int64            `json:"op_start_ms,omitempty"`
	After    string           `json:"after,omitempty"` // the op a retry sleep resumes
	LastFail string           `json:"last_fail,omitempty"`

	Scheme     string `json:"scheme,omitempty"`
	CredSource string `json:"cred_source,omitempty"`

	Workspace  *workspace        `json:"workspace,omitempty"`
	Deployment *deployment       `json:"deployment,omitempty"`
	Matches    []deployment      `json:"matches,omitempty"`
	ListOffset int               `json:"list_offset,omitempty"`
	Why        string            `json:"why,omitempty"` // why deployments are being listed
	FlowNames  map[string]string `json:"flow_names,omitempty"`

	IdemKey    string `json:"idempotency_key,omitempty"`
	CreateSent bool   `json:"create_sent,omitempty"`
	// CreateUnsure is set when a create attempt got no answer at all (so it
	// may have created the run); only then is a 200 our own lost answer.
	CreateUnsure bool      `json:"create_unsure,omitempty"`
	Run          flowRun   `json:"flow_run"`
	RunJSON      RawObject `json:"flow_run_json,omitempty"`
	Reattached   bool      `json:"reattached,omitempty"`
	CreatedAt    *int64    `json:"created_at_ms,omitempty"`
	Polls        int64     `json:"polls,omitempty"`
	InOutage     bool      `json:"in_outage,omitempty"`
	OutageFrom   int64     `json:"outage_from_ms,omitempty"`

	// Log streaming: the newest timestamp relayed, the ids relayed at it
	// (Prefect's after_ is inclusive), pages read since the last poll, and
	// whether the final read after the run ended is done.
	LogAfter string   `json:"log_after,omitempty"`
	LogSeen  []string `json:"log_seen,omitempty"`
	LogPages int      `json:"log_pages,omitempty"`
	LogFinal bool     `json:"log_final,omitempty"`
	LogWarn  bool     `json:"log_warned,omitempty"`

	Interrupt     *abi.Interrupt `json:"interrupt,omitempty"`
	InterruptAt   int64          `json:"interrupt_at_ms,omitempty"`
	CancelPhase   bool           `json:"cancel_phase,omitempty"`
	TransitionID  string         `json:"transition_id,omitempty"`
	CancelOutcome string         `json:"cancel_outcome,omitempty"`

	Done *abi.RunOutput `json:"done,omitempty"`
}

// Start begins a run. With in.Checkpoint set it resumes the checkpointed
// run instead (see [Machine.resume]). It returns the machine and its first
// commands.
func Start(in abi.RunInput) (*Machine, []abi.Command) {
	m := &Machine{}
	if len(in.Checkpoint) > 0 {
		if err := m.restore(in.Checkpoint); err != nil {
			m.s = state{V: CheckpointVersion}
			m.fail(abi.Errorf(abi.CodeInvalidInput, "checkpoint", "%v", err))
			return m, m.take()
		}
		m.resume(in)
		return m, m.take()
	}
	action := in.Action
	if action == "" {
		action = abi.ActionLaunchFlowRun
	}
	m.s = state{
		V:            CheckpointVersion,
		Action:       action,
		Target:       in.Target,
		APIBase:      in.APIBase,
		UIBase:       in.UIBase,
		InvocationID: in.InvocationID,
		RNG:          in.Seed,
		Now:          in.NowMS,
	}
	cfg, err := ParseFields(action, in.Fields)
	m.s.Cfg = cfg
	switch {
	case err != nil:
		m.fail(err)
	case in.Target != abi.TargetCloud && in.Target != abi.TargetServer:
		m.fail(abi.Errorf(abi.CodeInvalidInput, "target", "%q is not a target; expected %q or %q", clip(in.Target), abi.TargetCloud, abi.TargetServer))
	case action == abi.ActionListWorkspaces && in.Target != abi.TargetCloud:
		m.fail(abi.Errorf(abi.CodeInvalidInput, "target", "workspaces exist only on Prefect Cloud"))
	case in.InvocationID == "" && cfg.IdempotencyKey == "" && action == abi.ActionLaunchFlowRun:
		m.fail(abi.Errorf(abi.CodeInvalidInput, "idempotency_key", "neither an idempotency key nor an invocation id was given"))
	default:
		m.s.Op = opCredential
		m.emit(abi.Command{Kind: abi.CommandCredential})
	}
	return m, m.take()
}

// Restore rebuilds a machine from [Machine.Checkpoint], exactly as it was.
func Restore(checkpoint []byte) (*Machine, error) {
	m := &Machine{}
	if err := m.restore(checkpoint); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Machine) restore(checkpoint []byte) error {
	if e := CheckJSON(string(checkpoint), MaxResponseDepth); e != "" {
		return fmt.Errorf("checkpoint is not valid JSON: %s", e)
	}
	var s state
	if err := json.Unmarshal(checkpoint, &s); err != nil {
		return fmt.Errorf("checkpoint does not decode: %v", err)
	}
	if s.V != CheckpointVersion {
		return fmt.Errorf("checkpoint version %d, want %d", s.V, CheckpointVersion)
	}
	// The invariants Step relies on: an outstanding request or retry has
	// its request; a known workspace or deployment has its ids.
	if (isHTTPOp(s.Op) || s.Op == opSleepRetry) && s.Req == nil {
		return fmt.Errorf("checkpoint names outstanding operation %q without its request", s.Op)
	}
	if s.Op != "" && s.Op != opCredential && !isHTTPOp(s.Op) && !isSleepOp(s.Op) {
		return fmt.Errorf("checkpoint names unknown operation %q", s.Op)
	}
	if s.Op == opSleepRetry && !isHTTPOp(s.After) {
		return fmt.Errorf("checkpoint retries unknown operation %q", s.After)
	}
	if s.Deployment != nil && !IsUUID(s.Deployment.ID) || s.Workspace != nil && (!IsUUID(s.Workspace.AccountID) || !IsUUID(s.Workspace.WorkspaceID)) {
		return fmt.Errorf("checkpoint holds an invalid deployment or workspace id")
	}
	if s.Run.ID != "" && !IsUUID(s.Run.ID) {
		return fmt.Errorf("checkpoint holds an invalid flow run id")
	}
	m.s = s
	return nil
}

// resume continues a checkpointed run in a new invocation: from the flow
// run if it is known, else by repeating the (idempotent) create, else from
// the beginning.
func (m *Machine) resume(in abi.RunInput) {
	m.s.Offset = m.s.Now - in.NowMS
	m.s.Op, m.s.Req, m.s.Attempt, m.s.After = "", nil, 0, ""
	m.s.Interrupt, m.s.CancelPhase, m.s.InOutage = nil, false, false
	if in.Seed != 0 {
		m.s.RNG ^= in.Seed
	}
	switch {
	case m.s.Done != nil:
		m.emit(abi.Command{Kind: abi.CommandFinish, Finish: m.s.Done})
	case m.s.Run.ID != "":
		m.logf(abi.LevelInfo, "Resuming: re-attaching to flow run %s", m.runLabel())
		if !m.s.Cfg.Wait {
			m.finishLaunched()
			return
		}
		m.sendRead()
	case m.s.Deployment != nil && m.s.IdemKey != "":
		m.logf(abi.LevelInfo, "Resuming: repeating the launch of %s with idempotency key %s", m.s.Deployment.fullName(), m.s.IdemKey)
		m.sendCreate()
	default:
		m.s.Op = opCredential
		m.emit(abi.Command{Kind: abi.CommandCredential})
	}
}

// Checkpoint returns the machine's whole state as JSON.
func (m *Machine) Checkpoint() []byte {
	b, err := json.Marshal(&m.s)
	if err != nil { // cannot happen: state holds only marshalable types
		panic(err)
	}
	return b
}

// Done returns the outcome once the machine has finished, else nil.
func (m *Machine) Done() *abi.RunOutput { return m.s.Done }

// Step feeds one event, the answer to the last command, and returns the
// next commands.
func (m *Machine) Step(ev abi.Event) []abi.Command {
	if m.s.Done != nil {
		m.emit(abi.Command{Kind: abi.CommandFinish, Finish: m.s.Done})
		return m.take()
	}
	var it *abi.Interrupt
	switch {
	case ev.Kind == abi.EventHTTP && ev.HTTP != nil && isHTTPOp(m.s.Op):
		m.observe(ev.HTTP.NowMS)
		it = ev.HTTP.Interrupt
	case ev.Kind == abi.EventWoke && ev.Woke != nil && isSleepOp(m.s.Op):
		m.observe(ev.Woke.NowMS)
		it = ev.Woke.Interrupt
	case ev.Kind == abi.EventCredential && ev.Credential != nil && m.s.Op == opCredential:
	default:
		m.fail(abi.Errorf(abi.CodeInternal, "", "event %q does not answer the outstanding command %q", clip(ev.Kind), m.s.Op))
		return m.take()
	}
	if it != nil && m.s.Interrupt == nil {
		m.s.Interrupt = it
		m.s.InterruptAt = m.s.Now
		m.logf(abi.LevelWarn, "Interrupted (%s)", clip(it.Reason))
	}
	switch ev.Kind {
	case abi.EventCredential:
		m.onCredential(ev.Credential)
	case abi.EventWoke:
		m.onWoke()
	case abi.EventHTTP:
		m.onHTTP(utf8Body(ev.HTTP))
	}
	return m.take()
}

// utf8Body returns r with a body that is not UTF-8, and so not JSON
// (RFC 8259 §8.1), moved to BodyText with the bad bytes replaced. Nothing
// that is not UTF-8 enters the state, so a checkpoint restores exactly.
func utf8Body(r *abi.HTTPResponse) *abi.HTTPResponse {
	if utf8.Valid(r.Body) {
		return r
	}
	c := *r
	c.Body, c.BodyText = nil, strings.ToValidUTF8(string(r.Body), "\uFFFD")
	return &c
}

func isHTTPOp(op string) bool {
	switch op {
	case opWorkspaces, opDeployment, opDeploymentByName, opDeploymentsByName, opDeploymentsAll,
		opFlow, opFlows, opCreate, opRead, opCancel, opCancelRead, opLogs:
		return true
	}
	return false
}

func isSleepOp(op string) bool {
	return op == opSleepPoll || op == opSleepRetry || op == opSleepCancel || op == opSleepLogs
}

// observe advances machine time; it never goes backwards.
func (m *Machine) observe(hostNow int64) {
	if t := hostNow + m.s.Offset; t > m.s.Now {
		m.s.Now = t
	}
}

func (m *Machine) take() []abi.Command {
	out := m.out
	m.out = nil
	return out
}

func (m *Machine) emit(c abi.Command) { m.out = append(m.out, c) }

func (m *Machine) logf(level, format string, args ...any) {
	m.emit(abi.Command{Kind: abi.CommandLog, Log: &abi.LogRecord{Level: level, Message: fmt.Sprintf(format, args...)}})
}

func (m *Machine) progress() {
	m.emit(abi.Command{Kind: abi.CommandProgress, Progress: &abi.Progress{
		Fields: abi.OutputFields{
			FlowRunID:    m.s.Run.ID,
			FlowRunName:  m.s.Run.Name,
			FlowRunState: m.s.Run.StateType,
			FlowRunURL:   m.runURL(),
		},
		Checkpoint: m.Checkpoint(),
	}})
}

// interrupted reports whether the host asked to stop and the machine has
// not yet moved into cancelling.
func (m *Machine) interrupted() bool { return m.s.Interrupt != nil && !m.s.CancelPhase }

// send issues an HTTP request as the first attempt of op. Once interrupted,
// only the cancellation and the repeat of an in-flight create go out.
func (m *Machine) send(op string, req abi.HTTPRequest) {
	if m.interrupted() && !(op == opCreate && m.s.CreateSent && m.s.Run.ID == "") {
		m.onInterrupt()
		return
	}
	m.s.Op, m.s.Req, m.s.Attempt, m.s.OpStart = op, &req, 1, m.s.Now
	m.emit(abi.Command{Kind: abi.CommandHTTP, HTTP: &req})
}

func (m *Machine) sleep(op string, ms int64) {
	if m.interrupted() {
		m.onInterrupt()
		return
	}
	if ms < 0 {
		ms = 0
	}
	m.s.Op = op
	m.emit(abi.Command{Kind: abi.CommandSleep, Sleep: &abi.SleepRequest{DurationMS: ms}})
}

// prefix is the path prefix of workspace-scoped routes.
func (m *Machine) prefix() string {
	if m.s.Target == abi.TargetCloud && m.s.Workspace != nil {
		return "/accounts/" + m.s.Workspace.AccountID + "/workspaces/" + m.s.Workspace.WorkspaceID
	}
	return ""
}

func (m *Machine) onCredential(c *abi.CredentialResponse) {
	m.s.Scheme, m.s.CredSource = c.Scheme, c.Source
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

// afterWorkspace continues once the API prefix is known.
func (m *Machine) afterWorkspace() {
	switch m.s.Action {
	case abi.ActionListDeployments:
		m.s.Why = "list"
		m.sendListDeployments()
	default:
		if m.s.Cfg.FlowRunID != "" {
			m.s.Run.ID = m.s.Cfg.FlowRunID
			m.s.Reattached = true
			m.sendRead()
			return
		}
		m.resolveDeployment()
	}
}

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

func (m *Machine) sendListDeployments() {
	body := mustJSON(map[string]any{"limit": 200, "offset": m.s.ListOffset, "sort": "NAME_ASC"})
	m.send(opDeploymentsAll, abi.HTTPRequest{Method: "POST", Path: m.prefix() + "/deployments/filter", Body: body})
}

// sendFlowNames asks for the names of the flows of m.s.Matches that are not
// known yet, 200 at a time; with none left it concludes.
func (m *Machine) sendFlowNames() {
	var ids []string
	seen := map[string]bool{}
	for _, d := range m.s.Matches {
		if _, ok := m.s.FlowNames[d.FlowID]; !ok && d.FlowID != "" && !seen[d.FlowID] {
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

func (m *Machine) sendCreate() {
	c := m.s.Cfg
	body := map[string]any{"idempotency_key": m.s.IdemKey}
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
	m.send(opCreate, abi.HTTPRequest{Method: "POST", Path: m.prefix() + "/deployments/" + m.s.Deployment.ID + "/create_flow_run", Body: mustJSON(body)})
	if m.s.Op == opCreate {
		m.s.CreateSent = true
	}
}

// sendLogs reads the flow run's log lines after the last one relayed.
func (m *Machine) sendLogs() {
	filter := map[string]any{"flow_run_id": map[string]any{"any_": []string{m.s.Run.ID}}}
	if m.s.LogAfter != "" {
		filter["timestamp"] = map[string]any{"after_": m.s.LogAfter}
	}
	body := mustJSON(map[string]any{"logs": filter, "sort": "TIMESTAMP_ASC", "limit": LogPageSize})
	m.s.LogPages++
	m.send(opLogs, abi.HTTPRequest{Method: "POST", Path: m.prefix() + "/logs/filter", Body: body})
}

func (m *Machine) sendRead() {
	m.send(opRead, abi.HTTPRequest{Method: "GET", Path: m.prefix() + "/flow_runs/" + m.s.Run.ID})
}

func (m *Machine) onWoke() {
	switch m.s.Op {
	case opSleepPoll:
		m.sendRead()
	case opSleepRetry:
		if m.interrupted() && !(m.s.After == opCreate && m.s.Run.ID == "") {
			m.onInterrupt()
			return
		}
		m.s.Op = m.s.After
		m.s.Attempt++
		m.emit(abi.Command{Kind: abi.CommandHTTP, HTTP: m.s.Req})
	case opSleepLogs:
		m.sendLogs()
	case opSleepCancel:
		m.s.Op = opCancelRead
		req := abi.HTTPRequest{Method: "GET", Path: m.prefix() + "/flow_runs/" + m.s.Run.ID}
		m.s.Req, m.s.Attempt, m.s.OpStart = &req, 1, m.s.Now
		m.emit(abi.Command{Kind: abi.CommandHTTP, HTTP: &req})
	}
}

// mustJSON marshals values built from strings, maps and RawObjects.
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// pathEscape escapes a path segment like net/url.PathEscape.
func pathEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~!$'()*+,;=:@", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
