//go:build !linux

package host

// dropResident is a no-op off Linux.
func dropResident([]byte) {}
