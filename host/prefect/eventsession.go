package prefect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// session is one connection: handshake, then events until it fails, goes
// silent, or the filter must change. healthy reports whether it stayed
// open for EventHubConfig.Healthy.
func (s *stream) session(ctx context.Context) (healthy bool, err error) {
	cfg := s.hub.cfg
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hctx, hcancel := context.WithTimeout(ctx, DefaultHandshake)
	defer hcancel()
	hdr := http.Header{}
	if cfg.UserAgent != "" {
		hdr.Set("User-Agent", cfg.UserAgent)
	}
	c, resp, derr := websocket.Dial(hctx, s.url, &websocket.DialOptions{
		HTTPClient:   s.hub.client,
		HTTPHeader:   hdr,
		Subprotocols: []string{"prefect"},
	})
	if derr != nil {
		return false, dialError(resp, derr)
	}
	defer c.CloseNow()
	c.SetReadLimit(readLimit)

	// 2. auth
	var token any
	if cfg.Token != nil {
		if t := cfg.Token(); t != "" {
			token = t
		}
	}
	if err := writeJSON(hctx, c, map[string]any{"type": "auth", "token": token}); err != nil {
		return false, closeError("sending the auth message", err)
	}
	var reply struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	}
	if err := readJSON(hctx, c, &reply); err != nil {
		return false, closeError("authenticating", err)
	}
	if reply.Type != "auth_success" {
		return false, fmt.Errorf("authentication refused (%s)", clip(firstNonEmpty(reply.Reason, reply.Type)))
	}

	// 3. filter
	filter, err := s.filter(time.Now())
	if err != nil {
		return false, err
	}
	if err := c.Write(hctx, websocket.MessageText, filter); err != nil {
		return false, closeError("sending the filter", err)
	}
	hcancel()
	s.mu.Lock()
	s.status.Connected = true
	s.status.Connects++
	s.status.LastError = ""
	s.mu.Unlock()

	if s.upSince.IsZero() {
		s.upSince = time.Now()
	}
	upSince := s.upSince

	// Keep-alive, health and resubscription beside the reader.
	errc := make(chan error, 2)
	var isHealthy atomic.Bool
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		t := time.NewTicker(cfg.PingInterval)
		defer t.Stop()
		ht := time.NewTimer(max(0, cfg.Healthy-time.Since(upSince)))
		defer ht.Stop()
		var resub <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case <-ht.C:
				// A proxy may hold a dead socket open: healthy also
				// means that it answers a ping now.
				pctx, pcancel := context.WithTimeout(ctx, cfg.PingTimeout)
				err := c.Ping(pctx)
				pcancel()
				if err != nil {
					if ctx.Err() == nil {
						errc <- fmt.Errorf("no answer to a keep-alive ping within %s", cfg.PingTimeout)
						cancel()
					}
					return
				}
				isHealthy.Store(true)
				s.mu.Lock()
				s.status.Healthy++
				s.mu.Unlock()
				s.hub.up()
				s.catchUp()
			case <-s.changed:
				if s.needsResubscribe() && resub == nil {
					resub = time.After(cfg.Resubscribe)
				}
			case <-resub:
				resub = nil
				if s.needsResubscribe() {
					errc <- errResubscribe
					cancel()
					return
				}
			case <-t.C:
				pctx, pcancel := context.WithTimeout(ctx, cfg.PingTimeout)
				err := c.Ping(pctx)
				pcancel()
				if err != nil && ctx.Err() == nil {
					errc <- fmt.Errorf("no answer to a keep-alive ping within %s", cfg.PingTimeout)
					cancel()
					return
				}
			}
		}
	}()
	// A change that arrived during the handshake may not be in the filter.
	if s.needsResubscribe() {
		s.poke()
	}

	// 4. events
	for {
		var msg struct {
			Type  string          `json:"type"`
			Event json.RawMessage `json:"event"`
		}
		err := readJSON(ctx, c, &msg)
		if err != nil {
			select {
			case e := <-errc:
				if errors.Is(e, errResubscribe) {
					_ = c.Close(websocket.StatusNormalClosure, "")
				}
				cancel()
				<-done
				return isHealthy.Load(), e
			default:
			}
			cancel()
			<-done
			return isHealthy.Load(), closeError("reading events", err)
		}
		if msg.Type == "event" {
			s.deliver(msg.Event)
		}
	}
}

func writeJSON(ctx context.Context, c *websocket.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.Write(ctx, websocket.MessageText, b)
}

func readJSON(ctx context.Context, c *websocket.Conn, v any) error {
	typ, b, err := c.Read(ctx)
	if err != nil {
		return err
	}
	if typ != websocket.MessageText {
		return fmt.Errorf("a binary message")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("a message that is not JSON: %v", err)
	}
	return nil
}

// dialError says why the upgrade failed, without the URL's secrets (it
// has none) and without the response body.
func dialError(resp *http.Response, err error) error {
	if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("the websocket upgrade was answered HTTP %d", resp.StatusCode)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no websocket handshake within %s", DefaultHandshake)
	}
	return fmt.Errorf("websocket: %s", clip(unwrapURL(err)))
}

func closeError(what string, err error) error {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return fmt.Errorf("closed while %s: %d %s", what, int(ce.Code), clip(ce.Reason))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("timed out %s", what)
	}
	return fmt.Errorf("lost while %s: %s", what, clip(err.Error()))
}

func unwrapURL(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
