package spec

import (
	"strings"
	"testing"
)

func TestValidate_Probes(t *testing.T) {
	t.Parallel()
	http := func(port int) *Probe { return &Probe{HTTPGet: &HTTPGetAction{Port: port}} }
	tests := []struct {
		name  string
		probe *Probe
		live  bool
		want  string // "" for valid
	}{
		{"http", http(80), true, ""},
		{"exec", &Probe{Exec: &ExecAction{Command: []string{"true"}}}, false, ""},
		{"tcp", &Probe{TCPSocket: &TCPSocketAction{Port: 5432, Host: "::1"}}, true, ""},
		{"none", &Probe{PeriodSeconds: 5}, true, "spec.livenessProbe: set one of exec, httpGet, tcpSocket"},
		{"two", &Probe{Exec: &ExecAction{Command: []string{"true"}}, TCPSocket: &TCPSocketAction{Port: 1}}, true, "set only one of"},
		{"port", http(70000), true, "spec.livenessProbe.httpGet.port: 70000 is not a port (1-65535)"},
		{"no port", &Probe{TCPSocket: &TCPSocketAction{}}, true, "tcpSocket.port: 0 is not a port"},
		{"empty command", &Probe{Exec: &ExecAction{}}, true, "exec.command: missing"},
		{"path", &Probe{HTTPGet: &HTTPGetAction{Port: 80, Path: "healthz"}}, true, `httpGet.path: "healthz" is not an absolute URL path`},
		{"scheme", &Probe{HTTPGet: &HTTPGetAction{Port: 80, Scheme: "https"}}, true, `"https" is not one of HTTP, HTTPS; did you mean HTTPS?`},
		{"header", &Probe{HTTPGet: &HTTPGetAction{Port: 80, HTTPHeaders: []HTTPHeader{{Name: "X Bad", Value: "v"}}}}, true, `httpHeaders[0].name: "X Bad" is not an HTTP header name`},
		{"success threshold live", &Probe{TCPSocket: &TCPSocketAction{Port: 1}, SuccessThreshold: 2}, true, "successThreshold: 2: must be 1 for a liveness or startup probe"},
		{"success threshold ready", &Probe{TCPSocket: &TCPSocketAction{Port: 1}, SuccessThreshold: 2}, false, ""},
		{"negative delay", &Probe{TCPSocket: &TCPSocketAction{Port: 1}, InitialDelaySeconds: -1}, true, "initialDelaySeconds: -1 is not between 0 and 86400"},
		{"timeout over period", &Probe{TCPSocket: &TCPSocketAction{Port: 1}, PeriodSeconds: 2, TimeoutSeconds: 5}, true, "timeoutSeconds: 5 is longer than periodSeconds (2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := TaskSpec{Container: "web"}
			field := "spec.readinessProbe"
			if tt.live {
				ts.LivenessProbe, field = tt.probe, "spec.livenessProbe"
			} else {
				ts.ReadinessProbe = tt.probe
			}
			o := Default(Object{Kind: KindTask, Metadata: Metadata{Name: "web"}, Spec: ts, Origin: Origin{File: "web.yaml", Document: 2}})
			err := Validate(o)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("got error %v, want none", err)
			case tt.want == "":
			case err == nil:
				t.Fatalf("got no error, want %s", tt.want)
			case !strings.Contains(err.Error(), tt.want):
				t.Errorf("got error\n%v\nwant it to contain\n%s", err, tt.want)
			case !strings.HasPrefix(err.Error(), "web.yaml: document 2: Task default/web: "+field):
				t.Errorf("error does not name file, document, object and field: %v", err)
			}
		})
	}
}

func TestDefault_Probe(t *testing.T) {
	t.Parallel()
	o := Default(Object{Kind: KindContainer, Metadata: Metadata{Name: "web"}, Spec: ContainerSpec{Image: "web",
		LivenessProbe: &Probe{HTTPGet: &HTTPGetAction{Port: 80}}}})
	cs, _ := o.ContainerSpec()
	p := cs.LivenessProbe
	if p.PeriodSeconds != 10 || p.TimeoutSeconds != 1 || p.FailureThreshold != 3 || p.SuccessThreshold != 1 || p.HTTPGet.Path != "/" || p.HTTPGet.Scheme != "HTTP" {
		t.Errorf("defaults not applied: %+v %+v", p, p.HTTPGet)
	}
	if cs.ReadinessProbe != nil {
		t.Error("an unset probe was defaulted into existence")
	}
}

func TestValidate_DependsOn(t *testing.T) {
	t.Parallel()
	o := Default(Object{Kind: KindTask, Metadata: Metadata{Name: "web"}, Spec: TaskSpec{Container: "web",
		DependsOn: []Dependency{{Task: "db"}, {Task: "db"}, {Task: "web"}, {Task: "cache", Condition: "Started"}}}})
	err := Validate(o)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`spec.dependsOn[1].task: "db" is named twice`, `spec.dependsOn[2].task: "web" is this Task itself`, `spec.dependsOn[3].condition: "Started" is not Ready`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
	ts, _ := Default(Object{Kind: KindTask, Spec: TaskSpec{DependsOn: []Dependency{{Task: "db"}}}}).TaskSpec()
	if ts.DependsOn[0].Condition != DependOnReady {
		t.Errorf("condition not defaulted: %q", ts.DependsOn[0].Condition)
	}
}

func TestInstanceHash_IgnoresProbes(t *testing.T) {
	t.Parallel()
	plain := Object{Kind: KindContainer, Metadata: Metadata{Name: "web"}, Spec: ContainerSpec{Image: "web"}}
	probed := plain.DeepCopy()
	probed.Spec = ContainerSpec{Image: "web", LivenessProbe: &Probe{TCPSocket: &TCPSocketAction{Port: 80}}}
	if InstanceHash(plain) != Hash(plain) {
		t.Error("a Container without probes: InstanceHash differs from Hash (its containers would be recreated)")
	}
	if InstanceHash(probed) != InstanceHash(plain) {
		t.Error("a probe changes the container's instance hash")
	}
	if Hash(probed) == Hash(plain) {
		t.Error("a probe does not change the spec's Hash (no change would be seen)")
	}
	if cs, _ := probed.ContainerSpec(); cs.LivenessProbe == nil {
		t.Error("InstanceHash cleared the probe of its argument")
	}
}
