package uetemporal

import (
	"context"

	"go.temporal.io/sdk/activity"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host"
)

// Effects is what the activities need of a host: host.Functions in a worker,
// a scripted Prefect in tests.
type Effects interface {
	HTTP(abi.HTTPRequest) abi.HTTPResponse
}

// Activities are the workflow's side effects, run by a worker that holds
// the API base and the credential (which never enters workflow history).
type Activities struct {
	Effects Effects
	Conn    Connection
}

// NewActivities builds the activities from a host run configuration: the
// same HTTP code as the CLI's (one attempt, the API base enforced, the
// credential attached, bodies capped).
func NewActivities(ctx context.Context, cfg host.RunConfig) (*Activities, error) {
	eff, err := host.NewFunctions(ctx, cfg)
	if err != nil {
		return nil, err
	}
	cred := eff.Credential(abi.CredentialRequest{})
	return &Activities{Effects: eff, Conn: Connection{Target: cfg.Target, APIBase: cfg.APIBase.String(), UIBase: cfg.UIBase, Credential: cred}}, nil
}

// HTTP executes one exchange. Its time (NowMS) is replaced by workflow time.
func (a *Activities) HTTP(ctx context.Context, req abi.HTTPRequest) (abi.HTTPResponse, error) {
	return a.Effects.HTTP(req), nil
}

// Connection reports the worker's API and credential scheme.
func (a *Activities) Connection(ctx context.Context) (Connection, error) { return a.Conn, nil }

// Register registers the activities on r under their names.
func (a *Activities) Register(r interface {
	RegisterActivityWithOptions(any, activity.RegisterOptions)
}) {
	r.RegisterActivityWithOptions(a.HTTP, activity.RegisterOptions{Name: ActivityHTTP})
	r.RegisterActivityWithOptions(a.Connection, activity.RegisterOptions{Name: ActivityConnection})
}
