package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"berth.dev/berth/content"
	"berth.dev/berth/content/remote"
	"berth.dev/berth/observed"
	"berth.dev/berth/snapshot/unpack"
	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxConfigSize bounds an image config read into memory.
const maxConfigSize = 4 << 20

// PullOptions configure a pull.
type PullOptions struct {
	Platform    string // os/arch[/variant]; "" is the host's
	PlainHTTP   bool
	Unpack      bool
	Snapshotter string
	Labels      map[string]string
	// AuthFile is a docker config.json-format file (mode 0600) whose
	// credentials come before berthd's docker config.
	AuthFile string
	// Keychain, when set, finds credentials before AuthFile and berthd's
	// docker config (the CRI passes the kubelet's pull secret this way).
	Keychain authn.Keychain
	// Progress sees each blob's download and each layer's unpack.
	Progress func(Progress)
}

// Progress reports one blob.
type Progress struct {
	Desc   ocispec.Descriptor
	Offset int64
	// Status: downloading | done | unpacking | unpacked | retrying
	Status string
	// Message says why a retrying pull waits and for how long.
	Message string
	// Fetched is what the pull has downloaded so far, all blobs together
	// (blobs already in the store count nothing; a resumed one counts
	// from where it resumed).
	Fetched int64
}

// Pull fetches ref into the content store, records it as an image of
// namespace ns named by the full reference, and (with Unpack) unpacks it.
// A pull that fails leaves any image of the same name as it was.
func (n *Node) Pull(ctx context.Context, ns, ref string, opts PullOptions) (_ observed.Image, err error) {
	start := time.Now()
	var fetched downloaded
	if n.opts.OnPull != nil {
		defer func() { n.opts.OnPull(time.Since(start), fetched.total(), err) }()
	}
	// A write to a namespace that does not exist yet creates it, as
	// containerd does; reads of an unknown namespace stay NotFound.
	if _, err := n.opts.DB.EnsureNamespace(ctx, ns); err != nil {
		return observed.Image{}, err
	}
	r, err := remote.ParseRef(ref)
	if err != nil {
		return observed.Image{}, err
	}
	platform, err := parsePlatform(opts.Platform)
	if err != nil {
		return observed.Image{}, err
	}
	if err := n.checkLease(ctx, ns); err != nil {
		return observed.Image{}, err
	}
	// Registered before release runs, so the pull's own ingest counts.
	defer func() { err = n.explainNoSpace(ctx, err) }()
	release := n.begin(ctx, ns, "pull")
	defer release()
	progress := func(Progress) {}
	if opts.Progress != nil {
		progress = opts.Progress
	}
	regOpts := n.registryOptions(opts.PlainHTTP)
	regOpts.Retry.OnRetry = func(e remote.RetryEvent) {
		why := "the registry answered HTTP " + fmt.Sprint(e.Status)
		if e.RetryAfter {
			why += " with Retry-After"
		}
		p := Progress{Status: "retrying", Message: fmt.Sprintf("%s to %s %s; retry %d in %s", why, e.Method, e.Path, e.Attempt, e.Wait.Round(time.Millisecond))}
		if i := strings.LastIndex(e.Path, "/"); i >= 0 {
			if d, err := digest.Parse(e.Path[i+1:]); err == nil {
				p.Desc = ocispec.Descriptor{Digest: d}
			}
		}
		progress(p)
	}
	if opts.AuthFile != "" {
		if regOpts.Keychain, err = remote.FileKeychain(opts.AuthFile, authn.DefaultKeychain); err != nil {
			return observed.Image{}, fmt.Errorf("pull %s: %w", r, err)
		}
	}
	if opts.Keychain != nil {
		next := regOpts.Keychain
		if next == nil {
			next = authn.DefaultKeychain
		}
		regOpts.Keychain = authn.NewMultiKeychain(opts.Keychain, next)
	}
	// Resolve once and fetch everything else by digest under that root: a
	// tag that moves meanwhile cannot mix two images, one repository (and
	// its auth token) serves the whole pull, and the unpacker knows the
	// root from the start.
	repo, err := remote.NewRepository(ctx, r, regOpts)
	if err != nil {
		return observed.Image{}, fmt.Errorf("pull %s: %w", r, err)
	}
	root, err := repo.Resolve(ctx)
	if err != nil {
		return observed.Image{}, fmt.Errorf("pull: %w", err)
	}
	held := &blobHolds{n: n}
	defer held.release()
	pullOpts := remote.PullOptions{
		Hold:            held.add,
		RegistryOptions: regOpts,
		Platform:        &platform,
		Concurrency:     n.opts.PullConcurrency,
		Progress: func(d ocispec.Descriptor, off, _ int64, done bool) {
			st := "downloading"
			if done {
				st = "done"
			}
			fetched.saw(d.Digest, off, done)
			progress(Progress{Desc: d, Offset: off, Status: st, Fetched: fetched.total()})
		},
	}
	type unpacked struct {
		chainID, snapshotter string
		leftOut              *leftOut
		err                  error
	}
	var unpackc chan unpacked
	sig := newBlobSignals()
	uctx, cancelUnpack := context.WithCancel(ctx)
	defer cancelUnpack()
	if opts.Unpack {
		// Layers are applied in order as they land, while later ones
		// still download.
		pullOpts.OnBlobCommitted = sig.committed
		unpackc = make(chan unpacked, 1)
		go func() {
			chain, sn, lo, err := n.unpackStreaming(uctx, root, platform, opts.Snapshotter, sig, progress)
			unpackc <- unpacked{chain, sn, lo, err}
		}()
	}
	err = remote.PullResolved(ctx, n.opts.Content, repo, root, pullOpts)
	close(sig.done)
	if err != nil {
		cancelUnpack()
		if unpackc != nil {
			<-unpackc
		}
		return observed.Image{}, err
	}
	img, err := n.record(ctx, ns, r.Name(), root, platform, opts.Labels)
	if err != nil {
		return observed.Image{}, err
	}
	n.log.Info("pulled image", "namespace", ns, "ref", img.Name, "digest", root.Digest, "seconds", time.Since(start).Seconds())
	if unpackc == nil {
		return img, n.leaseImage(ctx, ns, img)
	}
	u := <-unpackc
	if u.err != nil {
		return img, fmt.Errorf("image %s: %w", img.Name, u.err)
	}
	if err := n.opts.DB.SetImageUnpacked(ctx, ns, img.Name, u.snapshotter, u.chainID); err != nil {
		return img, err
	}
	if err := n.recordLeftOut(ctx, ns, img.Name, u.leftOut); err != nil {
		return img, err
	}
	n.log.Info("unpacked image", "namespace", ns, "image", img.Name, "snapshotter", u.snapshotter, "chainID", u.chainID, "seconds", time.Since(start).Seconds())
	if img, err = n.opts.DB.GetImage(ctx, ns, img.Name); err != nil {
		return img, err
	}
	return img, n.leaseImage(ctx, ns, img)
}

