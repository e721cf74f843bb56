package deploy_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// kustomizeBuild renders an overlay with kustomize's own library.
func kustomizeBuild(t *testing.T, overlay string) []byte {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join("kubernetes", "overlays", overlay))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", overlay, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Every overlay renders; every object decodes strictly (no unknown field) into its
// Kubernetes API type; every Deployment has probes, limits and a restricted,
// non-root security context and outlasts its drain; prod adds a budget and an
// autoscaler per Deployment; the NetworkPolicies allow exactly the calls
// switchyard.yaml declares.
func TestKubernetesOverlaysRenderAndHoldTheirPromises(t *testing.T) {
	cfg := builtinConfig(t)
	var declared []string
	for _, s := range cfg.Processes() {
		for dep := range s.Dependencies {
			declared = append(declared, s.Name+">"+dep)
		}
	}
	slices.Sort(declared)
	for _, overlay := range []string{"dev", "prod"} {
		t.Run(overlay, func(t *testing.T) {
			var deployments []appsv1.Deployment
			var policies []networkingv1.NetworkPolicy
			kinds := map[string]int{}
			for _, doc := range strings.Split(string(kustomizeBuild(t, overlay)), "\n---\n") {
				var meta struct {
					Kind     string `json:"kind"`
					Metadata struct {
						Namespace string `json:"namespace"`
					} `json:"metadata"`
				}
				if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
					t.Fatal(err)
				}
				kinds[meta.Kind]++
				if want := map[string]string{"dev": "switchyard-dev", "prod": "switchyard"}[overlay]; meta.Metadata.Namespace != want {
					t.Errorf("%s in namespace %q, want %q", meta.Kind, meta.Metadata.Namespace, want)
				}
				var target any
				switch meta.Kind {
				case "Deployment":
					deployments = append(deployments, appsv1.Deployment{})
					target = &deployments[len(deployments)-1]
				case "NetworkPolicy":
					policies = append(policies, networkingv1.NetworkPolicy{})
					target = &policies[len(policies)-1]
				case "Service":
					target = &corev1.Service{}
				case "ConfigMap":
					target = &corev1.ConfigMap{}
				case "PodDisruptionBudget":
					target = &policyv1.PodDisruptionBudget{}
				case "HorizontalPodAutoscaler":
					target = &autoscalingv2.HorizontalPodAutoscaler{}
				default:
					t.Fatalf("unexpected kind %q", meta.Kind)
				}
				if err := yaml.UnmarshalStrict([]byte(doc), target); err != nil {
					t.Errorf("%s does not decode strictly: %v", meta.Kind, err)
				}
			}
			n := len(cfg.Processes())
			if kinds["Deployment"] != n || kinds["Service"] != n || kinds["NetworkPolicy"] != n+1 || kinds["ConfigMap"] != 1 {
				t.Errorf("kinds %v for %d services", kinds, n)
			}
			if overlay == "prod" && (kinds["PodDisruptionBudget"] != n || kinds["HorizontalPodAutoscaler"] != n) {
				t.Errorf("prod lacks a budget or an autoscaler per Deployment: %v", kinds)
			}
			for _, d := range deployments {
				checkDeployment(t, overlay, &d)
			}
			ingress, egress := edges(policies)
			var wantIngress []string
			for _, e := range declared {
				if !strings.HasSuffix(e, ">gateway") {
					wantIngress = append(wantIngress, e)
				}
			}
			if !slices.Equal(egress, declared) {
				t.Errorf("egress between services %v\nwant the declared calls %v", egress, declared)
			}
			if !slices.Equal(ingress, wantIngress) {
				t.Errorf("ingress between services %v\nwant the declared calls %v", ingress, wantIngress)
			}
		})
	}
}

func checkDeployment(t *testing.T, overlay string, d *appsv1.Deployment) {
	t.Helper()
	spec := d.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: %d containers", d.Name, len(spec.Containers))
	}
	c := spec.Containers[0]
	want := map[string]int32{"dev": 1, "prod": 3}[overlay]
	if d.Spec.Replicas == nil || *d.Spec.Replicas != want {
		t.Errorf("%s: replicas %v, want %d", d.Name, d.Spec.Replicas, want)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/livez" ||
		c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("%s: probes %+v %+v", d.Name, c.LivenessProbe, c.ReadinessProbe)
	}
	if c.Resources.Limits.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("%s: resources %+v", d.Name, c.Resources)
	}
	sc, psc := c.SecurityContext, spec.SecurityContext
	if sc == nil || psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("%s: security context %+v / %+v", d.Name, sc, psc)
	}
	drain := 10 // --drain-delay 5s, then up to 5 s for requests in flight
	if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds <= int64(drain) {
		t.Errorf("%s: termination grace %v, want more than the %d s drain", d.Name, spec.TerminationGracePeriodSeconds, drain)
	}
	if !slices.Contains(c.Args, "--drain-delay") || d.Spec.Template.Annotations["prometheus.io/scrape"] != "true" {
		t.Errorf("%s: args %v, annotations %v", d.Name, c.Args, d.Spec.Template.Annotations)
	}
}

// edges returns the NetworkPolicy edges of a rendered object set, as "from>to"
// pairs over the service port between services (what the test compares with
// switchyard.yaml).
func edges(policies []networkingv1.NetworkPolicy) (ingress, egress []string) {
	for _, p := range policies {
		self := p.Spec.PodSelector.MatchLabels["app.kubernetes.io/name"]
		if self == "" {
			continue
		}
		for _, r := range p.Spec.Ingress {
			for _, f := range r.From {
				if f.PodSelector != nil && f.NamespaceSelector == nil {
					ingress = append(ingress, f.PodSelector.MatchLabels["app.kubernetes.io/name"]+">"+self)
				}
			}
		}
		for _, r := range p.Spec.Egress {
			for _, to := range r.To {
				if to.PodSelector != nil && to.NamespaceSelector == nil {
					egress = append(egress, self+">"+to.PodSelector.MatchLabels["app.kubernetes.io/name"])
				}
			}
		}
	}
	slices.Sort(ingress)
	slices.Sort(egress)
	return ingress, egress
}
