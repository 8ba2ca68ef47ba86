package layer

import (
	"archive/tar"
	"bytes"
	"fmt"
	"strconv"
	"testing"
)

// fragment is one data region of a sparse file.
type fragment struct {
	off  int64
	data string
}

// sparseTar returns a tar holding one GNU PAX 1.0 sparse file (what GNU tar
// --sparse --format=pax writes) of logical size size. Go's tar.Writer drops
// GNU.sparse records, so the PAX header block is written by hand.
func sparseTar(t testing.TB, name string, size int64, frags []fragment) []byte {
	t.Helper()
	var m bytes.Buffer
	fmt.Fprintf(&m, "%d\n", len(frags))
	var data bytes.Buffer
	for _, f := range frags {
		fmt.Fprintf(&m, "%d\n%d\n", f.off, len(f.data))
		data.WriteString(f.data)
	}
	for m.Len()%512 != 0 {
		m.WriteByte(0)
	}
	body := append(m.Bytes(), data.Bytes()...)
	records := paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") +
		paxRecord("GNU.sparse.name", name) + paxRecord("GNU.sparse.realsize", strconv.FormatInt(size, 10))

	var out bytes.Buffer
	out.Write(rawHeader(t, "PaxHeaders/"+name, 'x', []byte(records)))
	tw := tar.NewWriter(&out)
	if err := tw.WriteHeader(&tar.Header{Name: "GNUSparseFile.0/" + name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), Format: tar.FormatUSTAR}); err != nil {
		t.Fatal(err)
	}
	tw.Write(body)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func paxRecord(k, v string) string {
	s := " " + k + "=" + v + "\n"
	n := len(s)
	for {
		if l := len(strconv.Itoa(n)) + len(s); l == n {
			return strconv.Itoa(n) + s
		} else {
			n = l
		}
	}
}

// rawHeader writes a ustar header of the given type with content, by
// writing a regular one and patching its type byte and checksum.
func rawHeader(t testing.TB, name string, typ byte, content []byte) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content)), Format: tar.FormatUSTAR}); err != nil {
		t.Fatal(err)
	}
	tw.Write(content)
	tw.Flush()
	blk := b.Bytes()
	blk[156] = typ
	copy(blk[148:156], "        ")
	sum := 0
	for _, c := range blk[:512] {
		sum += int(c)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return blk
}
