package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"berth.dev/berth/content/remote"
	"berth.dev/berth/node"
	"berth.dev/berth/observed"
	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// imageInfo is what an image record's target resolves to on this host.
type imageInfo struct {
	id       string // config digest
	config   ocispec.Image
	chainIDs []string
}

// image is one CRI image: every record of the namespace whose manifest
// names the same config.
type image struct {
	imageInfo
	records []observed.Image
}

// info resolves a record's target to its ID and config, cached by target.
func (s *Service) info(ctx context.Context, img observed.Image) (imageInfo, error) {
	key := img.Target.Digest.String()
	s.idsMu.Lock()
	ii, ok := s.ids[key]
	s.idsMu.Unlock()
	if ok {
		return ii, nil
	}
	m, cfg, err := s.node.ImageConfig(ctx, img, "")
	if err != nil {
		return imageInfo{}, err
	}
	ii = imageInfo{id: m.Config.Digest.String(), config: cfg}
	s.idsMu.Lock()
	s.ids[key] = ii
	s.idsMu.Unlock()
	return ii, nil
}

// images groups the namespace's records by image ID.
func (s *Service) images(ctx context.Context) ([]*image, error) {
	recs, err := s.opts.DB.ListImages(ctx, Namespace)
	if err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	byID := map[string]*image{}
	var out []*image
	for _, r := range recs {
		ii, err := s.info(ctx, r)
		if err != nil {
			// A record whose blobs are gone (or are for another
			// platform) is no image a container can run.
			s.log.Debug("image record without a usable manifest", "name", r.Name, "err", err)
			continue
		}
		im := byID[ii.id]
		if im == nil {
			im = &image{imageInfo: ii}
			byID[ii.id] = im
			out = append(out, im)
		}
		im.records = append(im.records, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, nil
}

// normalize is the record name a reference stands for ("busybox" →
// index.docker.io/library/busybox:latest), as node.Pull names records.
func normalize(ref string) (string, error) {
	r, err := remote.ParseRef(ref)
	if err != nil {
		return "", err
	}
	return r.Name(), nil
}

// display is the name a kubelet expects: docker.io, as containerd writes
// it, not go-containerregistry's index.docker.io.
func display(recordName string) string {
	if rest, ok := strings.CutPrefix(recordName, name.DefaultRegistry+"/"); ok {
		return "docker.io/" + rest
	}
	return recordName
}

// resolveImage finds the image ref names: an image ID (sha256:… or its
// hex, or a unique prefix of at least 12 hex digits), a repo tag, or a
// repo digest. Not found is errdefs.ErrNotFound.
func (s *Service) resolveImage(ctx context.Context, ref string) (*image, error) {
	if ref == "" {
		return nil, fmt.Errorf("image: empty reference: %w", errdefs.ErrInvalidArgument)
	}
	imgs, err := s.images(ctx)
	if err != nil {
		return nil, err
	}
	hex := strings.TrimPrefix(ref, "sha256:")
	if isHex(hex) {
		var found *image
		for _, im := range imgs {
			if strings.TrimPrefix(im.id, "sha256:") == hex {
				return im, nil
			}
			if len(hex) >= 12 && strings.HasPrefix(strings.TrimPrefix(im.id, "sha256:"), hex) {
				if found != nil {
					return nil, fmt.Errorf("image ID prefix %s is ambiguous: %w", hex, errdefs.ErrInvalidArgument)
				}
				found = im
			}
		}
		if found != nil {
			return found, nil
		}
	}
	r, err := remote.ParseRef(ref)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
	}
	want := r.Name()
	for _, im := range imgs {
		for _, rec := range im.records {
			if rec.Name == want {
				return im, nil
			}
			// A record named another way (docker.io/library/busybox:x as
			// `berth image import --name` gives it) is the same reference.
			if rr, err := remote.ParseRef(rec.Name); err == nil && rr.Name() == want {
				return im, nil
			}
			// repo@digest matches any record of the repo at that target.
			if d, ok := r.(name.Digest); ok {
				if rr, err := remote.ParseRef(rec.Name); err == nil && rr.Context().Name() == d.Context().Name() && rec.Target.Digest.String() == d.DigestStr() {
					return im, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
}

func isHex(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// cri turns an image into the CRI's view of it.
func (s *Service) cri(im *image) *runtime.Image {
	out := &runtime.Image{Id: im.id, Spec: &runtime.ImageSpec{Image: im.id}}
	tags, digests := map[string]bool{}, map[string]bool{}
	var size int64
	for _, rec := range im.records {
		if rec.Size > size {
			size = rec.Size
		}
		r, err := remote.ParseRef(rec.Name)
		if err != nil {
			continue
		}
		if _, ok := r.(name.Tag); ok {
			tags[display(rec.Name)] = true
		}
		digests[display(r.Context().Name())+"@"+rec.Target.Digest.String()] = true
		if s.isSandboxImage(rec.Name) {
			out.Pinned = true
		}
	}
	out.RepoTags, out.RepoDigests = sortedKeys(tags), sortedKeys(digests)
	out.Size = uint64(size)
	user := im.config.Config.User
	if u, _, _ := strings.Cut(user, ":"); u != "" {
		if uid, err := strconv.ParseInt(u, 10, 64); err == nil {
			out.Uid = &runtime.Int64Value{Value: uid}
		} else {
			out.Username = u
		}
	}
	return out
}

func (s *Service) isSandboxImage(recordName string) bool {
	n, err := normalize(s.opts.SandboxImage)
	return err == nil && n == recordName || recordName == builtinPauseName
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ListImages lists the namespace's images, filtered by the one reference
// a filter may name.
func (s *Service) ListImages(ctx context.Context, req *runtime.ListImagesRequest) (*runtime.ListImagesResponse, error) {
	if f := req.GetFilter().GetImage().GetImage(); f != "" {
		im, err := s.resolveImage(ctx, f)
		if errdefs.IsNotFound(err) {
			return &runtime.ListImagesResponse{}, nil
		}
		if err != nil {
			return nil, err
		}
		return &runtime.ListImagesResponse{Images: []*runtime.Image{s.cri(im)}}, nil
	}
	imgs, err := s.images(ctx)
	if err != nil {
		return nil, err
	}
	resp := &runtime.ListImagesResponse{}
	for _, im := range imgs {
		resp.Images = append(resp.Images, s.cri(im))
	}
	return resp, nil
}

// ImageStatus answers an image that is not there with no image and no
// error, as the CRI asks.
func (s *Service) ImageStatus(ctx context.Context, req *runtime.ImageStatusRequest) (*runtime.ImageStatusResponse, error) {
	im, err := s.resolveImage(ctx, req.GetImage().GetImage())
	if errdefs.IsNotFound(err) {
		return &runtime.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	resp := &runtime.ImageStatusResponse{Image: s.cri(im)}
	if req.GetVerbose() {
		var names []string
		for _, r := range im.records {
			names = append(names, r.Name)
		}
		info, _ := json.Marshal(map[string]any{
			"imageSpec": im.config, "records": names, "unpacked": im.records[0].Unpacked,
			"target": im.records[0].Target,
		})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

// PullImage pulls and unpacks into namespace k8s.io, with the request's
// credentials first, then berthd's own, through berth's registry
// configuration (mirrors, certificates). It answers the image ID.
func (s *Service) PullImage(ctx context.Context, req *runtime.PullImageRequest) (*runtime.PullImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, fmt.Errorf("pull: empty image reference: %w", errdefs.ErrInvalidArgument)
	}
	opts := node.PullOptions{Unpack: true}
	if a := req.GetAuth(); a != nil {
		kc, err := keychainFor(ref, a)
		if err != nil {
			return nil, err
		}
		opts.Keychain = kc
	}
	rec, err := s.node.Pull(ctx, Namespace, ref, opts)
	if err != nil {
		return nil, err
	}
	ii, err := s.info(ctx, rec)
	if err != nil {
		return nil, err
	}
	return &runtime.PullImageResponse{ImageRef: ii.id}, nil
}

// RemoveImage removes every name of the image (tags and digests), as
// containerd does; an image that is not there is no error.
func (s *Service) RemoveImage(ctx context.Context, req *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error) {
	im, err := s.resolveImage(ctx, req.GetImage().GetImage())
	if errdefs.IsNotFound(err) {
		return &runtime.RemoveImageResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	for _, rec := range im.records {
		if err := s.node.RemoveImage(ctx, Namespace, rec.Name, false); err != nil && !errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("remove image %s: %w", rec.Name, err)
		}
	}
	return &runtime.RemoveImageResponse{}, nil
}
