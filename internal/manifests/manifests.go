// Package manifests renders the platform's Kubernetes deployment from its
// configuration: a kustomize base (a Deployment, a Service and a NetworkPolicy per
// service, the configuration as a ConfigMap) and dev and prod overlays (replicas,
// resources, PodDisruptionBudgets and HorizontalPodAutoscalers). Routes, edges and
// policies stay in switchyard.yaml; the manifests follow from it, and the
// NetworkPolicies allow exactly the edges it declares.
//
// Objects are written as plain YAML trees of the few kinds rendered (Deployment,
// Service, NetworkPolicy, PodDisruptionBudget, HorizontalPodAutoscaler), not built
// from the Kubernetes API types: k8s.io/api would bring some forty modules into
// every binary with `switchyard deploy`. The deployment tests, in a module of
// their own (deploy/), decode every rendered object strictly into those API types
// and build the overlays with kustomize, so what is rendered is what the API server
// accepts.
package manifests

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/goccy/go-yaml"
)

// Port every instance listens on inside its pod.
const Port = 8080

// Service is what the manifests need to know of one service.
type Service struct {
	Name string
	// Calls lists the services it calls (its declared dependencies).
	Calls []string
	// Database: it keeps a database (on the PostgreSQL server).
	Database bool
	// Redis: it uses the shared Redis (rate limits, caches).
	Redis bool
	// Public: it is the entry point, open to any client.
	Public bool
}

// Input is the platform to deploy.
type Input struct {
	Services []Service
	// Config is switchyard.yaml as the user wrote it; it becomes a ConfigMap.
	Config []byte
	// Image is the container image's name, without a tag (overlays set the tag).
	Image string
	// TrustDomain, when set, has the services call each other over mutual TLS
	// (security.service_tls: mutual) in that trust domain: each Deployment mounts its
	// service's certificate from a Secret (TLSSecret) instead of an identity key, and
	// components/cert-manager holds a Certificate per service to fill those Secrets.
	TrustDomain string
}

// The engines the services reach, found by their standard labels.
var engines = map[string]struct {
	label string
	port  int
}{
	"nats":     {"nats", 4222},
	"postgres": {"postgresql", 5432},
	"redis":    {"redis", 6379},
}

// Names of what the Deployments reference but the manifests do not hold: secrets
// are created by the operator (README "Running in production").
const (
	ConnectionsSecret = "switchyard-connections" // NATS_URL, DATABASE_URL, REDIS_URL, NATS_REPLICAS
	TrustSecret       = "switchyard-trust"       // bundle.json: every service's public key
	configMap         = "switchyard-config"
)

// IdentitySecret names the Secret holding a service's private key (key.pem).
func IdentitySecret(service string) string { return "switchyard-" + service + "-identity" }

// TLSSecret names the Secret holding a service's certificate under mutual TLS, laid
// out as cert-manager writes it: tls.crt, tls.key and the CA bundle ca.crt.
func TLSSecret(service string) string { return "switchyard-" + service + "-tls" }

// CASecret names the Secret of the CA the cert-manager component's Issuer signs with
// (tls.crt and tls.key), which the operator provides.
const CASecret = "switchyard-ca"

// object is one node of a rendered YAML tree (a JSON object, as Kubernetes reads it).
type object = map[string]any

func labels(service string) object {
	return object{"app.kubernetes.io/name": service, "app.kubernetes.io/part-of": "switchyard"}
}

func selector(service string) object {
	return object{"app.kubernetes.io/name": service}
}

// meta is the metadata of a named object of the platform.
func meta(name string) object { return object{"name": name, "labels": labels(name)} }

