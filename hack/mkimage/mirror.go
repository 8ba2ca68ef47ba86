package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// source is one apt source: a "deb" line or one URI of a deb822 stanza.
type source struct {
	uri    string
	suites []string
}

// aptMirror finds the Debian mirror this machine's apt already uses (it is
// the one the network lets through), reading both the one-line format
// (sources.list, sources.list.d/*.list) and deb822 (sources.list.d/*.sources,
// the default since bookworm). A source carrying suite itself wins over one
// that only has, say, suite-security.
func aptMirror(root, suite string) (string, error) {
	files := []string{filepath.Join(root, "etc/apt/sources.list")}
	for _, pat := range []string{"*.list", "*.sources"} {
		m, _ := filepath.Glob(filepath.Join(root, "etc/apt/sources.list.d", pat))
		sort.Strings(m)
		files = append(files, m...)
	}
	var all []source
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return "", fmt.Errorf("read apt sources: %w", err)
		}
		if strings.HasSuffix(f, ".sources") {
			all = append(all, parseDeb822(string(b))...)
		} else {
			all = append(all, parseOneLine(string(b))...)
		}
	}
	for _, s := range all {
		if slices.Contains(s.suites, suite) {
			return s.uri, nil
		}
	}
	return "", fmt.Errorf("no apt source for suite %s in %s/etc/apt/sources.list{,.d/*.list,.d/*.sources}; set DEBIAN_MIRROR (or -mirror)", suite, strings.TrimSuffix(root, "/"))
}

// parseOneLine reads "deb [options] uri suite [component...]" lines.
func parseOneLine(text string) []source {
	var out []source
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") { // options, possibly several words: [arch=amd64 signed-by=…]
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) >= 2 && isHTTP(f[0]) {
			out = append(out, source{uri: strings.TrimSuffix(f[0], "/"), suites: []string{f[1]}})
		}
	}
	return out
}

// parseDeb822 reads stanzas of "Field: value" lines separated by blank
// lines; a stanza with Types including deb and Enabled not "no" gives one
// source per URI.
func parseDeb822(text string) []source {
	var out []source
	fields := map[string]string{}
	last := ""
	flush := func() {
		if slices.Contains(strings.Fields(fields["types"]), "deb") && !strings.EqualFold(fields["enabled"], "no") {
			for _, u := range strings.Fields(fields["uris"]) {
				if isHTTP(u) {
					out = append(out, source{uri: strings.TrimSuffix(u, "/"), suites: strings.Fields(fields["suites"])})
				}
			}
		}
		fields, last = map[string]string{}, ""
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case strings.HasPrefix(line, "#"):
		case line[0] == ' ' || line[0] == '\t': // continuation of the last field
			if last != "" {
				fields[last] += " " + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if ok {
				last = strings.ToLower(strings.TrimSpace(k))
				fields[last] = strings.TrimSpace(v)
			}
		}
	}
	flush()
	return out
}

func isHTTP(u string) bool {
	return strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")
}
