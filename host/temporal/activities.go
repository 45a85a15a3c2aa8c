package uetemporal

import (
	"context"

	"go.temporal.io/sdk/activity"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

// Effects is what the activities need of a host: a prefect.Client in a
// worker, a scripted Prefect in tests.
type Effects interface {
	HTTP(abi.HTTPRequest) abi.HTTPResponse
}

// Activities are the workflow's side effects, run by a worker that holds
// the API base and the credential (which never enters workflow history).
type Activities struct {
	Effects Effects
	Conn    Connection
}

// WorkerConfig configures a worker's activities.
type WorkerConfig struct {
	// Connection is how the activities reach Prefect. The credential stays
	// on the worker: the workflow learns only its scheme and source.
	prefect.Connection
}

// NewActivities builds the activities on the same HTTP code as the CLI's
// (prefect.Client: one attempt, the API base enforced, the credential
// attached, bodies capped). When ctx ends, an exchange in flight ends as
// interrupted.
func NewActivities(ctx context.Context, cfg WorkerConfig) (*Activities, error) {
	c, err := prefect.NewClient(cfg.Connection, nil)
	if err != nil {
		return nil, err
	}
	cred := abi.CredentialResponse{Scheme: cfg.Credential.Scheme(), Source: cfg.Credential.Source()}
	return &Activities{Effects: wire{ctx: ctx, c: c}, Conn: Connection{Target: cfg.Target, APIBase: cfg.APIBase.String(), UIBase: cfg.UIBase, Credential: cred}}, nil
}

// wire is Effects on a prefect.Client, within the worker's context.
type wire struct {
	ctx context.Context
	c   *prefect.Client
}

func (w wire) HTTP(req abi.HTTPRequest) abi.HTTPResponse { return w.c.Do(w.ctx, req) }

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
