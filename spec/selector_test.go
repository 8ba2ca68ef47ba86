package spec

import "testing"

func TestSelector(t *testing.T) {
	labels := map[string]string{"app": "web", "tier": "front"}
	for _, tc := range []struct {
		sel     string
		want    bool
		wantErr bool
	}{
		{"", true, false},
		{"app=web", true, false},
		{"app==web", true, false},
		{"app=db", false, false},
		{"app!=db", true, false},
		{"app=web,tier=back", false, false},
		{"app", true, false},
		{"!app", false, false},
		{"!owner", true, false},
		{"app in (db, web)", true, false},
		{"app notin (db,web)", false, false},
		{"tier in (front),app=web", true, false},
		{"app=web,", false, true},
		{"bad key=x", false, true},
		{"app=not valid", false, true},
		{"app in db", false, true},
	} {
		s, err := ParseSelector(tc.sel)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseSelector(%q): err %v, want error %v", tc.sel, err, tc.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if got := s.Matches(labels); got != tc.want {
			t.Errorf("%q matches %v: %v, want %v", tc.sel, labels, got, tc.want)
		}
		if again, err := ParseSelector(s.String()); err != nil || again.String() != s.String() {
			t.Errorf("%q: String %q does not parse back: %v", tc.sel, s.String(), err)
		}
	}
}
