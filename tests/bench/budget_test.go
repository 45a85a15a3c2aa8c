package bench

import (
	"testing"
	"time"
)

func TestMaxInWindow(t *testing.T) {
	t0 := time.Unix(0, 0)
	at := func(s ...float64) []time.Time {
		var ts []time.Time
		for _, x := range s {
			ts = append(ts, t0.Add(time.Duration(x*float64(time.Second))))
		}
		return ts
	}
	for _, tc := range []struct {
		ts   []time.Time
		want int
	}{
		{nil, 0},
		{at(0), 1},
		{at(0, 0, 0), 3},
		{at(0, 59.9, 60), 2},           // the proxy forgets a request a whole window later
		{at(0, 30, 59, 61, 62, 89), 5}, // 30 to 89
		{at(0, 30, 59, 61, 62, 90), 4},
	} {
		if got := maxInWindow(tc.ts, time.Minute); got != tc.want {
			t.Errorf("maxInWindow(%v) = %d, want %d", tc.ts, got, tc.want)
		}
	}
}

func TestBudgetImplied(t *testing.T) {
	for _, tc := range []struct {
		n        int
		interval time.Duration
		rpm      int
		want     time.Duration
	}{
		{5000, 10 * time.Second, 300, 11 * time.Second},                      // 25 reads need 5.1 s of the budget: the interval rules
		{500, 2 * time.Second, 60, 3*61*time.Second/60 + time.Second},        // 3 reads need 3.05 s: the budget rules
		{20000, 10 * time.Second, 300, 100*61*time.Second/300 + time.Second}, // 100 reads need 20.3 s
	} {
		if got, why := budgetImplied(tc.n, tc.interval, tc.rpm); got != tc.want {
			t.Errorf("budgetImplied(%d, %s, %d) = %s (%s), want %s", tc.n, tc.interval, tc.rpm, got, why, tc.want)
		}
	}
}
