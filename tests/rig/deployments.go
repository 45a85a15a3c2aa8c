package rig

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// WaitDeploymentReady waits until deployment flow/deployment has status
// READY, which Prefect sets once a runner or worker has polled for its work
// (server/models/deployments.py: mark_deployments_ready), and returns how
// long that took. flow.serve registers its deployments before its first
// poll, so a launch made at once would find them NOT_READY.
func (s *Server) WaitDeploymentReady(ctx context.Context, flow, deployment string, timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	path := "/deployments/name/" + url.PathEscape(flow) + "/" + url.PathEscape(deployment)
	for {
		var d struct {
			Status string `json:"status"`
		}
		_, err := s.doJSON(ctx, http.MethodGet, path, nil, &d)
		if err == nil && d.Status == "READY" {
			return time.Since(t0), nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("status %q", d.Status)
			}
			return time.Since(t0), fmt.Errorf("deployment %s/%s not READY after %s: %w", flow, deployment, timeout, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
