// Package ocilayout imports images into a content store from OCI image
// layouts (directories), OCI archives (a tar of a layout, optionally
// gzipped) and docker save tarballs, and exports named images as
// deterministic OCI archives.
//
// Every blob is written through a content Writer with its digest checked
// by the store; docker save layers, which carry no digests, are hashed on
// the way in and converted to an OCI manifest and config. Reads are
// bounded, and paths with ".." or a leading "/" inside an archive are
// refused.
package ocilayout

import (
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is a named root: a manifest or an index.
type Image struct {
	// Name is the org.opencontainers.image.ref.name annotation of an OCI
	// layout's index entry (often just a tag), or a docker save RepoTag;
	// "" when the entry carries none.
	Name   string
	Target ocispec.Descriptor
}
