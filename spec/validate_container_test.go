package spec

import (
	"strings"
	"testing"
)

func TestValidate_ImageReferenceInContainer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		image string
		want  string // "" for valid
	}{
		{"busybox", ""},
		{"busybox:latest", `spec.image: "busybox:latest" looks like an image reference; spec.image names an Image object in the same namespace: ` +
			`declare {kind: Image, metadata: {name: busybox}, spec: {ref: busybox:latest}} and write image: busybox`},
		{"127.0.0.1:5000/library/busybox:1.36", `declare {kind: Image, metadata: {name: busybox}, spec: {ref: 127.0.0.1:5000/library/busybox:1.36}} and write image: busybox`},
		{"ghcr.io/org/my_app@sha256:" + strings.Repeat("a", 64), `{kind: Image, metadata: {name: my-app}, spec: {ref: ghcr.io/org/my_app@sha256:`},
		{"docker.io/library/nginx", `"docker.io/library/nginx" looks like an image reference`},
		// Not a reference: the plain name error stays.
		{"Busybox", `spec.image: "Busybox" is not a DNS-1123 label`},
		{"", `spec.image: missing`},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			o := Object{APIVersion: APIVersion, Kind: KindContainer, Metadata: Metadata{Name: "web"}, Spec: ContainerSpec{Image: tt.image, Network: NetworkHost}}
			err := Validate(o)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("got error %v, want none", err)
			case tt.want == "":
			case err == nil:
				t.Fatalf("got no error, want %s", tt.want)
			case !strings.Contains(err.Error(), tt.want):
				t.Errorf("got error\n%v\nwant it to contain\n%s", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "reference") && strings.Contains(err.Error(), "DNS-1123") {
				t.Errorf("a reference is also called a bad label: %v", err)
			}
		})
	}
}
