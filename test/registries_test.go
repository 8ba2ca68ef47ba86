package test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/test/harness"
)

// TestRegistry_TLSAuth_PushPull runs Debian's docker-registry as operators
// do, over TLS with a CA the test makes and with basic auth, and checks the
// whole path: berth pushes to it with docker's credentials (tag, then push),
// a second berthd pulls the same digest through a declared Image whose
// credentials are in a file of its own, a berthd without the CA fails with
// a certificate error, one without credentials with an authentication
// error, and the password appears in no log, event, status or CLI output.
func TestRegistry_TLSAuth_PushPull(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "runc")
	secretBytes := make([]byte, 12)
	_, _ = rand.Read(secretBytes)
	password := "pw-" + hex.EncodeToString(secretBytes)
	const user = "berth"
	ca := testutil.NewCA(t, "berth e2e registry CA")
	reg := harness.StartRegistryWith(t, harness.RegistryOptions{CA: ca, User: user, Password: password})

	tmp := t.TempDir()
	certsd := filepath.Join(tmp, "certs.d")
	testutil.WriteFile(t, filepath.Join(certsd, reg.Addr), "ca.crt", ca.PEM, 0o644) // docker's layout
	authJSON := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Addr, base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
	dockerCfg := filepath.Join(tmp, "docker")
	testutil.WriteFile(t, dockerCfg, "config.json", []byte(authJSON), 0o600)
	authFile := testutil.WriteFile(t, filepath.Join(tmp, "auth"), "app.json", []byte(authJSON), 0o600)

	// Every string that would leak the credentials.
	secrets := []string{password, base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}
	var outputs []string
	cli := func(d *harness.Daemon, args ...string) harness.Result {
		r := d.CLI(args...)
		outputs = append(outputs, r.Stdout, r.Stderr)
		return r
	}

	// A: has the CA and docker's config.json; tags and pushes.
	a := harness.StartDaemon(t, harness.DaemonOptions{LogLevel: "debug",
		Args: []string{"--registry-config-dir", certsd}, Env: []string{"DOCKER_CONFIG=" + dockerCfg}})
	a.MustCLI(t, "image", "import", filepath.Join(testutil.TestImages(t, "busybox"), "busybox"))
	ref := reg.Addr + "/apps/busybox:1.0"
	if r := cli(a, "image", "tag", "busybox:latest", ref); r.ExitCode != 0 {
		t.Fatalf("tag: %s", r)
	}
	if r := cli(a, "image", "push", ref); r.ExitCode != 0 {
		t.Fatalf("push: %s", r)
	}
	var pushed struct{ Digest string }
	if err := json.Unmarshal([]byte(a.MustCLI(t, "image", "inspect", ref)), &pushed); err != nil || pushed.Digest == "" {
		t.Fatalf("inspect %s: %v", ref, err)
	}

	// B: has the CA, no docker config; a declared Image names its own
	// credentials file.
	manifests := t.TempDir()
	b := harness.StartDaemon(t, harness.DaemonOptions{LogLevel: "debug", Manifests: manifests, Config: declConfig,
		Args: []string{"--registry-config-dir", certsd}, Env: []string{"DOCKER_CONFIG=" + filepath.Join(tmp, "none")}})
	r := cli(b, "image", "pull", ref)
	if r.ExitCode != 2 || !strings.Contains(strings.ToLower(r.Stderr), "unauthorized") {
		t.Fatalf("pull without credentials: want exit 2 and an authentication error\n%s", r)
	}
	writeAtomic(t, filepath.Join(manifests, "app.yaml"), fmt.Sprintf(`apiVersion: berth.dev/v1
kind: Image
metadata: {name: app}
spec:
  ref: %s
  auth: {file: %s}
`, ref, authFile))
	var img declObject
	harness.Eventually(t, 30*time.Second, func() (bool, string) {
		img = getObjects(t, b, "images")["app"]
		return img.ready(), fmt.Sprintf("image app: %+v", img.Status)
	})
	if img.Status.ImageStatus == nil || img.Status.ImageStatus.Digest != pushed.Digest {
		t.Fatalf("B pulled %+v, A pushed %s", img.Status.ImageStatus, pushed.Digest)
	}
	outputs = append(outputs, b.MustCLI(t, "get", "images", "-o", "json"), b.MustCLI(t, "describe", "image", "app"))

	// C: no CA: a clear certificate error, naming the registry.
	c := harness.StartDaemon(t, harness.DaemonOptions{LogLevel: "debug", Env: []string{"DOCKER_CONFIG=" + dockerCfg}})
	r = cli(c, "image", "pull", ref)
	if r.ExitCode != 2 || !strings.Contains(r.Stderr, "certificate") || !strings.Contains(r.Stderr, reg.Addr) {
		t.Fatalf("pull without the CA: want exit 2 and a certificate error naming %s\n%s", reg.Addr, r)
	}

	for _, d := range []*harness.Daemon{a, b, c} {
		outputs = append(outputs, d.Log())
	}
	for _, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Fatalf("credentials leaked into output:\n%s", out)
			}
		}
	}
	if len(strings.Join(outputs, "")) < 1000 {
		t.Fatalf("checked suspiciously little output for leaks")
	}
	_ = os.Remove(authFile)
}
