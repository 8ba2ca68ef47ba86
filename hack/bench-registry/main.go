// Command bench-registry measures berth's pulls as operators' registries
// make them: the debian test image pulled directly from a docker-registry
// on loopback, through a second docker-registry run as a pull-through
// cache and named as a mirror in hosts.toml (cold, then warm), and a pull
// whose layer download is cut at 50 % once, which must resume with a Range
// request: the table shows the bytes the registry sent in all, which
// should be close to one image's size, not two. Run as root by make bench.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"berth.dev/berth/internal/benchkit"
)

func main() {
	images := flag.String("images", os.Getenv("BERTH_TESTIMAGES"), "test image layouts (make testimages)")
	bin := flag.String("bin", "bin", "directory of berthd and berth")
	runs := flag.Int("runs", 3, "runs per figure (the median is printed)")
	flag.Parse()
	if err := run(*images, *bin, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench-registry:", err)
		os.Exit(1)
	}
}

const compressedMB = 48.75 // the debian layer, gzip

func run(images, bin string, runs int) error {
	bin, _ = filepath.Abs(bin)
	work, err := os.MkdirTemp("/tmp", "berth-bench-registry-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	upstream, stopUp, err := benchkit.StartRegistry(filepath.Join(work, "upstream"), "")
	if err != nil {
		return err
	}
	defer stopUp()
	if err := benchkit.Push(filepath.Join(images, "debian"), upstream+"/library/debian:latest"); err != nil {
		return err
	}
	// The cutting proxy fronts the upstream: the debian image is pulled
	// through it so that the bytes it sends are counted, and a blob GET may
	// be cut once half-way.
	proxy, err := newCuttingProxy(upstream)
	if err != nil {
		return err
	}
	defer proxy.Close()

	pull := func(name string, extra []string, ref string, before func()) (time.Duration, int64, error) {
		var times []time.Duration
		var sent int64
		for i := range runs {
			root := filepath.Join(work, fmt.Sprintf("%s-%d", name, i))
			d, err := benchkit.StartBerthd(bin, root, extra...)
			if err != nil {
				return 0, 0, err
			}
			if before != nil {
				before()
			}
			proxy.sent.Store(0)
			took, err := d.CLI("image", "pull", "--unpack=false", ref)
			d.Stop()
			os.RemoveAll(root)
			if err != nil {
				return 0, 0, err
			}
			times = append(times, took)
			sent = proxy.sent.Load()
		}
		return benchkit.Median(times), sent, nil
	}
	ref := proxy.Addr() + "/library/debian:latest"

	direct, directBytes, err := pull("direct", nil, ref, nil)
	if err != nil {
		return err
	}
	// A pull-through cache of the proxy, named as the mirror of its host.
	mirror, stopMirror, err := benchkit.StartRegistry(filepath.Join(work, "mirror"), fmt.Sprintf("proxy: {remoteurl: %q}\n", "http://"+proxy.Addr()))
	if err != nil {
		return err
	}
	defer stopMirror()
	certsd := filepath.Join(work, "certs.d")
	if err := os.MkdirAll(filepath.Join(certsd, proxy.Addr()), 0o755); err != nil {
		return err
	}
	hosts := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "http://"+proxy.Addr(), "http://"+mirror)
	if err := os.WriteFile(filepath.Join(certsd, proxy.Addr(), "hosts.toml"), []byte(hosts), 0o644); err != nil {
		return err
	}
	mirrorArgs := []string{"--registry-config-dir", certsd}
	cold, coldBytes, err := pullOnce(bin, work, "mirror-cold", mirrorArgs, ref, proxy)
	if err != nil {
		return err
	}
	warm, warmBytes, err := pull("mirror-warm", mirrorArgs, ref, nil)
	if err != nil {
		return err
	}
	resumed, resumedBytes, err := pull("resumed", nil, ref, func() { proxy.cutNext.Store(true) })
	if err != nil {
		return err
	}

	fmt.Printf("\nregistry pulls — debian test image (%.1f MB gzip), median of %d, --unpack=false\n\n", compressedMB, runs)
	fmt.Printf("%-44s %10s %10s %16s\n", "pull", "s", "MB/s", "upstream sent MB")
	for _, r := range []struct {
		what  string
		took  time.Duration
		bytes int64
	}{
		{"direct from the registry", direct, directBytes},
		{"through a pull-through mirror, cold (1 run)", cold, coldBytes},
		{"through the mirror, warm", warm, warmBytes},
		{"direct, layer cut at 50% once, resumed", resumed, resumedBytes},
	} {
		fmt.Printf("%-44s %10.2f %10.1f %16.1f\n", r.what, r.took.Seconds(), compressedMB/r.took.Seconds(), float64(r.bytes)/1e6)
	}
	return nil
}

// pullOnce pulls with a fresh berthd once (the cold mirror is cold only
// the first time).
func pullOnce(bin, work, name string, extra []string, ref string, proxy *cuttingProxy) (time.Duration, int64, error) {
	root := filepath.Join(work, name)
	d, err := benchkit.StartBerthd(bin, root, extra...)
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(root)
	defer d.Stop()
	proxy.sent.Store(0)
	took, err := d.CLI("image", "pull", "--unpack=false", ref)
	return took, proxy.sent.Load(), err
}

// cuttingProxy forwards to a registry, counts the bytes of blob bodies it
// sends, and, when cutNext is set, closes the connection of the next
// large blob GET half-way through.
type cuttingProxy struct {
	l       net.Listener
	srv     *http.Server
	sent    atomic.Int64
	cutNext atomic.Bool
}

func newCuttingProxy(upstream string) (*cuttingProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &cuttingProxy{l: l}
	target, _ := url.Parse("http://" + upstream)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		if !strings.Contains(resp.Request.URL.Path, "/blobs/") || resp.Request.Method != http.MethodGet {
			return nil
		}
		cut := int64(-1)
		if resp.ContentLength > 1<<20 && p.cutNext.CompareAndSwap(true, false) {
			cut = resp.ContentLength / 2
		}
		resp.Body = &countingBody{r: resp.Body, p: p, cut: cut}
		return nil
	}
	rp.ErrorLog = nil
	p.srv = &http.Server{Handler: rp}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

func (p *cuttingProxy) Addr() string { return p.l.Addr().String() }
func (p *cuttingProxy) Close()       { _ = p.srv.Close() }

type countingBody struct {
	r   io.ReadCloser
	p   *cuttingProxy
	n   int64
	cut int64
}

func (b *countingBody) Read(buf []byte) (int, error) {
	if b.cut >= 0 && b.n+int64(len(buf)) > b.cut {
		buf = buf[:max(b.cut-b.n, 0)]
		if len(buf) == 0 {
			// The reverse proxy aborts the response on a read error:
			// the client sees the connection cut mid-body.
			return 0, fmt.Errorf("cut at %d bytes", b.n)
		}
	}
	n, err := b.r.Read(buf)
	b.n += int64(n)
	b.p.sent.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { return b.r.Close() }
