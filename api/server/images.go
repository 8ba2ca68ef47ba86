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
func ToDescriptor(d ocispec.Descriptor) *typesapi.Descriptor {
	out := &typesapi.Descriptor{MediaType: d.MediaType, Digest: d.Digest.String(), Size: d.Size, Annotations: d.Annotations}
	if d.Platform != nil {
		out.Platform = &typesapi.Platform{Os: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant}
	}
	return out
}

func toImage(img observed.Image) *imagesapi.Image {
	return &imagesapi.Image{Name: img.Name, Target: ToDescriptor(img.Target), Labels: img.Labels, Unpacked: img.Unpacked,
		Size: img.Size, CreatedAt: timestamppb.New(img.CreatedAt), UpdatedAt: timestamppb.New(img.UpdatedAt)}
}

func (s *Images) Get(ctx context.Context, r *imagesapi.GetImageRequest) (*imagesapi.GetImageResponse, error) {
	img, err := s.DB.GetImage(ctx, r.Namespace, r.Name)
	if err != nil {
		return nil, err
	}
	return &imagesapi.GetImageResponse{Image: toImage(img)}, nil
}

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
const progressInterval = 100 * time.Millisecond

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

func (s *Images) Push(ctx context.Context, r *imagesapi.PushRequest) (*imagesapi.PushResponse, error) {
	desc, blobs, err := s.Node.Push(ctx, r.Namespace, r.Name, r.Target, node.PushOptions{
		Platform: r.Platform, AllPlatforms: r.AllPlatforms, PlainHTTP: r.PlainHttp,
	})
	if err != nil {
		return nil, err
	}
	return &imagesapi.PushResponse{Target: ToDescriptor(desc), Blobs: blobs}, nil
}

func (s *Images) Tag(ctx context.Context, r *imagesapi.TagRequest) (*imagesapi.TagResponse, error) {
	img, err := s.Node.Tag(ctx, r.Namespace, r.Source, r.Target)
	if err != nil {
		return nil, err
	}
	return &imagesapi.TagResponse{Image: toImage(img)}, nil
}

func (s *Images) Delete(ctx context.Context, r *imagesapi.DeleteImageRequest) (*imagesapi.DeleteImageResponse, error) {
	if err := s.Node.RemoveImage(ctx, r.Namespace, r.Name, r.Sync); err != nil {
		return nil, err
	}
	return &imagesapi.DeleteImageResponse{}, nil
}

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
const exportChunk = 256 << 10

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
