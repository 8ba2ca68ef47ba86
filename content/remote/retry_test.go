package remote

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

func TestPull_Retries(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t)
	reg.push(t, "busybox", "library/busybox")
	layer := layerOf(t, reg)
	ref := reg.host + "/library/busybox:latest"

	// failFirst answers the layer's first n GETs with status (and header).
	failFirst := func(n int32, status int, header http.Header) *atomic.Int32 {
		var gets atomic.Int32
		reg.setFault(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
			if !isBlobGet(r, layer.Digest) || gets.Add(1) > n {
				return false
			}
			for k, v := range header {
				w.Header()[k] = v
			}
			w.WriteHeader(status)
			return true
		})
		return &gets
	}

	t.Run("429 with Retry-After: 1 then success", func(t *testing.T) {
		gets := failFirst(1, http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}})
		defer reg.setFault(nil)
		var events []RetryEvent
		var mu sync.Mutex
		start := time.Now()
		_, err := Pull(ctx, newStore(t), ref, PullOptions{RegistryOptions: RegistryOptions{Retry: RetryPolicy{OnRetry: func(e RetryEvent) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}}}})
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < time.Second {
			t.Errorf("pull took %s: Retry-After: 1 was not honoured", took)
		}
		if gets.Load() != 2 || len(events) != 1 || events[0].Status != 429 || events[0].Wait != time.Second || !events[0].RetryAfter {
			t.Errorf("gets %d, retry events %+v: want one wait of 1s for the 429", gets.Load(), events)
		}
	})

	t.Run("Retry-After is capped", func(t *testing.T) {
		failFirst(1, http.StatusTooManyRequests, http.Header{"Retry-After": {"3600"}})
		defer reg.setFault(nil)
		var wait time.Duration
		_, err := Pull(ctx, newStore(t), ref, PullOptions{RegistryOptions: RegistryOptions{Retry: RetryPolicy{Max: 50 * time.Millisecond,
			OnRetry: func(e RetryEvent) { wait = e.Wait }}}})
		if err != nil || wait != 50*time.Millisecond {
			t.Fatalf("err %v, wait %s: want the cap of 50ms", err, wait)
		}
	})

	t.Run("503 twice then success", func(t *testing.T) {
		gets := failFirst(2, http.StatusServiceUnavailable, nil)
		defer reg.setFault(nil)
		_, err := Pull(ctx, newStore(t), ref, PullOptions{RegistryOptions: RegistryOptions{Retry: RetryPolicy{Base: 10 * time.Millisecond}}})
		if err != nil {
			t.Fatal(err)
		}
		if gets.Load() != 3 {
			t.Errorf("layer fetched %d times, want 3", gets.Load())
		}
	})

	t.Run("503 for ever gives up", func(t *testing.T) {
		gets := failFirst(1000, http.StatusServiceUnavailable, nil)
		defer reg.setFault(nil)
		_, err := Pull(ctx, newStore(t), ref, PullOptions{RegistryOptions: RegistryOptions{Retry: RetryPolicy{Attempts: 2, Base: time.Millisecond}}})
		if err == nil || !strings.Contains(err.Error(), "503") {
			t.Fatalf("got %v, want the 503", err)
		}
		if gets.Load() != 3 {
			t.Errorf("layer fetched %d times, want 1 + 2 retries", gets.Load())
		}
	})

	t.Run("a redirect loop is refused", func(t *testing.T) {
		reg.setFault(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
			if !isBlobGet(r, layer.Digest) {
				return false
			}
			http.Redirect(w, r, r.URL.String(), http.StatusTemporaryRedirect)
			return true
		})
		defer reg.setFault(nil)
		_, err := Pull(ctx, newStore(t), ref, PullOptions{})
		if err == nil || !strings.Contains(err.Error(), "redirects") || !strings.Contains(err.Error(), layer.Digest.String()) {
			t.Fatalf("got %v, want a redirect error naming the layer", err)
		}
	})

	t.Run("slow but steady survives the idle timeout", func(t *testing.T) {
		reg.setFault(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
			if !isBlobGet(r, layer.Digest) {
				return false
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			w.WriteHeader(http.StatusOK)
			for len(body) > 0 {
				n := min(len(body), 128<<10)
				w.Write(body[:n])
				w.(http.Flusher).Flush()
				body = body[n:]
				time.Sleep(100 * time.Millisecond)
			}
			return true
		})
		defer reg.setFault(nil)
		start := time.Now()
		_, err := Pull(ctx, newStore(t), ref, PullOptions{RegistryOptions: RegistryOptions{ProgressTimeout: 300 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 300*time.Millisecond {
			t.Errorf("took %s: the slow server was not slow", took)
		}
	})
}

// TestPull_CredentialsStayHome checks that a redirect to a blob store on
// another host carries no credentials while the registry gets them.
func TestPull_CredentialsStayHome(t *testing.T) {
	ctx := context.Background()
	var storeAuth atomic.Value
	storeAuth.Store("")
	var blobStore *httptest.Server
	reg := newRegistry(t)
	reg.push(t, "busybox", "library/busybox")
	layer := layerOf(t, reg)
	var regAuth atomic.Int32
	blobStore = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		storeAuth.Store(r.Header.Get("Authorization"))
		r.URL.Path = strings.TrimPrefix(r.URL.Path, "/store")
		reg.srv.Config.Handler.ServeHTTP(w, r)
	}))
	defer blobStore.Close()
	reg.setFault(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
		u, p, ok := r.BasicAuth()
		if !ok || u != "berth" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return true
		}
		regAuth.Add(1)
		if isBlobGet(r, layer.Digest) {
			// Strip the fault for the store's view of the request.
			reg.setFault(nil)
			http.Redirect(w, r, blobStore.URL+"/store"+r.URL.Path, http.StatusTemporaryRedirect)
			return true
		}
		return false
	})
	defer reg.setFault(nil)
	kc := staticKeychain{reg.host: authn.AuthConfig{Username: "berth", Password: "s3cret"}}
	_, err := Pull(ctx, newStore(t), reg.host+"/library/busybox:latest", PullOptions{RegistryOptions: RegistryOptions{Keychain: kc}})
	if err != nil {
		t.Fatal(err)
	}
	if regAuth.Load() == 0 {
		t.Error("the registry never saw the credentials")
	}
	if a := storeAuth.Load().(string); a != "" {
		t.Errorf("the blob store got Authorization %q", a)
	}
}

type staticKeychain map[string]authn.AuthConfig

func (k staticKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if c, ok := k[r.RegistryStr()]; ok {
		return authn.FromConfig(c), nil
	}
	return authn.Anonymous, nil
}
