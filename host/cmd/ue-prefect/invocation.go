package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host"
)

var errHelp = errors.New("help")

// fieldError is a bad input: exit 20, naming the field.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return abi.FieldLabel(e.field) + ": " + e.msg }

// option is one input: its flag, its environment variable and, when the
// plugin validates it, its abi.Fields name.
type option struct {
	flag, env, field string
	boolean          bool
}

var options = []option{
	{flag: "target", env: "UE_PREFECT_TARGET", field: "target"},
	{flag: "api-url", env: "PREFECT_API_URL", field: "api_url"},
	{flag: "cloud-api-url", env: "PREFECT_CLOUD_API_URL", field: "cloud_api_url"},
	{flag: "ui-url", env: "PREFECT_UI_URL", field: "ui_url"},
	{flag: "api-key-file", env: "PREFECT_API_KEY_FILE", field: "credentials"},
	{flag: "auth-string-file", env: "PREFECT_API_AUTH_STRING_FILE", field: "credentials"},
	{flag: "allow-insecure-http", env: "UE_PREFECT_ALLOW_INSECURE_HTTP", field: "allow_insecure_http", boolean: true},
	{flag: "workspace", env: "UE_PREFECT_WORKSPACE", field: "workspace"},
	{flag: "account", env: "UE_PREFECT_ACCOUNT", field: "account"},
	{flag: "deployment", env: "UE_PREFECT_DEPLOYMENT", field: "deployment"},
	{flag: "flow-run-name", env: "UE_PREFECT_FLOW_RUN_NAME", field: "flow_run_name"},
	{flag: "parameters", env: "UE_PREFECT_PARAMETERS", field: "parameters"},
	{flag: "idempotency-key", env: "UE_PREFECT_IDEMPOTENCY_KEY", field: "idempotency_key"},
	{flag: "flow-run-id", env: "UE_PREFECT_FLOW_RUN_ID", field: "flow_run_id"},
	{flag: "wait", env: "UE_PREFECT_WAIT", field: "wait", boolean: true},
	{flag: "poll-interval", env: "UE_PREFECT_POLL_INTERVAL", field: "poll_interval"},
	{flag: "max-polls", env: "UE_PREFECT_MAX_POLLS", field: "max_polls"},
	{flag: "outage-budget", env: "UE_PREFECT_OUTAGE_BUDGET", field: "outage_budget"},
	{flag: "cancel-on-interrupt", env: "UE_PREFECT_CANCEL_ON_INTERRUPT", field: "cancel_on_interrupt", boolean: true},
	{flag: "stream-logs", env: "UE_PREFECT_STREAM_LOGS", field: "stream_logs", boolean: true},
	{flag: "cancel-grace", env: "UE_PREFECT_CANCEL_GRACE", field: "cancel_grace"},
	{flag: "request-timeout", env: "UE_PREFECT_REQUEST_TIMEOUT", field: "request_timeout"},
	{flag: "include-metadata", env: "UE_PREFECT_INCLUDE_METADATA", field: "include_metadata"},
	{flag: "extension-output", env: "UE_PREFECT_EXTENSION_OUTPUT", field: "extension_output"},
	{flag: "output-fields", env: "UE_PREFECT_OUTPUT_FIELDS", field: "output_fields"},
	{flag: "checkpoint", env: "UE_PREFECT_CHECKPOINT", field: "checkpoint"},
	{flag: "stop-on-stdin-close", env: "UE_PREFECT_STOP_ON_STDIN_CLOSE", field: "stop_on_stdin_close", boolean: true},
	{flag: "cache-dir", env: "UE_PREFECT_CACHE_DIR", field: "cache_dir"},
	{flag: "no-cache", env: "UE_PREFECT_NO_CACHE", field: "no_cache", boolean: true},
	{flag: "json", env: "", field: "json", boolean: true},
}

// invocation is everything one process was asked to do.
type invocation struct {
	command string // launch, list-workspaces, list-deployments, warm-cache, version
	values  map[string]string
	given   map[string]bool
	target  string
	apiBase *url.URL
	uiBase  string
	cred    host.Credential
	// basicAlso is the auth string when an API key was given too; a
	// self-hosted target prefers it.
	basicAlso *host.Credential
	fields    abi.Fields
	timeout   time.Duration
	grace     time.Duration
	insecure  bool
}

func (inv *invocation) action() string {
	switch inv.command {
	case "list-workspaces":
		return abi.ActionListWorkspaces
	case "list-deployments":
		return abi.ActionListDeployments
	}
	return abi.ActionLaunchFlowRun
}

func (inv *invocation) get(field string) string { return inv.values[field] }

func (inv *invocation) flag(field string) bool {
	b, _ := strconv.ParseBool(strings.TrimSpace(inv.values[field]))
	return b
}

