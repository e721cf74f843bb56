package manifests_test

import (
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/switchyard/switchyard/internal/manifests"
)

var platform = []manifests.Service{
	{Name: "gateway", Calls: []string{"orders"}, Public: true},
	{Name: "orders", Calls: []string{"inventory"}, Database: true},
	{Name: "inventory", Database: true},
}

// env and secrets of a rendered Deployment.
func deploymentOf(t *testing.T, files map[string][]byte, service string) (env map[string]string, secrets []string) {
	t.Helper()
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Env []struct{ Name, Value string }
					}
					Volumes []struct {
						Secret struct {
							SecretName string `yaml:"secretName"`
						}
					}
				}
			}
		}
	}
	if err := yaml.Unmarshal(files["base/"+service+"-deployment.yaml"], &d); err != nil {
		t.Fatal(err)
	}
	env = map[string]string{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret.SecretName != "" {
			secrets = append(secrets, v.Secret.SecretName)
		}
	}
	return env, secrets
}

func TestUnderMutualTLSEachServiceMountsItsCertificateAndCertManagerMayIssueIt(t *testing.T) {
	t.Parallel()
	files, err := manifests.Render(manifests.Input{Services: platform, Image: "example/switchyard", TrustDomain: "shop.example"})
	if err != nil {
		t.Fatal(err)
	}
	env, secrets := deploymentOf(t, files, "orders")
	if env["SWITCHYARD_SERVICE_CERT"] != "/var/run/switchyard/tls/tls.crt" || env["SWITCHYARD_SERVICE_CERT_KEY"] != "/var/run/switchyard/tls/tls.key" ||
		env["SWITCHYARD_SERVICE_CA"] != "/var/run/switchyard/tls/ca.crt" || env["SWITCHYARD_SERVICE_KEY"] != "" {
		t.Errorf("orders' environment %v: want the certificate's three files and no identity key", env)
	}
	if len(secrets) != 1 || secrets[0] != "switchyard-orders-tls" {
		t.Errorf("orders mounts the Secrets %v, want its certificate's alone", secrets)
	}
	certs := string(files["components/cert-manager/certificates.yaml"])
	for _, s := range platform {
		if !strings.Contains(certs, "spiffe://shop.example/service/"+s.Name) || !strings.Contains(certs, "secretName: switchyard-"+s.Name+"-tls") {
			t.Errorf("no Certificate naming %s's SPIFFE ID into its Secret:\n%s", s.Name, certs)
		}
	}
	if !strings.Contains(string(files["components/cert-manager/kustomization.yaml"]), "kind: Component") {
		t.Error("components/cert-manager is no kustomize Component")
	}
}

func TestWithServiceTokensNothingOfTLSIsRendered(t *testing.T) {
	t.Parallel()
	files, err := manifests.Render(manifests.Input{Services: platform, Image: "example/switchyard"})
	if err != nil {
		t.Fatal(err)
	}
	env, secrets := deploymentOf(t, files, "orders")
	if env["SWITCHYARD_SERVICE_KEY"] == "" || env["SWITCHYARD_SERVICE_CERT"] != "" || len(secrets) != 2 {
		t.Errorf("orders' environment %v and Secrets %v: want its identity key and the trust bundle", env, secrets)
	}
	for name := range files {
		if strings.HasPrefix(name, "components/") {
			t.Errorf("%s rendered for a platform of service tokens", name)
		}
	}
}
