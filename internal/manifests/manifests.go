// Package manifests renders the platform's Kubernetes deployment from its
// configuration: a kustomize base (a Deployment, a Service and a NetworkPolicy per
// service, the configuration as a ConfigMap) and dev and prod overlays (replicas,
// resources, PodDisruptionBudgets and HorizontalPodAutoscalers). Routes, edges and
// policies stay in switchyard.yaml; the manifests follow from it, and the
// NetworkPolicies allow exactly the edges it declares.
//
// Objects are built from the Kubernetes API types (k8s.io/api) and written with
// sigs.k8s.io/yaml, so what is rendered is what the API server decodes.
package manifests

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
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
}

// The engines the services reach, found by their standard labels.
var engines = map[string]struct {
	label string
	port  int32
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

func labels(service string) map[string]string {
	return map[string]string{"app.kubernetes.io/name": service, "app.kubernetes.io/part-of": "switchyard"}
}

func selector(service string) map[string]string {
	return map[string]string{"app.kubernetes.io/name": service}
}

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
			s.Name + "-deployment.yaml":    deployment(s, in.Image),
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
	return files, nil
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

func deployment(s Service, image string) *appsv1.Deployment {
	replicas := int32(2)
	grace := int64(30) // longer than the 5 s drain delay plus the 5 s drain
	f, t := false, true
	user := int64(65532)
	env := []corev1.EnvVar{
		{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "SWITCHYARD_ADVERTISE_ADDR", Value: fmt.Sprintf("$(POD_IP):%d", Port)},
		{Name: "SWITCHYARD_DISCOVERY", Value: "dns"},
		{Name: "SWITCHYARD_DISCOVERY_DNS_NAME", Value: "%s.$(POD_NAMESPACE).svc.cluster.local"},
		{Name: "SWITCHYARD_SERVICE_KEY", Value: "/var/run/switchyard/identity/key.pem"},
		{Name: "SWITCHYARD_TRUST_BUNDLE", Value: "/var/run/switchyard/trust/bundle.json"},
	}
	probe := func(path string, period int32) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}},
			PeriodSeconds: period, TimeoutSeconds: 2, FailureThreshold: 3}
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Labels: labels(s.Name)},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: selector(s.Name)},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxUnavailable: ptr(intstr.FromInt32(0)), MaxSurge: ptr(intstr.FromInt32(1))}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels(s.Name), Annotations: map[string]string{
					"prometheus.io/scrape": "true", "prometheus.io/port": fmt.Sprint(Port), "prometheus.io/path": "/metrics"}},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					AutomountServiceAccountToken:  &f,
					EnableServiceLinks:            &f,
					SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: &t, RunAsUser: &user, RunAsGroup: &user,
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
					Containers: []corev1.Container{{
						Name:  "switchyard",
						Image: image,
						Args: []string{"serve", s.Name, "--config", "/etc/switchyard/switchyard.yaml",
							"--listen", fmt.Sprintf("0.0.0.0:%d", Port), "--drain-delay", "5s"},
						Ports:   []corev1.ContainerPort{{Name: "http", ContainerPort: Port, Protocol: corev1.ProtocolTCP}},
						Env:     env,
						EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: ConnectionsSecret}}}},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("256Mi")},
						},
						StartupProbe:   &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/livez", Port: intstr.FromString("http")}}, PeriodSeconds: 2, FailureThreshold: 30},
						LivenessProbe:  probe("/livez", 10),
						ReadinessProbe: probe("/readyz", 5),
						SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: &f, ReadOnlyRootFilesystem: &t, RunAsNonRoot: &t,
							Privileged: &f, Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "config", MountPath: "/etc/switchyard", ReadOnly: true},
							{Name: "identity", MountPath: "/var/run/switchyard/identity", ReadOnly: true},
							{Name: "trust", MountPath: "/var/run/switchyard/trust", ReadOnly: true},
							{Name: "tmp", MountPath: "/tmp"},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: configMap}}}},
						{Name: "identity", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: IdentitySecret(s.Name), DefaultMode: ptr(int32(0o400))}}},
						{Name: "trust", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: TrustSecret}}},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr(resource.MustParse("64Mi"))}}},
					},
				},
			},
		},
	}
}