// Render returns every file of deploy/kubernetes, by path below it.
func Render(in Input) (map[string][]byte, error) {
	files := map[string][]byte{}
	var resources []string
	add := func(name string, obj any) error {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return fmt.Errorf("manifests: %s: %w", name, err)
		}
		files["base/"+name] = append([]byte(header), b...)
		resources = append(resources, name)
		return nil
	}
	services := slices.Clone(in.Services)
	slices.SortFunc(services, func(a, b Service) int { return cmp.Compare(a.Name, b.Name) })
	callers := map[string][]string{}
	for _, s := range services {
		for _, c := range s.Calls {
			callers[c] = append(callers[c], s.Name)
		}
	}
	if err := add("networkpolicy-default-deny.yaml", defaultDeny()); err != nil {
		return nil, err
	}
	for _, s := range services {
		for name, obj := range map[string]any{
			s.Name + "-deployment.yaml":    deployment(s, in.Image, in.TrustDomain),
			s.Name + "-service.yaml":       service(s),
			s.Name + "-networkpolicy.yaml": networkPolicy(s, callers[s.Name]),
		} {
			if err := add(name, obj); err != nil {
				return nil, err
			}
		}
	}
	slices.Sort(resources)
	files["base/switchyard.yaml"] = in.Config
	files["base/kustomization.yaml"] = kustomization(map[string]any{
		"resources": resources,
		"configMapGenerator": []map[string]any{{
			"name": configMap, "files": []string{"switchyard.yaml"},
		}},
		"labels": []map[string]any{{"pairs": map[string]string{"app.kubernetes.io/part-of": "switchyard"}}},
	})

	// dev: one replica of each, the dev image tag.
	var devPatches []map[string]any
	for _, s := range services {
		devPatches = append(devPatches, map[string]any{
			"target": map[string]string{"kind": "Deployment", "name": s.Name},
			"patch":  `[{"op": "replace", "path": "/spec/replicas", "value": 1}]`,
		})
	}
	files["overlays/dev/kustomization.yaml"] = kustomization(map[string]any{
		"namespace": "switchyard-dev",
		"resources": []string{"../../base"},
		"images":    []map[string]string{{"name": in.Image, "newTag": "dev"}},
		"patches":   devPatches,
	})

	// prod: three replicas, more room, a disruption budget and an autoscaler each.
	var prodResources []string
	var prodPatches []map[string]any
	for _, s := range services {
		for name, obj := range map[string]any{s.Name + "-pdb.yaml": pdb(s), s.Name + "-hpa.yaml": hpa(s)} {
			b, err := yaml.Marshal(obj)
			if err != nil {
				return nil, err
			}
			files["overlays/prod/"+name] = append([]byte(header), b...)
			prodResources = append(prodResources, name)
		}
		prodPatches = append(prodPatches, map[string]any{
			"target": map[string]string{"kind": "Deployment", "name": s.Name},
			"patch": `[{"op": "replace", "path": "/spec/replicas", "value": 3},` +
				`{"op": "replace", "path": "/spec/template/spec/containers/0/resources", "value": ` +
				`{"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "512Mi"}}}]`,
		})
	}
	slices.Sort(prodResources)
	files["overlays/prod/kustomization.yaml"] = kustomization(map[string]any{
		"namespace": "switchyard",
		"resources": append([]string{"../../base"}, prodResources...),
		"images":    []map[string]string{{"name": in.Image, "newTag": "v1"}},
		"patches":   prodPatches,
	})
	if in.TrustDomain != "" {
		if err := certManager(files, services, in.TrustDomain); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// certManager renders components/cert-manager: a CA Issuer signing with CASecret,
// and per service a Certificate naming its SPIFFE ID, kept in TLSSecret and renewed
// by cert-manager a third of its life before it ends (the services reread the
// mounted files; no restart). An overlay takes it with
// `components: [../../components/cert-manager]`.
func certManager(files map[string][]byte, services []Service, trustDomain string) error {
	objects := []any{object{
		"apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": meta("switchyard-ca"),
		"spec": object{"ca": object{"secretName": CASecret}},
	}}
	for _, s := range services {
		objects = append(objects, object{
			"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": meta("switchyard-" + s.Name),
			"spec": object{
				"secretName":  TLSSecret(s.Name),
				"uris":        []string{fmt.Sprintf("spiffe://%s/service/%s", trustDomain, s.Name)},
				"duration":    "24h",
				"renewBefore": "8h",
				"privateKey":  object{"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
				"usages":      []string{"digital signature", "server auth", "client auth"},
				"issuerRef":   object{"name": "switchyard-ca", "kind": "Issuer", "group": "cert-manager.io"},
			},
		})
	}
	var out []byte
	for i, obj := range objects {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return fmt.Errorf("manifests: certificates: %w", err)
		}
		if i > 0 {
			out = append(out, "---\n"...)
		}
		out = append(out, b...)
	}
	files["components/cert-manager/certificates.yaml"] = append([]byte(header), out...)
	b, err := yaml.Marshal(map[string]any{
		"apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component",
		"resources": []string{"certificates.yaml"},
	})
	if err != nil {
		return err
	}
	files["components/cert-manager/kustomization.yaml"] = append([]byte(header), b...)
	return nil
}

const header = "# Generated by `switchyard deploy kubernetes` from switchyard.yaml: do not edit.\n"

func kustomization(body map[string]any) []byte {
	body["apiVersion"] = "kustomize.config.k8s.io/v1beta1"
	body["kind"] = "Kustomization"
	b, err := yaml.Marshal(body)
	if err != nil {
		panic(err) //nolint:forbidigo // plain maps of strings always marshal
	}
	return append([]byte(header), b...)
}

func deployment(s Service, image, trustDomain string) object {
	env := []object{
		{"name": "POD_IP", "valueFrom": object{"fieldRef": object{"fieldPath": "status.podIP"}}},
		{"name": "POD_NAMESPACE", "valueFrom": object{"fieldRef": object{"fieldPath": "metadata.namespace"}}},
		{"name": "SWITCHYARD_ADVERTISE_ADDR", "value": fmt.Sprintf("$(POD_IP):%d", Port)},
		{"name": "SWITCHYARD_DISCOVERY", "value": "dns"},
		{"name": "SWITCHYARD_DISCOVERY_DNS_NAME", "value": "%s.$(POD_NAMESPACE).svc.cluster.local"},
		{"name": "SWITCHYARD_SERVICE_KEY", "value": "/var/run/switchyard/identity/key.pem"},
		{"name": "SWITCHYARD_TRUST_BUNDLE", "value": "/var/run/switchyard/trust/bundle.json"},
	}
	mounts := []object{
		{"name": "config", "mountPath": "/etc/switchyard", "readOnly": true},
		{"name": "identity", "mountPath": "/var/run/switchyard/identity", "readOnly": true},
		{"name": "trust", "mountPath": "/var/run/switchyard/trust", "readOnly": true},
		{"name": "tmp", "mountPath": "/tmp"},
	}
	volumes := []object{
		{"name": "config", "configMap": object{"name": configMap}},
		{"name": "identity", "secret": object{"secretName": IdentitySecret(s.Name), "defaultMode": 0o400}},
		{"name": "trust", "secret": object{"secretName": TrustSecret}},
		{"name": "tmp", "emptyDir": object{"sizeLimit": "64Mi"}},
	}
	if trustDomain != "" {
		// The certificate from its Secret, mounted whole (not by subPath) so that the
		// kubelet's updates reach the files the service rereads.
		env = append(env[:5],
			object{"name": "SWITCHYARD_SERVICE_CERT", "value": "/var/run/switchyard/tls/tls.crt"},
			object{"name": "SWITCHYARD_SERVICE_CERT_KEY", "value": "/var/run/switchyard/tls/tls.key"},
			object{"name": "SWITCHYARD_SERVICE_CA", "value": "/var/run/switchyard/tls/ca.crt"})
		mounts = []object{mounts[0], {"name": "tls", "mountPath": "/var/run/switchyard/tls", "readOnly": true}, mounts[3]}
		volumes = []object{volumes[0], {"name": "tls", "secret": object{"secretName": TLSSecret(s.Name), "defaultMode": 0o400}}, volumes[3]}
	}
	probe := func(path string, period int) object {
		return object{"httpGet": object{"path": path, "port": "http"}, "periodSeconds": period, "timeoutSeconds": 2, "failureThreshold": 3}
	}
	const user = 65532
	return object{
		"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(s.Name),
		"spec": object{
			"replicas": 2,
			"selector": object{"matchLabels": selector(s.Name)},
			"strategy": object{"type": "RollingUpdate", "rollingUpdate": object{"maxUnavailable": 0, "maxSurge": 1}},
			"template": object{
				"metadata": object{"labels": labels(s.Name), "annotations": object{
					"prometheus.io/scrape": "true", "prometheus.io/port": fmt.Sprint(Port), "prometheus.io/path": "/metrics"}},
				"spec": object{
					// Longer than the 5 s drain delay plus the 5 s drain.
					"terminationGracePeriodSeconds": 30,
					"automountServiceAccountToken":  false,
					"enableServiceLinks":            false,
					"securityContext": object{"runAsNonRoot": true, "runAsUser": user, "runAsGroup": user,
						"seccompProfile": object{"type": "RuntimeDefault"}},
					"containers": []object{{
						"name":  "switchyard",
						"image": image,
						"args": []string{"serve", s.Name, "--config", "/etc/switchyard/switchyard.yaml",
							"--listen", fmt.Sprintf("0.0.0.0:%d", Port), "--drain-delay", "5s"},
						"ports":   []object{{"name": "http", "containerPort": Port, "protocol": "TCP"}},
						"env":     env,
						"envFrom": []object{{"secretRef": object{"name": ConnectionsSecret}}},
						"resources": object{
							"requests": object{"cpu": "100m", "memory": "64Mi"},
							"limits":   object{"cpu": "1", "memory": "256Mi"},
						},
						"startupProbe":   object{"httpGet": object{"path": "/livez", "port": "http"}, "periodSeconds": 2, "failureThreshold": 30},
						"livenessProbe":  probe("/livez", 10),
						"readinessProbe": probe("/readyz", 5),
						"securityContext": object{"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
							"privileged": false, "capabilities": object{"drop": []string{"ALL"}}},
						"volumeMounts": mounts,
					}},
					"volumes": volumes,
				},
			},
		},
	}
}

// service is headless (each instance its own A record, for client-side balancing),
// except the gateway's, which is the platform's one address.
func service(s Service) object {
	spec := object{
		"selector": selector(s.Name),
		"ports":    []object{{"name": "http", "port": Port, "targetPort": "http", "protocol": "TCP"}},
	}
	if !s.Public {
		spec["clusterIP"] = "None"
	}
	return object{"apiVersion": "v1", "kind": "Service", "metadata": meta(s.Name), "spec": spec}
}

func defaultDeny() object {
	return object{
		"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": object{"name": "default-deny"},
		"spec": object{"podSelector": object{}, "policyTypes": []string{"Ingress", "Egress"}},
	}
}

func tcp(port int) []object { return []object{{"protocol": "TCP", "port": port}} }

// networkPolicy lets in exactly the service's callers (any client, for the public
// one) and Prometheus, and lets out exactly its calls, the engines it uses and DNS.
func networkPolicy(s Service, callers []string) object {
	var ingress []object
	if s.Public {
		ingress = append(ingress, object{"ports": tcp(Port)})
	} else {
		slices.Sort(callers)
		for _, c := range slices.Compact(callers) {
			ingress = append(ingress, object{"ports": tcp(Port), "from": []object{{"podSelector": object{"matchLabels": selector(c)}}}})
		}
	}
	ingress = append(ingress, object{"ports": tcp(Port), "from": []object{{
		"namespaceSelector": object{},
		"podSelector":       object{"matchLabels": object{"app.kubernetes.io/name": "prometheus"}}}}})

	var egress []object
	for _, c := range slices.Compact(slices.Sorted(slices.Values(s.Calls))) {
		egress = append(egress, object{"ports": tcp(Port), "to": []object{{"podSelector": object{"matchLabels": selector(c)}}}})
	}
	uses := map[string]bool{"nats": true, "postgres": s.Database, "redis": s.Redis}
	for _, name := range slices.Sorted(maps.Keys(engines)) {
		if !uses[name] {
			continue
		}
		e := engines[name]
		egress = append(egress, object{"ports": tcp(e.port), "to": []object{{
			"namespaceSelector": object{},
			"podSelector":       object{"matchLabels": object{"app.kubernetes.io/name": e.label}}}}})
	}
	egress = append(egress, object{
		"ports": []object{{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}},
		"to": []object{{
			"namespaceSelector": object{"matchLabels": object{"kubernetes.io/metadata.name": "kube-system"}},
			"podSelector":       object{"matchLabels": object{"k8s-app": "kube-dns"}}}}})
	return object{
		"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(s.Name),
		"spec": object{
			"podSelector": object{"matchLabels": selector(s.Name)},
			"policyTypes": []string{"Ingress", "Egress"},
			"ingress":     ingress,
			"egress":      egress,
		},
	}
}

func pdb(s Service) object {
	return object{
		"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta(s.Name),
		"spec": object{"minAvailable": 2, "selector": object{"matchLabels": selector(s.Name)}},
	}
}

func hpa(s Service) object {
	return object{
		"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta(s.Name),
		"spec": object{
			"scaleTargetRef": object{"apiVersion": "apps/v1", "kind": "Deployment", "name": s.Name},
			"minReplicas":    3,
			"maxReplicas":    12,
			"metrics": []object{{"type": "Resource", "resource": object{
				"name": "cpu", "target": object{"type": "Utilization", "averageUtilization": 70}}}},
		},
	}
}
