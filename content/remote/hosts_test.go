package remote

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"berth.dev/berth/internal/testutil"
	"github.com/containerd/errdefs"
	ggcr "github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestLoadEndpoints(t *testing.T) {
	dir := t.TempDir()
	write := func(host, text string) {
		testutil.WriteFile(t, filepath.Join(dir, host), "hosts.toml", []byte(text), 0o644)
	}
	write("r.example", `
server = "https://r.example"
[host."https://m2.example"]
  capabilities = ["pull"]
  header = {X-A = "1", X-B = ["2", "3"]}
[host."http://m1.example:5000/cache"]
  capabilities = ["pull", "resolve"]
  override_path = true
`)
	write("bad-cap.example", "[host.\"https://m.example\"]\ncapabilities = [\"pull\", \"fly\"]\n")
	write("bad-key.example", "server = \"https://bad-key.example\"\nmirrors = []\n")
	write("bad-syntax.example", "server = \n")
	write("bad-ca.example", "ca = \"missing.pem\"\n")
	write("_default", "[host.\"https://default-mirror.example\"]\n")

	eps, err := LoadEndpoints(dir, "r.example")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range eps {
		got = append(got, e.String())
	}
	want := []string{"https://m2.example/v2", "http://m1.example:5000/cache", "https://r.example/v2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("endpoints %q, want mirrors in file order then the server: %q", got, want)
	}
	if eps[0].Capabilities != CapPull || eps[1].Capabilities != CapPull|CapResolve || eps[2].Capabilities != capAll {
		t.Errorf("capabilities %v %v %v", eps[0].Capabilities, eps[1].Capabilities, eps[2].Capabilities)
	}
	if h := eps[0].Header; h.Get("X-A") != "1" || strings.Join(h.Values("X-B"), ",") != "2,3" {
		t.Errorf("headers %v", h)
	}
	if !eps[0].Mirror || !eps[1].Mirror || eps[2].Mirror {
		t.Error("only the server is not a mirror")
	}

	eps, err = LoadEndpoints(dir, "other.example:5000")
	if err != nil || len(eps) != 2 || eps[0].Host != "default-mirror.example" || eps[1].String() != "https://other.example:5000/v2" {
		t.Errorf("a host without a directory uses _default: %v %v", eps, err)
	}
	if eps, err := LoadEndpoints("", "r.example"); err != nil || len(eps) != 1 || eps[0].String() != "https://r.example/v2" {
		t.Errorf("no directory: %v %v", eps, err)
	}

	for host, key := range map[string]string{
		"bad-cap.example":    `host."https://m.example".capabilities`,
		"bad-key.example":    `unknown key "mirrors"`,
		"bad-syntax.example": "line 1",
		"bad-ca.example":     "ca",
	} {
		_, err := LoadEndpoints(dir, host)
		file := filepath.Join(dir, host, "hosts.toml")
		if !errdefs.IsInvalidArgument(err) && host != "bad-ca.example" || err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: got %v, want an error naming %s and %s", host, err, file, key)
		}
	}
}

// newTLSRegistry serves the test registry over TLS with a certificate from
// ca; clients, when set, must present a certificate it signed.
func newTLSRegistry(t *testing.T, ca *testutil.CA, clients *testutil.CA) *testRegistry {
	t.Helper()
	tr := &testRegistry{}
	tr.srv = httptest.NewUnstartedServer(tr.handler())
	srvCert := ca.Issue(t, "registry", true)
	tr.srv.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert.TLS}}
	pushTLS := &tls.Config{RootCAs: ca.Pool()}
	if clients != nil {
		tr.srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		tr.srv.TLS.ClientCAs = clients.Pool()
		pushTLS.Certificates = []tls.Certificate{clients.Issue(t, "pusher", false).TLS}
	}
	tr.srv.StartTLS()
	t.Cleanup(tr.srv.Close)
	tr.host = strings.TrimPrefix(tr.srv.URL, "https://")
	tr.pushOpts = []ggcr.Option{ggcr.WithTransport(&http.Transport{TLSClientConfig: pushTLS})}
	return tr
}

