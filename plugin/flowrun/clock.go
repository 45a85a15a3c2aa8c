package flowrun

import (
	"time"

	"github.com/ue-prefect/ue-prefect/abi"
)

// Time inside the machine is one unit: int64 milliseconds, the unit abi
// carries (now_ms, duration_ms, retry_after_ms). Instants are machine time
// (state.Now); durations are spans of it. Seconds, the unit of the user's
// fields and of Prefect's delay_seconds, become milliseconds where they
// come in (ParseFields, onCancel), and the result's elapsed_seconds is the
// only way out.
const (
	second int64 = 1000
	minute       = 60 * second
)

// observe advances machine time to an event's host time; it never goes
// backwards.
func (m *Machine) observe(hostNow int64) {
	if t := hostNow + m.s.Offset; t > m.s.Now {
		m.s.Now = t
	}
}

// sleep issues a sleep of ms for o (a sleep op), unless an interrupt
// stops the machine first. A retry sleep keeps the request it will send
// again; any other sleep has nothing else outstanding.
func (m *Machine) sleep(o op, ms int64) { m.sleepWake(o, ms, nil, false) }

// sleepWake is sleep; with wake set, an event for the flow run may end
// the sleep early (abi.WakeOn); with exact set, the sleep ends at a
// deadline and the host must not lengthen it (abi.SleepRequest.Exact).
func (m *Machine) sleepWake(o op, ms int64, wake *abi.WakeOn, exact bool) {
	if m.interruptStops(o) {
		m.onInterrupt()
		return
	}
	if o == opSleepRetry {
		m.s.Pending.Op = o
	} else {
		m.s.Pending = pending{Op: o}
	}
	m.emit(abi.Command{Kind: abi.CommandSleep, Sleep: &abi.SleepRequest{DurationMS: max(ms, 0), WakeOn: wake, Exact: exact}})
}

// dur renders milliseconds for people: 450ms, 12s, 1m2s, 1h0m5s.
func dur(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	if d < time.Second {
		return d.String()
	}
	return d.Round(time.Second).String()
}
