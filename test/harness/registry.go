package harness

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"golang.org/x/crypto/bcrypt"

	"berth.dev/berth/internal/testutil"
)

// RegistryStartTimeout bounds how long a registry may take to answer GET /v2/.
const RegistryStartTimeout = 10 * time.Second

// Registry is an OCI registry on 127.0.0.1 without auth or TLS, stopped in
// t.Cleanup. Stop, Kill and Restart let fault tests take it away and bring it
// back on the same address with the same content.
type Registry struct {
	// Addr is "127.0.0.1:PORT", for references like Addr+"/library/busybox:latest".
	Addr string

	t       testing.TB
	backend registryBackend
}

// registryBackend is what differs between the process and the in-process
// registry.
type registryBackend interface {
	start() error
	stop(kill bool) error
	running() bool
	describe() string // where its logs are, for failure messages
}

// Stop stops the registry gracefully (SIGTERM for the process). Its storage
// is kept for Restart. Stopping a stopped registry does nothing.
func (r *Registry) Stop() {
	r.t.Helper()
	if err := r.backend.stop(false); err != nil {
		r.t.Fatalf("stop registry %s: %v", r.Addr, err)
	}
}

// Kill stops the registry abruptly (SIGKILL for the process; open
// connections are cut for the in-process one).
func (r *Registry) Kill() {
	r.t.Helper()
	if err := r.backend.stop(true); err != nil {
		r.t.Fatalf("kill registry %s: %v", r.Addr, err)
	}
}

// Restart stops the registry if it runs and starts it again on the same
// address with the same storage, returning once it answers GET /v2/.
func (r *Registry) Restart() {
	r.t.Helper()
	if err := r.backend.stop(false); err != nil {
		r.t.Fatalf("stop registry %s: %v", r.Addr, err)
	}
	if err := r.backend.start(); err != nil {
		r.t.Fatalf("restart registry %s: %v\n%s", r.Addr, err, r.backend.describe())
	}
	if err := waitRegistry(r.Addr, r.backend); err != nil {
		r.t.Fatalf("restart registry %s: %v\n%s", r.Addr, err, r.backend.describe())
	}
}

// Ref returns the reference of repo (e.g. "library/busybox:latest") on this registry.
func (r *Registry) Ref(repo string) string { return r.Addr + "/" + repo }

// RegistryOptions make StartRegistryWith's docker-registry one as
// operators run it.
type RegistryOptions struct {
	// CA, when set, issues the registry a server certificate for
	// 127.0.0.1 and the registry serves only TLS.
	CA *testutil.CA
	// User and Password, when set, are required as HTTP basic auth
	// (docker-registry's htpasswd, bcrypt).
	User, Password string
}

// StartRegistry runs Debian's docker-registry on 127.0.0.1 with filesystem
// storage and its log in t.TempDir(), waits until it answers GET /v2/, and
// stops it in t.Cleanup. The log is printed if the test fails.
func StartRegistry(t testing.TB) *Registry { return StartRegistryWith(t, RegistryOptions{}) }

// StartRegistryWith is StartRegistry over TLS and with basic auth as opts
// say.
func StartRegistryWith(t testing.TB, opts RegistryOptions) *Registry {
	t.Helper()
	bin := testutil.RequireBinary(t, "docker-registry")
	dir := t.TempDir()
	var lastErr error
	// The free port can be taken between finding and binding it; retry then.
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		pr := &procRegistry{bin: bin, dir: dir, addr: addr, opts: opts}
		if err := pr.writeSecrets(t); err != nil {
			t.Fatal(err)
		}
		if err := pr.writeConfig(); err != nil {
			t.Fatal(err)
		}
		if err := pr.start(); err != nil {
			t.Fatal(err)
		}
		if lastErr = waitRegistry(addr, pr); lastErr == nil {
			r := &Registry{Addr: addr, t: t, backend: pr}
			t.Cleanup(func() {
				if err := pr.stop(false); err != nil {
					t.Errorf("stop registry %s: %v", addr, err)
				}
				if t.Failed() {
					t.Logf("docker-registry %s log (%s):\n%s", addr, pr.logPath(), logTail(pr.logPath(), 32<<10))
				}
			})
			return r
		}
		_ = pr.stop(true)
		if !strings.Contains(logTail(pr.logPath(), 4<<10), "address already in use") {
			break
		}
	}
	t.Fatalf("start docker-registry: %v\nlog:\n%s", lastErr, logTail(filepath.Join(dir, "registry.log"), 32<<10))
	return nil
}

