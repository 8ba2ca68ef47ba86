// Command mkimage builds berth's images from what is on the host, with no
// registry and nothing outside the repository.
//
// With -o it writes a one-layer busybox OCI archive, so the examples and
// `make run` work with no network:
//
//	go run ./hack/mkimage -busybox /bin/busybox -name busybox:latest -o images/busybox.tar
//
// With -layouts it writes the test image layouts the tests use (make
// testimages), each an OCI layout tagged "latest":
//
//	go run ./hack/mkimage -layouts .cache/testimages
//
//	busybox    one layer: the host's static busybox, applets, /etc/passwd
//	layered    busybox + three layers of whiteouts, links, modes, owners, an
//	           xattr (internal/testimage says what, and checks the result)
//	multiarch  an index of linux/amd64 and linux/arm64/v8 over the busybox layer
//	debian     debootstrap --variant=minbase bookworm, one large layer (root;
//	           cached in DIR/.cache; -skip-debian leaves it out)
//
// The same inputs give the same digests: entries sorted, mtimes
// SOURCE_DATE_EPOCH, numeric owners, gzip without name or time.
package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"berth.dev/berth/internal/testimage"
)

type options struct {
	busybox    string
	epoch      time.Time
	suite      string
	mirror     string
	skipDebian bool
}

func main() {
	o := options{}
	flag.StringVar(&o.busybox, "busybox", "/bin/busybox", "static busybox binary")
	name := flag.String("name", "busybox:latest", "image name of the -o archive (org.opencontainers.image.ref.name)")
	out := flag.String("o", "", "write a busybox OCI archive here")
	dir := flag.String("layouts", "", "write the test image layouts (busybox, layered, multiarch, debian) under this directory")
	flag.StringVar(&o.suite, "suite", "bookworm", "Debian suite of the debian image")
	flag.StringVar(&o.mirror, "mirror", os.Getenv("DEBIAN_MIRROR"), "Debian mirror for debootstrap (default $DEBIAN_MIRROR, else the one apt's sources name)")
	flag.BoolVar(&o.skipDebian, "skip-debian", os.Getenv("SKIP_DEBIAN") == "1", "leave out the debian image (default $SKIP_DEBIAN=1)")
	flag.Parse()
	o.epoch = time.Unix(1704067200, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "mkimage: SOURCE_DATE_EPOCH=%q: %v\n", s, err)
			os.Exit(2)
		}
		o.epoch = time.Unix(n, 0).UTC()
	}
	var err error
	switch {
	case *dir != "":
		err = layouts(*dir, o)
	case *out != "":
		err = archive(*out, *name, o)
	default:
		err = fmt.Errorf("give -o ARCHIVE or -layouts DIR")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

// archive writes the busybox image, with a page for the examples' web
// server, as one OCI archive (an OCI layout in a tar).
func archive(out, name string, o options) error {
	es, err := busyboxEntries(o.busybox)
	if err != nil {
		return err
	}
	es = append(es, testimage.Entry{Path: "var/www", Type: tar.TypeDir, Mode: 0o755},
		testimage.Entry{Path: "var/www/index.html", Type: tar.TypeReg, Mode: 0o644, Data: "hello from berth\n"})
	raw, err := tarEntries(es, o.epoch)
	if err != nil {
		return err
	}
	ly, err := gzipLayer(raw)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mkimage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	l, err := newLayout(filepath.Join(tmp, "image"))
	if err != nil {
		return err
	}
	d, err := l.image(map[string]string{"architecture": runtime.GOARCH},
		map[string]any{"Cmd": []string{"sh"}, "Env": []string{pathEnv}}, []string{"busybox"}, []layer{ly}, o.epoch)
	if err != nil {
		return err
	}
	if err := l.finish(d); err != nil {
		return err
	}
	// The archive's index names the image by its full name; the blobs are
	// the layout's.
	d["annotations"] = map[string]string{"org.opencontainers.image.ref.name": name}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mtIndex, "manifests": []any{d}})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(path string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: int64(len(data)), ModTime: o.epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := add("index.json", index); err != nil {
		return err
	}
	blobs, err := os.ReadDir(filepath.Join(l.dir, "blobs", "sha256"))
	if err != nil {
		return err
	}
	for _, b := range blobs { // ReadDir sorts by name
		data, err := os.ReadFile(filepath.Join(l.dir, "blobs", "sha256", b.Name()))
		if err != nil {
			return err
		}
		if err := add("blobs/sha256/"+b.Name(), data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return writeFileAtomic(out, buf.Bytes())
}
