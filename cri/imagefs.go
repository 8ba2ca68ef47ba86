package cri

import (
	"context"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fsUsageTTL bounds how often ImageFsInfo walks the image filesystem: the
// kubelet asks every few seconds, and a walk of many layers is not free.
const fsUsageTTL = 10 * time.Second

type fsUsage struct {
	at            time.Time
	bytes, inodes uint64
}

// ImageFsInfo reports what the snapshotter's directory holds (layers and
// containers' writable layers), for the kubelet's image garbage collection.
func (s *Service) ImageFsInfo(ctx context.Context, _ *runtime.ImageFsInfoRequest) (*runtime.ImageFsInfoResponse, error) {
	u := s.usage()
	fsu := &runtime.FilesystemUsage{
		Timestamp:  u.at.UnixNano(),
		FsId:       &runtime.FilesystemIdentifier{Mountpoint: s.opts.ImageFsPath},
		UsedBytes:  &runtime.UInt64Value{Value: u.bytes},
		InodesUsed: &runtime.UInt64Value{Value: u.inodes},
	}
	return &runtime.ImageFsInfoResponse{ImageFilesystems: []*runtime.FilesystemUsage{fsu}}, nil
}

func (s *Service) usage() fsUsage {
	s.fsMu.Lock()
	defer s.fsMu.Unlock()
	if time.Since(s.fsUsage.at) < fsUsageTTL {
		return s.fsUsage
	}
	s.fsUsage = diskUsage(s.opts.ImageFsPath)
	return s.fsUsage
}

// diskUsage is du: allocated bytes and inodes under dir, hard links once.
func diskUsage(dir string) fsUsage {
	u := fsUsage{at: time.Now()}
	if dir == "" {
		return u
	}
	seen := map[uint64]bool{}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if st.Nlink > 1 && !d.IsDir() {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		u.inodes++
		u.bytes += uint64(st.Blocks) * 512
		return nil
	})
	return u
}
