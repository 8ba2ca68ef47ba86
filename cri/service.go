package cri

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"berth.dev/berth/internal/span"
	"berth.dev/berth/network"
	"berth.dev/berth/node"
	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
)

// Namespace is where the CRI's images, containers and tasks live.
const Namespace = spec.CRINamespace

// DefaultSandboxImage is the kubelet's pause image, as containerd's default.
const DefaultSandboxImage = "registry.k8s.io/pause:3.10"

// maxMsgSize is the kubelet's own limit for CRI messages (16 MiB).
const maxMsgSize = 16 << 20

// Node is what the CRI does to the node: images, containers and tasks.
type Node interface {
	node.Images
	node.Containers
	node.Tasks
	node.Snapshots
}

// Options configure a Service.
type Options struct {
	Node Node
	// DB holds the image and container records the CRI lists and reads
	// (exits a restarted berthd learned of, say).
	DB *observed.DB
	// Network attaches pods to networks; nil leaves NetworkReady false.
	Network *network.Manager
	// CNIConfDir is where the conflists are (berth's built-in one among them).
	CNIConfDir string
	// SandboxImage is the image pods' sandboxes run (DefaultSandboxImage).
	SandboxImage string
	// StreamAddress is where the exec/attach/port-forward server listens
	// (127.0.0.1:0 picks a free port).
	StreamAddress string
	// ImageFsPath is the directory image layers and containers' writable
	// layers are stored under (the default snapshotter's root).
	ImageFsPath string
	// PauseBinary is berth-pause, packaged as the built-in pause image
	// when the sandbox image is absent; TempDir is scratch space for it.
	PauseBinary, TempDir string
	// PodNetwork is the network pods join ("" is berth's built-in bridge).
	PodNetwork string
	// Root is berth's root: the CRI's records live under <Root>/cri.
	Root string
	// Runtimes are the runtime handlers' names (the configured runtimes
	// whose binary exists); DefaultRuntime is the one "" stands for.
	Runtimes       []string
	DefaultRuntime string
	Log            *slog.Logger
	// ObserveStream, when set, runs each streaming session (method Exec,
	// Attach or PortForward) for the API metrics.
	ObserveStream func(method string, session func() error) error
}

// Service implements the CRI runtime and image services.
type Service struct {
	runtime.UnimplementedRuntimeServiceServer
	runtime.UnimplementedImageServiceServer

	opts Options
	log  *slog.Logger
	node Node

	// ids caches an image's ID (its config's digest) by its target's
	// digest: reading the manifest from the store on every list is waste.
	idsMu sync.Mutex
	ids   map[string]imageInfo

	sandboxes  *store[sandbox]
	containers *store[container]
	pause      sandboxImage
	stream     streaming.Server
	ownOOM     int

	// serveCtx lives as long as Serve; warmOnce readies the sandbox image
	// at the first call.
	serveCtx context.Context
	warmOnce sync.Once
	// rro caches, by runtime, whether it takes recursive read-only mounts.
	rro sync.Map

	// fsUsage caches ImageFsInfo's walk of the image filesystem.
	fsMu    sync.Mutex
	fsUsage fsUsage
}

var (
	_ runtime.RuntimeServiceServer = (*Service)(nil)
	_ runtime.ImageServiceServer   = (*Service)(nil)
)

// New returns a Service over the node.
func New(opts Options) (*Service, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.SandboxImage == "" {
		opts.SandboxImage = DefaultSandboxImage
	}
	if opts.StreamAddress == "" {
		opts.StreamAddress = "127.0.0.1:0"
	}
	if opts.Root == "" {
		return nil, fmt.Errorf("cri: root is required: %w", errdefs.ErrInvalidArgument)
	}
	s := &Service{opts: opts, log: opts.Log, node: opts.Node, ids: map[string]imageInfo{}, ownOOM: ownOOMScoreAdj()}
	var err error
	if s.sandboxes, err = openStore[sandbox](filepath.Join(opts.Root, "cri", "sandboxes")); err != nil {
		return nil, err
	}
	if s.containers, err = openStore[container](filepath.Join(opts.Root, "cri", "containers")); err != nil {
		return nil, err
	}
	return s, nil
}

// Serve serves the CRI on l until ctx ends, then stops gracefully (for at
// most a few seconds: a kubelet's streaming calls do not hold berthd up).
func (s *Service) Serve(ctx context.Context, l net.Listener) error {
	srv := grpc.NewServer(
		grpc.MaxRecvMsgSize(maxMsgSize), grpc.MaxSendMsgSize(maxMsgSize),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
	)
	if err := s.startStreaming(ctx); err != nil {
		return err
	}
	s.serveCtx = ctx
	runtime.RegisterRuntimeServiceServer(srv, s)
	runtime.RegisterImageServiceServer(srv, s)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		srv.Stop()
	}
	return nil
}

// unaryInterceptor maps berth's error classes to gRPC codes, once, at the
// edge, and logs failures with the method that failed.
func (s *Service) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	// The first call of a CRI client (a kubelet's Version and Status, long
	// before its first pod) readies the sandbox image in the background: a
	// berthd nobody uses as a node runtime imports nothing.
	s.warmOnce.Do(func() { go s.warmSandboxImage(s.serveCtx) })
	// Each call records its steps (the node's and the CRI's own spans),
	// logged at debug: where a pod's start goes.
	rec := span.New()
	resp, err := h(span.With(ctx, rec), req)
	if err != nil {
		s.log.Debug("cri call failed", "method", info.FullMethod, "err", err, "duration", time.Since(start))
		return resp, errgrpc.ToGRPC(err)
	}
	if len(rec.Spans()) > 0 {
		span.Log(ctx, s.log, rec, "method", info.FullMethod)
	}
	s.log.Debug("cri call", "method", info.FullMethod, "duration", time.Since(start))
	return resp, nil
}
