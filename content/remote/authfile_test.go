package remote

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"berth.dev/berth/internal/testutil"
	"github.com/containerd/errdefs"
)

// tokenAuth puts a docker-style token server in front of reg: /token
// wants basic user:pass and hands out a bearer token the registry checks.
func tokenAuth(reg *testRegistry, user, pass string, sawCreds *atomic.Int32) {
	reg.setFault(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
		if r.URL.Path == "/token" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.WriteHeader(http.StatusUnauthorized)
				return true
			}
			sawCreds.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"token": "tok-123"}`))
			return true
		}
		if r.Header.Get("Authorization") != "Bearer tok-123" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+reg.host+`/token",service="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return true
		}
		return false
	})
}

func TestFileKeychain(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	reg.push(t, "busybox", "library/busybox")
	var saw atomic.Int32
	tokenAuth(reg, "berth", "hunter2-secret", &saw)
	defer reg.setFault(nil)
	ref := reg.host + "/library/busybox:latest"
	dir := t.TempDir()
	cfg := func(pass string) []byte {
		return []byte(`{"auths": {"` + reg.host + `": {"auth": "` + base64.StdEncoding.EncodeToString([]byte("berth:"+pass)) + `"}}}`)
	}
	var logs bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(old)

	good := testutil.WriteFile(t, dir, "good.json", cfg("hunter2-secret"), 0o600)
	kc, err := FileKeychain(good, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Pull(ctx, newStore(t), ref, PullOptions{RegistryOptions: RegistryOptions{Keychain: kc}}); err != nil {
		t.Fatal(err)
	}
	if saw.Load() == 0 {
		t.Error("the token endpoint never saw the file's credentials")
	}

	wrong := testutil.WriteFile(t, dir, "wrong.json", cfg("wrong-secret-xyz"), 0o600)
	kc, err = FileKeychain(wrong, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Pull(ctx, newStore(t), ref, PullOptions{RegistryOptions: RegistryOptions{Keychain: kc}})
	if err == nil || strings.Contains(err.Error(), "wrong-secret-xyz") {
		t.Errorf("wrong password: got %v, want an error without the password", err)
	}

	lax := testutil.WriteFile(t, dir, "lax.json", cfg("hunter2-secret"), 0o644)
	if _, err := FileKeychain(lax, nil); !errdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), "0644") || !strings.Contains(err.Error(), lax) {
		t.Errorf("mode 0644: got %v, want permission denied naming the file and its mode", err)
	}
	junk := testutil.WriteFile(t, dir, "junk.json", []byte(`{"auths": "hunter2-secret"`), 0o600)
	if _, err := FileKeychain(junk, nil); !errdefs.IsInvalidArgument(err) || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("junk: got %v, want invalid argument without the content", err)
	}
	for _, secret := range []string{"hunter2-secret", "wrong-secret-xyz", base64.StdEncoding.EncodeToString([]byte("berth:hunter2-secret"))} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the logs hold %q", secret)
		}
	}
}