func TestPull_TLS(t *testing.T) {
	ctx := context.Background()
	ca := testutil.NewCA(t, "test registry CA")
	clientCA := testutil.NewCA(t, "test client CA")
	reg := newTLSRegistry(t, ca, nil)
	reg.push(t, "busybox", "library/busybox")
	mtls := newTLSRegistry(t, ca, clientCA)
	mtls.push(t, "busybox", "library/busybox")
	client := clientCA.Issue(t, "berth", false)

	tests := []struct {
		name    string
		reg     *testRegistry
		files   map[string][]byte // under certs.d/<host>/
		wantErr string
	}{
		{name: "no CA configured", reg: reg, wantErr: "certificate signed by unknown authority"},
		{name: "hosts.toml ca", reg: reg, files: map[string][]byte{"hosts.toml": []byte(`server = "https://HOST"` + "\nca = \"ca.pem\"\n"), "ca.pem": ca.PEM}},
		{name: "docker layout ca.crt", reg: reg, files: map[string][]byte{"ca.crt": ca.PEM}},
		{name: "skip_verify", reg: reg, files: map[string][]byte{"hosts.toml": []byte("[host.\"https://HOST\"]\nskip_verify = true\n")}},
		{name: "client certificate required, none given", reg: mtls, files: map[string][]byte{"ca.crt": ca.PEM}, wantErr: "certificate required"},
		{name: "client certificate in hosts.toml", reg: mtls, files: map[string][]byte{
			"hosts.toml": []byte("[host.\"https://HOST\"]\nca = \"ca.pem\"\nclient = [[\"c.pem\", \"c.key\"]]\n"),
			"ca.pem":     ca.PEM, "c.pem": client.CertPEM, "c.key": client.KeyPEM}},
		{name: "client certificate in docker layout", reg: mtls, files: map[string][]byte{
			"ca.crt": ca.PEM, "client.cert": client.CertPEM, "client.key": client.KeyPEM}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, b := range tc.files {
				b = []byte(strings.ReplaceAll(string(b), "HOST", tc.reg.host))
				testutil.WriteFile(t, filepath.Join(dir, tc.reg.host), n, b, 0o600)
			}
			_, err := Pull(ctx, newStore(t), tc.reg.host+"/library/busybox:latest", PullOptions{RegistryOptions: RegistryOptions{HostsDir: dir}})
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("got %v, want an error saying %q", err, tc.wantErr)
			}
			if err != nil {
				t.Log(err)
			}
		})
	}
}

func TestPull_Mirrors(t *testing.T) {
	ctx := context.Background()
	upstream := newRegistry(t)
	upstream.push(t, "busybox", "library/busybox")
	mirror := newRegistry(t)
	mirror.push(t, "busybox", "library/busybox")
	count := func(tr *testRegistry, n *atomic.Int32, ns *atomic.Value) {
		tr.setFault(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
			if strings.Contains(r.URL.Path, "/blobs/") || strings.Contains(r.URL.Path, "/manifests/") {
				n.Add(1)
				if ns != nil {
					ns.Store(r.URL.Query().Get("ns"))
				}
			}
			return false
		})
	}
	var upN, mirN atomic.Int32
	var ns atomic.Value
	count(upstream, &upN, nil)
	count(mirror, &mirN, &ns)
	ref := upstream.host + "/library/busybox:latest"

	t.Run("a mirror that answers is used", func(t *testing.T) {
		dir := t.TempDir()
		testutil.WriteFile(t, filepath.Join(dir, upstream.host), "hosts.toml", []byte(
			"server = \"http://"+upstream.host+"\"\n[host.\"http://"+mirror.host+"\"]\ncapabilities = [\"pull\", \"resolve\"]\n"), 0o644)
		upN.Store(0)
		mirN.Store(0)
		if _, err := Pull(ctx, newStore(t), ref, PullOptions{RegistryOptions: RegistryOptions{HostsDir: dir}}); err != nil {
			t.Fatal(err)
		}
		if upN.Load() != 0 || mirN.Load() == 0 {
			t.Errorf("upstream served %d, mirror %d requests: want all from the mirror", upN.Load(), mirN.Load())
		}
		if got := ns.Load(); got != upstream.host {
			t.Errorf("mirror saw ns=%v, want %s", got, upstream.host)
		}
	})
	t.Run("a mirror that is down falls back to the server", func(t *testing.T) {
		down := httptest.NewServer(http.NotFoundHandler())
		down.Close()
		dir := t.TempDir()
		testutil.WriteFile(t, filepath.Join(dir, upstream.host), "hosts.toml", []byte(
			"[host.\""+down.URL+"\"]\n"), 0o644)
		upN.Store(0)
		if _, err := Pull(ctx, newStore(t), ref, PullOptions{RegistryOptions: RegistryOptions{HostsDir: dir}}); err != nil {
			t.Fatal(err)
		}
		if upN.Load() == 0 {
			t.Error("the server was not used")
		}
	})
	t.Run("a mirror without the image falls back", func(t *testing.T) {
		empty := newRegistry(t)
		dir := t.TempDir()
		testutil.WriteFile(t, filepath.Join(dir, "_default"), "hosts.toml", []byte(
			"[host.\"http://"+empty.host+"\"]\n"), 0o644)
		upN.Store(0)
		if _, err := Pull(ctx, newStore(t), ref, PullOptions{RegistryOptions: RegistryOptions{HostsDir: dir}}); err != nil {
			t.Fatal(err)
		}
		if upN.Load() == 0 {
			t.Error("the server was not used")
		}
	})
	t.Run("a broken hosts.toml names itself and spares other hosts", func(t *testing.T) {
		dir := t.TempDir()
		testutil.WriteFile(t, filepath.Join(dir, "broken.example"), "hosts.toml", []byte("server = [\n"), 0o644)
		_, err := Pull(ctx, newStore(t), "broken.example/x:1", PullOptions{RegistryOptions: RegistryOptions{HostsDir: dir}})
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "broken.example", "hosts.toml")) {
			t.Errorf("got %v, want an error naming the file", err)
		}
		if _, err := Pull(ctx, newStore(t), ref, PullOptions{RegistryOptions: RegistryOptions{HostsDir: dir}}); err != nil {
			t.Errorf("another host: %v", err)
		}
	})
}
