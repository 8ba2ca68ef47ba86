package spec

import "path/filepath"

// AbsolutePaths resolves the relative paths of o (image sources, bind
// mount sources) against its Origin.Dir, so o means the same without its
// origin: what the API source and the revisions of a rollout store. A
// relative path with no directory to resolve against is left for
// validation to refuse or the controller to report.
func AbsolutePaths(o Object) Object {
	if o.Origin.Dir == "" || !filepath.IsAbs(o.Origin.Dir) {
		return o
	}
	switch s := o.Spec.(type) {
	case ImageSpec:
		if s.Source != nil {
			src := *s.Source
			if src.Archive != "" {
				src.Archive = o.ResolvePath(src.Archive)
			}
			if src.Layout != "" {
				src.Layout = o.ResolvePath(src.Layout)
			}
			s.Source = &src
		}
		o.Spec = s
	case ContainerSpec:
		s.Mounts = append([]Mount(nil), s.Mounts...)
		for i, m := range s.Mounts {
			if m.Type == MountBind && m.Source != "" {
				s.Mounts[i].Source = o.ResolvePath(m.Source)
			}
		}
		o.Spec = s
	}
	return o
}
