// Package randid makes the random ids the host gives a run's invocation:
// 128 bits from crypto/rand, as 32 lowercase hex digits.
package randid

import (
	"crypto/rand"
	"encoding/hex"
)

// New returns a fresh random id.
func New() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
