package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

func loadCompose(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	dir, _ := filepath.Abs(filepath.Join("compose"))
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml")}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("switchyard", true); o.ResolvePaths = true })
}

// deploy/compose/compose.yaml parses (compose-go, the Compose specification's own
// loader); it needs only POSTGRES_PASSWORD, saying so when it is missing; every
// image is the platform's own or a pinned tag; every file it mounts exists; it runs
// a three-node NATS cluster, PostgreSQL, Redis, Jaeger, Prometheus (scraping every
// service, with the generated rules), Grafana (with the generated dashboard), the
// gateway and two replicas of every service, each with its own key.
func TestTheComposeFileHoldsTogether(t *testing.T) {
	if _, err := loadCompose(t, map[string]string{}); err == nil || !strings.Contains(err.Error(), "POSTGRES_PASSWORD") {
		t.Errorf("without POSTGRES_PASSWORD: %v; want an error naming it", err)
	}
	p, err := loadCompose(t, map[string]string{"POSTGRES_PASSWORD": "secret"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := builtinConfig(t)
	for _, want := range append([]string{"identities", "nats1", "nats2", "nats3", "postgres", "redis", "jaeger", "prometheus", "grafana"}, cfg.ServiceNames()...) {
		if _, ok := p.Services[want]; !ok {
			t.Errorf("no %s service", want)
		}
	}
	pinned := regexp.MustCompile(`:v?[0-9]+(\.[0-9]+)*(-[a-z0-9]+)?$`)
	for name, s := range p.Services {
		if !strings.HasPrefix(s.Image, "ghcr.io/switchyard/switchyard:") && !pinned.MatchString(s.Image) {
			t.Errorf("%s: image %q is neither ours nor pinned to a version", name, s.Image)
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s mounts %s, which does not exist", name, v.Source)
				}
			}
		}
	}
	for _, name := range append(cfg.ServiceNames(), "gateway") {
		s := p.Services[name]
		want := 2
		if name == "gateway" {
			want = 1
		}
		if s.Deploy == nil || s.Deploy.Replicas == nil || *s.Deploy.Replicas != want {
			t.Errorf("%s: replicas %v, want %d", name, s.Deploy, want)
		}
		if key := s.Environment["SWITCHYARD_SERVICE_KEY"]; key == nil || *key != "/identity/"+name+".key" {
			t.Errorf("%s: service key %v", name, key)
		}
		if !slices.Equal(s.Command[:2], []string{"serve", name}) || !s.ReadOnly || s.User != "65532:65532" || !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("%s: command %v read-only %v user %q cap_drop %v", name, s.Command, s.ReadOnly, s.User, s.CapDrop)
		}
	}
	prom, err := os.ReadFile(filepath.Join("compose", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range append(cfg.ServiceNames(), "gateway") {
		if !strings.Contains(string(prom), "job_name: "+name+",") {
			t.Errorf("prometheus.yml does not scrape %s as job %s (the rules select by job)", name, name)
		}
	}
}
