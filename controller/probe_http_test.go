package controller

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testutil"
	"berth.dev/berth/spec"
)

// The HTTP and TCP probes against a server in berthd's own network
// namespace, entered as a container's would be (setns needs root).
func TestHTTPProbe(t *testing.T) {
	testutil.RequireRoot(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			if r.Header.Get("X-Probe") != "yes" || r.Host != "svc.local" {
				http.Error(w, "headers not sent", http.StatusBadRequest)
				return
			}
			w.Write([]byte("fine"))
		case "/redirect":
			http.Redirect(w, r, "http://elsewhere.invalid/", http.StatusFound)
		case "/slow":
			select { // until the probe gives up
			case <-r.Context().Done():
			case <-time.After(3 * time.Second):
			}
		default:
			http.Error(w, "no such page", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	_, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	netns := "/proc/self/ns/net"
	headers := []spec.HTTPHeader{{Name: "X-Probe", Value: "yes"}, {Name: "Host", Value: "svc.local"}}
	tests := []struct {
		path    string
		timeout time.Duration
		ok      bool
		out     string
	}{
		{"/ok", time.Second, true, "200 OK"},
		{"/missing", time.Second, false, "404 Not Found: no such page"},
		{"/redirect", time.Second, true, "302 Found"},
		{"/slow", 200 * time.Millisecond, false, "context deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			ok, out := httpProbe(context.Background(), netns, &spec.HTTPGetAction{Path: tt.path, Port: port, HTTPHeaders: headers}, tt.timeout)
			if ok != tt.ok || !strings.Contains(out, tt.out) {
				t.Errorf("httpProbe(%s) = %v %q, want %v and %q", tt.path, ok, out, tt.ok, tt.out)
			}
		})
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if ok, out := tcpProbe(context.Background(), netns, &spec.TCPSocketAction{Port: closed}, time.Second); ok || !strings.Contains(out, "refused") {
		t.Errorf("tcp probe of a closed port = %v %q, want a refusal", ok, out)
	}
	if ok, out := tcpProbe(context.Background(), netns, &spec.TCPSocketAction{Port: port}, time.Second); !ok {
		t.Errorf("tcp probe of the server = %v %q", ok, out)
	}
}
