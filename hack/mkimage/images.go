package main

import (
	"archive/tar"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"berth.dev/berth/internal/testimage"
)

// busyboxEntries is a minimal root: the static busybox, each applet a
// symlink to it where busybox --list-full puts it, /etc/passwd and
// /etc/group, and the empty directories a container expects.
func busyboxEntries(bbPath string) ([]testimage.Entry, error) {
	bin, err := os.ReadFile(bbPath)
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w", err)
	}
	out, err := exec.Command(bbPath, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w", bbPath, err)
	}
	es := []testimage.Entry{{Path: "bin/busybox", Type: tar.TypeReg, Mode: 0o755, Data: string(bin)}}
	dirs := map[string]int64{"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o755, "root": 0o700,
		"sbin": 0o755, "sys": 0o755, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755, "var": 0o755}
	applets := strings.Fields(string(out))
	sort.Strings(applets)
	for _, a := range applets {
		if a == "bin/busybox" || !(strings.HasPrefix(a, "bin/") || strings.HasPrefix(a, "sbin/") ||
			strings.HasPrefix(a, "usr/bin/") || strings.HasPrefix(a, "usr/sbin/")) {
			continue
		}
		es = append(es, testimage.Entry{Path: a, Type: tar.TypeSymlink, Mode: 0o777, Link: "/bin/busybox"})
	}
	for d, m := range dirs {
		es = append(es, testimage.Entry{Path: d, Type: tar.TypeDir, Mode: m})
	}
	return append(es, testimage.BusyboxEtc()...), nil
}

// layouts builds the test image layouts under out. Each step rebuilds
// from its inputs (the host's busybox, the cached debootstrap tree), so a
// change to this builder never leaves a stale image behind.
func layouts(out string, o options) error {
	out, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	epoch := o.epoch
	bbEntries, err := busyboxEntries(o.busybox)
	if err != nil {
		return err
	}
	bbTar, err := tarEntries(bbEntries, epoch)
	if err != nil {
		return err
	}
	bb, err := gzipLayer(bbTar)
	if err != nil {
		return err
	}
	bbHist := "busybox: " + o.busybox + " and its applets as symlinks, /etc/passwd, /etc/group"
	host := map[string]string{"architecture": runtime.GOARCH}
	var summary []string
	report := func(name string, desc map[string]any, layers []layer) {
		var raw, comp int64
		for _, l := range layers {
			raw, comp = raw+l.rawSize, comp+l.compSize
		}
		summary = append(summary, fmt.Sprintf("%-10s %s  layers=%d  compressed=%d  uncompressed=%d", name, desc["digest"], len(layers), comp, raw))
	}
	single := func(name string, cfg map[string]any, hist []string, layers []layer) error {
		l, err := newLayout(filepath.Join(out, name))
		if err != nil {
			return err
		}
		d, err := l.image(host, cfg, hist, layers, epoch)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		report(name, d, layers)
		return l.finish(d)
	}

	if err := single("busybox", map[string]any{"Env": []string{pathEnv}, "Cmd": []string{"sh"}, "WorkingDir": "/"},
		[]string{bbHist}, []layer{bb}); err != nil {
		return err
	}

	layers := []layer{bb}
	hist := []string{bbHist,
		"layer 1: /data files, /data/gone-dir, /data/opaque-dir, /etc/motd",
		"layer 2: whiteout, override, links, setuid, uid 1000, sticky dir",
		"layer 3: dir whiteout, opaque dir, /etc/motd whiteout, xattr"}
	for i, es := range testimage.LayeredLayers() {
		raw, err := tarEntries(es, epoch)
		if err != nil {
			return fmt.Errorf("layered layer %d: %w", i+1, err)
		}
		ly, err := gzipLayer(raw)
		if err != nil {
			return err
		}
		layers = append(layers, ly)
	}
	if err := single("layered", map[string]any{"Env": []string{pathEnv, "LAYERED=1"}, "Entrypoint": []string{"/bin/echo", "layered:"},
		"Cmd": []string{"ok"}, "WorkingDir": "/data", "Labels": map[string]string{"testimage": "layered"}}, hist, layers); err != nil {
		return err
	}

	if err := multiarch(filepath.Join(out, "multiarch"), bb, bbHist, epoch, report); err != nil {
		return err
	}

	if !o.skipDebian {
		deb, err := debianLayer(filepath.Join(out, ".cache"), o)
		if err != nil {
			return fmt.Errorf("debian: %w", err)
		}
		if err := single("debian", map[string]any{"Env": []string{pathEnv}, "Cmd": []string{"bash"}},
			[]string{"debootstrap --variant=minbase " + o.suite}, []layer{deb}); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(out, "images.txt"), []byte(strings.Join(summary, "\n")+"\n"), 0o644)
}

// multiarch is an index over linux/amd64 and linux/arm64/v8 manifests that
// share the host's busybox layer (the arm64 one cannot run: it is there to
// be selected or refused) and differ in their configs.
func multiarch(dir string, bb layer, bbHist string, epoch time.Time, report func(string, map[string]any, []layer)) error {
	l, err := newLayout(dir)
	if err != nil {
		return err
	}
	var manifests []any
	for _, p := range []map[string]string{{"architecture": "amd64"}, {"architecture": "arm64", "variant": "v8"}} {
		a := p["architecture"]
		d, err := l.image(p, map[string]any{"Env": []string{pathEnv, "IMAGE_ARCH=" + a}, "Cmd": []string{"echo", a}},
			[]string{bbHist}, []layer{bb}, epoch)
		if err != nil {
			return fmt.Errorf("multiarch %s: %w", a, err)
		}
		plat := map[string]string{"os": "linux"}
		for k, v := range p {
			plat[k] = v
		}
		d["platform"] = plat
		manifests = append(manifests, d)
	}
	idx, err := l.json(mtIndex, map[string]any{"schemaVersion": 2, "mediaType": mtIndex, "manifests": manifests})
	if err != nil {
		return err
	}
	report("multiarch", idx, []layer{bb})
	return l.finish(idx)
}
