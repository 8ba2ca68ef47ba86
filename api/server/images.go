package server

import (
	"context"
	"io"
	"sync"
	"time"

	imagesapi "berth.dev/berth/api/images/v1"
	typesapi "berth.dev/berth/api/types/v1"
	"berth.dev/berth/node"
	"berth.dev/berth/observed"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Images serves image records and the operations on them.
type Images struct {
	Node node.Images
	// DB answers Get and List from the image records, which need no node
	// operation.
	DB *observed.DB
}

var _ imagesapi.ImagesService = (*Images)(nil)

// ToDescriptor converts an OCI descriptor to its wire form.
//
// ToDescriptor is exported because other services (diff, commit) return
// descriptors too and must encode them alike.
func ToDescriptor(d ocispec.Descriptor) *typesapi.Descriptor {
	out := &typesapi.Descriptor{MediaType: d.MediaType, Digest: d.Digest.String(), Size: d.Size, Annotations: d.Annotations}
	if d.Platform != nil {
		out.Platform = &typesapi.Platform{Os: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant}
	}
	return out
}

// toImage carries Unpacked, so a client sees on which snapshotters an
// image is ready to run without asking each one.
func toImage(img observed.Image) *imagesapi.Image {
	return &imagesapi.Image{Name: img.Name, Target: ToDescriptor(img.Target), Labels: img.Labels, Unpacked: img.Unpacked,
		Size: img.Size, CreatedAt: timestamppb.New(img.CreatedAt), UpdatedAt: timestamppb.New(img.UpdatedAt)}
}

// Get and List read the image records: no registry, no content store, so
// they answer even while a pull holds the network.
func (s *Images) Get(ctx context.Context, r *imagesapi.GetImageRequest) (*imagesapi.GetImageResponse, error) {
	img, err := s.DB.GetImage(ctx, r.Namespace, r.Name)
	if err != nil {
		return nil, err
	}
	return &imagesapi.GetImageResponse{Image: toImage(img)}, nil
}

// List fails on an unknown namespace instead of returning nothing, so a
// mistyped -n is an error and not an empty table.
func (s *Images) List(ctx context.Context, r *imagesapi.ListImagesRequest) (*imagesapi.ListImagesResponse, error) {
	if _, err := s.DB.GetNamespace(ctx, r.Namespace); err != nil {
		return nil, err
	}
	imgs, err := s.DB.ListImages(ctx, r.Namespace)
	if err != nil {
		return nil, err
	}
	resp := &imagesapi.ListImagesResponse{}
	for _, img := range imgs {
		resp.Images = append(resp.Images, toImage(img))
	}
	return resp, nil
}

// progressInterval paces progress messages of a pull.
//
// A pull's progress is a stream of snapshots rather than of events, so a
// slow client that drops messages still sees where the pull stands.
const progressInterval = 100 * time.Millisecond

// Pull runs under the caller's lease (withRequestLease) so that what it
// fetches is safe from garbage collection until the caller has used it.
// Progress comes from node.PullTracker, the same fold the Image status
// uses, so the CLI and the status agree on the bytes.
func (s *Images) Pull(ctx context.Context, r *imagesapi.PullRequest, stream imagesapi.Images_PullServer) error {
	ctx = withRequestLease(ctx)
	tracker := node.NewPullTracker()
	var (
		mu   sync.Mutex // serializes Sends
		last time.Time
	)
	progress := func(p node.Progress) {
		tracker.Observe(p)
		mu.Lock()
		defer mu.Unlock()
		// A retry is said at once: the user is waiting on it.
		if p.Status == "retrying" || time.Since(last) >= progressInterval {
			last = time.Now()
			_ = stream.Send(pullProgressToAPI(tracker.Snapshot()))
		}
	}
	img, err := s.Node.Pull(ctx, r.Namespace, r.Ref, node.PullOptions{
		Platform: r.Platform, PlainHTTP: r.PlainHttp, Unpack: r.Unpack, Snapshotter: r.Snapshotter,
		Labels: r.Labels, Progress: progress,
	})
	if err != nil {
		return streamErr(err)
	}
	mu.Lock()
	defer mu.Unlock()
	final := pullProgressToAPI(tracker.Snapshot())
	final.Image = toImage(img)
	return stream.Send(final)
}

func pullProgressToAPI(p node.PullProgress) *imagesapi.PullProgress {
	a := &imagesapi.PullProgress{BytesFetched: p.Fetched, Seconds: p.Seconds, Waiting: p.Waiting}
	for _, l := range p.Layers {
		a.Layers = append(a.Layers, &imagesapi.LayerProgress{Digest: l.Digest, MediaType: l.MediaType,
			Offset: l.Offset, Total: l.Total, Status: l.Status, Rate: l.Rate, Message: l.Message})
	}
	return a
}

// Push returns the pushed blobs' digests so a client can say what the
// registry already had.
func (s *Images) Push(ctx context.Context, r *imagesapi.PushRequest) (*imagesapi.PushResponse, error) {
	desc, blobs, err := s.Node.Push(ctx, r.Namespace, r.Name, r.Target, node.PushOptions{
		Platform: r.Platform, AllPlatforms: r.AllPlatforms, PlainHTTP: r.PlainHttp,
	})
	if err != nil {
		return nil, err
	}
	return &imagesapi.PushResponse{Target: ToDescriptor(desc), Blobs: blobs}, nil
}

// Tag writes a second record for the same target; no blob is copied.
func (s *Images) Tag(ctx context.Context, r *imagesapi.TagRequest) (*imagesapi.TagResponse, error) {
	img, err := s.Node.Tag(ctx, r.Namespace, r.Source, r.Target)
	if err != nil {
		return nil, err
	}
	return &imagesapi.TagResponse{Image: toImage(img)}, nil
}

// Delete removes the record; the blobs and snapshots go at the next
// collection (now, with sync), so a delete never races a pull that needs
// the same layers.
func (s *Images) Delete(ctx context.Context, r *imagesapi.DeleteImageRequest) (*imagesapi.DeleteImageResponse, error) {
	if err := s.Node.RemoveImage(ctx, r.Namespace, r.Name, r.Sync); err != nil {
		return nil, err
	}
	return &imagesapi.DeleteImageResponse{}, nil
}

// Import reads an OCI layout, OCI archive or docker-save tarball from a
// path on the node (berthd's view of the filesystem, not the client's):
// the CLI sends local files as paths only when it runs on the node.
func (s *Images) Import(ctx context.Context, r *imagesapi.ImportRequest) (*imagesapi.ImportResponse, error) {
	imgs, err := s.Node.Import(ctx, r.Namespace, r.Path, node.ImportOptions{
		Name: r.Name, Unpack: r.Unpack, Snapshotter: r.Snapshotter, Platform: r.Platform,
	})
	if err != nil {
		return nil, err
	}
	resp := &imagesapi.ImportResponse{}
	for _, img := range imgs {
		resp.Images = append(resp.Images, toImage(img))
	}
	return resp, nil
}

// exportChunk is the size of each streamed piece of an export.
//
// Chunks bound each message below ttrpc's message limit while keeping the
// number of round trips low.
const exportChunk = 256 << 10

// Export writes the archive into a pipe and streams it in chunks, so an
// export of any size holds one chunk in memory.
func (s *Images) Export(ctx context.Context, r *imagesapi.ExportRequest, stream imagesapi.Images_ExportServer) error {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(s.Node.Export(ctx, r.Namespace, r.Names, pw))
	}()
	defer pr.Close()
	buf := make([]byte, exportChunk)
	for {
		n, err := io.ReadFull(pr, buf)
		if n > 0 {
			if serr := stream.Send(&imagesapi.ExportChunk{Data: append([]byte(nil), buf[:n]...)}); serr != nil {
				return serr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return streamErr(err)
		}
	}
}

func (s *Images) Unpack(ctx context.Context, r *imagesapi.UnpackRequest) (*imagesapi.UnpackResponse, error) {
	chain, err := s.Node.Unpack(ctx, r.Namespace, r.Name, r.Snapshotter, r.Platform, nil)
	if err != nil {
		return nil, err
	}
	return &imagesapi.UnpackResponse{ChainId: chain}, nil
}
