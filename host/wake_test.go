package host

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/internal/vclock"
	"github.com/ue-prefect/ue-prefect/host/prefect"
)

// fakeEvents is an EventSource the test fires by hand.
type fakeEvents struct {
	mu         sync.Mutex
	fns        map[string]func(prefect.Event)
	subscribes int
	stops      int
}

func (f *fakeEvents) Subscribe(path, id string, fn func(prefect.Event)) (func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fns == nil {
		f.fns = map[string]func(prefect.Event){}
	}
	f.subscribes++
	f.fns[path+" "+id] = fn
	return func() { f.mu.Lock(); f.stops++; f.mu.Unlock() }, nil
}

func (f *fakeEvents) fire(path, id string) {
	f.mu.Lock()
	fn := f.fns[path+" "+id]
	f.mu.Unlock()
	if fn != nil {
		fn(prefect.Event{Name: "prefect.flow-run.Running", FlowRunID: id})
	}
}

const wakeRun = "3b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b"

func wakeEffects(t *testing.T, clock Clock) (*Functions, *fakeEvents) {
	t.Helper()
	base, _ := url.Parse("http://127.0.0.1:1/api")
	ev := &fakeEvents{}
	e, err := (&Runtime{}).Functions(context.Background(), RunConfig{Connection: prefect.Connection{APIBase: base}, Clock: clock, Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	return e, ev
}

// TestSleepWake: an event ends a sleep that asks for it, or the next one
// if it came between sleeps; a sleep that does not ask is never woken; one
// subscription per flow run, ended with the run.
func TestSleepWake(t *testing.T) {
	on := &abi.WakeOn{FlowRunID: wakeRun, EventsPath: "/events/out"}
	t.Run("between sleeps", func(t *testing.T) {
		vc := vclock.New(time.Unix(0, 0))
		e, ev := wakeEffects(t, vc)
		if r := e.Sleep(abi.SleepRequest{DurationMS: 60000, WakeOn: on}); r.Woken || r.NowMS != 60000 {
			t.Fatalf("first sleep = %+v, want a full one", r)
		}
		ev.fire("/events/out", wakeRun)
		if r := e.Sleep(abi.SleepRequest{DurationMS: 60000, WakeOn: on}); !r.Woken || r.NowMS != 60000 {
			t.Fatalf("sleep after an event = %+v, want woken at once", r)
		}
		if r := e.Sleep(abi.SleepRequest{DurationMS: 60000, WakeOn: on}); r.Woken || r.NowMS != 120000 {
			t.Fatalf("sleep after that = %+v, want a full one (the event was used)", r)
		}
		ev.fire("/events/out", wakeRun)
		if r := e.Sleep(abi.SleepRequest{DurationMS: 1000}); r.Woken || r.NowMS != 121000 {
			t.Fatalf("sleep without wake_on = %+v, want a full one", r)
		}
		e.Close()
		if ev.subscribes != 1 || ev.stops != 1 {
			t.Errorf("subscribed %d, stopped %d; want 1 and 1", ev.subscribes, ev.stops)
		}
	})
	t.Run("during a sleep", func(t *testing.T) {
		e, ev := wakeEffects(t, RealClock())
		defer e.Close()
		go func() {
			for { // fire once the sleep has subscribed
				time.Sleep(20 * time.Millisecond)
				ev.mu.Lock()
				n := ev.subscribes
				ev.mu.Unlock()
				if n > 0 {
					ev.fire("/events/out", wakeRun)
					return
				}
			}
		}()
		start := time.Now()
		r := e.Sleep(abi.SleepRequest{DurationMS: 600000, WakeOn: on})
		if !r.Woken || time.Since(start) > time.Minute {
			t.Fatalf("sleep = %+v after %s, want woken by the event", r, time.Since(start))
		}
	})
	t.Run("interrupt wins", func(t *testing.T) {
		intr := NewInterrupter()
		base, _ := url.Parse("http://127.0.0.1:1/api")
		ev := &fakeEvents{}
		e, err := (&Runtime{}).Functions(context.Background(), RunConfig{Connection: prefect.Connection{APIBase: base}, Clock: vclock.New(time.Unix(0, 0)), Events: ev, Interrupter: intr})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		e.Sleep(abi.SleepRequest{DurationMS: 1000, WakeOn: on})
		ev.fire("/events/out", wakeRun)
		intr.Interrupt("SIGTERM", abi.ExitInterruptedSIGTERM)
		if r := e.Sleep(abi.SleepRequest{DurationMS: 1000, WakeOn: on}); r.Interrupt == nil || r.Woken {
			t.Fatalf("sleep = %+v, want the interrupt and not woken", r)
		}
	})
}
