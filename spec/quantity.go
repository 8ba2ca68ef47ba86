package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"time"
)

// Quantity is a Kubernetes-style quantity as written: "64Mi", "1G",
// "0.5", "500m", "1e3". It keeps the text so a manifest round-trips;
// Value and MilliValue interpret it. A bare YAML/JSON number is accepted
// and kept as its literal text.
type Quantity string

var quantityRE = regexp.MustCompile(`^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)|[eE]([+-]?[0-9]{1,3}))?$`)

var quantitySuffix = map[string]*big.Rat{
	"":   big.NewRat(1, 1),
	"m":  big.NewRat(1, 1000),
	"k":  new(big.Rat).SetInt64(1e3),
	"M":  new(big.Rat).SetInt64(1e6),
	"G":  new(big.Rat).SetInt64(1e9),
	"T":  new(big.Rat).SetInt64(1e12),
	"P":  new(big.Rat).SetInt64(1e15),
	"E":  new(big.Rat).SetInt64(1e18),
	"Ki": new(big.Rat).SetInt64(1 << 10),
	"Mi": new(big.Rat).SetInt64(1 << 20),
	"Gi": new(big.Rat).SetInt64(1 << 30),
	"Ti": new(big.Rat).SetInt64(1 << 40),
	"Pi": new(big.Rat).SetInt64(1 << 50),
	"Ei": new(big.Rat).SetInt64(1 << 60),
}

// rat parses q exactly.
func (q Quantity) rat() (*big.Rat, error) {
	m := quantityRE.FindStringSubmatch(string(q))
	if m == nil {
		return nil, fmt.Errorf("%q is not a quantity%s", string(q), quantityHint(string(q)))
	}
	r, ok := new(big.Rat).SetString(m[1])
	if !ok {
		return nil, fmt.Errorf("%q is not a quantity", string(q))
	}
	if m[3] != "" {
		var e int
		fmt.Sscan(m[3], &e)
		p := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(e))), nil)
		f := new(big.Rat).SetInt(p)
		if e < 0 {
			f.Inv(f)
		}
		return r.Mul(r, f), nil
	}
	return r.Mul(r, quantitySuffix[m[2]]), nil
}

func abs(i int) int {
	if i < 0 {
		return -i
	}
	return i
}

// scaled returns q×scale rounded up to an integer, which must fit an int64
// and not be negative.
func (q Quantity) scaled(scale int64) (int64, error) {
	r, err := q.rat()
	if err != nil {
		return 0, err
	}
	if r.Sign() < 0 {
		return 0, fmt.Errorf("%q is negative", string(q))
	}
	r.Mul(r, new(big.Rat).SetInt64(scale))
	n := new(big.Int).Quo(r.Num(), r.Denom())
	if new(big.Rat).SetInt(n).Cmp(r) < 0 {
		n.Add(n, big.NewInt(1)) // round up, as Kubernetes does
	}
	if !n.IsInt64() {
		return 0, fmt.Errorf("%q is too large", string(q))
	}
	return n.Int64(), nil
}

// Value is the quantity as a whole number (bytes for memory), rounded up.
func (q Quantity) Value() (int64, error) { return q.scaled(1) }

// MilliValue is the quantity in thousandths (millicores for cpu), rounded up.
func (q Quantity) MilliValue() (int64, error) { return q.scaled(1000) }

// UnmarshalJSON accepts a string or a number.
func (q *Quantity) UnmarshalJSON(b []byte) error {
	s, err := stringOrNumber(b)
	*q = Quantity(s)
	return err
}

// Duration is a Go duration as written: "10s", "1m30s". A bare number is
// accepted by the parser and kept as text; validation then refuses it
// because it has no unit.
type Duration string

// Value parses the duration.
func (d Duration) Value() (time.Duration, error) {
	v, err := time.ParseDuration(string(d))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (such as 10s or 1m30s)", string(d))
	}
	return v, nil
}

// UnmarshalJSON accepts a string or a number.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s, err := stringOrNumber(b)
	*d = Duration(s)
	return err
}

func stringOrNumber(b []byte) (string, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		err := json.Unmarshal(b, &s)
		return s, err
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return "", fmt.Errorf("want a string or a number, got %s", truncate(string(b), 20))
	}
	return n.String(), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// unitTypos maps the byte units people write from habit (MB, mb, Mib, m
// for mega) to the decimal and binary suffixes a quantity takes.
var unitTypo = regexp.MustCompile(`^([+-]?[0-9.]+)\s*([kKmMgGtTpPeE])(i?[bB]|i)?$`)

// quantityHint suggests the quantities s was likely meant as: "64MB" →
// "; did you mean 64M or 64Mi?". Empty when s looks like no quantity.
func quantityHint(s string) string {
	m := unitTypo.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return ""
	}
	unit := strings.ToUpper(m[2])
	dec := unit
	if unit == "K" {
		dec = "k"
	}
	return fmt.Sprintf("; did you mean %s%s or %s%si?", m[1], dec, m[1], unit)
}
