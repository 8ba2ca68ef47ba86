// Command criimages serves, from 127.0.0.1 and with no network, stand-ins
// for every image critest (sigs.k8s.io/cri-tools v1.37.0) pulls, under
// the names it pulls them by with the upstream host stripped
// (gcr.io/k8s-staging-cri-tools/X → k8s-staging-cri-tools/X,
// registry.k8s.io/e2e-test-images/X → e2e-test-images/X,
// registry.k8s.io/pause:3.9 and k8s.gcr.io/pause:3.9 → pause:3.9). A
// runtime reaches them through a registry mirror for each upstream host.
//
//	criimages -listen 127.0.0.1:0 -addr-file F   # serve until SIGTERM; F gets host:port once all are pushed
//	criimages -push 127.0.0.1:5099               # push into a running registry and exit
//
// The images are built from the host's static busybox and from this very
// binary, which is multi-call: installed as nginx or httpd it is a static
// web server, as nnp it prints its effective uid (setuid root in the
// nonewprivs image), as pause it holds a pod's namespaces. What the
// stand-ins must do is what critest checks of the real images:
//
//   - e2e-test-images/busybox:1.29-2: the applets as hard links of
//     /bin/busybox (critest masks /bin/ls; through a symlink runc would mask
//     busybox itself), and pgrep and ipcs, which Debian's busybox lacks, as
//     small shell scripts.
//   - nginx:1.14-2, httpd:2.4.39-4, hostnet-nginx-amd64: busybox plus the web
//     server (nginx writes /var/run/nginx.pid, its argv says "master
//     process"; httpd's log says httpd).
//   - nonewprivs:1.3: the setuid-root nnp.
//   - test-image-user-*: /etc/passwd and /etc/group with the users critest
//     expects, and the image's USER.
//   - test-image-{1,2,3,latest,digest}, test-image-tags:{1,2,3} (one image),
//     test-image-tag:{test,all}: busybox plus an empty /NAME each, so each
//     has its own ID. test-image-digest is pinned by a digest upstream that
//     no rebuilt image can have: that spec fails here as it does for
//     containerd.
//
// The same binary gives the same digests (sorted entries, fixed mtimes).
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var epoch = time.Unix(1704067200, 0).UTC()

func main() {
	switch filepath.Base(os.Args[0]) {
	case "nginx", "httpd":
		webServer(os.Args[1:])
		return
	case "nnp":
		fmt.Printf("Effective uid: %d\n", syscall.Geteuid())
		return
	case "pause":
		pause()
		return
	}
	listen := flag.String("listen", "", "serve the images from an in-memory registry on this loopback address")
	addrFile := flag.String("addr-file", "", "with -listen: write host:port here once every image is pushed")
	push := flag.String("push", "", "push the images to this registry (host:port, plain HTTP) and exit")
	bb := flag.String("busybox", "/bin/busybox", "static busybox binary")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("criimages: ")
	imgs, err := build(*bb)
	if err != nil {
		log.Fatal(err)
	}
	switch {
	case *push != "":
		if err := pushAll(*push, imgs); err != nil {
			log.Fatal(err)
		}
	case *listen != "":
		if err := serve(*listen, *addrFile, imgs); err != nil {
			log.Fatal(err)
		}
	default:
		log.Fatal("give -listen ADDR or -push ADDR")
	}
}

