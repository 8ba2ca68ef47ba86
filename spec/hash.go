package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
)

// Hash is the canonical digest of o's defaulted spec, "sha256:<hex>". It
// covers the kind and the spec only: metadata, status and origin do not
// change it, nor do key order, YAML against JSON, or how a quantity is
// written ("0.5" and "500m" of cpu, "1Ki" and "1024" of memory, when
// valid). A change of Hash is a change of desired state. Fields o leaves
// to the node count as the built-in NodeDefaults: hash what the node's
// store resolved (desired.Store.Resolve) to compare with what runs.
func Hash(o Object) string {
	d := BuiltinDefaults.Resolve(o)
	var sp any = d.Spec
	if c, ok := d.Spec.(ContainerSpec); ok {
		c.Resources = canonicalResources(c.Resources)
		sp = c
	}
	// encoding/json writes struct fields in declaration order and map keys
	// sorted, so the bytes are canonical for a given value.
	b, err := json.Marshal(struct {
		Kind Kind `json:"kind"`
		Spec any  `json:"spec"`
	}{d.Kind, sp})
	if err != nil {
		// Specs are plain data; this cannot happen.
		panic("spec: hash: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func canonicalResources(r Resources) Resources {
	if n, err := r.CPU.MilliValue(); err == nil && r.CPU != "" {
		r.CPU = Quantity(strconv.FormatInt(n, 10) + "m")
	}
	if n, err := r.Memory.Value(); err == nil && r.Memory != "" {
		r.Memory = Quantity(strconv.FormatInt(n, 10))
	}
	return r
}
