package monitor

import (
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/plugin/flowrun/flowruntest"
)

// TestFileStoreLongKeys (issue 15, 3.10): keys of any length are saved,
// loaded and deleted; a file named the old way (the base64 of the key)
// still loads and deletes.
func TestFileStoreLongKeys(t *testing.T) {
	dir := t.TempDir()
	s, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"short", strings.Repeat("k", 188), strings.Repeat("ключ/", 400), strings.Repeat("x", 10000)}
	for i, k := range keys {
		if err := s.Save(k, []byte(`{"i":`+string(rune('0'+i))+`}`)); err != nil {
			t.Fatalf("Save of a %d-byte key: %v", len(k), err)
		}
	}
	// A file an older release wrote, named after the base64 of its key.
	old := "written before"
	if err := os.WriteFile(filepath.Join(dir, base64.RawURLEncoding.EncodeToString([]byte(old))+".json"),
		[]byte(`{"key":"written before","checkpoint":{"old":true}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(keys)+1 || string(got[old]) != `{"old":true}` {
		t.Fatalf("Load: %d runs, old %q", len(got), got[old])
	}
	for i, k := range keys {
		if want := `{"i":` + string(rune('0'+i)) + `}`; string(got[k]) != want {
			t.Errorf("key of %d bytes: %q, want %q", len(k), got[k], want)
		}
	}
	for _, k := range append(keys, old) {
		if err := s.Delete(k); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Load(); err != nil || len(got) != 0 {
		t.Errorf("after deleting every key: %d runs, %v", len(got), err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if len(e.Name()) > 255 {
			t.Errorf("file name of %d bytes", len(e.Name()))
		}
	}
}

// TestMonitorStartAt (issue 15, 3.4): Launch with Start At schedules the
// run: the Monitor gives the machine the wall clock.
func TestMonitorStartAt(t *testing.T) {
	f := newFakePrefect(t)
	m := newMonitor(t, *f.base(t))
	defer m.Close()
	before := time.Now()
	w, err := m.Launch("later", abi.Fields{Deployment: flowruntest.DeploymentID, StartAt: "10m", Wait: "false"})
	if err != nil {
		t.Fatal(err)
	}
	if out := outcomeWithin(t, w, time.Minute); out.ExitCode != abi.ExitSuccess {
		t.Fatalf("exit %d: %s", out.ExitCode, out.StatusDescription)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.creates) != 1 {
		t.Fatalf("%d creates", len(f.creates))
	}
	st, _ := f.creates[0]["state"].(map[string]any)
	at, err := time.Parse(time.RFC3339Nano, func() string { s, _ := st["state_details"].(map[string]any)["scheduled_time"].(string); return s }())
	if err != nil {
		t.Fatalf("create body state %v: %v", st, err)
	}
	if d := at.Sub(before); d < 9*time.Minute || d > 11*time.Minute {
		t.Errorf("scheduled %s after the Launch, want 10m", d)
	}
}

// TestMonitorKeepsUnknownFates (issue 15, 3.5): a run whose fate is
// unknown keeps its checkpoint in the store, as the CLI keeps its
// checkpoint file: past the outage budget it is resumed by the next
// Monitor (and ends then), and a checkpoint of another version survives
// a restart untouched.
func TestMonitorKeepsUnknownFates(t *testing.T) {
	f := newFakePrefect(t)
	f.set(fakeID(1), "RUNNING")
	down := true
	f.filter = func(w http.ResponseWriter, ids []string, limit int) bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		if down && len(f.batches) > 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	v1, err := os.ReadFile("../../plugin/flowrun/testdata/checkpoint-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	store := NewMemoryStore()
	_ = store.Save("old-release", v1)
	var log outcomeLog
	cfg := f.base(t)
	cfg.Store, cfg.OnOutcome = store, log.on
	m := newMonitor(t, *cfg)
	w, err := m.Launch("outage", abi.Fields{FlowRunID: fakeID(1), PollInterval: "1", OutageBudget: "0"})
	if err != nil {
		t.Fatal(err)
	}
	if out := outcomeWithin(t, w, time.Minute); out.ExitCode != abi.ExitFailed || out.Error == nil || out.Error.Code != abi.CodeUnavailable {
		t.Fatalf("past the outage budget: %+v", out)
	}
	if out := log.wait(t, "old-release", 1); out.Error == nil || out.Error.Code != abi.CodeInvalidInput || out.Error.Field != "checkpoint" {
		t.Fatalf("a version 1 checkpoint: %+v", out)
	}
	m.Close()
	saved, _ := store.Load()
	if saved["outage"] == nil {
		t.Fatal("the run past its outage budget was deleted from the store")
	}
	if string(saved["old-release"]) != string(v1) {
		t.Fatal("the checkpoint of another version was not kept as it was")
	}

	f.mu.Lock()
	down = false
	f.runs[fakeID(1)] = "COMPLETED"
	f.mu.Unlock()
	m = newMonitor(t, *cfg)
	defer m.Close()
	if out := log.wait(t, "outage", 2); out.ExitCode != abi.ExitSuccess {
		t.Fatalf("resumed after the outage: exit %d: %s", out.ExitCode, out.StatusDescription)
	}
	if out := log.wait(t, "old-release", 2); out.Error == nil || out.Error.Field != "checkpoint" {
		t.Fatalf("a version 1 checkpoint after a restart: %+v", out)
	}
	saved, _ = store.Load()
	if saved["outage"] != nil || string(saved["old-release"]) != string(v1) {
		t.Errorf("store after the restart: outage %q, old-release kept %v", saved["outage"], string(saved["old-release"]) == string(v1))
	}
}

// outcomeLog collects OnOutcome calls.
type outcomeLog struct {
	mu   sync.Mutex
	outs map[string][]abi.RunOutput
}

func (o *outcomeLog) on(key string, out abi.RunOutput) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.outs == nil {
		o.outs = map[string][]abi.RunOutput{}
	}
	o.outs[key] = append(o.outs[key], out)
}

// wait returns the nth outcome (from 1) of key.
func (o *outcomeLog) wait(t *testing.T, key string, n int) abi.RunOutput {
	t.Helper()
	var out abi.RunOutput
	waitFor(t, "outcome of "+key, func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		if len(o.outs[key]) >= n {
			out = o.outs[key][n-1]
			return true
		}
		return false
	})
	return out
}

// TestMonitorForget: a checkpoint kept because the run's fate was unknown
// makes a Launch of its key with other inputs exit 20 on Checkpoint;
// Forget removes it from the store, and the key launches afresh. Forget
// refuses a key being followed and leaves its checkpoint; an unknown key
// is no error. With both stores.
func TestMonitorForget(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) Store
	}{
		{"MemoryStore", func(*testing.T) Store { return NewMemoryStore() }},
		{"FileStore", func(t *testing.T) Store {
			s, err := NewFileStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakePrefect(t)
			f.set(fakeID(1), "RUNNING")
			f.set(fakeID(2), "COMPLETED")
			f.set(fakeID(3), "RUNNING")
			f.filter = func(w http.ResponseWriter, ids []string, limit int) bool {
				for _, id := range ids {
					if id == fakeID(1) { // Prefect down for run 1 only
						w.WriteHeader(http.StatusServiceUnavailable)
						return true
					}
				}
				return false
			}
			store := tc.store(t)
			cfg := f.base(t)
			cfg.Store = store
			m := newMonitor(t, *cfg)
			defer m.Close()
			launch := func(key string, fields abi.Fields) abi.RunOutput {
				t.Helper()
				w, err := m.Launch(key, fields)
				if err != nil {
					t.Fatal(err)
				}
				return outcomeWithin(t, w, time.Minute)
			}
			if out := launch("k", abi.Fields{FlowRunID: fakeID(1), PollInterval: "1", OutageBudget: "0"}); out.Error == nil || out.Error.Code != abi.CodeUnavailable {
				t.Fatalf("past the outage budget: %+v", out)
			}
			if out := launch("k", abi.Fields{FlowRunID: fakeID(2)}); out.ExitCode != abi.ExitDataValidation || out.Error == nil || out.Error.Field != "checkpoint" {
				t.Fatalf("another run under the kept key: exit %d: %s, want exit 20 on checkpoint", out.ExitCode, out.StatusDescription)
			}

			if _, err := m.Launch("active", abi.Fields{FlowRunID: fakeID(3), PollInterval: "600"}); err != nil {
				t.Fatal(err)
			}
			if err := m.Forget("active"); err == nil || !strings.Contains(err.Error(), "being followed") {
				t.Errorf("Forget of a followed run: %v, want a refusal", err)
			}
			if err := m.Forget("never-seen"); err != nil {
				t.Errorf("Forget of an unknown key: %v", err)
			}
			if err := m.Forget("k"); err != nil {
				t.Fatal(err)
			}
			saved, err := store.Load()
			if err != nil {
				t.Fatal(err)
			}
			if saved["k"] != nil || saved["active"] == nil {
				t.Errorf("store after Forget: k %q, active kept %v", saved["k"], saved["active"] != nil)
			}
			if out := launch("k", abi.Fields{FlowRunID: fakeID(2)}); out.ExitCode != abi.ExitSuccess {
				t.Errorf("after Forget: exit %d: %s, want 0", out.ExitCode, out.StatusDescription)
			}
		})
	}
}
