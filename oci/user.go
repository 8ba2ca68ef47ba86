package oci

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// maxID is the largest uid or gid berth accepts: ids past 2^31-1 are
// negative to much of userspace and to the kernel's overflow checks.
const maxID = 1<<31 - 1

// passwdEntry and groupEntry are the fields of /etc/passwd and /etc/group
// berth uses.
type passwdEntry struct {
	name     string
	uid, gid uint32
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// parseID reads v as a numeric id. It reports numeric=false for a name;
// anything that looks like a number (signs included) but is outside
// 0..maxID is an error, so "-1" and "4294967296" never reach a lookup.
func parseID(what, v string) (id uint32, numeric bool, err error) {
	digits := strings.TrimLeft(v, "+-")
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		if err := checkAccountName(what, v); err != nil {
			return 0, false, err
		}
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > maxID {
		return 0, true, fmt.Errorf("%s %q: out of range 0..%d: %w", what, v, maxID, errdefs.ErrInvalidArgument)
	}
	return uint32(n), true, nil
}

func checkAccountName(what, v string) error {
	if v == "" || len(v) > 256 {
		return fmt.Errorf("%s %q: want 1..256 characters: %w", what, v, errdefs.ErrInvalidArgument)
	}
	if v[0] == '-' || v[0] == '+' || strings.ContainsAny(v, ":,\n\r\t \x00/") {
		return fmt.Errorf("%s %q: not a valid name: %w", what, v, errdefs.ErrInvalidArgument)
	}
	return nil
}

// ResolveUser is resolveUser for a process started in a container already
// running (berth exec -u), rootfs being its mounted root filesystem.
func ResolveUser(ctx context.Context, rootfs, spec string) (specs.User, error) {
	return resolveUser(ctx, rootfs, spec)
}

// resolveUser turns "uid[:gid]" or "name[:group]" (default root) into the
// process's ids as containerd does: numbers first, names looked up in the
// rootfs's /etc/passwd and /etc/group; a numeric uid without a group takes
// its passwd entry's gid, or 0 when there is none or no /etc/passwd at all.
// AdditionalGids are the primary gid followed by every group that lists
// the user as a member (CVE-2023-25173: without them a process keeps no
// supplementary groups and the primary group is missing from the list).
func resolveUser(ctx context.Context, rootfs, spec string) (specs.User, error) {
	if spec == "" {
		spec = "0"
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" || (hasGroup && groupPart == "") {
		return specs.User{}, fmt.Errorf("user %q: want uid[:gid] or name[:group]: %w", spec, errdefs.ErrInvalidArgument)
	}
	uid, uidNum, err := parseID("user", userPart)
	if err != nil {
		return specs.User{}, err
	}
	var gid uint32
	var gidNum bool
	if hasGroup {
		if gid, gidNum, err = parseID("group", groupPart); err != nil {
			return specs.User{}, err
		}
	}

	if err := ctx.Err(); err != nil {
		return specs.User{}, err
	}
	users, err := readPasswd(rootfs)
	noPasswd := errors.Is(err, errdefs.ErrNotFound)
	if err != nil && !(noPasswd && uidNum) {
		return specs.User{}, fmt.Errorf("user %q: %w", spec, err)
	}
	username := ""
	primary := uint32(0)
	if uidNum {
		for _, u := range users {
			if u.uid == uid {
				username, primary = u.name, u.gid
				break
			}
		}
	} else {
		found := false
		for _, u := range users {
			if u.name == userPart {
				uid, username, primary, found = u.uid, u.name, u.gid, true
				break
			}
		}
		if !found {
			return specs.User{}, fmt.Errorf("user %q: no such user in the image's /etc/passwd: %w", userPart, errdefs.ErrNotFound)
		}
	}

	if err := ctx.Err(); err != nil {
		return specs.User{}, err
	}
	groups, err := readGroup(rootfs)
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return specs.User{}, fmt.Errorf("user %q: %w", spec, err)
	}
	switch {
	case !hasGroup:
		gid = primary
	case !gidNum:
		found := false
		for _, g := range groups {
			if g.name == groupPart {
				gid, found = g.gid, true
				break
			}
		}
		if !found {
			return specs.User{}, fmt.Errorf("group %q: no such group in the image's /etc/group: %w", groupPart, errdefs.ErrNotFound)
		}
	}

	extra := []uint32{gid}
	if username != "" {
		for _, g := range groups {
			for _, m := range g.members {
				if m == username && !containsID(extra, g.gid) {
					extra = append(extra, g.gid)
				}
			}
		}
	}
	return specs.User{UID: uid, GID: gid, AdditionalGids: extra, Username: username}, nil
}

func containsID(ids []uint32, id uint32) bool {
	for _, v := range ids {
		if v == id {
			return true
		}
	}
	return false
}

func readPasswd(rootfs string) ([]passwdEntry, error) {
	data, err := readRootFile(rootfs, "/etc/passwd")
	if err != nil {
		return nil, err
	}
	var out []passwdEntry
	for _, f := range splitDB(data, 4) {
		uid, err1 := strconv.ParseUint(f[2], 10, 31)
		gid, err2 := strconv.ParseUint(f[3], 10, 31)
		if err1 != nil || err2 != nil {
			continue // out of range or not a number: no such account
		}
		out = append(out, passwdEntry{name: f[0], uid: uint32(uid), gid: uint32(gid)})
	}
	return out, nil
}

func readGroup(rootfs string) ([]groupEntry, error) {
	data, err := readRootFile(rootfs, "/etc/group")
	if err != nil {
		return nil, err
	}
	var out []groupEntry
	for _, f := range splitDB(data, 3) {
		gid, err := strconv.ParseUint(f[2], 10, 31)
		if err != nil {
			continue
		}
		g := groupEntry{name: f[0], gid: uint32(gid)}
		if len(f) > 3 && f[3] != "" {
			for _, m := range strings.Split(f[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					g.members = append(g.members, m)
				}
			}
		}
		out = append(out, g)
	}
	return out, nil
}

// splitDB splits a colon-separated account database into the fields of
// its lines with at least min fields, skipping blanks, comments and NIS
// compat entries ("+", "-").
func splitDB(data []byte, min int) [][]string {
	var out [][]string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < min || f[0] == "" {
			continue
		}
		out = append(out, f)
	}
	return out
}
