package dns_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/discovery/discoverytest"
	"github.com/switchyard/switchyard/discovery/dns"
)

func TestDNSConformance(t *testing.T) {
	t.Parallel()
	for _, srv := range []bool{false, true} {
		name := "A records"
		if srv {
			name = "SRV records"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			discoverytest.Run(t, func(t *testing.T) discoverytest.Harness {
				zone := discoverytest.NewDNSServer(t)
				d, err := dns.New(dns.Config{
					Name: "%s.shop.svc.cluster.local", SRV: srv, Port: 8080,
					Interval: 100 * time.Millisecond, Resolver: zone.Resolver(),
				})
				if err != nil {
					t.Fatal(err)
				}
				return discoverytest.Harness{
					Resolver: d,
					Expiry:   100 * time.Millisecond,
					Announce: func(t testing.TB, inst discovery.Instance) (discovery.Instance, func(), func()) {
						host, port, _ := net.SplitHostPort(inst.Addr)
						ip := net.ParseIP(host)
						svcName := inst.Service + ".shop.svc.cluster.local"
						var remove func()
						resolved := inst
						resolved.Version, resolved.Weight = "", 0
						if srv {
							target := fmt.Sprintf("pod-%s.%s", strings.ReplaceAll(host, ".", "-"), svcName)
							var p uint16
							fmt.Sscan(port, &p)
							zone.AddA(target, ip)
							zone.AddSRV("http", svcName, target, p)
							remove = func() { zone.RemoveSRV("http", svcName, target, p) }
						} else {
							zone.AddA(svcName, ip)
							resolved.Addr = net.JoinHostPort(host, "8080")
							remove = func() { zone.RemoveA(svcName, ip) }
						}
						resolved.ID = strings.NewReplacer(".", "-", ":", "_").Replace(resolved.Addr)
						return resolved, remove, remove
					},
				}
			})
		})
	}
}

func TestAPatternWithoutTheServiceIsRefused(t *testing.T) {
	t.Parallel()
	if _, err := dns.New(dns.Config{Name: "orders.svc"}); err == nil {
		t.Errorf("a DNS pattern without the %s placeholder was accepted", "%s")
	}
}
