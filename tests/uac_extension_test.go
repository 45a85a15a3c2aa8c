package tests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ue-prefect/ue-prefect/tests/rig"
)

// TestE2E_UACExtension runs the Universal Extension's pytest suite
// (host/uac/tests) with the project venv's pytest, through the binary this
// package built, against the shared real Prefect server and a
// Prefect-Cloud-shaped front on it. The suite packages the extension with
// host/uac/build.sh (uip-cli, as `make uac` does) and imports it from the
// built archive.
func TestE2E_UACExtension(t *testing.T) {
	t.Parallel()
	env := e2e(t)
	python, err := rig.Python()
	if err != nil {
		t.Fatal(err)
	}
	root, err := rig.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	acct := rig.NewUUID()
	prod := rig.Workspace{AccountID: acct, AccountName: "Acme", AccountHandle: "acme", WorkspaceID: rig.NewUUID(), WorkspaceName: "Production", WorkspaceHandle: "prod"}
	staging := rig.Workspace{AccountID: acct, AccountName: "Acme", AccountHandle: "acme", WorkspaceID: rig.NewUUID(), WorkspaceName: "Staging", WorkspaceHandle: "staging"}
	front := rig.NewCloudFront(env.Server, testAPIKey, []rig.Workspace{prod, staging})
	t.Cleanup(front.Close)

	// The binary, named as the extension archive names it for this platform.
	bins := t.TempDir()
	name := "ue-prefect-" + runtime.GOOS + "-" + runtime.GOARCH
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	if err := os.Symlink(binPath, filepath.Join(bins, name)); err != nil {
		t.Fatal(err)
	}
	// The extension hands the binary no UE_PREFECT_* from its own environment,
	// so point the user cache dir at the compile cache this package warmed.
	xdg := t.TempDir()
	if err := os.Symlink(cacheDir, filepath.Join(xdg, "ue-prefect")); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	args := []string{"-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "host/uac/tests"}
	// UE_PREFECT_TEST_PYTEST_K runs only the pytest tests that match it (pytest -k).
	if k := os.Getenv("UE_PREFECT_TEST_PYTEST_K"); k != "" {
		args = append(args, "-k", k)
	}
	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Dir = root
	cmd.Env = baseEnv(map[string]string{
		"XDG_CACHE_HOME":                xdg,
		"CI":                            os.Getenv("CI"), // the noexec test never skips under CI=true
		"PYTHONDONTWRITEBYTECODE":       "1",
		"UE_PREFECT_TEST_BIN_DIR":       bins,
		"UE_PREFECT_TEST_API_URL":       env.Server.URL,
		"UE_PREFECT_TEST_CLOUD_API_URL": front.APIURL(),
		"UE_PREFECT_TEST_CLOUD_KEY":     testAPIKey,
		"UE_PREFECT_TEST_WORKSPACES":    prod.Handle() + "," + staging.Handle(),
	})
	start := time.Now()
	out, err := cmd.CombinedOutput()
	capture(t.Name()+" pytest", string(out))
	if err != nil {
		t.Fatalf("pytest (%s): %v\n%s", time.Since(start).Round(time.Second), err, out)
	}
	lines := 40
	if os.Getenv("UE_PREFECT_TEST_PYTEST_K") != "" {
		lines = 400 // a chosen few: all of it
	}
	t.Logf("pytest (%s):\n%s", time.Since(start).Round(time.Second), tail(string(out), lines))
	switch {
	case !strings.Contains(string(out), " passed"):
		t.Errorf("pytest passed nothing")
	case strings.Contains(string(out), " skipped") && rig.Required():
		t.Errorf("pytest skipped tests under CI=true")
	case strings.Contains(string(out), " skipped"):
		// Only the noexec test may skip: where the kernel refuses a private
		// mount namespace (not root). It says why in the output above.
		t.Logf("pytest skipped tests (allowed outside CI only)")
	}
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
