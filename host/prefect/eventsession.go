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

// session is one connection of a stream: the handshake, then events until
// it fails, goes silent, or the filter must change.
type session struct {
	s       *stream
	cfg     EventHubConfig
	c       *websocket.Conn
	cancel  context.CancelFunc // ends the connection
	errc    chan error         // why the keep-alive ended it
	healthy atomic.Bool        // it stayed open for cfg.Healthy, then answered a ping
}

// session runs one connection. healthy reports whether it stayed open for
// EventHubConfig.Healthy.
func (s *stream) session(ctx context.Context) (healthy bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ss := &session{s: s, cfg: s.hub.cfg, cancel: cancel, errc: make(chan error, 2)}
	if err := ss.open(ctx); err != nil {
		return false, err
	}
	defer ss.c.CloseNow()

	if s.upSince.IsZero() {
		s.upSince = time.Now()
	}

	// Keep-alive, health and resubscription beside the reader.
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		ss.keepAlive(ctx, s.upSince)
	}()
	// A change that arrived during the handshake may not be in the filter.
	if s.needsResubscribe() {
		s.poke()
	}
	return ss.read(ctx, done)
}

// open dials and completes the handshake: auth, then the filter.
func (ss *session) open(ctx context.Context) error {
	s, cfg := ss.s, ss.cfg
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
		return dialError(resp, derr)
	}
	opened := false
	defer func() {
		if !opened {
			c.CloseNow()
		}
	}()
	c.SetReadLimit(readLimit)

	// 2. auth
	var token any
	if cfg.Token != nil {
		if t := cfg.Token(); t != "" {
			token = t
		}
	}
	if err := writeJSON(hctx, c, map[string]any{"type": "auth", "token": token}); err != nil {
		return closeError("sending the auth message", err)
	}
	var reply struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	}
	if err := readJSON(hctx, c, &reply); err != nil {
		return closeError("authenticating", err)
	}
	if reply.Type != "auth_success" {
		return fmt.Errorf("authentication refused (%s)", clip(firstNonEmpty(reply.Reason, reply.Type)))
	}

	// 3. filter
	filter, err := s.filter(time.Now())
	if err != nil {
		return err
	}
	if err := c.Write(hctx, websocket.MessageText, filter); err != nil {
		return closeError("sending the filter", err)
	}
	hcancel()
	s.mu.Lock()
	s.status.Connected = true
	s.status.Connects++
	s.status.LastError = ""
	s.mu.Unlock()

	ss.c, opened = c, true
	return nil
}

// keepAlive pings, marks the connection healthy, and ends it for a
// missing pong or a change of the watched runs, until ctx ends.
func (ss *session) keepAlive(ctx context.Context, upSince time.Time) {
	s, cfg, c, cancel, errc := ss.s, ss.cfg, ss.c, ss.cancel, ss.errc
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
			ss.healthy.Store(true)
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
}

// read hands the stream its events until the connection ends, and reports
// why it ended and whether it was healthy. done closes when keepAlive has
// returned.
func (ss *session) read(ctx context.Context, done <-chan struct{}) (bool, error) {
	c, cancel, errc := ss.c, ss.cancel, ss.errc
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
				return ss.healthy.Load(), e
			default:
			}
			cancel()
			<-done
			return ss.healthy.Load(), closeError("reading events", err)
		}
		if msg.Type == "event" {
			ss.s.deliver(msg.Event)
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