// leaseImage adds an image's blobs and unpacked snapshots to the lease ctx
// names, if any.
func (n *Node) leaseImage(ctx context.Context, ns string, img observed.Image) error {
	if LeaseFrom(ctx) == "" {
		return nil
	}
	rs, err := n.imageResources(ctx, img)
	if err != nil {
		return fmt.Errorf("image %s: %w", img.Name, err)
	}
	return n.addToLease(ctx, ns, rs...)
}

// downloaded sums the bytes a pull fetched: per blob, from the first offset
// reported (where a resumed download starts) to the last. Progress calls are
// serialized, so it needs no lock. A blob reported done without a download
// before it was already in the store.
type downloaded map[digest.Digest][2]int64

func (d *downloaded) saw(dg digest.Digest, off int64, done bool) {
	if *d == nil {
		*d = downloaded{}
	}
	r, ok := (*d)[dg]
	if !ok {
		if done {
			return
		}
		r[0] = off
	}
	r[1] = max(r[1], off)
	(*d)[dg] = r
}

func (d downloaded) total() int64 {
	var n int64
	for _, r := range d {
		n += r[1] - r[0]
	}
	return n
}

// registryOptions are the node's registry settings for one operation.
func (n *Node) registryOptions(plainHTTP bool) remote.RegistryOptions {
	return remote.RegistryOptions{
		HostsDir:           n.opts.RegistryConfigDir,
		PlainHTTP:          plainHTTP,
		InsecureRegistries: n.opts.InsecureRegistries,
		ProgressTimeout:    n.opts.ProgressTimeout,
		Retry:              n.opts.PullRetry,
	}
}

func parsePlatform(s string) (ocispec.Platform, error) {
	if s == "" {
		return content.HostPlatform(), nil
	}
	p, err := content.ParsePlatform(s)
	if err != nil {
		return p, fmt.Errorf("platform %q: %w", s, err)
	}
	return p, nil
}