// waitRegistry polls GET http://addr/v2/ until it answers 200, the backend
// stops running, or RegistryStartTimeout passes.
func waitRegistry(addr string, b registryBackend) error {
	client := &http.Client{Timeout: time.Second}
	url := "http://" + addr + "/v2/"
	want := http.StatusOK
	if pr, ok := b.(*procRegistry); ok {
		if pr.opts.CA != nil {
			client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pr.opts.CA.Pool()}}
			url = "https://" + addr + "/v2/"
		}
		if pr.opts.User != "" {
			want = http.StatusUnauthorized // up, and asking for credentials
		}
	}
	msg, ok := poll(RegistryStartTimeout, func() (bool, string) {
		if !b.running() {
			return true, "registry exited during start"
		}
		resp, err := client.Get(url)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == want, "GET /v2/: " + resp.Status
	})
	if !ok {
		return fmt.Errorf("not ready within %v: %s", RegistryStartTimeout, msg)
	}
	if !b.running() {
		return fmt.Errorf("%s", msg)
	}
	return nil
}

// procRegistry is docker-registry run as a child process.
type procRegistry struct {
	bin, dir, addr string
	opts           RegistryOptions
	p              *proc
}

// writeSecrets writes the server certificate and the htpasswd file opts
// ask for.
func (r *procRegistry) writeSecrets(t testing.TB) error {
	if r.opts.CA != nil {
		is := r.opts.CA.Issue(t, "127.0.0.1", true)
		testutil.WriteFile(t, r.dir, "server.crt", is.CertPEM, 0o644)
		testutil.WriteFile(t, r.dir, "server.key", is.KeyPEM, 0o600)
	}
	if r.opts.User != "" {
		h, err := bcrypt.GenerateFromPassword([]byte(r.opts.Password), bcrypt.MinCost)
		if err != nil {
			return err
		}
		testutil.WriteFile(t, r.dir, "htpasswd", []byte(r.opts.User+":"+string(h)+"\n"), 0o600)
	}
	return nil
}

func (r *procRegistry) configPath() string { return filepath.Join(r.dir, "config.yml") }
func (r *procRegistry) logPath() string    { return filepath.Join(r.dir, "registry.log") }

// writeConfig writes a distribution 2.x config: filesystem storage under
// dir/storage, delete enabled, no auth, no background purging or health
// checks that could make timing differ between runs.
func (r *procRegistry) writeConfig() error {
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: berth-e2e-not-a-secret
`, filepath.Join(r.dir, "storage"), r.addr)
	if r.opts.CA != nil {
		cfg += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", filepath.Join(r.dir, "server.crt"), filepath.Join(r.dir, "server.key"))
	}
	if r.opts.User != "" {
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: berth-e2e\n    path: %s\n", filepath.Join(r.dir, "htpasswd"))
	}
	if err := os.WriteFile(r.configPath(), []byte(cfg), 0o644); err != nil {
		return fmt.Errorf("write registry config: %w", err)
	}
	return nil
}

func (r *procRegistry) start() error {
	p, err := startProc(r.bin, []string{"serve", r.configPath()}, os.Environ(), r.logPath())
	if err != nil {
		return err
	}
	r.p = p
	return nil
}

func (r *procRegistry) running() bool { return r.p != nil && !r.p.exited() }

func (r *procRegistry) stop(kill bool) error {
	if r.p == nil {
		return nil
	}
	if kill {
		r.p.kill()
	} else if forced, _ := r.p.stop(5 * time.Second); forced {
		return fmt.Errorf("docker-registry (pid %d) ignored SIGTERM for 5s and was killed", r.p.pid())
	}
	r.p = nil
	return nil
}

func (r *procRegistry) describe() string {
	return "docker-registry log:\n" + logTail(r.logPath(), 32<<10)
}

// StartInProcessRegistry serves go-containerregistry's pkg/registry (memory
// storage) through httptest on 127.0.0.1. It starts in milliseconds; use it
// where the registry is not the thing under test.
func StartInProcessRegistry(t testing.TB) *Registry {
	t.Helper()
	mr := &memRegistry{handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	if err := mr.start(); err != nil {
		t.Fatalf("start in-process registry: %v", err)
	}
	r := &Registry{Addr: mr.addr, t: t, backend: mr}
	t.Cleanup(func() { _ = mr.stop(false) })
	if err := waitRegistry(r.Addr, mr); err != nil {
		t.Fatalf("start in-process registry: %v", err)
	}
	return r
}

// memRegistry keeps one handler (and so its blobs and manifests) across
// restarts; each start is a new server on the same address.
type memRegistry struct {
	handler http.Handler
	addr    string // fixed after the first start
	srv     *httptest.Server
}

func (r *memRegistry) start() error {
	bind := r.addr
	if bind == "" {
		bind = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", bind)
	if err != nil {
		return fmt.Errorf("listen %s: %w", bind, err)
	}
	srv := httptest.NewUnstartedServer(r.handler)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	r.srv = srv
	r.addr = l.Addr().String()
	return nil
}

func (r *memRegistry) running() bool { return r.srv != nil }

func (r *memRegistry) stop(kill bool) error {
	if r.srv == nil {
		return nil
	}
	if kill {
		r.srv.CloseClientConnections()
	}
	r.srv.Close()
	r.srv = nil
	return nil
}

func (r *memRegistry) describe() string { return "in-process registry (no log)" }
