package node

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ApplyChanges applies Dockerfile instructions to an image config, as
// `docker commit --change` and `nerdctl commit --change` do: CMD,
// ENTRYPOINT (JSON array, or shell form run by /bin/sh -c), ENV K=V…,
// WORKDIR, USER, LABEL K=V…, EXPOSE PORT[/PROTO]…, VOLUME (JSON array or
// paths) and STOPSIGNAL. Anything else is refused, not ignored.
func ApplyChanges(cfg *ocispec.ImageConfig, changes []string) error {
	for _, ch := range changes {
		if err := applyChange(cfg, ch); err != nil {
			return fmt.Errorf("change %q: %w", ch, err)
		}
	}
	return nil
}

func applyChange(cfg *ocispec.ImageConfig, ch string) error {
	ch = strings.TrimSpace(ch)
	instr, rest, _ := strings.Cut(ch, " ")
	rest = strings.TrimSpace(rest)
	bad := func(format string, args ...any) error {
		return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
	}
	if rest == "" {
		return bad("%s needs an argument", instr)
	}
	switch strings.ToUpper(instr) {
	case "CMD":
		cfg.Cmd = commandForm(rest)
	case "ENTRYPOINT":
		cfg.Entrypoint = commandForm(rest)
	case "WORKDIR":
		if !strings.HasPrefix(rest, "/") {
			return bad("WORKDIR must be absolute")
		}
		cfg.WorkingDir = rest
	case "USER":
		cfg.User = rest
	case "STOPSIGNAL":
		cfg.StopSignal = rest
	case "ENV":
		kvs, err := pairs(rest, true)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			cfg.Env = setEnv(cfg.Env, kv[0], kv[1])
		}
	case "LABEL":
		kvs, err := pairs(rest, false)
		if err != nil {
			return err
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range kvs {
			cfg.Labels[kv[0]] = kv[1]
		}
	case "EXPOSE":
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range strings.Fields(rest) {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			cfg.ExposedPorts[p] = struct{}{}
		}
	case "VOLUME":
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		var vs []string
		if err := json.Unmarshal([]byte(rest), &vs); err != nil {
			vs = strings.Fields(rest)
		}
		for _, v := range vs {
			cfg.Volumes[v] = struct{}{}
		}
	default:
		return bad("unsupported instruction %q (want CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME or STOPSIGNAL)", instr)
	}
	return nil
}

// commandForm reads the exec form (a JSON array) or the shell form.
func commandForm(s string) []string {
	var args []string
	if strings.HasPrefix(s, "[") && json.Unmarshal([]byte(s), &args) == nil {
		return args
	}
	return []string{"/bin/sh", "-c", s}
}

// pairs reads K=V K2="V 2" …; with legacy, "K V" (one pair, the rest the
// value) as Dockerfile ENV accepts.
func pairs(s string, legacy bool) ([][2]string, error) {
	if legacy && !strings.Contains(strings.Fields(s)[0], "=") {
		k, v, _ := strings.Cut(s, " ")
		return [][2]string{{k, strings.TrimSpace(v)}}, nil
	}
	var out [][2]string
	for _, f := range splitQuoted(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not KEY=VALUE: %w", f, errdefs.ErrInvalidArgument)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// splitQuoted splits on spaces outside double quotes and drops the quotes.
func splitQuoted(s string) []string {
	var out []string
	var cur strings.Builder
	inQ, have := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && inQ && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			inQ, have = !inQ, true
		case c == ' ' && !inQ:
			if have || cur.Len() > 0 {
				out = append(out, cur.String())
			}
			cur.Reset()
			have = false
		default:
			cur.WriteByte(c)
		}
	}
	if have || cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

func setEnv(env []string, k, v string) []string {
	for i, e := range env {
		if name, _, _ := strings.Cut(e, "="); name == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}