// service is headless (each instance its own A record, for client-side balancing),
// except the gateway's, which is the platform's one address.
func service(s Service) *corev1.Service {
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Labels: labels(s.Name)},
		Spec: corev1.ServiceSpec{
			Selector: selector(s.Name),
			Ports:    []corev1.ServicePort{{Name: "http", Port: Port, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}},
		},
	}
	if !s.Public {
		svc.Spec.ClusterIP = corev1.ClusterIPNone
	}
	return svc
}

func defaultDeny() *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: "default-deny"},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}},
	}
}

func tcp(port int32) []networkingv1.NetworkPolicyPort {
	p := corev1.ProtocolTCP
	return []networkingv1.NetworkPolicyPort{{Protocol: &p, Port: ptr(intstr.FromInt32(port))}}
}

// networkPolicy lets in exactly the service's callers (any client, for the public
// one) and Prometheus, and lets out exactly its calls, the engines it uses and DNS.
func networkPolicy(s Service, callers []string) *networkingv1.NetworkPolicy {
	var ingress []networkingv1.NetworkPolicyIngressRule
	if s.Public {
		ingress = append(ingress, networkingv1.NetworkPolicyIngressRule{Ports: tcp(Port)})
	} else {
		slices.Sort(callers)
		for _, c := range slices.Compact(callers) {
			ingress = append(ingress, networkingv1.NetworkPolicyIngressRule{Ports: tcp(Port),
				From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: selector(c)}}}})
		}
	}
	ingress = append(ingress, networkingv1.NetworkPolicyIngressRule{Ports: tcp(Port), From: []networkingv1.NetworkPolicyPeer{{
		NamespaceSelector: &metav1.LabelSelector{},
		PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "prometheus"}}}}})

	var egress []networkingv1.NetworkPolicyEgressRule
	calls := slices.Compact(slices.Sorted(slices.Values(s.Calls)))
	for _, c := range calls {
		egress = append(egress, networkingv1.NetworkPolicyEgressRule{Ports: tcp(Port),
			To: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: selector(c)}}}})
	}
	uses := map[string]bool{"nats": true, "postgres": s.Database, "redis": s.Redis}
	for _, name := range slices.Sorted(maps.Keys(engines)) {
		if !uses[name] {
			continue
		}
		e := engines[name]
		egress = append(egress, networkingv1.NetworkPolicyEgressRule{Ports: tcp(e.port), To: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: &metav1.LabelSelector{},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": e.label}}}}})
	}
	udp, tcpp := corev1.ProtocolUDP, corev1.ProtocolTCP
	egress = append(egress, networkingv1.NetworkPolicyEgressRule{
		Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: ptr(intstr.FromInt32(53))}, {Protocol: &tcpp, Port: ptr(intstr.FromInt32(53))}},
		To: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "kube-system"}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}}}}})
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Labels: labels(s.Name)},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: selector(s.Name)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress:     ingress,
			Egress:      egress,
		},
	}
}

func pdb(s Service) *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Labels: labels(s.Name)},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr(intstr.FromInt32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: selector(s.Name)}},
	}
}

func hpa(s Service) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Labels: labels(s.Name)},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: s.Name},
			MinReplicas:    ptr(int32(3)),
			MaxReplicas:    12,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr(int32(70))}}}},
		},
	}
}

func ptr[T any](v T) *T { return &v }

// Edges returns the NetworkPolicy edges of a rendered object set, as "from>to"
// pairs over port 8080 between services (what tests compare with switchyard.yaml).
func Edges(policies []networkingv1.NetworkPolicy) (ingress, egress []string) {
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
