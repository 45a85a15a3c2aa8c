package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
	"github.com/ue-prefect/ue-prefect/host/monitor"
)

// TestE2E_MonitorBudget: two 30 s runs launched through a Monitor with a
// budget of 12 requests a minute, polling every second (60 reads a minute
// wanted), behind a proxy that admits 12 in any minute and answers the
// rest 429. The proxy refuses none, no minute holds more than 12, the
// reads go out one each 5 s, and both runs end COMPLETED. Without the
// budget the same polls are refused.
func TestE2E_MonitorBudget(t *testing.T) {
	t.Parallel() // its own proxy and Monitor; it waits out its budget, about 100 s
	const budget = 12
	env := e2e(t)
	mr := newMonitorRig(t, env)
	mr.proxy.RateLimit(budget, time.Minute)
	m := mr.startWith(t, monitor.Config{RequestsPerMinute: budget})
	defer m.Close()
	tag := fmt.Sprintf("monbudget-%d", time.Now().UnixNano())
	var keys []string
	for i := range 2 {
		key := fmt.Sprintf("%s-%d", tag, i)
		if _, err := m.Launch(key, abi.Fields{Deployment: "sleepy/sleepy", PollInterval: "1", Parameters: `{"parameters":{"seconds":30}}`}); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	outs := mr.waitOutcomes(t, keys, 5*time.Minute)
	for _, k := range keys {
		if outs[k].ExitCode != 0 {
			t.Errorf("%s: exit %d: %s", k, outs[k].ExitCode, outs[k].StatusDescription)
		}
	}
	log := mr.proxy.Log()
	var sent []time.Time
	for _, ex := range log {
		if ex.Fault == "rate-limit" {
			t.Errorf("the proxy refused %s %s at %s: over the budget", ex.Method, ex.Path, ex.Time.Format(time.StampMilli))
			continue
		}
		sent = append(sent, ex.Time)
	}
	for i := budget; i < len(sent); i++ {
		if d := sent[i].Sub(sent[i-budget]); d < time.Minute {
			t.Errorf("%d requests within %s", budget+1, d)
		}
	}
	if c := m.Requests(); c.Batches < 4 {
		t.Errorf("%d batched reads over two 30 s runs: the budget did not pace any", c.Batches)
	}
	if c := m.Requests(); c.LastMinute > budget {
		t.Errorf("Requests().LastMinute = %d, over the budget of %d", c.LastMinute, budget)
	}
	t.Logf("%d requests admitted by the proxy; counters %+v", len(sent), m.Requests())
}