// boolValue adapts a boolean flag: --wait, --wait=false.
type boolValue struct{ s *string }

func (b boolValue) String() string {
	if b.s == nil {
		return ""
	}
	return *b.s
}
func (b boolValue) Set(v string) error { *b.s = v; return nil }
func (b boolValue) IsBoolFlag() bool   { return true }

type strValue struct{ s *string }

func (v strValue) String() string {
	if v.s == nil {
		return ""
	}
	return *v.s
}
func (v strValue) Set(s string) error { *v.s = s; return nil }

var cloudWorkspaceURL = regexp.MustCompile(`^(.*)/accounts/([0-9a-fA-F-]{36})/workspaces/([0-9a-fA-F-]{36})/?$`)

// parseInvocation reads flags and the environment. It checks what the host
// owns (target, URLs, credentials, files); the plugin checks the rest.
func parseInvocation(args, environ []string) (*invocation, error) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	inv := &invocation{command: "launch", values: map[string]string{}, given: map[string]bool{}}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "launch", "list-workspaces", "list-deployments", "warm-cache", "version":
			inv.command = args[0]
			args = args[1:]
		case "help":
			return inv, errHelp
		default:
			return inv, &fieldError{"action", fmt.Sprintf("unknown command %q; see ue-prefect --help", args[0])}
		}
	}
	fs := flag.NewFlagSet("ue-prefect", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flagVals := map[string]*string{}
	for _, o := range options {
		s := new(string)
		flagVals[o.field+"|"+o.flag] = s
		if o.boolean {
			fs.Var(boolValue{s}, o.flag, "")
		} else {
			fs.Var(strValue{s}, o.flag, "")
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return inv, errHelp
		}
		return inv, &fieldError{"action", err.Error() + "; see ue-prefect --help"}
	}
	if fs.NArg() > 0 {
		return inv, &fieldError{"action", fmt.Sprintf("unexpected argument %q; see ue-prefect --help", fs.Arg(0))}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, o := range options {
		v, ok := "", false
		if set[o.flag] {
			v, ok = *flagVals[o.field+"|"+o.flag], true
			if o.boolean && v == "" {
				v = "true"
			}
		} else if o.env != "" {
			if e := env[o.env]; strings.TrimSpace(e) != "" {
				v, ok = e, true
			}
		}
		if ok {
			key := o.field
			if o.flag == "api-key-file" || o.flag == "auth-string-file" {
				key = o.flag
			}
			inv.values[key] = v
			inv.given[key] = true
		}
	}
	for _, f := range []string{"allow_insecure_http", "no_cache", "json", "stop_on_stdin_close"} {
		if v := inv.values[f]; v != "" {
			if _, err := strconv.ParseBool(strings.TrimSpace(v)); err != nil {
				return inv, &fieldError{f, fmt.Sprintf("%q is not a boolean (true or false)", v)}
			}
		}
	}
	if inv.command == "version" || inv.command == "warm-cache" {
		return inv, nil
	}
	inv.insecure = inv.flag("allow_insecure_http")

	if err := inv.resolveCredential(env); err != nil {
		return inv, err
	}
	if err := inv.resolveTarget(env); err != nil {
		return inv, err
	}
	params := inv.get("parameters")
	if strings.HasPrefix(strings.TrimSpace(params), "@") {
		p := strings.TrimSpace(params)[1:]
		b, err := readBounded(p, 2<<20)
		if err != nil {
			return inv, &fieldError{"parameters", err.Error()}
		}
		params = string(b)
	}
	inv.fields = abi.Fields{
		Workspace:         inv.fields.Workspace,
		Account:           firstNonEmpty(inv.get("account"), inv.fields.Account),
		Deployment:        inv.get("deployment"),
		FlowRunName:       inv.get("flow_run_name"),
		Parameters:        params,
		Wait:              inv.get("wait"),
		PollInterval:      inv.get("poll_interval"),
		MaxPolls:          inv.get("max_polls"),
		IncludeMetadata:   inv.get("include_metadata"),
		IdempotencyKey:    inv.get("idempotency_key"),
		CancelOnInterrupt: inv.get("cancel_on_interrupt"),
		CancelGrace:       inv.get("cancel_grace"),
		OutageBudget:      inv.get("outage_budget"),
		FlowRunID:         inv.get("flow_run_id"),
		StreamLogs:        inv.get("stream_logs"),
	}
	if inv.fields.Workspace == "" {
		inv.fields.Workspace = inv.get("workspace")
	}
	inv.timeout = host.DefaultRequestTimeout
	if v := strings.TrimSpace(inv.get("request_timeout")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 600 {
			return inv, &fieldError{"request_timeout", fmt.Sprintf("%q is not a whole number of seconds from 1 to 600", v)}
		}
		inv.timeout = time.Duration(n) * time.Second
	}
	inv.grace = 30 * time.Second
	if n, err := strconv.Atoi(strings.TrimSpace(inv.get("cancel_grace"))); err == nil && n > 0 && n <= 3600 {
		inv.grace = time.Duration(n) * time.Second
	}
	return inv, nil
}

func (inv *invocation) resolveCredential(env map[string]string) error {
	keySrc, key := "", ""
	if p := inv.get("api-key-file"); p != "" {
		s, err := host.ReadSecretFile(p)
		if err != nil {
			return &fieldError{"credentials", err.Error()}
		}
		keySrc, key = "file "+p, s
	} else if v := env["PREFECT_API_KEY"]; strings.TrimSpace(v) != "" {
		keySrc, key = "env PREFECT_API_KEY", v
	}
	authSrc, auth := "", ""
	if p := inv.get("auth-string-file"); p != "" {
		s, err := host.ReadSecretFile(p)
		if err != nil {
			return &fieldError{"credentials", err.Error()}
		}
		authSrc, auth = "file "+p, s
	} else if v := env["PREFECT_API_AUTH_STRING"]; v != "" {
		authSrc, auth = "env PREFECT_API_AUTH_STRING", v
	}
	inv.cred = host.NoCredential()
	var err error
	switch {
	case key != "":
		inv.cred, err = host.BearerCredential(key, keySrc)
	case auth != "":
		inv.cred, err = host.BasicCredential(auth, authSrc)
	}
	if err != nil {
		return &fieldError{"credentials", err.Error()}
	}
	// Keep the other one too: the target decides which is used.
	if key != "" && auth != "" {
		b, err := host.BasicCredential(auth, authSrc)
		if err != nil {
			return &fieldError{"credentials", err.Error()}
		}
		inv.basicAlso = &b
	}
	return nil
}

func (inv *invocation) resolveTarget(env map[string]string) error {
	target := strings.ToLower(strings.TrimSpace(inv.get("target")))
	switch {
	case target == "", target == "auto":
		target = ""
	case target == "cloud" || strings.Contains(target, "cloud"):
		target = abi.TargetCloud
	case target == "server" || strings.Contains(target, "self-hosted") || strings.Contains(target, "server"):
		target = abi.TargetServer
	default:
		return &fieldError{"target", fmt.Sprintf("%q is not a target; expected cloud or server", inv.get("target"))}
	}
	apiURL := strings.TrimSpace(inv.get("api_url"))
	cloudURL := strings.TrimSpace(inv.get("cloud_api_url"))
	if cloudURL == "" {
		cloudURL = "https://api.prefect.cloud/api"
	}
	// A full Cloud workspace URL (what `prefect cloud login` stores in
	// PREFECT_API_URL) names the target, account and workspace at once.
	if m := cloudWorkspaceURL.FindStringSubmatch(apiURL); m != nil && target != abi.TargetServer {
		target = abi.TargetCloud
		if !inv.given["cloud_api_url"] {
			cloudURL = m[1]
		}
		if inv.get("workspace") == "" {
			inv.fields.Workspace = strings.ToLower(m[3])
			inv.fields.Account = strings.ToLower(m[2])
		}
		apiURL = ""
	}
	if target == "" {
		switch {
		case apiURL != "":
			target = abi.TargetServer
		case inv.cred.Scheme() == abi.SchemeBearer: // an API key was given
			target = abi.TargetCloud
		default:
			return &fieldError{"target", "not given: set PREFECT_API_URL (--api-url) for a self-hosted server, or PREFECT_API_KEY and a workspace for Prefect Cloud"}
		}
	}
	inv.target = target
	var base string
	field := "api_url"
	if target == abi.TargetCloud {
		base, field = cloudURL, "cloud_api_url"
	} else {
		if apiURL == "" {
			return &fieldError{"api_url", "required for a self-hosted server: its API URL, e.g. http://127.0.0.1:4200/api (PREFECT_API_URL)"}
		}
		base = apiURL
		// A self-hosted server authenticates with the auth string (as
		// Prefect's own client prefers it); a key alone is sent as Bearer.
		if inv.basicAlso != nil {
			inv.cred = *inv.basicAlso
		}
	}
	u, err := host.ValidateAPIBase(base, inv.insecure)
	if err != nil {
		return &fieldError{field, err.Error()}
	}
	inv.apiBase = u
	if ui := strings.TrimSpace(inv.get("ui_url")); ui != "" {
		if _, err := host.ValidateAPIBase(ui, true); err != nil {
			return &fieldError{"ui_url", err.Error()}
		}
		inv.uiBase = ui
	}
	return nil
}

func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", path, errors.Unwrap(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s", path)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b, nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
