package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestImportPolicy is a statement of policy, not a description of the
// build: change the table only by decision, never to fix a build.
func TestImportPolicy(t *testing.T) {
	tests := []struct {
		pkg     string
		wasm    bool     // list deps as GOOS=wasip1 GOARCH=wasm
		allowed []string // module or package prefixes allowed besides the standard library
		banned  []string // standard packages not allowed
	}{
		{"./abi", false, nil, []string{"net", "net/http", "net/url", "os", "os/exec", "syscall", "time"}},
		{"./plugin/flowrun", false, []string{"github.com/ue-prefect/ue-prefect/abi", "github.com/tidwall/"}, []string{"net", "net/http", "net/url", "os", "os/exec", "syscall", "math/rand", "crypto/rand"}},
		{"./plugin", true, []string{"github.com/ue-prefect/ue-prefect/abi", "github.com/ue-prefect/ue-prefect/plugin/", "github.com/tidwall/", "github.com/extism/go-pdk"}, []string{"net", "net/http", "os/exec"}},
		// Prefect's wire: never the runtime (wazero), the Monitor or a command.
		// coder/websocket: Prefect's events websocket; no dependencies of its own.
		{"./host/prefect", false, []string{"github.com/ue-prefect/ue-prefect/abi", "github.com/coder/websocket"}, nil},
		{"./host", false, []string{"github.com/ue-prefect/ue-prefect/abi", "github.com/ue-prefect/ue-prefect/host/internal/", "github.com/ue-prefect/ue-prefect/host/prefect", "github.com/tetratelabs/wazero", "golang.org/x/sys", "github.com/coder/websocket"}, nil},
		// The Monitor: the runtime and the wire, never a command.
		{"./host/monitor", false, []string{"github.com/ue-prefect/ue-prefect/host", "github.com/ue-prefect/ue-prefect/abi", "github.com/ue-prefect/ue-prefect/host/internal/", "github.com/ue-prefect/ue-prefect/host/prefect", "github.com/tetratelabs/wazero", "golang.org/x/sys", "github.com/coder/websocket"}, []string{"github.com/ue-prefect/ue-prefect/host/cmd/ue-prefect"}},
		// Test kits for other hosts: no plugin internals, no runtime. hosttest
		// answers a host's HTTP client from a script, so it has the contract
		// and Prefect's wire (which any host already depends on).
		{"./host/hosttest", false, []string{"github.com/ue-prefect/ue-prefect/abi", "github.com/ue-prefect/ue-prefect/host/internal/", "github.com/ue-prefect/ue-prefect/host/prefect", "github.com/coder/websocket"}, nil},
		{"./plugin/flowrun/flowruntest", false, []string{"github.com/ue-prefect/ue-prefect/abi"}, []string{"net", "net/http", "os/exec"}},
		{"./host/cmd/ue-prefect", false, []string{"github.com/ue-prefect/ue-prefect/abi", "github.com/ue-prefect/ue-prefect/host", "github.com/tetratelabs/wazero", "golang.org/x/sys", "github.com/coder/websocket"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.pkg, func(t *testing.T) {
			cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}|{{.ImportPath}}", tc.pkg)
			cmd.Dir = ".."
			cmd.Env = os.Environ()
			if tc.wasm {
				cmd.Env = append(cmd.Env, "GOOS=wasip1", "GOARCH=wasm")
			}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list: %v", err)
			}
			self := "github.com/ue-prefect/ue-prefect/" + strings.TrimPrefix(tc.pkg, "./")
			direct := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, tc.pkg)
			direct.Dir, direct.Env = cmd.Dir, cmd.Env
			imports, err := direct.Output()
			if err != nil {
				t.Fatalf("go list: %v", err)
			}
			for _, path := range strings.Fields(string(imports)) {
				if slices.Contains(tc.banned, path) {
					t.Errorf("%s imports %s", tc.pkg, path)
				}
			}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				nonstd, _, _ := strings.Cut(line, "|")
				if nonstd == "" || nonstd == self {
					continue
				}
				if !slices.ContainsFunc(tc.allowed, func(p string) bool { return strings.HasPrefix(nonstd, p) }) {
					t.Errorf("%s depends on %s, which the policy does not allow", tc.pkg, nonstd)
				}
			}
		})
	}
}

// TestNoClockInMachine: the state machine reads no clock and draws no
// randomness; time and seeds are inputs.
func TestNoClockInMachine(t *testing.T) {
	files, _ := filepath.Glob("../plugin/flowrun/*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, _ := os.ReadFile(f)
		for _, banned := range []string{"time.Now", "time.Since", "time.Sleep", "time.After", "math/rand", "crypto/rand"} {
			if strings.Contains(string(b), banned) {
				t.Errorf("%s uses %s", f, banned)
			}
		}
	}
}