// record verifies that every blob of the platform's manifest is in the
// store and writes the image record.
func (n *Node) record(ctx context.Context, ns, name string, root ocispec.Descriptor, platform ocispec.Platform, labels map[string]string) (observed.Image, error) {
	size, err := n.imageSize(ctx, root, platform)
	if err != nil {
		return observed.Image{}, err
	}
	img, created, err := n.opts.DB.PutImage(ctx, ns, observed.Image{Name: name, Target: root, Labels: labels, Size: size})
	if err != nil {
		return img, err
	}
	topic := "/images/update"
	if created {
		topic = "/images/create"
	}
	n.opts.Events.Publish(ctx, ns, topic, map[string]any{"name": name, "digest": root.Digest.String()})
	return img, nil
}

// imageSize sums the platform manifest's blobs, checking each is present.
func (n *Node) imageSize(ctx context.Context, root ocispec.Descriptor, platform ocispec.Platform) (int64, error) {
	mdesc, m, err := content.ResolveManifest(ctx, n.opts.Content, root, content.NewMatcher(platform))
	if err != nil {
		return 0, err
	}
	size := mdesc.Size
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		info, err := n.opts.Content.Info(ctx, d.Digest)
		if err != nil {
			return 0, fmt.Errorf("image blob %s: %w", d.Digest, err)
		}
		size += info.Size
	}
	return size, nil
}

// ImageConfig reads the image's platform manifest and config.
func (n *Node) ImageConfig(ctx context.Context, img observed.Image, platform string) (ocispec.Manifest, ocispec.Image, error) {
	p, err := parsePlatform(platform)
	if err != nil {
		return ocispec.Manifest{}, ocispec.Image{}, err
	}
	_, m, err := content.ResolveManifest(ctx, n.opts.Content, img.Target, content.NewMatcher(p))
	if err != nil {
		return m, ocispec.Image{}, fmt.Errorf("image %s: %w", img.Name, err)
	}
	cfg, err := n.readConfig(ctx, img.Name, m)
	return m, cfg, err
}

