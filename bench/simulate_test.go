package bench

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/api/events"
	"github.com/switchyard/switchyard/internal/shop/catalog"
	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/platform/platformtest"
)

// hopPlatform runs the real catalog beside a simulated service whose one endpoint
// answers what catalog's product read answers: the same route, a body of the
// same shape and size, no declared latency.
const hopPlatform = `version: 1
broker: {kind: nats}
services:
  inventory: # declared for catalog's subscription; not run
    listen: 127.0.0.1:0
    publishes: [inventory.stock.changed.v1]
  catalog:
    listen: 127.0.0.1:0
    subscriptions: [inventory.stock.changed.v1]
  shelf:
    listen: 127.0.0.1:0
    simulate:
      endpoints:
        - endpoint: "GET /v1/products/{id}"
          response:
            id: "{{path.id}}"
            sku: SY-AUD-001
            name: Studio Monitor Headphones
            description: Closed-back, 50 mm drivers, detachable cable.
            category: audio
            price_minor: 12900
            currency: EUR
            available: 25
`

// BenchmarkHop compares the CPU one request costs the process — server and the
// benchmark's own client, which are the same for both — on the real catalog's
// product read and on a simulated endpoint answering the same: a simulated hop
// must not cost more than the code it stands for. Both run in this process, each
// a full service (server stack, telemetry, its own SQLite database); cpu-ns/op is
// the process's user and system time over the requests.
func BenchmarkHop(b *testing.B) {
	sys := platformtest.Start(b, platformtest.Options{Config: []byte(hopPlatform), Events: events.Schemas,
		Services: []platform.Service{catalog.Platform()}})
	for _, c := range []struct{ name, url string }{
		{"catalog-product-read", sys.URL("catalog") + "/v1/products/prod-aud-001"},
		{"simulated-endpoint", sys.URL("shelf") + "/v1/products/prod-aud-001"},
	} {
		b.Run(c.name, func(b *testing.B) {
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			defer client.CloseIdleConnections()
			if resp, err := client.Get(c.url); err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("GET %s: %v %v", c.url, resp, err)
			}
			began := cpuTime()
			drive(b, client, c.url)
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-began).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the CPU the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
