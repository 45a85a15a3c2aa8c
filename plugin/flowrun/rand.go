package flowrun

import "fmt"

// rand draws the machine's next random number. The generator is
// splitmix64: small, seedable and serialisable as one integer (state.RNG),
// so jitter and transition ids replay exactly from a checkpoint.
func (m *Machine) rand() uint64 {
	m.s.RNG += 0x9e3779b97f4a7c15
	z := m.s.RNG
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// uuid4 returns a random (version 4) UUID drawn from the machine's rng.
func (m *Machine) uuid4() string {
	a, b := m.rand(), m.rand()
	a = a&^(0xf<<12) | 0x4<<12 // version 4
	b = b&^(0x3<<62) | 0x2<<62 // RFC 4122 variant
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}

// jitter scales d by a random factor in [1-f, 1+f].
func (m *Machine) jitter(d int64, f float64) int64 {
	u := float64(m.rand()>>11) / (1 << 53) // [0,1)
	return int64(float64(d) * (1 - f + 2*f*u))
}