// readConfig reads and checks a manifest's image config; name is for errors.
func (n *Node) readConfig(ctx context.Context, name string, m ocispec.Manifest) (ocispec.Image, error) {
	data, err := content.ReadBlob(ctx, n.opts.Content, m.Config, maxConfigSize)
	if err != nil {
		return ocispec.Image{}, fmt.Errorf("image %s config: %w", name, err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(data, &cfg); err != nil {
		return cfg, fmt.Errorf("image %s config %s is not valid JSON: %v: %w", name, m.Config.Digest, err, errdefs.ErrInvalidArgument)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return cfg, fmt.Errorf("image %s: config lists %d diff IDs for %d layers: %w", name, len(cfg.RootFS.DiffIDs), len(m.Layers), errdefs.ErrInvalidArgument)
	}
	return cfg, nil
}

// Unpack unpacks a namespace's image into a snapshotter as a chain of
// committed snapshots named by chain ID, and records where it is unpacked.
func (n *Node) Unpack(ctx context.Context, ns, name, snapshotter, platform string, progress func(Progress)) (_ string, err error) {
	sn, snName, err := n.Snapshotter(snapshotter)
	if err != nil {
		return "", err
	}
	img, err := n.opts.DB.GetImage(ctx, ns, name)
	if err != nil {
		return "", err
	}
	m, cfg, err := n.ImageConfig(ctx, img, platform)
	if err != nil {
		return "", err
	}
	defer func() { err = n.explainNoSpace(ctx, err) }()
	release := n.begin(ctx, ns, "unpack")
	defer release()
	if progress == nil {
		progress = func(Progress) {}
	}
	layers := make([]unpack.Layer, len(m.Layers))
	for i, l := range m.Layers {
		layers[i] = unpack.Layer{Desc: l, DiffID: cfg.RootFS.DiffIDs[i], Open: n.opener(l, progress)}
	}
	start := time.Now()
	uopts, lo := n.unpackOptions(name)
	chainID, err := unpack.Unpack(ctx, sn, layers, uopts)
	if err != nil {
		return "", fmt.Errorf("unpack image %s onto %s: %w", name, snName, err)
	}
	if err := n.opts.DB.SetImageUnpacked(ctx, ns, name, snName, chainID); err != nil {
		return "", err
	}
	if err := n.recordLeftOut(ctx, ns, name, lo); err != nil {
		return "", err
	}
	n.log.Info("unpacked image", "namespace", ns, "image", name, "snapshotter", snName, "chainID", chainID, "seconds", time.Since(start).Seconds())
	return chainID, n.addToLease(ctx, ns, observed.LeaseResource{Type: observed.ResourceSnapshot + "/" + snName, ID: chainID})
}

func (n *Node) opener(desc ocispec.Descriptor, progress func(Progress)) func(context.Context) (io.ReadCloser, error) {
	return func(ctx context.Context) (io.ReadCloser, error) {
		ra, err := n.opts.Content.ReaderAt(ctx, desc)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		progress(Progress{Desc: desc, Status: "unpacking"})
		return struct {
			io.Reader
			io.Closer
		}{content.NewReader(ra), closerFunc(func() error {
			progress(Progress{Desc: desc, Offset: desc.Size, Status: "unpacked"})
			return ra.Close()
		})}, nil
	}
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// RemoveImage deletes an image record and collects what it alone held
// (synchronously when sync, else in the background).
func (n *Node) RemoveImage(ctx context.Context, ns, name string, sync bool) error {
	img, err := n.opts.DB.GetImage(ctx, ns, name)
	if err != nil {
		return err
	}
	if err := n.opts.DB.DeleteImage(ctx, ns, name); err != nil {
		return err
	}
	n.opts.Events.Publish(ctx, ns, "/images/delete", map[string]any{"name": name, "digest": img.Target.Digest.String()})
	if sync {
		_, err := n.GC(ctx, false)
		return err
	}
	n.background.Add(1)
	go func() {
		defer n.background.Done()
		if _, err := n.GC(context.WithoutCancel(ctx), false); err != nil {
			n.log.Warn("garbage collection after image removal", "image", name, "err", err)
		}
	}()
	return nil
}

// PushOptions configure a push.
type PushOptions struct {
	// Platform of an index to push alone; "" is the host's.
	Platform string
	// AllPlatforms pushes the whole index instead.
	AllPlatforms bool
	PlainHTTP    bool
}

// Push uploads image name of namespace ns to target (a reference; "" is
// the image's name) and returns what target names and how each blob went.
// Blobs are mounted from the image's own repository when it is on the
// same registry.
func (n *Node) Push(ctx context.Context, ns, name, target string, opts PushOptions) (ocispec.Descriptor, map[string]string, error) {
	img, err := n.opts.DB.GetImage(ctx, ns, name)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	if target == "" {
		target = img.Name
	}
	tr, err := remote.ParseRef(target)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	po := remote.PushOptions{RegistryOptions: n.registryOptions(opts.PlainHTTP)}
	if !opts.AllPlatforms {
		p, err := parsePlatform(opts.Platform)
		if err != nil {
			return ocispec.Descriptor{}, nil, err
		}
		po.Platform = &p
	}
	if sr, err := remote.ParseRef(img.Name); err == nil && sr.Context().RegistryStr() == tr.Context().RegistryStr() {
		po.MountFrom = []string{sr.Context().RepositoryStr()}
	}
	blobs := map[string]string{}
	po.Progress = func(d ocispec.Descriptor, how string) { blobs[d.Digest.String()] = how }
	release := n.leases.acquire()
	defer release()
	desc, err := remote.Push(ctx, n.opts.Content, img.Target, tr.String(), po)
	if err != nil {
		return ocispec.Descriptor{}, blobs, err
	}
	n.log.Info("pushed image", "namespace", ns, "image", name, "target", tr.String(), "digest", desc.Digest)
	return desc, blobs, nil
}

// Tag records target (a reference, normalized like a pull's name) as
// another name for image src's target.
func (n *Node) Tag(ctx context.Context, ns, src, target string) (observed.Image, error) {
	img, err := n.opts.DB.GetImage(ctx, ns, src)
	if err != nil {
		return observed.Image{}, err
	}
	tr, err := remote.ParseRef(target)
	if err != nil {
		return observed.Image{}, err
	}
	out, created, err := n.opts.DB.PutImage(ctx, ns, observed.Image{Name: tr.Name(), Target: img.Target, Labels: img.Labels, Size: img.Size})
	if err != nil {
		return out, err
	}
	topic := "/images/update"
	if created {
		topic = "/images/create"
	}
	n.opts.Events.Publish(ctx, ns, topic, map[string]any{"name": out.Name, "digest": out.Target.Digest.String()})
	return out, nil
}