func serve(listen, addrFile string, imgs []named) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen %s: loopback addresses only", listen)
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(log.New(ioDiscard{}, "", 0))), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	addr := l.Addr().String()
	if err := pushAll(addr, imgs); err != nil {
		return err
	}
	if addrFile != "" {
		if err := os.WriteFile(addrFile+".tmp", []byte(addr+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(addrFile+".tmp", addrFile); err != nil {
			return err
		}
	}
	log.Printf("%d images on %s", len(imgs), addr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

type ioDiscard struct{}

func (ioDiscard) Write(p []byte) (int, error) { return len(p), nil }

func pushAll(addr string, imgs []named) error {
	for _, n := range imgs {
		ref, err := name.ParseReference(addr+"/"+n.ref, name.Insecure)
		if err != nil {
			return err
		}
		if err := remote.Write(ref, n.img); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
	}
	return nil
}

type named struct {
	ref string
	img v1.Image
}

// entry is one file of a layer.
type entry struct {
	path string
	typ  byte
	mode int64
	data []byte
	link string
}

func layer(es []entry) (v1.Layer, error) {
	// Sorted, hard links last: a link's target must come before it.
	sort.SliceStable(es, func(i, j int) bool {
		if li, lj := es[i].typ == tar.TypeLink, es[j].typ == tar.TypeLink; li != lj {
			return lj
		}
		return es[i].path < es[j].path
	})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.path, Typeflag: e.typ, Mode: e.mode, ModTime: epoch, Linkname: e.link, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if e.typ == tar.TypeDir {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	// Uncompressed: the registry is in memory, and berth takes both.
	return static.NewLayer(buf.Bytes(), types.OCIUncompressedLayer), nil
}

func dirs(ds ...string) []entry {
	var es []entry
	for _, d := range ds {
		m := int64(0o755)
		if d == "tmp" {
			m = 0o1777
		}
		es = append(es, entry{path: d, typ: tar.TypeDir, mode: m})
	}
	return es
}

// image is base plus layers with the config changes cfg makes.
func image(base v1.Image, cfg func(*v1.Config), layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.AppendLayers(base, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", goarch(), v1.Time{Time: epoch}
	if cfg != nil {
		cfg(&cf.Config)
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return mutate.MediaType(img, types.OCIManifestSchema1), nil
}

const pgrep = `#!/bin/sh
# stand-in for busybox's pgrep (Debian's busybox has none): PATTERN as a substring of comm
rc=1
for d in /proc/[0-9]*; do
  c=$(cat "$d/comm" 2>/dev/null) || continue
  case "$c" in *"$1"*) echo "${d#/proc/}"; rc=0;; esac
done
exit $rc
`

const ipcs = `#!/bin/sh
# stand-in for ipcs -m (Debian's busybox has none): the kernel's table, shmid in column 2
cat /proc/sysvipc/shm
`

func build(bbPath string) ([]named, error) {
	bbBin, err := os.ReadFile(bbPath)
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w", err)
	}
	out, err := exec.Command(bbPath, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w", bbPath, err)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	selfBin, err := os.ReadFile(self)
	if err != nil {
		return nil, err
	}
	// The base: busybox, each applet a hard link of it, the directories a
	// container expects, root's passwd and group, pgrep and ipcs.
	es := dirs("bin", "dev", "etc", "home", "proc", "root", "sbin", "sys", "tmp", "usr", "usr/bin", "usr/sbin", "var", "var/run")
	es = append(es, entry{path: "bin/busybox", typ: tar.TypeReg, mode: 0o755, data: bbBin},
		entry{path: "bin/pgrep", typ: tar.TypeReg, mode: 0o755, data: []byte(pgrep)},
		entry{path: "bin/ipcs", typ: tar.TypeReg, mode: 0o755, data: []byte(ipcs)},
		entry{path: "etc/passwd", typ: tar.TypeReg, mode: 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")},
		entry{path: "etc/group", typ: tar.TypeReg, mode: 0o644, data: []byte("root:x:0:\nnogroup:x:65534:\n")})
	for _, a := range strings.Fields(string(out)) {
		if a == "bin/busybox" || a == "bin/pgrep" || a == "bin/ipcs" {
			continue
		}
		if d := filepath.Dir(a); d != "bin" && d != "sbin" && d != "usr/bin" && d != "usr/sbin" {
			continue
		}
		es = append(es, entry{path: a, typ: tar.TypeLink, link: "bin/busybox"})
	}
	bl, err := layer(es)
	if err != nil {
		return nil, err
	}
	env := func(c *v1.Config) {
		c.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
		c.Cmd = []string{"sh"}
	}
	base, err := image(empty.Image, env, bl)
	if err != nil {
		return nil, err
	}
	var imgs []named
	add := func(ref string, img v1.Image, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", ref, err)
		}
		imgs = append(imgs, named{ref, img})
		return nil
	}
	if err := add("e2e-test-images/busybox:1.29-2", base, nil); err != nil {
		return nil, err
	}

	pl, err := layer([]entry{{path: "pause", typ: tar.TypeReg, mode: 0o755, data: selfBin}})
	if err != nil {
		return nil, err
	}
	// The pause is the only file: pause is argv[0] through the entrypoint.
	pauseImg, err := image(empty.Image, func(c *v1.Config) { c.Entrypoint = []string{"/pause"}; c.User = "65535:65535" }, pl)
	if err := add("pause:3.9", pauseImg, err); err != nil {
		return nil, err
	}

	page := []byte("<html><body>berth critest stand-in</body></html>\n")
	wl, err := layer(append(dirs("usr/share", "usr/share/nginx", "usr/share/nginx/html", "usr/local", "usr/local/apache2", "usr/local/apache2/htdocs"),
		entry{path: "usr/share/nginx/html/index.html", typ: tar.TypeReg, mode: 0o644, data: page},
		entry{path: "usr/local/apache2/htdocs/index.html", typ: tar.TypeReg, mode: 0o644, data: page},
		entry{path: "usr/sbin/nginx", typ: tar.TypeReg, mode: 0o755, data: selfBin},
		entry{path: "usr/sbin/httpd", typ: tar.TypeLink, link: "usr/sbin/nginx"}))
	if err != nil {
		return nil, err
	}
	web := func(ref string, entry string, args ...string) error {
		img, err := image(base, func(c *v1.Config) { c.Entrypoint = []string{entry}; c.Cmd = args }, wl)
		return add(ref, img, err)
	}
	if err := web("e2e-test-images/nginx:1.14-2", "/usr/sbin/nginx", "-port=80", "-pidfile=/var/run/nginx.pid", "master process"); err != nil {
		return nil, err
	}
	if err := web("e2e-test-images/httpd:2.4.39-4", "/usr/sbin/httpd", "-port=80", "-root=/usr/local/apache2/htdocs",
		"-banner=httpd stand-in listening on :80"); err != nil {
		return nil, err
	}
	if err := web("k8s-staging-cri-tools/hostnet-nginx-"+goarch()+":latest", "/usr/sbin/nginx", "-port=12003", "master process"); err != nil {
		return nil, err
	}

	nl, err := layer(append(dirs("usr/local", "usr/local/bin"), entry{path: "usr/local/bin/nnp", typ: tar.TypeReg, mode: 0o4755, data: selfBin}))
	if err != nil {
		return nil, err
	}
	nnpImg, err := image(base, func(c *v1.Config) { c.Entrypoint = []string{"/usr/local/bin/nnp"} }, nl)
	if err := add("e2e-test-images/nonewprivs:1.3", nnpImg, err); err != nil {
		return nil, err
	}

	ul, err := layer(append(dirs("home/default-user"),
		entry{path: "etc/passwd", typ: tar.TypeReg, mode: 0o644, data: []byte("root:x:0:0:root:/root:/bin/sh\n" +
			"www-data:x:33:33:www-data:/var/www:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n" +
			"default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n")},
		entry{path: "etc/group", typ: tar.TypeReg, mode: 0o644, data: []byte("root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n" +
			"default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")}))
	if err != nil {
		return nil, err
	}
	for _, u := range []struct{ repo, user string }{
		{"test-image-user-uid", "1002"}, {"test-image-user-username", "www-data"}, {"test-image-user-uid-group", "1003:1004"},
		{"test-image-user-username-group", "www-data:1004"}, {"test-image-predefined-group", "1000"},
	} {
		img, err := image(base, func(c *v1.Config) { c.User = u.user }, ul)
		if err := add("k8s-staging-cri-tools/"+u.repo+":latest", img, err); err != nil {
			return nil, err
		}
	}

	marked := func(mark string) (v1.Image, error) {
		ml, err := layer([]entry{{path: mark, typ: tar.TypeReg, mode: 0o644}})
		if err != nil {
			return nil, err
		}
		return image(base, nil, ml)
	}
	for _, n := range []string{"test-image-1", "test-image-2", "test-image-3", "test-image-latest", "test-image-digest"} {
		img, err := marked(n)
		if err := add("k8s-staging-cri-tools/"+n+":latest", img, err); err != nil {
			return nil, err
		}
	}
	same, err := marked("same-image")
	for _, t := range []string{"1", "2", "3"} {
		if err := add("k8s-staging-cri-tools/test-image-tags:"+t, same, err); err != nil {
			return nil, err
		}
	}
	for _, t := range []string{"test", "all"} {
		img, err := marked(t)
		if err := add("k8s-staging-cri-tools/test-image-tag:"+t, img, err); err != nil {
			return nil, err
		}
	}
	return imgs, nil
}

// webServer stands in for nginx and httpd: a static file server.
func webServer(args []string) {
	fs := flag.NewFlagSet("web", flag.ExitOnError)
	port := fs.Int("port", 80, "listen port")
	pidfile := fs.String("pidfile", "", "write the pid here")
	banner := fs.String("banner", "", "print at start")
	root := fs.String("root", "/usr/share/nginx/html", "document root")
	_ = fs.Parse(args) // the rest ("master process") is only there to be in argv
	if *pidfile != "" {
		_ = os.WriteFile(*pidfile, []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o644)
	}
	if *banner != "" {
		fmt.Println(*banner)
	}
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		<-c
		os.Exit(0)
	}()
	srv := &http.Server{Addr: fmt.Sprintf(":%d", *port), Handler: http.FileServer(http.Dir(*root)), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(os.Stderr, srv.ListenAndServe())
	os.Exit(1)
}

// pause holds the namespaces, reaps orphans, exits on SIGTERM or SIGINT.
func pause() {
	c := make(chan os.Signal, 8)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range c {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}

func goarch() string { return runtime.GOARCH }
