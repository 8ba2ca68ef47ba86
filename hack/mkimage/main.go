// Command mkimage builds a one-layer OCI image archive from the host's
// static busybox, so the examples and `make run` work with no network.
//
//	go run ./hack/mkimage -busybox /bin/busybox -name busybox:latest -o images/busybox.tar
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

var epoch = time.Unix(0, 0).UTC()

func main() {
	bb := flag.String("busybox", "/bin/busybox", "static busybox binary")
	name := flag.String("name", "busybox:latest", "image name (org.opencontainers.image.ref.name)")
	out := flag.String("o", "busybox.tar", "output OCI archive")
	flag.Parse()
	if err := build(*bb, *name, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

type blob struct {
	mediaType string
	data      []byte
}

func (b blob) desc() map[string]any {
	return map[string]any{"mediaType": b.mediaType, "digest": digest(b.data), "size": len(b.data)}
}

func digest(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

func build(bbPath, name, out string) error {
	bin, err := os.ReadFile(bbPath)
	if err != nil {
		return err
	}
	applets, err := exec.Command(bbPath, "--list").Output()
	if err != nil {
		return fmt.Errorf("%s --list: %w", bbPath, err)
	}
	layerTar, err := rootfs(bin, strings.Fields(string(applets)))
	if err != nil {
		return err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zw.Write(layerTar)
	zw.Close()
	layer := blob{"application/vnd.oci.image.layer.v1.tar+gzip", gz.Bytes()}
	cfg, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux", "created": epoch,
		"config": map[string]any{"Cmd": []string{"sh"}, "Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digest(layerTar)}},
	})
	config := blob{"application/vnd.oci.image.config.v1+json", cfg}
	man, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": config.desc(), "layers": []any{layer.desc()},
	})
	manifest := blob{"application/vnd.oci.image.manifest.v1+json", man}
	md := manifest.desc()
	md["annotations"] = map[string]string{"org.opencontainers.image.ref.name": name}
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []any{md}})

	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(path string, data []byte) {
		tw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	add("index.json", index)
	for _, b := range []blob{layer, config, manifest} {
		add("blobs/sha256/"+digest(b.data)[len("sha256:"):], b.data)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// rootfs is a minimal root: busybox, its applets as symlinks, /etc/passwd.
func rootfs(bin []byte, applets []string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(p string, mode int64) {
		tw.WriteHeader(&tar.Header{Name: p + "/", Mode: mode, ModTime: epoch, Typeflag: tar.TypeDir})
	}
	file := func(p string, mode int64, data []byte) {
		tw.WriteHeader(&tar.Header{Name: p, Mode: mode, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	for _, d := range []string{"bin", "dev", "etc", "home", "proc", "root", "sys", "tmp", "usr", "usr/bin", "var", "var/www"} {
		mode := int64(0o755)
		switch d {
		case "tmp":
			mode = 0o1777
		case "root":
			mode = 0o700
		}
		dir(d, mode)
	}
	file("bin/busybox", 0o755, bin)
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nnobody:x:65534:\n"))
	file("var/www/index.html", 0o644, []byte("hello from berth\n"))
	sort.Strings(applets)
	for _, a := range applets {
		if a == "busybox" {
			continue
		}
		tw.WriteHeader(&tar.Header{Name: "bin/" + a, Linkname: "busybox", ModTime: epoch, Typeflag: tar.TypeSymlink, Mode: 0o777})
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
